//! Bearer-token checks shared by the operator and SDK listeners.

use http::header::AUTHORIZATION;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A bearer secret, kept only as its SHA-256 digest. Presented tokens are
/// hashed and compared in constant time, so neither the secret's content nor
/// its length leaks through timing.
#[derive(Clone)]
pub struct BearerSecret {
    digest: [u8; 32],
}

impl BearerSecret {
    pub fn new(secret: &str) -> Self {
        Self {
            digest: Sha256::digest(secret.as_bytes()).into(),
        }
    }

    /// True when the request carries `Authorization: Bearer <secret>`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .is_some_and(|token| self.matches(token))
    }

    /// True when `presented` is the secret (a sign-in form's field).
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        presented.ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for BearerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerSecret(<redacted>)")
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// 32 random bytes, hex-encoded: the format of generated secrets and tokens.
pub fn generate_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        h
    }

    #[test]
    fn admits_only_the_exact_secret() {
        let secret = BearerSecret::new("s3cret");
        assert!(secret.admits(&with_auth("Bearer s3cret")));
        assert!(secret.admits(&with_auth("bearer s3cret")));
        assert!(!secret.admits(&with_auth("Bearer s3cre")));
        assert!(!secret.admits(&with_auth("Bearer s3crett")));
        assert!(!secret.admits(&with_auth("Basic s3cret")));
        assert!(!secret.admits(&with_auth("Bearer ")));
        assert!(!secret.admits(&with_auth("s3cret")));
        assert!(!secret.admits(&HeaderMap::new()));
    }

    #[test]
    fn generated_tokens_are_64_hex_chars_and_differ() {
        let a = generate_token().expect("random");
        let b = generate_token().expect("random");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
