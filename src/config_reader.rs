//! The error-collecting TOML reader every config section is read with: the component that
//! owns a section (`api::config`, `integrations::config`, `daemon::kafka::config`, …) reads
//! it with a [`Section`], and `daemon::config` puts the sections together into one file.
//!
//! Reading never stops at the first problem. The text is parsed into a [`toml::Table`] and
//! walked section by section with small typed readers ([`Section`]) that record each error
//! under its key path (`sources[0].topics`) and carry on, so one `validate` run shows
//! everything that is wrong, semantic mistakes included. Serde's derive would stop at the
//! first error, hence the hand-written walk. Each reader also remembers which keys it asked
//! for, so that unknown keys are reported at every level.
//!
//! Readers return a value even for a broken section (defaults and empty strings stand in
//! for what was wrong), so that later checks can still run. Those placeholders never
//! escape: any recorded error turns the result into `Err`.

use std::cell::RefCell;
use std::fmt;
use std::path::PathBuf;

use toml::{Table, Value};

/// One problem with a configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file itself could not be read.
    #[error("{}: cannot read the config file: {reason}", file.display())]
    Unreadable { file: PathBuf, reason: String },
    /// The text is not TOML; nothing else can be checked until this is fixed.
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key that is missing, unknown, of the wrong type or has a bad value.
    #[error("{path}: {message}")]
    Key { path: String, message: String },
}

impl ConfigError {
    /// The key path (`sources[0].topics`) of a [`ConfigError::Key`].
    pub fn key_path(&self) -> Option<&str> {
        match self {
            ConfigError::Key { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Every problem found in a configuration (never empty). Displays one per line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn one_per_line(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Parses TOML text; a syntax error comes back alone, with its line and column.
pub fn parse_table(text: &str) -> Result<Table, ConfigErrors> {
    text.parse().map_err(|err: toml::de::Error| {
        let offset = err.span().map_or(0, |span| span.start);
        let (line, column) = line_column(text, offset);
        ConfigErrors(vec![ConfigError::Syntax {
            line,
            column,
            // One error, one line.
            message: err.message().trim().lines().collect::<Vec<_>>().join("; "),
        }])
    })
}

/// Reads `text` with `read`, handed the whole document: its value, or every problem found
/// in the order found. (Unknown top-level keys are `read`'s to report, with
/// [`Section::finish`].)
pub fn read_document<T>(
    text: &str,
    read: impl FnOnce(Section<'_>) -> T,
) -> Result<T, ConfigErrors> {
    let root = parse_table(text)?;
    let errors = Errors::default();
    let value = read(Section::new(String::new(), &root, &errors));
    let errors = errors.into_vec();
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Every problem found so far, shared by the readers of one document.
#[derive(Default)]
pub struct Errors(RefCell<Vec<ConfigError>>);

impl Errors {
    pub fn add(&self, path: impl Into<String>, message: impl Into<String>) {
        self.0.borrow_mut().push(ConfigError::Key {
            path: path.into(),
            message: message.into(),
        });
    }

    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0.into_inner()
    }
}

/// Reads the keys of one TOML table as typed values, recording what is wrong with each
/// instead of stopping. It remembers every key asked for; [`Section::finish`] reports the
/// others as unknown.
pub struct Section<'a> {
    /// Key path of this table: `""` for the document, `kafka`, `sources[2]`.
    path: String,
    table: &'a Table,
    known: Vec<&'static str>,
    errors: &'a Errors,
}

impl<'a> Section<'a> {
    pub fn new(path: String, table: &'a Table, errors: &'a Errors) -> Self {
        Self {
            path,
            table,
            known: Vec::new(),
            errors,
        }
    }

    /// Key path of this table.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Where the errors go, for those recorded under a path of the caller's making.
    pub fn errors(&self) -> &'a Errors {
        self.errors
    }

    pub fn path_of(&self, key: &str) -> String {
        join_key(&self.path, key)
    }

    /// `key[i]`: element `i` of the array `key`.
    pub fn item_path(&self, key: &str, i: usize) -> String {
        format!("{}[{i}]", self.path_of(key))
    }

    pub fn error(&self, key: &str, message: impl Into<String>) {
        self.errors.add(self.path_of(key), message);
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// `key`'s value as `T`: `None` when absent, or when of the wrong type (recorded).
    pub fn optional<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        extract: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Option<T> {
        self.known.push(key);
        let value = self.table.get(key)?;
        let found = extract(value);
        if found.is_none() {
            self.error(
                key,
                format!("expected {expected}, found {}", describe(value)),
            );
        }
        found
    }

    /// Like [`Section::optional`], and absence is an error too.
    pub fn required<T>(
        &mut self,
        key: &'static str,
        expected: &str,
        extract: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Option<T> {
        if !self.has(key) {
            self.error(key, format!("missing (required: {expected})"));
        }
        self.optional(key, expected, extract)
    }

    pub fn string(&mut self, key: &'static str) -> Option<&'a str> {
        self.optional(key, "a string", Value::as_str)
    }

    pub fn required_string(&mut self, key: &'static str) -> Option<&'a str> {
        self.required(key, "a string", Value::as_str)
    }

    pub fn bool(&mut self, key: &'static str, default: bool) -> bool {
        self.optional(key, "true or false", Value::as_bool)
            .unwrap_or(default)
    }

    /// An integer in `min..=max`, or `default` when absent or wrong.
    pub fn uint<T>(&mut self, key: &'static str, default: T, min: T, max: T) -> T
    where
        T: TryFrom<i64> + PartialOrd + fmt::Display + Copy,
    {
        let Some(n) = self.optional(key, "an integer", Value::as_integer) else {
            return default;
        };
        // Values that do not fit `T` are beyond one of the bounds: below for negatives.
        match T::try_from(n) {
            Ok(v) if v < min => self.error(key, format!("must be at least {min}, got {v}")),
            Ok(v) if v > max => self.error(key, format!("must be at most {max}, got {v}")),
            Ok(v) => return v,
            Err(_) if n < 0 => self.error(key, format!("must be at least {min}, got {n}")),
            Err(_) => self.error(key, format!("must be at most {max}, got {n}")),
        }
        default
    }

    /// A string naming one of `choices`, or `default` when absent or wrong.
    pub fn one_of<T: Copy>(&mut self, key: &'static str, default: T, choices: &[(&str, T)]) -> T {
        let Some(text) = self.string(key) else {
            return default;
        };
        if let Some(&(_, value)) = choices.iter().find(|(name, _)| *name == text) {
            return value;
        }
        let names: Vec<String> = choices
            .iter()
            .map(|(name, _)| format!("{name:?}"))
            .collect();
        self.error(
            key,
            format!("{text:?} is not one of {} (case matters)", names.join(", ")),
        );
        default
    }

    /// A required array of strings; `None` if any element is not one (each reported as
    /// `key[i]`).
    pub fn required_string_list(&mut self, key: &'static str) -> Option<Vec<&'a str>> {
        let items = self.required(key, "an array of strings", Value::as_array)?;
        let mut strings = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(text) => strings.push(text),
                None => self.errors.add(
                    self.item_path(key, i),
                    format!("expected a string, found {}", describe(item)),
                ),
            }
        }
        (strings.len() == items.len()).then_some(strings)
    }

    /// A raw sub-table, for sections whose keys are free-form.
    pub fn table(&mut self, key: &'static str) -> Option<&'a Table> {
        self.optional(key, "a table", Value::as_table)
    }

    /// An optional sub-table (`[key]`), read with its own [`Section`].
    pub fn section(&mut self, key: &'static str) -> Option<Section<'a>> {
        let table = self.table(key)?;
        Some(Section::new(self.path_of(key), table, self.errors))
    }

    pub fn required_section(&mut self, key: &'static str) -> Option<Section<'a>> {
        if !self.has(key) {
            self.error(key, format!("missing (required: a [{key}] table)"));
        }
        self.section(key)
    }

    /// A required, non-empty array of tables (`[[key]]`); elements that are not tables
    /// are reported and left out.
    pub fn required_sections(&mut self, key: &'static str) -> Vec<Section<'a>> {
        let expected = format!("at least one [[{key}]] table");
        let Some(items) = self.required(key, &expected, Value::as_array) else {
            return Vec::new();
        };
        if items.is_empty() {
            self.error(key, format!("must not be empty (required: {expected})"));
        }
        let mut sections = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = self.item_path(key, i);
            match item.as_table() {
                Some(table) => sections.push(Section::new(path, table, self.errors)),
                None => self
                    .errors
                    .add(path, format!("expected a table, found {}", describe(item))),
            }
        }
        sections
    }

    /// [`Section::required_section`], or an optional one when `optional`.
    pub fn required_section_unless(
        &mut self,
        key: &'static str,
        optional: bool,
    ) -> Option<Section<'a>> {
        if optional {
            self.section(key)
        } else {
            self.required_section(key)
        }
    }

    /// [`Section::required_sections`], or none at all when `optional` and absent.
    pub fn required_sections_unless(
        &mut self,
        key: &'static str,
        optional: bool,
    ) -> Vec<Section<'a>> {
        if optional && !self.has(key) {
            self.known.push(key);
            return Vec::new();
        }
        self.required_sections(key)
    }

    /// An optional array of tables (`[[key]]`); elements that are not tables are reported.
    pub fn sections(&mut self, key: &'static str) -> Vec<Section<'a>> {
        self.required_sections_unless(key, true)
    }

    /// Reports every key of this table that no reader asked for.
    pub fn finish(self) {
        for key in self.table.keys() {
            if self.known.contains(&key.as_str()) {
                continue;
            }
            let message = match closest(key, &self.known) {
                Some(known) => format!("unknown key (did you mean {known:?}?)"),
                None => format!("unknown key (known here: {})", self.known.join(", ")),
            };
            self.error(key, message);
        }
    }
}

/// Records an error unless `url` is an `http://` or `https://` URL.
pub fn check_url(section: &Section<'_>, key: &str, url: &str) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        section.error(key, format!("{url:?} is not an http:// or https:// URL"));
    }
}

/// The known key a mistyped `key` most likely meant: at most two edits away, ignoring case.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|&candidate| (edit_distance(&key, candidate), candidate))
        .filter(|&(distance, _)| distance <= 2)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// `parent.key`, quoting keys that TOML would not accept bare (`"security.protocol"`).
pub fn join_key(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

/// What a value is, for "expected X, found Y"; scalars show themselves.
fn describe(value: &Value) -> String {
    match value {
        Value::String(_) => format!("a string ({value})"),
        Value::Integer(_) => format!("an integer ({value})"),
        Value::Float(_) => format!("a float ({value})"),
        Value::Boolean(_) => format!("a boolean ({value})"),
        Value::Datetime(_) => format!("a date-time ({value})"),
        Value::Array(_) => "an array".to_string(),
        Value::Table(_) => "a table".to_string(),
    }
}

/// For the tests of each section's reader.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// Reads the section `key` of `text` with `read`: its value, or `(key path, message)`
    /// of every error.
    pub fn read_section<T>(
        text: &str,
        key: &'static str,
        read: impl FnOnce(Section<'_>) -> T,
    ) -> Result<Option<T>, Vec<(String, String)>> {
        read_document(text, |mut doc| doc.section(key).map(read)).map_err(|errors| {
            errors
                .0
                .into_iter()
                .map(|err| match err {
                    ConfigError::Key { path, message } => (path, message),
                    other => panic!("expected key errors only, got {other}"),
                })
                .collect()
        })
    }

    /// Asserts the errors are exactly `expected`, each given as `(path, part of message)`.
    pub fn assert_section_errors<T: fmt::Debug>(
        found: Result<T, Vec<(String, String)>>,
        expected: &[(&str, &str)],
    ) {
        let found = found.expect_err("expected errors");
        for (path, part) in expected {
            assert!(
                found.iter().any(|(p, m)| p == path && m.contains(part)),
                "no error at {path} containing {part:?}; found:\n{found:#?}"
            );
        }
        assert_eq!(
            found.len(),
            expected.len(),
            "unexpected extra errors:\n{found:#?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_within_two_edits_ignoring_case() {
        let known = ["results_topic", "dead_letter_topic", "name"];
        assert_eq!(closest("results_topc", &known), Some("results_topic"));
        assert_eq!(closest("NAME", &known), Some("name"));
        assert_eq!(closest("colour", &known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn keys_that_toml_would_not_accept_bare_are_quoted() {
        assert_eq!(join_key("", "kafka"), "kafka");
        assert_eq!(
            join_key("kafka.properties", "security.protocol"),
            r#"kafka.properties."security.protocol""#
        );
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\né=x", 6), (2, 3));
        assert_eq!(line_column("", 10), (1, 1));
    }
}
