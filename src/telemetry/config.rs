//! `[logs]`, `[daemon_log]` and `[metrics]`: where execution logs, the daemon's own
//! operational log and Prometheus metrics go, and their readers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::exec_log::LogLevel;
use super::oplog::{DaemonLogConfig, LogFormat, LEVELS};
use crate::config_reader::Section;

/// `[logs]`: execution logs, as Step Functions' logging configuration has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsConfig {
    pub level: LogLevel,
    pub include_execution_data: bool,
    pub destination: LogDestination,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            level: LogLevel::Error,
            include_execution_data: false,
            destination: LogDestination::Stdout,
        }
    }
}

/// `logs.destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogDestination {
    Stdout,
    Stderr,
    /// Appended to; resolved against the config file's directory, whose parent exists.
    File(PathBuf),
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `/metrics` is served; `None` (`listen = ""`) turns it off.
    pub listen: Option<SocketAddr>,
    /// `per_state`: count each state (label `state`); the console's per-state figures too.
    pub per_state: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            per_state: true,
        }
    }
}

/// Reads `[logs]`; a file destination is taken relative to `base_dir`.
pub fn read_logs(mut section: Section<'_>, base_dir: &Path) -> LogsConfig {
    let defaults = LogsConfig::default();
    let level = section.one_of(
        "level",
        defaults.level,
        &[
            ("ALL", LogLevel::All),
            ("ERROR", LogLevel::Error),
            ("FATAL", LogLevel::Fatal),
            ("OFF", LogLevel::Off),
        ],
    );
    let include_execution_data =
        section.bool("include_execution_data", defaults.include_execution_data);
    let destination = match section.string("destination") {
        None | Some("stdout") => LogDestination::Stdout,
        Some("stderr") => LogDestination::Stderr,
        Some("") => {
            section.error(
                "destination",
                "must be \"stdout\", \"stderr\" or a file path",
            );
            LogDestination::Stdout
        }
        Some(relative) => {
            let path = base_dir.join(relative);
            if path.is_dir() {
                section.error("destination", format!("{} is a directory", path.display()));
            } else if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    let message = format!("directory {} does not exist", dir.display());
                    section.error("destination", message);
                }
            }
            LogDestination::File(path)
        }
    };
    section.finish();
    LogsConfig {
        level,
        include_execution_data,
        destination,
    }
}

/// Reads `[daemon_log]`.
pub fn read_daemon_log(mut section: Section<'_>) -> DaemonLogConfig {
    let defaults = DaemonLogConfig::default();
    let levels = LEVELS.map(|level| (level, level));
    let level = section.one_of("level", defaults.level, &levels);
    let format = section.one_of(
        "format",
        defaults.format,
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    );
    section.finish();
    DaemonLogConfig { level, format }
}

/// Reads `[metrics]`.
pub fn read_metrics(mut section: Section<'_>) -> MetricsConfig {
    let listen = match section.string("listen") {
        None => MetricsConfig::default().listen,
        Some("") => None,
        Some(text) => text.parse().map_or_else(
            |_| {
                let message = format!(
                    "{text:?} is not an IP:port such as \"127.0.0.1:9464\" (\"\" turns metrics off)"
                );
                section.error("listen", message);
                None
            },
            Some,
        ),
    };
    let per_state = section.bool("per_state", true);
    section.finish();
    MetricsConfig { listen, per_state }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_reader::testing::{assert_section_errors, read_section};

    #[test]
    fn logs_are_read_and_checked() {
        let dir = std::env::temp_dir();
        let logs = |text: &str| read_section(text, "logs", |s| read_logs(s, &dir));
        let config = logs("[logs]\nlevel = \"ALL\"\ndestination = \"x.log\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(config.level, LogLevel::All);
        assert_eq!(config.destination, LogDestination::File(dir.join("x.log")));
        assert_section_errors(
            logs("[logs]\nlevel = \"all\"\ndestination = \"\"\ninclude_execution_data = 1\n"),
            &[
                ("logs.level", "\"all\" is not one of"),
                (
                    "logs.destination",
                    "must be \"stdout\", \"stderr\" or a file path",
                ),
                ("logs.include_execution_data", "expected true or false"),
            ],
        );
    }

    #[test]
    fn daemon_log_level_and_format_are_read_and_checked() {
        let daemon_log = |text: &str| read_section(text, "daemon_log", read_daemon_log);
        assert_eq!(
            daemon_log("[daemon_log]\n").unwrap(),
            Some(DaemonLogConfig::default())
        );
        assert_eq!(
            daemon_log("[daemon_log]\nlevel = \"debug\"\nformat = \"json\"\n").unwrap(),
            Some(DaemonLogConfig {
                level: "debug",
                format: LogFormat::Json
            })
        );
        assert_section_errors(
            daemon_log("[daemon_log]\nlevel = \"INFO\"\nformat = \"logfmt\"\nfile = \"x\"\n"),
            &[
                ("daemon_log.level", "\"INFO\" is not one of"),
                ("daemon_log.format", "\"logfmt\" is not one of"),
                ("daemon_log.file", "unknown key"),
            ],
        );
    }

    #[test]
    fn metrics_listen_is_an_address_or_off() {
        let metrics = |text: &str| read_section(text, "metrics", read_metrics);
        assert_eq!(
            metrics("[metrics]\n").unwrap(),
            Some(MetricsConfig::default())
        );
        assert_eq!(
            metrics("[metrics]\nlisten = \"\"\n").unwrap(),
            Some(MetricsConfig {
                listen: None,
                per_state: true
            })
        );
        assert_section_errors(
            metrics("[metrics]\nlisten = \"localhost:9464\"\n"),
            &[("metrics.listen", "is not an IP:port")],
        );
    }
}
