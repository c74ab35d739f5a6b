//! What the JSON tree's shape costs around the VM and in it, and what a smaller one would
//! save: the measurement behind docs/value-representation.md (figures in
//! docs/performance.md, "Where an event's time goes").
//!
//! `serde_json::Value` (with `preserve_order`, as the engine uses it) keeps each object in an
//! `IndexMap`: two allocations per object, one `String` per key, a SipHash per key inserted
//! or looked up. `Compact` is the candidate the profiles point to, kept to what the
//! measurement needs: keys and short strings inline (no allocation up to 22 bytes), an
//! object as one vector of entries searched in order (no hash for the few keys events have).
//! It is not a value type for the engine (no index for large objects, no API): it sizes the
//! gain of building one, on the work an event costs outside the VM (parse, drop, serialise)
//! and on the copies and lookups inside it. `sonic_rs::Value` is the maintained library
//! that comes closest (a document's nodes in one allocation, objects as ordered pairs, a
//! copy shares the document until it is changed): measured beside both.
//!
//! `cargo bench --bench value_shapes`.

use criterion::{criterion_group, criterion_main, Criterion};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value};
use sonic_rs::JsonValueMutTrait;
use std::fmt;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: expressway::allocator::Mimalloc = expressway::allocator::Mimalloc;

const INLINE: usize = 22;

/// A string stored inline up to [`INLINE`] bytes, on the heap past it.
#[derive(Clone)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    fn new(s: &str) -> Text {
        if s.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text::Inline {
                len: s.len() as u8,
                bytes,
            }
        } else {
            Text::Heap(s.into())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // SAFETY: only ever filled from a whole `&str` (`Text::new`), cut at its end.
            Text::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(&bytes[..*len as usize])
            },
            Text::Heap(s) => s,
        }
    }
}

#[derive(Clone)]
enum Compact {
    Null,
    Bool(bool),
    Number(Number),
    String(Text),
    Array(Vec<Compact>),
    Object(Vec<(Text, Compact)>),
}

impl Compact {
    fn insert(&mut self, key: &str, v: Compact) {
        if let Compact::Object(entries) = self {
            match entries.iter_mut().find(|(k, _)| k.as_str() == key) {
                Some(entry) => entry.1 = v,
                None => entries.push((Text::new(key), v)),
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Compact> {
        match self {
            Compact::Object(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Text, D::Error> {
        struct TextVisitor;
        impl Visitor<'_> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Text, E> {
                Ok(Text::new(s))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

impl<'de> Deserialize<'de> for Compact {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Compact, D::Error> {
        struct CompactVisitor;
        impl<'de> Visitor<'de> for CompactVisitor {
            type Value = Compact;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Compact, E> {
                Ok(Compact::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Compact, E> {
                Ok(Compact::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Compact, E> {
                Ok(Compact::Number(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Compact, E> {
                Ok(Compact::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Compact, E> {
                Ok(Number::from_f64(n).map_or(Compact::Null, Compact::Number))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Compact, E> {
                Ok(Compact::String(Text::new(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Compact, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Compact::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Compact, A::Error> {
                let mut entries: Vec<(Text, Compact)> = Vec::new();
                while let Some((k, v)) = map.next_entry::<Text, Compact>()? {
                    // JSON objects keep the last of repeated keys, as serde_json's map does.
                    match entries.iter_mut().find(|(e, _)| e.as_str() == k.as_str()) {
                        Some(entry) => entry.1 = v,
                        None => entries.push((k, v)),
                    }
                }
                Ok(Compact::Object(entries))
            }
        }
        d.deserialize_any(CompactVisitor)
    }
}

impl Serialize for Compact {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Compact::Null => s.serialize_unit(),
            Compact::Bool(b) => s.serialize_bool(*b),
            Compact::Number(n) => n.serialize(s),
            Compact::String(t) => s.serialize_str(t.as_str()),
            Compact::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Compact::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k.as_str(), v)?;
                }
                map.end()
            }
        }
    }
}

/// The benchmark workflows' inputs: the events the load tests send.
fn events() -> Vec<(&'static str, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/workflows");
    ["iot-enrich", "pass-chain", "parallel"]
        .into_iter()
        .map(|name| {
            let text = std::fs::read(format!("{dir}/{name}.input.json")).expect("bench input");
            (name, text)
        })
        .collect()
}

fn value_shapes(c: &mut Criterion) {
    let mut g = c.benchmark_group("value_shapes");
    for (name, text) in events() {
        let json: Value = serde_json::from_slice(&text).unwrap();
        let compact: Compact = serde_json::from_slice(&text).unwrap();
        let sonic: sonic_rs::Value = sonic_rs::from_slice(&text).unwrap();
        let keys: Vec<String> = json.as_object().unwrap().keys().cloned().collect();
        let mut out = Vec::with_capacity(4096);
        let mut bench = |op: &str, shape: &str, f: &mut dyn FnMut()| {
            g.bench_function(format!("{name}/{op}/{shape}"), |b| b.iter(&mut *f));
        };

        // An event's work around the VM: parse the record (and drop the tree), write the
        // result.
        bench("parse", "serde_json", &mut || {
            black_box(serde_json::from_slice::<Value>(black_box(&text)).unwrap());
        });
        bench("parse", "compact", &mut || {
            black_box(serde_json::from_slice::<Compact>(black_box(&text)).unwrap());
        });
        bench("parse", "compact_by_sonic", &mut || {
            black_box(sonic_rs::from_slice::<Compact>(black_box(&text)).unwrap());
        });
        bench("parse", "sonic", &mut || {
            black_box(sonic_rs::from_slice::<sonic_rs::Value>(black_box(&text)).unwrap());
        });
        bench("serialize", "serde_json", &mut || {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&json)).unwrap();
        });
        bench("serialize", "compact", &mut || {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&compact)).unwrap();
        });
        bench("serialize", "sonic", &mut || {
            out.clear();
            sonic_rs::to_writer(&mut out, black_box(&sonic)).unwrap();
        });
        // Inside it: a copy of a state's input changed into its output (a copy alone is
        // free for sonic, which shares the document until a change), and every top-level
        // field read by name.
        bench("copy_and_change", "serde_json", &mut || {
            let mut v = black_box(&json).clone();
            let object = v.as_object_mut().unwrap();
            object.insert("status".into(), Value::Bool(true));
            black_box(v);
        });
        bench("copy_and_change", "compact", &mut || {
            let mut v = black_box(&compact).clone();
            v.insert("status", Compact::Bool(true));
            black_box(v);
        });
        bench("copy_and_change", "sonic", &mut || {
            let mut v = black_box(&sonic).clone();
            v.as_object_mut().unwrap().insert("status", true);
            black_box(v);
        });
        bench("lookups", "serde_json", &mut || {
            for k in &keys {
                black_box(black_box(&json).get(k.as_str()));
            }
        });
        bench("lookups", "compact", &mut || {
            for k in &keys {
                black_box(black_box(&compact).get(k.as_str()));
            }
        });
        bench("lookups", "sonic", &mut || {
            for k in &keys {
                black_box(sonic_rs::JsonValueTrait::get(black_box(&sonic), k.as_str()));
            }
        });
    }
    g.finish();
}

/// The three trees must hold the same document, or the figures compare different work.
fn check_same_document() {
    for (name, text) in events() {
        let compact: Compact = serde_json::from_slice(&text).unwrap();
        let back: Value = serde_json::from_slice(&serde_json::to_vec(&compact).unwrap()).unwrap();
        let json: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            back, json,
            "{name}: the compact tree does not hold the same document"
        );
        let sonic: sonic_rs::Value = sonic_rs::from_slice(&text).unwrap();
        assert_eq!(
            sonic_rs::to_string(&sonic).unwrap(),
            serde_json::to_string(&json).unwrap(),
            "{name}: sonic's tree does not hold the same document"
        );
        assert_eq!(
            serde_json::to_string(&compact).unwrap(),
            serde_json::to_string(&json).unwrap(),
            "{name}: key order differs"
        );
    }
}

fn benches(c: &mut Criterion) {
    check_same_document();
    value_shapes(c);
}

criterion_group! {
    name = group;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = benches
}
criterion_main!(group);
