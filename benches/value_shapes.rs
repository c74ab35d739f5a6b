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
//! copy shares the document until it is changed): measured beside both. And between the
//! two, `CompactIndexed`: `Compact`'s inline keys in serde_json's `IndexMap`, hashed by
//! foldhash, the smaller change that would keep the map's API.
//!
//! `cargo bench --bench value_shapes`.

use criterion::{criterion_group, criterion_main, Criterion};
use indexmap::IndexMap;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Number, Value};
use sonic_rs::JsonValueMutTrait;
use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::hint::black_box;
use std::marker::PhantomData;

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

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

// Hashed as the `str` it holds, so that a map keyed by `Text` is searched by `&str`.
impl Hash for Text {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

/// How a [`Tree`] keeps an object's entries, in insertion order.
trait Objects: Sized + 'static {
    type Object: Clone + Default;
    fn insert(object: &mut Self::Object, key: Text, v: Tree<Self>);
    fn get<'a>(object: &'a Self::Object, key: &str) -> Option<&'a Tree<Self>>;
    fn entries(object: &Self::Object) -> impl ExactSizeIterator<Item = (&Text, &Tree<Self>)>;
}

/// Entries in one vector, searched in order: one allocation, no hash.
#[derive(Clone)]
struct Listed;

impl Objects for Listed {
    type Object = Vec<(Text, Tree<Listed>)>;
    fn insert(object: &mut Self::Object, key: Text, v: Tree<Self>) {
        // Repeated keys keep their first place and their last value, as serde_json's map.
        match object.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = v,
            None => object.push((key, v)),
        }
    }
    fn get<'a>(object: &'a Self::Object, key: &str) -> Option<&'a Tree<Self>> {
        object
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }
    fn entries(object: &Self::Object) -> impl ExactSizeIterator<Item = (&Text, &Tree<Self>)> {
        object.iter().map(|(k, v)| (k, v))
    }
}

/// serde_json's `IndexMap`, with inline keys and foldhash instead of `String` keys and
/// SipHash: the smaller change, which keeps the map and its API.
#[derive(Clone)]
struct Indexed;

impl Objects for Indexed {
    type Object = IndexMap<Text, Tree<Indexed>, foldhash::fast::RandomState>;
    fn insert(object: &mut Self::Object, key: Text, v: Tree<Self>) {
        object.insert(key, v);
    }
    fn get<'a>(object: &'a Self::Object, key: &str) -> Option<&'a Tree<Self>> {
        object.get(key)
    }
    fn entries(object: &Self::Object) -> impl ExactSizeIterator<Item = (&Text, &Tree<Self>)> {
        object.iter()
    }
}

enum Tree<O: Objects> {
    Null,
    Bool(bool),
    Number(Number),
    String(Text),
    Array(Vec<Tree<O>>),
    Object(O::Object),
}

/// Keys and short strings inline, objects as vectors.
type Compact = Tree<Listed>;
/// Keys and short strings inline, objects in an `IndexMap` hashed by foldhash.
type CompactIndexed = Tree<Indexed>;

impl<O: Objects> Clone for Tree<O> {
    fn clone(&self) -> Self {
        match self {
            Tree::Null => Tree::Null,
            Tree::Bool(b) => Tree::Bool(*b),
            Tree::Number(n) => Tree::Number(n.clone()),
            Tree::String(t) => Tree::String(t.clone()),
            Tree::Array(items) => Tree::Array(items.clone()),
            Tree::Object(o) => Tree::Object(o.clone()),
        }
    }
}

impl<O: Objects> Tree<O> {
    fn insert(&mut self, key: &str, v: Tree<O>) {
        if let Tree::Object(object) = self {
            O::insert(object, Text::new(key), v);
        }
    }

    fn get(&self, key: &str) -> Option<&Tree<O>> {
        match self {
            Tree::Object(object) => O::get(object, key),
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

impl<'de, O: Objects> Deserialize<'de> for Tree<O> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tree<O>, D::Error> {
        struct TreeVisitor<O>(PhantomData<O>);
        impl<'de, O: Objects> Visitor<'de> for TreeVisitor<O> {
            type Value = Tree<O>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_unit<E>(self) -> Result<Tree<O>, E> {
                Ok(Tree::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Tree<O>, E> {
                Ok(Tree::Bool(b))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Tree<O>, E> {
                Ok(Tree::Number(n.into()))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Tree<O>, E> {
                Ok(Tree::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Tree<O>, E> {
                Ok(Number::from_f64(n).map_or(Tree::Null, Tree::Number))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Tree<O>, E> {
                Ok(Tree::String(Text::new(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree<O>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Tree::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree<O>, A::Error> {
                let mut object = O::Object::default();
                while let Some((k, v)) = map.next_entry::<Text, Tree<O>>()? {
                    O::insert(&mut object, k, v);
                }
                Ok(Tree::Object(object))
            }
        }
        d.deserialize_any(TreeVisitor(PhantomData))
    }
}

impl<O: Objects> Serialize for Tree<O> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Null => s.serialize_unit(),
            Tree::Bool(b) => s.serialize_bool(*b),
            Tree::Number(n) => n.serialize(s),
            Tree::String(t) => s.serialize_str(t.as_str()),
            Tree::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Tree::Object(object) => {
                let entries = O::entries(object);
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
        let indexed: CompactIndexed = serde_json::from_slice(&text).unwrap();
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
        bench("parse", "compact_indexed", &mut || {
            black_box(serde_json::from_slice::<CompactIndexed>(black_box(&text)).unwrap());
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
        bench("serialize", "compact_indexed", &mut || {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&indexed)).unwrap();
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
            v.insert("status", Tree::Bool(true));
            black_box(v);
        });
        bench("copy_and_change", "compact_indexed", &mut || {
            let mut v = black_box(&indexed).clone();
            v.insert("status", Tree::Bool(true));
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
        bench("lookups", "compact_indexed", &mut || {
            for k in &keys {
                black_box(black_box(&indexed).get(k.as_str()));
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

/// The four trees must hold the same document, or the figures compare different work.
fn check_same_document() {
    for (name, text) in events() {
        let compact: Compact = serde_json::from_slice(&text).unwrap();
        let back: Value = serde_json::from_slice(&serde_json::to_vec(&compact).unwrap()).unwrap();
        let json: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            back, json,
            "{name}: the compact tree does not hold the same document"
        );
        let indexed: CompactIndexed = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            serde_json::to_string(&indexed).unwrap(),
            serde_json::to_string(&json).unwrap(),
            "{name}: the indexed compact tree does not hold the same document"
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
