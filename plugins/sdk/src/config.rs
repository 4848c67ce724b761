//! A stage's configuration, read into its own `#[derive(Deserialize)]`
//! type: every key the type does not know and every value of the wrong type
//! is a [`ConfigError`] with its path (`rules[2].pattern`), which Helio
//! reports under the stage's YAML path at `helio validate`, at start and on
//! reload.

use serde::de::DeserializeOwned;

/// A problem in a stage's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where, as a YAML-style path (`rules[2].match`); empty for the whole.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Reads `config_json` as `T`. Unknown keys are errors (each one, with its
/// path), so a misspelt option never silently does nothing; so is the first
/// value of the wrong type.
pub fn parse<T: DeserializeOwned>(config_json: &str) -> Result<T, Vec<ConfigError>> {
    let mut unknown = Vec::new();
    let mut json = serde_json::Deserializer::from_str(config_json);
    let mut note = |path: serde_ignored::Path<'_>| {
        unknown.push(ConfigError::new(ignored_path(&path), "unknown key"));
    };
    let ignoring = serde_ignored::Deserializer::new(&mut json, &mut note);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(ignoring);
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let path = error.path().to_string();
            let path = if path == "." { String::new() } else { path };
            return Err(vec![ConfigError::new(path, error.into_inner().to_string())]);
        }
    };
    if !unknown.is_empty() {
        return Err(unknown);
    }
    Ok(parsed)
}

/// serde_ignored's path in serde_path_to_error's form (`a.b[2].c`).
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => {
            let parent = ignored_path(parent);
            match parent.is_empty() {
                true => key.clone(),
                false => format!("{parent}.{key}"),
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Config {
        #[serde(default)]
        fields: Vec<Field>,
        max: Option<u32>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Field {
        path: String,
    }

    #[test]
    fn paths_name_unknown_keys_and_wrong_types() {
        let ok: Config = parse(r#"{"fields":[{"path":"a"}],"max":3}"#).expect("valid");
        assert_eq!(ok.max, Some(3));
        let errors = parse::<Config>(r#"{"fields":[{"path":"a","pth":1}],"mx":3}"#)
            .expect_err("unknown keys");
        let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["fields[0].pth", "mx"]);
        let errors = parse::<Config>(r#"{"fields":[{"path":7}]}"#).expect_err("type");
        assert_eq!(errors[0].path, "fields[0].path");
        assert!(
            errors[0].message.contains("expected a string"),
            "{errors:?}"
        );
        let errors = parse::<Config>("[]").expect_err("not an object");
        assert_eq!(errors[0].path, "");
    }
}
