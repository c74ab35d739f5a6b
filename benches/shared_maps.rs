//! The maps threads share, against `dashmap` (in the design card), which would replace their
//! locks: is the lock what such a map costs, alone and with both cores at it?
//!
//! - `callbacks`: the task-token registry as it is (`Callbacks`: one mutex over the parked
//!   tasks, their expiry order and the activities), a park and its answer per iteration.
//! - `map`: the bare pattern it is made of, an insert and a remove by a fresh `Arc<str>` key,
//!   in a `Mutex<HashMap>` and in a `DashMap`, on one thread and on two at once (each
//!   iteration timed while a second thread does the same on the same map).
//!
//! `cargo bench --bench shared_maps`; figures in `docs/performance.md`.

use criterion::{criterion_group, criterion_main, Criterion};
use dashmap::DashMap;
use expressway::callbacks::Callbacks;
use expressway::resource::TaskReply;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: expressway::allocator::Mimalloc = expressway::allocator::Mimalloc;

/// The operations a registry needs, for the two maps.
trait Registry: Sync {
    fn insert(&self, key: Arc<str>, value: u64);
    fn remove(&self, key: &str) -> Option<u64>;
}

impl Registry for Mutex<HashMap<Arc<str>, u64>> {
    fn insert(&self, key: Arc<str>, value: u64) {
        self.lock().unwrap().insert(key, value);
    }
    fn remove(&self, key: &str) -> Option<u64> {
        self.lock().unwrap().remove(key)
    }
}

impl Registry for DashMap<Arc<str>, u64> {
    fn insert(&self, key: Arc<str>, value: u64) {
        DashMap::insert(self, key, value);
    }
    fn remove(&self, key: &str) -> Option<u64> {
        DashMap::remove(self, key).map(|(_, v)| v)
    }
}

/// Keys made ahead, so the timing is the map's: `n` distinct tokens per thread.
fn keys(thread: usize, n: u64) -> Vec<Arc<str>> {
    (0..n)
        .map(|i| Arc::from(format!("token-{thread}-{i:016x}")))
        .collect()
}

fn round_trips(map: &impl Registry, keys: &[Arc<str>]) {
    for (i, key) in keys.iter().enumerate() {
        map.insert(key.clone(), i as u64);
        black_box(map.remove(key));
    }
}

/// `iters` round trips on this thread, timed, while `contended` adds a second thread doing
/// the same on the same map until this one is done.
fn timed(map: &impl Registry, iters: u64, contended: bool) -> Duration {
    let mine = keys(0, iters);
    let theirs = keys(1, 4096);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        if contended {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    round_trips(map, &theirs);
                }
            });
        }
        let started = Instant::now();
        round_trips(map, &mine);
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

fn bench_maps(c: &mut Criterion) {
    let mut group = c.benchmark_group("map");
    for (label, contended) in [("1 thread", false), ("2 threads", true)] {
        group.bench_function(format!("Mutex<HashMap> insert+remove, {label}"), |b| {
            let map = Mutex::new(HashMap::new());
            b.iter_custom(|iters| timed(&map, iters, contended));
        });
        group.bench_function(format!("DashMap insert+remove, {label}"), |b| {
            let map = DashMap::new();
            b.iter_custom(|iters| timed(&map, iters, contended));
        });
    }
    group.finish();
}

fn bench_callbacks(c: &mut Criterion) {
    let callbacks = Callbacks::new("us-east-1", "123456789012");
    let tokens = keys(0, 1 << 16);
    let mut next = 0;
    c.bench_function("callbacks/park and answer", |b| {
        b.iter(|| {
            let token = tokens[next % tokens.len()].clone();
            next += 1;
            let reply = TaskReply::without_heartbeat(Box::new(|r| drop(black_box(r))));
            callbacks.park(token.clone(), reply, i64::MAX);
            callbacks
                .send_success(&token, serde_json::Value::Null)
                .expect("parked");
        })
    });
}

criterion_group!(benches, bench_maps, bench_callbacks);
criterion_main!(benches);
