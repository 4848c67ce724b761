//! What each stage says about its keys (the WIT `state.describe` import):
//! families of keys by prefix, with the rule or budget they belong to and
//! how long an idle pot of theirs is kept. The host labels its views and
//! collects idle pots from these, never by reading a stage's key format,
//! so a third-party stage's state is shown and collected the same way.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// Most families one stage may describe.
pub const MAX_FAMILIES: usize = 4096;
/// Longest `kind` or `name` of a family.
pub const MAX_LABEL_BYTES: usize = 256;

/// One family of a stage's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFamily {
    /// Keys (unscoped: as the stage names them) starting with this.
    pub prefix: String,
    /// `rate`, `spend`, `budget`, or the stage's own word.
    pub kind: String,
    /// The rule or budget.
    pub name: String,
    /// How long a pot with no window may sit idle before it is forgotten.
    pub idle_ttl_ms: Option<u64>,
}

/// A stage's families, set once when its first instance is configured.
pub type Families = Arc<OnceLock<FamilyIndex>>;

/// Families by prefix, found by longest prefix in as many map lookups as
/// there are distinct prefix lengths (a stage with a thousand rules need
/// not compare a key with a thousand prefixes).
#[derive(Debug, Default)]
pub struct FamilyIndex {
    by_prefix: HashMap<String, Arc<KeyFamily>>,
    /// Distinct prefix lengths, longest first.
    lengths: Vec<usize>,
}

impl FamilyIndex {
    pub fn new(families: Vec<Arc<KeyFamily>>) -> Self {
        let mut lengths: Vec<usize> = families.iter().map(|f| f.prefix.len()).collect();
        lengths.sort_unstable_by(|a, b| b.cmp(a));
        lengths.dedup();
        let by_prefix = families
            .into_iter()
            .map(|family| (family.prefix.clone(), family))
            .collect();
        Self { by_prefix, lengths }
    }

    /// Every family, by prefix.
    pub fn all(&self) -> Vec<&Arc<KeyFamily>> {
        let mut all: Vec<_> = self.by_prefix.values().collect();
        all.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        all
    }

    /// The family of `key` (as the stage names it) and the key's bucket.
    pub fn find<'a>(&'a self, key: &'a str) -> Option<(&'a Arc<KeyFamily>, &'a str)> {
        self.lengths.iter().find_map(|&length| {
            let family = self.by_prefix.get(key.get(..length)?)?;
            Some((family, &key[length..]))
        })
    }
}

/// The family of `key` (as the stage names it), once the stage described
/// its keys.
pub fn family_of<'a>(
    families: &'a Families,
    key: &'a str,
) -> Option<(&'a Arc<KeyFamily>, &'a str)> {
    families.get()?.find(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(prefix: &str, name: &str) -> Arc<KeyFamily> {
        Arc::new(KeyFamily {
            prefix: prefix.into(),
            kind: "budget".into(),
            name: name.into(),
            idle_ttl_ms: None,
        })
    }

    #[test]
    fn the_longest_prefix_wins_and_the_rest_is_the_bucket() {
        let families: Families = Arc::default();
        assert!(
            family_of(&families, "budget:a:fp:global").is_none(),
            "nothing described yet"
        );
        let _ = families.set(FamilyIndex::new(vec![
            family("budget:", "retired"),
            family("budget:a:fp:", "a"),
        ]));
        let (found, bucket) = family_of(&families, "budget:a:fp:session:s1").expect("family");
        assert_eq!((found.name.as_str(), bucket), ("a", "session:s1"));
        let (found, bucket) = family_of(&families, "budget:b:old:global").expect("family");
        assert_eq!((found.name.as_str(), bucket), ("retired", "b:old:global"));
        assert!(family_of(&families, "exposure").is_none());
    }
}
