//! The daemon's operational log: what it says about itself (start-up, rebalances, consumer,
//! commit and delivery errors, librdkafka's own lines) as `tracing` events on stderr, with
//! levels, a filter (`RUST_LOG`, else `[daemon_log] level`) and a text or JSON format. Kept
//! apart from the execution logs (`exec_log.rs`, stdout by default), which are data.
//!
//! Repeated errors are rate-limited ([`limited!`]): the same message (same call site, same
//! text, numbers aside) is written at most once per [`INTERVAL`]; the next one after that
//! carries `suppressed=N`, and a message that stopped recurring has its count written by
//! [`flush_suppressed`] (called from the daemon's main loop). With the brokers down
//! librdkafka reports an error every few tens of milliseconds: without this, ~20 identical
//! lines a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per message per interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Distinct messages tracked at once; past it a new message is written unlimited (a flood
/// of distinct messages is not what this guards against, and the table stays bounded).
const MAX_TRACKED: usize = 1024;

/// `[daemon_log] format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `[daemon_log]`: the level filter (`RUST_LOG` overrides it) and the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonLogConfig {
    /// `error`, `warn`, `info`, `debug`, `trace` or `off`: for the daemon's own messages and
    /// librdkafka's; other crates' stay at `warn`.
    pub level: &'static str,
    pub format: LogFormat,
}

impl Default for DaemonLogConfig {
    fn default() -> Self {
        Self {
            level: "info",
            format: LogFormat::Text,
        }
    }
}

/// The levels `[daemon_log] level` accepts.
pub const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// The filter directives for a configured level: the daemon's and librdkafka's messages at
/// `level`, everything else at `warn`.
pub fn directives(level: &str) -> String {
    format!("warn,expressway={level},librdkafka={level}")
}

/// Installs the process's subscriber: stderr, `RUST_LOG` if set (and valid), else the
/// configured level. A second call (tests) changes nothing.
pub fn init(config: &DaemonLogConfig) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(directives(config.level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}

/// What the limiter says about one occurrence of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write it; `Some(n)`: `n` identical ones were suppressed since the last one written.
    Write(Option<u64>),
    Suppress,
}

/// A message's window: when it was last written, how many were suppressed since.
struct Window {
    written_at: Instant,
    suppressed: u64,
    /// The text last written, for the summary of a message that stopped recurring.
    text: String,
    callsite: &'static str,
}

/// A message suppressed in a window that has ended, and not written since.
#[derive(Debug, PartialEq, Eq)]
pub struct Suppressed {
    pub callsite: &'static str,
    pub text: String,
    pub count: u64,
}

/// The rate limiter, on a clock its caller passes (tests use a fake one).
pub struct RateLimiter {
    interval: Duration,
    windows: HashMap<(&'static str, String), Window>,
}

impl RateLimiter {
    pub fn new(interval: Duration) -> RateLimiter {
        RateLimiter {
            interval,
            windows: HashMap::new(),
        }
    }

    /// One occurrence of `text` at `callsite`, at `now`.
    pub fn admit(&mut self, callsite: &'static str, text: &str, now: Instant) -> Admit {
        let key = (callsite, normalize(text));
        match self.windows.get_mut(&key) {
            Some(w) if now.saturating_duration_since(w.written_at) < self.interval => {
                w.suppressed += 1;
                Admit::Suppress
            }
            Some(w) => {
                let suppressed = std::mem::take(&mut w.suppressed);
                w.written_at = now;
                w.text = text.to_owned();
                Admit::Write((suppressed > 0).then_some(suppressed))
            }
            None => {
                if self.windows.len() < MAX_TRACKED {
                    let window = Window {
                        written_at: now,
                        suppressed: 0,
                        text: text.to_owned(),
                        callsite,
                    };
                    self.windows.insert(key, window);
                }
                Admit::Write(None)
            }
        }
    }

    /// Forgets the messages whose window has ended, returning those that had occurrences
    /// suppressed in it (nothing was written about them since).
    pub fn expire(&mut self, now: Instant) -> Vec<Suppressed> {
        let mut ended = Vec::new();
        self.windows.retain(|_, w| {
            if now.saturating_duration_since(w.written_at) < self.interval {
                return true;
            }
            if w.suppressed > 0 {
                ended.push(Suppressed {
                    callsite: w.callsite,
                    text: std::mem::take(&mut w.text),
                    count: w.suppressed,
                });
            }
            false
        });
        ended.sort_by(|a, b| (a.callsite, &a.text).cmp(&(b.callsite, &b.text)));
        ended
    }
}

/// The text a message is compared by: runs of digits count as one (librdkafka's lines carry
/// timings and counters: `after 12ms`, `3/3 brokers are down`).
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

static LIMITER: Mutex<Option<RateLimiter>> = Mutex::new(None);

fn with_limiter<T>(f: impl FnOnce(&mut RateLimiter) -> T) -> T {
    let mut guard = LIMITER.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(|| RateLimiter::new(INTERVAL)))
}

/// The process-wide limiter's verdict on one occurrence (see [`limited!`]).
pub fn admit(callsite: &'static str, text: &str) -> Admit {
    with_limiter(|l| l.admit(callsite, text, Instant::now()))
}

/// Writes one line for each message that stopped recurring with occurrences suppressed
/// (how many, and the message). Cheap when there are none; the daemon's main loop calls it.
pub fn flush_suppressed() {
    for s in with_limiter(|l| l.expire(Instant::now())) {
        tracing::warn!(
            suppressed = s.count,
            callsite = s.callsite,
            error = %s.text,
            "identical messages suppressed in the last {} s",
            INTERVAL.as_secs()
        );
    }
}

/// A `tracing` event at `$level` for an error, rate-limited by call site and the error's
/// text: `limited!(warn, e, topic = %t, "commit failed")`. The event carries
/// `error = <text>` and, after a window with suppressed repeats, `suppressed = N`.
macro_rules! limited {
    ($level:ident, $error:expr, $($rest:tt)+) => {{
        let error = ::std::string::ToString::to_string(&$error);
        let callsite = concat!(file!(), ":", line!());
        if let $crate::telemetry::oplog::Admit::Write(suppressed) =
            $crate::telemetry::oplog::admit(callsite, &error)
        {
            ::tracing::$level!(error = %error, suppressed, $($rest)+);
        }
    }};
}
pub(crate) use limited;

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "kafka.rs:1";

    #[test]
    fn a_repeated_message_is_written_once_per_interval_then_with_its_count() {
        let mut limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(
            limiter.admit(SITE, "AllBrokersDown", at(0)),
            Admit::Write(None)
        );
        // 20 a second for 10 s: all suppressed.
        for i in 1..200 {
            assert_eq!(
                limiter.admit(SITE, "AllBrokersDown", at(i * 50)),
                Admit::Suppress
            );
        }
        assert_eq!(
            limiter.admit(SITE, "AllBrokersDown", at(10_000)),
            Admit::Write(Some(199))
        );
        assert_eq!(
            limiter.admit(SITE, "AllBrokersDown", at(10_050)),
            Admit::Suppress
        );
        // Nothing suppressed in a window: the next line has no count.
        let mut quiet = RateLimiter::new(Duration::from_secs(10));
        assert_eq!(quiet.admit(SITE, "x", at(0)), Admit::Write(None));
        assert_eq!(quiet.admit(SITE, "x", at(30_000)), Admit::Write(None));
    }

    #[test]
    fn messages_differ_by_call_site_and_text_but_not_by_numbers() {
        let mut limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(
            limiter.admit(SITE, "3/3 brokers are down", t0),
            Admit::Write(None)
        );
        assert_eq!(
            limiter.admit(SITE, "2/3 brokers are down", t0),
            Admit::Suppress
        );
        assert_eq!(
            limiter.admit("kafka.rs:2", "3/3 brokers are down", t0),
            Admit::Write(None)
        );
        assert_eq!(limiter.admit(SITE, "commit failed", t0), Admit::Write(None));
    }

    #[test]
    fn a_message_that_stops_recurring_has_its_count_reported_once() {
        let mut limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        limiter.admit(SITE, "b", at(0));
        limiter.admit(SITE, "a", at(0));
        limiter.admit(SITE, "a", at(100));
        limiter.admit(SITE, "a", at(200));
        limiter.admit(SITE, "once", at(0));
        assert_eq!(limiter.expire(at(9_999)), []);
        assert_eq!(
            limiter.expire(at(10_000)),
            [Suppressed {
                callsite: SITE,
                text: "a".into(),
                count: 2
            }]
        );
        // Forgotten: reported once, and the next occurrence is written at once.
        assert_eq!(limiter.expire(at(20_000)), []);
        assert_eq!(limiter.admit(SITE, "a", at(10_001)), Admit::Write(None));
    }

    #[test]
    fn the_table_is_bounded() {
        let mut limiter = RateLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED + 10 {
            let text = format!("message {}", "x".repeat(i));
            assert_eq!(limiter.admit(SITE, &text, t0), Admit::Write(None));
        }
        assert_eq!(limiter.windows.len(), MAX_TRACKED);
    }

    #[test]
    fn the_configured_level_covers_the_daemon_and_librdkafka() {
        assert_eq!(
            directives("debug"),
            "warn,expressway=debug,librdkafka=debug"
        );
        for level in LEVELS {
            assert!(tracing_subscriber::EnvFilter::try_new(directives(level)).is_ok());
        }
    }
}
