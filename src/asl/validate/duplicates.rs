//! Duplicate keys in a definition's text. A parsed `Value` keeps only the last of two equal
//! keys, so this reads the text itself: two states with one name (AWS's
//! `DUPLICATE_STATE_NAME`) or a field given twice in one object would otherwise be merged
//! silently, the first one lost.

use crate::asl::diagnostic::codes::{DUPLICATE_FIELD, DUPLICATE_STATE_NAME};
use crate::asl::diagnostic::{pointer_push, Diagnostic};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Every key that appears twice in one object of the definition text, with the pointer of
/// its object member. Text that is not JSON gives none: parsing it reports that.
pub fn duplicate_keys(text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Walk {
        at: At::Machine,
        pointer: String::new(),
        out: &mut out,
    };
    // A syntax error or nesting past serde_json's limit: whatever was found so far stands,
    // the parse of the text itself reports the rest.
    let _ = seed.deserialize(&mut de);
    out
}

/// What an object is, as far as naming its duplicates goes.
#[derive(Clone, Copy, PartialEq)]
enum At {
    /// The top level, a Parallel branch, a Map's processor.
    Machine,
    /// A machine's `States`: its keys are state names.
    States,
    State,
    Other,
}

struct Walk<'a> {
    at: At,
    pointer: String,
    out: &'a mut Vec<Diagnostic>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl Walk<'_> {
    fn child(&mut self, at: At, token: &str) -> Walk<'_> {
        Walk {
            at,
            pointer: pointer_push(&self.pointer, token),
            out: self.out,
        }
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let key = key.into_owned();
            let at = match (self.at, key.as_str()) {
                (At::Machine, "States") => At::States,
                (At::States, _) => At::State,
                (At::State, "Branches") => At::Machine,
                (At::State, "ItemProcessor" | "Iterator") => At::Machine,
                _ => At::Other,
            };
            if !seen.insert(key.clone()) {
                let (code, message) = match self.at {
                    At::States => (DUPLICATE_STATE_NAME, format!("Duplicate State name: {key}")),
                    _ => (
                        DUPLICATE_FIELD,
                        format!("'{key}' appears more than once in this object; only the last would count"),
                    ),
                };
                let pointer = pointer_push(&self.pointer, &key);
                self.out.push(Diagnostic::new(code, &pointer, message));
            }
            map.next_value_seed(self.child(at, &key))?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        // Only `Branches` holds machines in an array; anything else's items are plain values.
        let at = match self.at {
            At::Machine => At::Machine,
            _ => At::Other,
        };
        let mut i = 0usize;
        while seq
            .next_element_seed(self.child(at, &i.to_string()))?
            .is_some()
        {
            i += 1;
        }
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(IgnoredAny).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(String, String)> {
        duplicate_keys(text)
            .into_iter()
            .map(|d| (d.code.to_string(), d.pointer))
            .collect()
    }

    #[test]
    fn duplicate_state_names_are_found_in_every_machine() {
        let text = r#"{"StartAt":"A","States":{
            "A":{"Type":"Pass","End":true},
            "A":{"Type":"Succeed"},
            "P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"B","States":{"B":{"Type":"Succeed"},"B":{"Type":"Succeed"}}}]},
            "M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"C","States":{"C":{"Type":"Succeed"},"C":{"Type":"Succeed"}}}}
        }}"#;
        assert_eq!(
            found(text),
            [
                ("DUPLICATE_STATE_NAME".into(), "/States/A".into()),
                (
                    "DUPLICATE_STATE_NAME".into(),
                    "/States/P/Branches/0/States/B".into()
                ),
                (
                    "DUPLICATE_STATE_NAME".into(),
                    "/States/M/ItemProcessor/States/C".into()
                ),
            ]
        );
    }

    #[test]
    fn duplicate_fields_anywhere_are_found() {
        let text = r#"{"StartAt":"A","StartAt":"A","States":{"A":{"Type":"Pass","Type":"Pass",
            "Result":{"x":[{"a/b":1,"a/b":2}]},"End":true}}}"#;
        assert_eq!(
            found(text),
            [
                ("DUPLICATE_FIELD".into(), "/StartAt".into()),
                ("DUPLICATE_FIELD".into(), "/States/A/Type".into()),
                ("DUPLICATE_FIELD".into(), "/States/A/Result/x/0/a~1b".into()),
            ]
        );
    }

    #[test]
    fn nothing_for_clean_or_broken_text() {
        assert!(found(r#"{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}"#).is_empty());
        assert!(found("{\"a\":").is_empty());
        assert!(found(&"[".repeat(100_000)).is_empty());
        assert!(found("").is_empty());
    }
}
