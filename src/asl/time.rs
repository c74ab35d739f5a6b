//! Time as the engine sees it: epoch milliseconds handed in by the caller, and their
//! ISO-8601 form. Nothing here reads a clock.

/// Milliseconds since the Unix epoch: the engine's only notion of time.
pub type Millis = i64;

/// Formats epoch milliseconds as Step Functions does: `2024-05-01T12:00:00.123Z` (the
/// context object's times, JSONata's `$now()`, history timestamps).
pub fn iso8601(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
