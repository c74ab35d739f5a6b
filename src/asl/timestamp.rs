//! ISO-8601 timestamps as Step Functions accepts them (Wait `Timestamp`, Choice `Timestamp*`).
//!
//! AWS rejects bad timestamps with "…not a valid ISO-8601 extended offset date-time format
//! string", the wording of Java's `DateTimeFormatter.ISO_OFFSET_DATE_TIME` (strict resolver),
//! so this parser follows that grammar rather than chrono's more lenient RFC 3339 one:
//!
//! ```text
//! YYYY-MM-DD 'T' hh:mm [':' ss ['.' 0-9 digits]] ('Z' | ±hh:mm [':' ss])
//! ```
//!
//! `T` and `Z` are case-insensitive, seconds are optional, and fields are range-checked
//! strictly (no hour 24, no leap second 60, no 30 February, offsets within ±18:00).

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, TimeZone};

/// Parses a timestamp the way Step Functions does; `None` when AWS would reject it.
pub fn parse(s: &str) -> Option<DateTime<FixedOffset>> {
    let mut c = Cursor { s: s.as_bytes() };

    let year = c.digits(4)?;
    c.byte(b'-')?;
    let month = c.digits(2)?;
    c.byte(b'-')?;
    let day = c.digits(2)?;
    c.byte_ci(b'T')?;
    let hour = c.digits(2)?;
    c.byte(b':')?;
    let minute = c.digits(2)?;
    let (second, nano) = if c.byte(b':').is_some() {
        let second = c.digits(2)?;
        let nano = if c.byte(b'.').is_some() {
            c.fraction()
        } else {
            0
        };
        (second, nano)
    } else {
        (0, 0)
    };
    let offset = c.offset()?;
    if !c.s.is_empty() {
        return None;
    }

    // `from_hms_nano_opt` would take second 59 with a nanosecond overflow as a leap second;
    // our `second`/`nano` are always in range, and 60 is rejected here like java.time does.
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nano)?;
    offset.from_local_datetime(&date.and_time(time)).single()
}

struct Cursor<'a> {
    s: &'a [u8],
}

impl Cursor<'_> {
    fn byte(&mut self, b: u8) -> Option<()> {
        self.eat(|c| c == b)
    }

    fn byte_ci(&mut self, b: u8) -> Option<()> {
        self.eat(|c| c.eq_ignore_ascii_case(&b))
    }

    fn eat(&mut self, accept: impl Fn(u8) -> bool) -> Option<()> {
        let (&first, rest) = self.s.split_first()?;
        if !accept(first) {
            return None;
        }
        self.s = rest;
        Some(())
    }

    /// Exactly `n` ASCII digits.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let (head, rest) = self.s.split_at_checked(n)?;
        let mut v = 0;
        for &d in head {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        self.s = rest;
        Some(v)
    }

    /// Up to nine fraction digits as nanoseconds. java.time accepts a bare '.' as zero;
    /// a tenth digit is left unread and then fails the offset.
    fn fraction(&mut self) -> u32 {
        let len = self
            .s
            .iter()
            .take(9)
            .take_while(|d| d.is_ascii_digit())
            .count();
        let mut nano = 0;
        for &d in &self.s[..len] {
            nano = nano * 10 + u32::from(d - b'0');
        }
        self.s = &self.s[len..];
        nano * 10u32.pow(9 - len as u32)
    }

    /// `Z` or `±hh:mm[:ss]`, at most 18 hours away from UTC.
    fn offset(&mut self) -> Option<FixedOffset> {
        if self.byte_ci(b'Z').is_some() {
            return FixedOffset::east_opt(0);
        }
        let sign = match self.s.first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.s = &self.s[1..];
        let hours = self.digits(2)?;
        self.byte(b':')?;
        let minutes = self.digits(2)?;
        let seconds = if self.byte(b':').is_some() {
            self.digits(2)?
        } else {
            0
        };
        let total = hours * 3600 + minutes * 60 + seconds;
        if minutes > 59 || seconds > 59 || total > 18 * 3600 {
            return None;
        }
        FixedOffset::east_opt(sign * total as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc_secs(s: &str) -> Option<i64> {
        parse(s).map(|t| t.timestamp())
    }

    #[test]
    fn accepts_the_forms_aws_accepts() {
        // From the corpus: Wait `Timestamp`/`TimestampPath` cases that AWS ran successfully.
        for ok in [
            "2016-03-14T01:59:00Z",
            "2016-03-05T21:29:29.243167252Z",
            "2026-11-22T05:38:22.000000Z",
            "2026-11-22T05:38:22.00Z",
            "2012-10-09T19:00:55+01:00",
        ] {
            assert!(parse(ok).is_some(), "{ok} should parse");
        }
        // The rest of the ISO_OFFSET_DATE_TIME grammar.
        for ok in [
            "2016-03-14T01:59Z",
            "2016-03-14t01:59:00z",
            "2016-03-14T01:59:00-00:00",
            "2016-03-14T01:59:00+05:30:15",
            "2016-03-14T01:59:00.Z",
            "2016-03-14T01:59:00+18:00",
            "2016-02-29T00:00:00Z",
        ] {
            assert!(parse(ok).is_some(), "{ok} should parse");
        }
    }

    #[test]
    fn rejects_the_forms_aws_rejects() {
        for bad in [
            // From the corpus: AWS failed these with States.Runtime / QueryEvaluationError.
            "2026-11-22T05:38:22",
            "2026-11-22T05:38:22.000000",
            "2016-12-05 21:29:29Z",
            "2016-13-05T21:29:29Z",
            "2016-12-05T25:29:29Z",
            "05-12-2016T21:29:29Z",
            // Strict field checks and malformed pieces.
            "2023-02-24",
            "2023-02-24 12:15:56.832957",
            "2015-02-29T00:00:00Z",
            "2016-12-05T24:00:00Z",
            "2016-12-05T23:60:00Z",
            "2016-12-05T23:59:60Z",
            "2016-12-05T23:59:59.1234567890Z",
            "2016-12-05T23:59:59+01",
            "2016-12-05T23:59:59+0100",
            "2016-12-05T23:59:59+18:01",
            "2016-12-05T23:59:59+01:60",
            "2016-1-05T23:59:59Z",
            "2016-12-05T23:59:59Z ",
            " 2016-12-05T23:59:59Z",
            "2016-12-05T23:59Z:00",
            "",
            "Z",
            "２０１６-12-05T23:59:59Z",
        ] {
            assert!(parse(bad).is_none(), "{bad} should be rejected");
        }
    }

    #[test]
    fn offsets_and_fractions_are_applied() {
        assert_eq!(
            utc_secs("2012-10-09T20:00:55+01:00"),
            utc_secs("2012-10-09T19:00:55Z")
        );
        assert_eq!(
            utc_secs("2012-10-09T18:30:55-00:30"),
            utc_secs("2012-10-09T19:00:55Z")
        );
        let t = parse("2016-03-05T21:29:29.243167252Z").unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 243_167_252);
        let t = parse("2016-03-05T21:29:29.5Z").unwrap();
        assert_eq!(t.timestamp_subsec_nanos(), 500_000_000);
        assert_eq!(utc_secs("1970-01-01T00:01Z"), Some(60));
    }
}
