//! The integration tests, one binary (one link, see ARCHITECTURE.md) with its own harness
//! (`tests/support/harness.rs`): named checks in groups, one line per check and a closing
//! "N passed, M failed".
//!
//! `cargo test --release --test engine -- FILTER` runs the checks whose name (`group::check`,
//! a case is `cases::<path under tests/cases>`) contains FILTER, setting up only their groups;
//! `-- --list` prints the names. `EXPRESSWAY_SKIP_KAFKA=1` (`_BROKER`, `_API`, `_SQS`, `_PARITY`,
//! `_AWS`) skips a group; `parity` needs Kafka, SQS and the API, so any of them skips it.

#[path = "support/api.rs"]
mod api;
#[path = "support/aws.rs"]
mod aws;
#[path = "support/broker.rs"]
mod broker;
#[path = "support/cases.rs"]
mod cases;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/console.rs"]
mod console;
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/daemon.rs"]
mod daemon;
#[path = "support/delivery.rs"]
mod delivery;
#[path = "support/deploy.rs"]
mod deploy;
#[path = "support/graph.rs"]
mod graph;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/integrations.rs"]
mod integrations;
#[path = "support/kafka.rs"]
mod kafka;
#[path = "support/parity.rs"]
mod parity;
#[path = "support/python.rs"]
mod python;
#[path = "support/random_definitions.rs"]
mod random_definitions;
#[path = "support/readme.rs"]
mod readme;
#[path = "support/security.rs"]
mod security;
#[path = "support/sqs.rs"]
mod sqs;

use harness::{Selection, Suite, Tally};

// As in the binary: cases run in this process, and JSONata's memory budget needs it.
#[global_allocator]
static GLOBAL: expressway::memory_budget::Metered<std::alloc::System> =
    expressway::memory_budget::Metered(std::alloc::System);

fn main() {
    // In the order they run: the fast ones first.
    let groups: Vec<Box<dyn Suite>> = vec![
        Box::new(cases::group()),
        Box::new(corpus::group()),
        Box::new(corpus::bench_group()),
        Box::new(cli::group()),
        Box::new(graph::group()),
        Box::new(random_definitions::group()),
        Box::new(readme::group()),
        Box::new(deploy::group()),
        Box::new(integrations::group()),
        Box::new(kafka::group()),
        Box::new(broker::group()),
        Box::new(api::group()),
        Box::new(console::group()),
        Box::new(security::group()),
        Box::new(hostile::group()),
        Box::new(sqs::group()),
        Box::new(aws::group()),
        Box::new(parity::group()),
    ];
    let selection = Selection::from_args();
    if selection.list {
        for name in groups.iter().flat_map(|g| g.names()) {
            if selection.selects(name) {
                println!("{name}");
            }
        }
        return;
    }
    let mut tally = Tally::default();
    for group in &groups {
        group.run(&selection, &mut tally);
    }
    println!();
    println!(
        "engine cases: {} passed, {} failed ({} skipped)",
        tally.passed,
        tally.failures.len(),
        tally.skipped
    );
    for (name, why) in &tally.failures {
        // The first lines of the reason: enough to name what broke; the full text is above.
        let why: Vec<&str> = why.lines().take(6).collect();
        println!("FAILED {name}\n    {}", why.join("\n    "));
    }
    if !tally.failures.is_empty() || tally.passed == 0 {
        std::process::exit(1);
    }
}
