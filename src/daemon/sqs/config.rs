//! The keys of an `sqs` source in `[[sources]]` (the queue and how it is read), with their
//! reader.

use crate::config_reader::{check_url, Section};

/// What an `sqs` source reads and how it acknowledges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsSourceConfig {
    pub queue_url: String,
    /// Asked for on ReceiveMessage and renewed while the execution runs (1 to 43200).
    pub visibility_timeout_secs: u32,
    /// Long polling, 0 to 20.
    pub wait_time_secs: u32,
    /// ReceiveMessage calls in flight at once (each up to 10 messages).
    pub receivers: usize,
    /// `on_failure = "release"`: failed executions (and bodies that cannot start one) go
    /// back to the queue for its redrive policy, instead of to the dead-letter sink.
    pub release_failures: bool,
}

/// Reads the SQS keys of a `[[sources]]` entry of type `sqs`; `dead_letter_sink`: whether
/// the entry names a dead-letter topic or queue.
pub fn read_sqs_source(section: &mut Section<'_>, dead_letter_sink: bool) -> SqsSourceConfig {
    let queue_url = section.required_string("queue_url").unwrap_or_default();
    if !queue_url.is_empty() {
        check_url(section, "queue_url", queue_url);
    }
    let sqs = SqsSourceConfig {
        queue_url: queue_url.to_string(),
        visibility_timeout_secs: section.uint("visibility_timeout_secs", 30, 1, 43_200),
        wait_time_secs: section.uint("wait_time_secs", 20, 0, 20),
        receivers: section.uint("receivers", 4, 1, 64),
        release_failures: section.one_of(
            "on_failure",
            false,
            &[("dead_letter", false), ("release", true)],
        ),
    };
    if sqs.release_failures && dead_letter_sink {
        section.error(
            "on_failure",
            "\"release\" hands failures back to the queue: a dead-letter sink would stay unused",
        );
    }
    sqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_reader::testing::{assert_section_errors, read_section};

    fn source(
        text: &str,
        dead_letter_sink: bool,
    ) -> Result<Option<SqsSourceConfig>, Vec<(String, String)>> {
        read_section(text, "source", |mut s| {
            read_sqs_source(&mut s, dead_letter_sink)
        })
    }

    #[test]
    fn defaults_and_ranges() {
        let sqs = source("[source]\nqueue_url = \"http://h/1/q\"\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                sqs.visibility_timeout_secs,
                sqs.wait_time_secs,
                sqs.receivers
            ),
            (30, 20, 4)
        );
        assert!(!sqs.release_failures);
        assert_section_errors(
            source(
                "[source]\nqueue_url = \"q\"\nwait_time_secs = 21\non_failure = \"release\"\n",
                true,
            ),
            &[
                ("source.queue_url", "is not an http:// or https:// URL"),
                ("source.wait_time_secs", "must be at most 20, got 21"),
                ("source.on_failure", "a dead-letter sink would stay unused"),
            ],
        );
    }
}
