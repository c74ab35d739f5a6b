//! The harness of the `engine` test binary: named checks in groups. A group's setup (a
//! started daemon, a moto server, a Python venv) is made once, and only when one of its
//! checks is selected; each check then fails on its own (a panic included), and the run
//! goes on with the next.
//!
//! Command line: `engine [--list] [FILTER...]` runs (or lists) the checks whose full name,
//! `group::check`, contains one of the filters; no filter selects everything.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// Why a check did not pass.
#[derive(Debug)]
pub enum Problem {
    Failed(String),
    /// Something the check needs is missing on this machine (no venv, no `../shared`).
    Skipped(String),
}

impl From<String> for Problem {
    fn from(why: String) -> Self {
        Problem::Failed(why)
    }
}

impl From<&str> for Problem {
    fn from(why: &str) -> Self {
        Problem::Failed(why.to_owned())
    }
}

pub type Verdict = Result<(), Problem>;

/// Passes when `ok`; otherwise fails saying `detail`.
pub fn verdict(ok: bool, detail: impl FnOnce() -> String) -> Verdict {
    if ok {
        Ok(())
    } else {
        Err(Problem::Failed(detail()))
    }
}

type Setup<F> = Box<dyn Fn() -> Result<F, Problem>>;
type Run<F> = Box<dyn Fn(&mut F) -> Verdict>;

/// Checks sharing one fixture `F`, run in the order they were added.
pub struct Group<F> {
    name: &'static str,
    skip_env: Vec<&'static str>,
    setup: Setup<F>,
    checks: Vec<(String, Run<F>)>,
}

impl<F> Group<F> {
    pub fn new(name: &'static str, setup: impl Fn() -> Result<F, Problem> + 'static) -> Self {
        Group {
            name,
            skip_env: Vec::new(),
            setup: Box::new(setup),
            checks: Vec::new(),
        }
    }

    /// Skips the whole group when the environment variable `var` is set (any of them, when
    /// called more than once).
    pub fn skipped_by(mut self, var: &'static str) -> Self {
        self.skip_env.push(var);
        self
    }

    pub fn check(
        mut self,
        name: impl Into<String>,
        run: impl Fn(&mut F) -> Verdict + 'static,
    ) -> Self {
        self.checks
            .push((format!("{}::{}", self.name, name.into()), Box::new(run)));
        self
    }
}

/// A group with one check per function, each named after its function.
macro_rules! group {
    ($name:literal, $setup:expr, [$($check:ident),* $(,)?]) => {
        $crate::harness::Group::new($name, $setup)$(.check(stringify!($check), $check))*
    };
}
pub(crate) use group;

/// What `main` sees of a group, whatever its fixture.
pub trait Suite {
    fn names(&self) -> Vec<&str>;
    fn run(&self, selected: &Selection, tally: &mut Tally);
}

impl<F> Suite for Group<F> {
    fn names(&self) -> Vec<&str> {
        self.checks.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn run(&self, selection: &Selection, tally: &mut Tally) {
        let chosen: Vec<_> = self
            .checks
            .iter()
            .filter(|(name, _)| selection.selects(name))
            .collect();
        if chosen.is_empty() {
            return;
        }
        if let Some(var) = self.skip_env.iter().find(|v| std::env::var_os(v).is_some()) {
            let why = format!("{var} is set");
            for (name, _) in chosen {
                tally.record(name, Err(Problem::Skipped(why.clone())), Duration::ZERO);
            }
            return;
        }
        let started = Instant::now();
        let mut fixture = match guarded(|| (self.setup)()) {
            Ok(fixture) => fixture,
            Err(problem) => {
                let (why, skip) = match problem {
                    Problem::Failed(why) => (format!("{} setup failed: {why}", self.name), false),
                    Problem::Skipped(why) => (why, true),
                };
                for (name, _) in chosen {
                    let problem = if skip {
                        Problem::Skipped(why.clone())
                    } else {
                        Problem::Failed(why.clone())
                    };
                    tally.record(name, Err(problem), Duration::ZERO);
                }
                return;
            }
        };
        println!(
            "{}: set up in {:.1} s",
            self.name,
            started.elapsed().as_secs_f64()
        );
        for (name, run) in chosen {
            let started = Instant::now();
            let result = guarded(|| run(&mut fixture));
            tally.record(name, result, started.elapsed());
        }
    }
}

/// Runs `f`, turning a panic into a failure that quotes it.
fn guarded<T>(f: impl FnOnce() -> Result<T, Problem>) -> Result<T, Problem> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a panic without a message".into());
        Err(Problem::Failed(format!("panicked: {message}")))
    })
}

/// The filters of the command line.
pub struct Selection {
    filters: Vec<String>,
    pub list: bool,
}

impl Selection {
    /// Reads `--list` and the filters; other flags (cargo test passes some) are ignored.
    pub fn from_args() -> Self {
        let args: Vec<String> = std::env::args().skip(1).collect();
        Selection {
            list: args.iter().any(|a| a == "--list"),
            filters: args.into_iter().filter(|a| !a.starts_with('-')).collect(),
        }
    }

    pub fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// One line per check as it ends, and the counts for the closing line.
#[derive(Default)]
pub struct Tally {
    pub passed: usize,
    pub skipped: usize,
    /// Each failed check with its reason, repeated after the closing line: CI shows only the
    /// output's ends, and a failure among a thousand lines must still be seen.
    pub failures: Vec<(String, String)>,
}

impl Tally {
    fn record(&mut self, name: &str, result: Verdict, took: Duration) {
        // Only slow checks say how long they took: the daemon ones, not the thousand cases.
        let took = if took >= Duration::from_secs(1) {
            format!(" ({:.1} s)", took.as_secs_f64())
        } else {
            String::new()
        };
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("{name} ... ok{took}");
            }
            Err(Problem::Failed(why)) => {
                println!("{name} ... FAILED{took}\n    {why}");
                self.failures.push((name.to_string(), why));
            }
            Err(Problem::Skipped(why)) => {
                self.skipped += 1;
                println!("{name} ... skipped ({why})");
            }
        }
    }
}
