//! The configuration file: TOML, read from `HSE_CONFIG` (or `--config`),
//! with one top-level key per variable, its name without `HSE_` in lower
//! case (`http_addr = "0.0.0.0:8080"` for `HSE_HTTP_ADDR`). A variable set
//! in the environment overrides the file's key.
//!
//! Every variable of the module header is a key, with no code per
//! variable: the known keys are read from that header, so a variable
//! added there works in the file too. A value is a string, a number, a
//! boolean, or an array (joined with commas: `roles = ["api", "grpc"]`),
//! and goes through the same checks as the variable; a bad one is
//! reported as `<file>: <key>: <reason>`. An unknown key or a table is
//! refused the same way, so a typo does not pass for a default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// The variable naming the file.
pub const CONFIG_VARIABLE: &str = "HSE_CONFIG";

/// The module header, where every variable is listed.
const HEADER: &str = include_str!("mod.rs");

/// A parsed configuration file. `Debug` shows its keys, never its values
/// (it may hold passwords).
#[derive(Clone, Default)]
pub struct ConfigFile {
    /// How the file is named in messages (its path).
    name: String,
    /// Value by variable (`HSE_HTTP_ADDR`).
    values: HashMap<String, String>,
}

impl std::fmt::Debug for ConfigFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<String> = self.values.keys().map(|v| key_of(v)).collect();
        keys.sort();
        f.debug_struct("ConfigFile")
            .field("name", &self.name)
            .field("keys", &keys)
            .finish()
    }
}

impl ConfigFile {
    /// Reads and parses the file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] on `HSE_CONFIG` when the file cannot be read; naming
    /// the file and key when it is not valid.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            variable: CONFIG_VARIABLE,
            reason: format!("cannot read {name}: {e}"),
            file: None,
        })?;
        Self::parse(&name, &text)
    }

    /// Parses `text`, the file called `name` in messages.
    ///
    /// # Errors
    /// [`ConfigError`] naming `name` and the key at fault: a TOML syntax
    /// error, an unknown key, a table, or a value of no usable type.
    pub fn parse(name: &str, text: &str) -> Result<Self, ConfigError> {
        let document = toml_edit::Document::parse(text).map_err(|e| ConfigError {
            variable: CONFIG_VARIABLE,
            reason: format!("not valid TOML: {e}"),
            file: Some(name.to_owned()),
        })?;
        let known = known_variables();
        let mut values = HashMap::new();
        for (key, item) in document.iter() {
            let refuse = |reason: String| ConfigError {
                variable: CONFIG_VARIABLE,
                reason: format!("{key}: {reason}"),
                file: Some(name.to_owned()),
            };
            let Some(value) = item.as_value() else {
                return Err(refuse(
                    "tables are not used; write every key at the top".into(),
                ));
            };
            let variable = variable_of(key);
            if variable == CONFIG_VARIABLE {
                return Err(refuse(
                    "the file cannot name itself; set HSE_CONFIG or --config".into(),
                ));
            }
            if !known.contains(&variable.as_str()) {
                return Err(refuse(format!(
                    "unknown key (the keys are the HSE_* variables of `hse-server --help` \
                     without HSE_, in lower case: {})",
                    suggest(key, &known)
                )));
            }
            values.insert(variable, text_of(value).map_err(refuse)?);
        }
        Ok(Self {
            name: name.to_owned(),
            values,
        })
    }

    /// How the file is named in messages.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file's value for `variable` (`HSE_HTTP_ADDR`), as text.
    #[must_use]
    pub fn get(&self, variable: &str) -> Option<String> {
        self.values.get(variable).cloned()
    }
}

impl Config {
    /// Reads the process environment over the configuration file at
    /// `path` (`--config`), else the one `HSE_CONFIG` names, if any.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable, or the file and key.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let path = match path {
            Some(path) => Some(path.to_owned()),
            None => env(CONFIG_VARIABLE)
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from),
        };
        let file = path.map(|p| ConfigFile::read(&p)).transpose()?;
        Self::from_layers(env, file.as_ref())
    }

    /// Reads `env` (the variables) over `file`: a variable set to a
    /// non-empty value wins over the file's key. An error for a value that
    /// came from the file names the file and key.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad variable, or the file and key.
    pub fn from_layers(
        env: impl Fn(&str) -> Option<String>,
        file: Option<&ConfigFile>,
    ) -> Result<Self, ConfigError> {
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        let Some(file) = file else {
            return Self::from_lookup(set);
        };
        Self::from_lookup(|name| set(name).or_else(|| file.get(name))).map_err(|mut e| {
            if set(e.variable).is_some() {
                return e;
            }
            if file.get(e.variable).is_some() {
                e.file = Some(file.name.clone());
            } else {
                let key = key_of(e.variable);
                e.reason = format!("{} (or `{key}` in {})", e.reason, file.name);
            }
            e
        })
    }
}

/// The file key of `variable`: `HSE_HTTP_ADDR` → `http_addr`.
#[must_use]
pub fn key_of(variable: &str) -> String {
    variable
        .strip_prefix("HSE_")
        .unwrap_or(variable)
        .to_ascii_lowercase()
}

/// The variable of a file key: `http_addr` → `HSE_HTTP_ADDR`.
fn variable_of(key: &str) -> String {
    format!("HSE_{}", key.to_ascii_uppercase())
}

/// Every `HSE_*` variable the module header lists.
fn known_variables() -> Vec<&'static str> {
    let mut known: Vec<&str> = HEADER
        .lines()
        .take_while(|line| line.starts_with("//!") || line.trim().is_empty())
        .flat_map(|line| line.split('`'))
        .filter(|word| {
            word.len() > 4
                && word.starts_with("HSE_")
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    known.sort_unstable();
    known.dedup();
    known
}

/// "did you mean `x`?" for the closest known key, else the list.
fn suggest(key: &str, known: &[&str]) -> String {
    let keys: Vec<String> = known
        .iter()
        .filter(|v| **v != CONFIG_VARIABLE)
        .map(|v| key_of(v))
        .collect();
    let close = keys
        .iter()
        .min_by_key(|k| distance(key, k))
        .filter(|k| distance(key, k) <= 2);
    match close {
        Some(k) => format!("did you mean `{k}`?"),
        None => keys.join(", "),
    }
}

/// Edit distance between two short keys.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substituted = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// A TOML value as the text the variable would hold.
fn text_of(value: &toml_edit::Value) -> Result<String, String> {
    use toml_edit::Value;
    match value {
        Value::String(s) => Ok(s.value().clone()),
        Value::Integer(i) => Ok(i.value().to_string()),
        Value::Float(f) => Ok(f.value().to_string()),
        Value::Boolean(b) => Ok(b.value().to_string()),
        Value::Array(items) => {
            let parts: Result<Vec<String>, String> = items
                .iter()
                .map(|item| match item {
                    Value::Array(_) | Value::InlineTable(_) => {
                        Err("an array holds strings or numbers only".to_owned())
                    }
                    other => text_of(other),
                })
                .collect();
            Ok(parts?.join(","))
        }
        Value::Datetime(_) | Value::InlineTable(_) => Err(format!(
            "a {} is not used; write a string, number, boolean or array",
            value.type_name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_the_variables_without_hse_in_lower_case() {
        let file = ConfigFile::parse(
            "hse.toml",
            "http_addr = \"0.0.0.0:8080\"\nshutdown_timeout_s = 20\nroles = [\"api\", \"grpc\"]\n",
        )
        .unwrap();
        assert_eq!(file.get("HSE_HTTP_ADDR").as_deref(), Some("0.0.0.0:8080"));
        assert_eq!(file.get("HSE_SHUTDOWN_TIMEOUT_S").as_deref(), Some("20"));
        assert_eq!(file.get("HSE_ROLES").as_deref(), Some("api,grpc"));
        assert_eq!(key_of("HSE_REDIS_URL"), "redis_url");
    }

    #[test]
    fn every_header_variable_is_a_key() {
        let known = known_variables();
        for variable in ["HSE_HTTP_ADDR", "HSE_REDIS_PREFIX", "HSE_SMTP_FROM"] {
            assert!(known.contains(&variable), "{variable}");
        }
        assert!(!known.iter().any(|v| v.starts_with("HSE_*")));
    }

    #[test]
    fn unknown_keys_tables_and_odd_values_name_the_file_and_key() {
        for (text, needle) in [
            (
                "htp_addr = \"x\"",
                "htp_addr: unknown key (the keys are the HSE_* variables of `hse-server --help` without HSE_, in lower case: did you mean `http_addr`?)",
            ),
            ("[redis]\nurl = \"redis://x\"", "redis: tables are not used"),
            (
                "http_addr = 1979-05-27",
                "http_addr: a datetime is not used",
            ),
            ("roles = [[\"api\"]]", "roles: an array holds"),
            (
                "config = \"/etc/hse.toml\"",
                "config: the file cannot name itself",
            ),
            ("http_addr = ", "not valid TOML"),
        ] {
            let err = ConfigFile::parse("hse.toml", text).unwrap_err();
            assert!(err.to_string().starts_with("hse.toml: "), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    fn layered(env: &[(&str, &str)], text: &str) -> Result<Config, ConfigError> {
        let file = ConfigFile::parse("hse.toml", text).unwrap();
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_layers(|k| env.get(k).cloned(), Some(&file))
    }

    #[test]
    fn the_file_sets_what_the_environment_does_not() {
        let text = "http_addr = \"127.0.0.1:9090\"\nshutdown_timeout_s = 25\n\
                    redis_prefix = \"site-a:\"\nroles = [\"ingest\", \"workers\"]\n";
        let c = layered(&[("HSE_SHUTDOWN_TIMEOUT_S", "5")], text).unwrap();
        assert_eq!(c.http_addr.to_string(), "127.0.0.1:9090");
        assert_eq!(c.shutdown_timeout, std::time::Duration::from_secs(5));
        assert_eq!(c.redis_prefix, "site-a:");
        assert!(!c.roles.api && c.roles.ingest && c.roles.workers);
        let blank = layered(&[("HSE_REDIS_PREFIX", " ")], text).unwrap();
        assert_eq!(blank.redis_prefix, "site-a:", "an empty variable is unset");
    }

    #[test]
    fn a_bad_value_names_the_file_and_key_or_the_variable() {
        let from_file = layered(&[], "http_addr = \"localhost\"").unwrap_err();
        assert_eq!(from_file.variable, "HSE_HTTP_ADDR");
        assert!(
            from_file
                .to_string()
                .starts_with("hse.toml: http_addr: `localhost`"),
            "{from_file}"
        );
        let from_env = layered(
            &[("HSE_HTTP_ADDR", "nowhere")],
            "http_addr = \"127.0.0.1:1\"",
        );
        assert!(
            from_env
                .unwrap_err()
                .to_string()
                .starts_with("HSE_HTTP_ADDR: `nowhere`")
        );
        let missing = layered(&[], "webhook_url = \"http://h/\"").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "HSE_WEBHOOK_SECRET: is required with HSE_WEBHOOK_URL (or `webhook_secret` in hse.toml)"
        );
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../deploy/hse.toml");
        let file = ConfigFile::parse("deploy/hse.toml", text).unwrap();
        Config::from_layers(|_| None, Some(&file)).unwrap();
        // Every commented-out key is a key too (uncommenting one works).
        let commented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
            .map(|l| format!("{l}\n"))
            .collect();
        ConfigFile::parse("deploy/hse.toml (commented keys)", &commented).unwrap();
    }

    #[test]
    fn debug_never_shows_values() {
        let file = ConfigFile::parse("f", "root_password = \"hunter2-hunter2\"").unwrap();
        assert!(!format!("{file:?}").contains("hunter2"));
        assert!(format!("{file:?}").contains("root_password"));
    }
}
