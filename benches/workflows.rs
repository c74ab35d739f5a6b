//! Single-thread throughput of the VM on the benchmark workflows (`benches/workflows`).
//! Criterion's "elements" are state transitions, so its throughput line reads directly as
//! transitions/s. `iot-enrich-jsonata` is iot-enrich written in JSONata, to compare the two
//! query languages on the same work.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use expressway::asl::{compile, ExecutionOptions, Outcome};
use expressway::engine::Clock;
use expressway::runner::{NoResources, Runner};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: expressway::allocator::Mimalloc = expressway::allocator::Mimalloc;

fn workflows_dir() -> PathBuf {
    let dir = std::env::var_os("EXPRESSWAY_BENCH_WORKFLOWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/workflows"))
        });
    assert!(
        dir.is_dir(),
        "benchmark workflows not found at {}",
        dir.display()
    );
    dir
}

fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bench_workflows(c: &mut Criterion) {
    let dir = workflows_dir();
    let mut group = c.benchmark_group("transitions");
    // (benchmark, input): iot-enrich-jsonata runs on iot-enrich's input.
    let cases = [
        ("pass-chain", "pass-chain"),
        ("choice-loop", "choice-loop"),
        ("iot-enrich", "iot-enrich"),
        ("iot-enrich-jsonata", "iot-enrich"),
        ("parallel", "parallel"),
    ];
    for (name, input_name) in cases {
        let definition = read_json(dir.join(format!("{name}.asl.json")));
        let input = read_json(dir.join(format!("{input_name}.input.json")));
        let program = Arc::new(compile(&definition).unwrap_or_else(|d| panic!("{name}: {d:?}")));
        let opts = ExecutionOptions::default();
        let mut runner = Runner::new(&NoResources);
        let mut run = || {
            let mut clock = Clock::Virtual {
                now: 1_700_000_000_000,
            };
            runner.run(program.clone(), input.clone(), opts.clone(), &mut clock)
        };
        // One execution up front: it must succeed, and it tells the transitions per run.
        let first = run();
        assert!(
            matches!(first.outcome(), Some(Outcome::Succeeded(_))),
            "{name} did not succeed: {:?}",
            first.outcome()
        );
        group.throughput(Throughput::Elements(first.transitions()));
        group.bench_function(name, |b| b.iter(&mut run));
    }
    group.finish();
}

criterion_group!(benches, bench_workflows);
criterion_main!(benches);
