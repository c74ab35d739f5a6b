//! The shared AWS config and credentials files (`~/.aws/config`, `~/.aws/credentials`, or
//! `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE`) and the profile in use (`AWS_PROFILE`,
//! else `default`), read as AWS SDKs read them: `[profile NAME]` sections in the config file,
//! `[NAME]` in the credentials file (which wins for keys), `[services NAME]` sections with
//! per-service sub-properties (`dynamodb =` then indented `endpoint_url = …`).

use std::collections::HashMap;
use std::path::PathBuf;

/// The settings of the profile in use, from both files.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Profile {
    pub name: String,
    /// `key = value` of the profile (credentials file over config file).
    pub settings: HashMap<String, String>,
    /// The `[services NAME]` section the profile's `services` names: service key
    /// (`dynamodb`, `secrets_manager`) → its sub-properties.
    pub services: HashMap<String, HashMap<String, String>>,
}

impl Profile {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Reads the profile `AWS_PROFILE` (or `name`, or `default`) names; missing files are
    /// empty.
    pub fn load(name: Option<&str>) -> Profile {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let name = name
            .map(str::to_owned)
            .or_else(|| env("AWS_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let home = env("HOME").map(PathBuf::from).unwrap_or_default();
        let config = env("AWS_CONFIG_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws/config"));
        let credentials = env("AWS_SHARED_CREDENTIALS_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws/credentials"));
        let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        Profile::from_texts(&name, &read(&config), &read(&credentials))
    }

    fn from_texts(name: &str, config: &str, credentials: &str) -> Profile {
        let config = sections(config);
        let credentials = sections(credentials);
        let mut settings = HashMap::new();
        let profile_key = if name == "default" {
            "default".to_owned()
        } else {
            format!("profile {name}")
        };
        // `[default]` and `[profile default]` both name the default profile in the config.
        for key in [profile_key.as_str(), &format!("profile {name}")] {
            if let Some(section) = config.get(key) {
                for (k, v) in &section.values {
                    settings.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(section) = credentials.get(name) {
            for (k, v) in &section.values {
                settings.insert(k.clone(), v.clone());
            }
        }
        let services = settings
            .get("services")
            .and_then(|s| config.get(&format!("services {s}")))
            .map(|section| section.nested.clone())
            .unwrap_or_default();
        Profile {
            name: name.to_owned(),
            settings,
            services,
        }
    }
}

#[derive(Default)]
struct Section {
    values: HashMap<String, String>,
    /// `key =` followed by indented `sub = value` lines.
    nested: HashMap<String, HashMap<String, String>>,
}

/// An INI file's sections by name (`profile x`, `services y`, `default`).
fn sections(text: &str) -> HashMap<String, Section> {
    let mut out: HashMap<String, Section> = HashMap::new();
    let mut current: Option<String> = None;
    let mut parent: Option<String> = None;
    for line in text.lines() {
        let indented = line.starts_with([' ', '\t']);
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
            parent = None;
            continue;
        }
        let (Some(section), Some((key, value))) = (&current, line.split_once('=')) else {
            continue;
        };
        let section = out.get_mut(section).expect("made when its header was read");
        let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
        match (&parent, indented) {
            (Some(p), true) => {
                section
                    .nested
                    .entry(p.clone())
                    .or_default()
                    .insert(key, value);
            }
            _ if value.is_empty() => parent = Some(key),
            _ => {
                parent = None;
                section.values.insert(key, value);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_read_as_the_sdks_read_them() {
        let config = "[default]\nregion = eu-west-1\n\n[profile dev]\nregion = us-west-2\n\
                      services = local\naws_access_key_id = from-config\n\n[services local]\n\
                      dynamodb =\n  endpoint_url = http://localhost:8000\n\
                      secrets_manager =\n  endpoint_url = http://localhost:9000\n";
        let credentials = "[dev]\naws_access_key_id = AKID\naws_secret_access_key = secret\n";
        let dev = Profile::from_texts("dev", config, credentials);
        assert_eq!(dev.get("region"), Some("us-west-2"));
        assert_eq!(dev.get("aws_access_key_id"), Some("AKID"));
        assert_eq!(dev.get("aws_secret_access_key"), Some("secret"));
        assert_eq!(
            dev.services["dynamodb"]["endpoint_url"],
            "http://localhost:8000"
        );
        assert_eq!(
            dev.services["secrets_manager"]["endpoint_url"],
            "http://localhost:9000"
        );
        let default = Profile::from_texts("default", config, "");
        assert_eq!(default.get("region"), Some("eu-west-1"));
        assert!(default.services.is_empty());
    }
}
