//! ISO-8601 timestamps as Step Functions accepts them (Wait `Timestamp`, Choice `Timestamp*`).
//! STUB: interface only; being implemented.

use chrono::{DateTime, FixedOffset};

/// Parses an RFC 3339 timestamp the way Step Functions does; `None` when AWS would reject it.
pub fn parse(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s).ok()
}
