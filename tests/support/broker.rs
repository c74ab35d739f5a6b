//! The real-broker suite: the daemon against [tansu](https://crates.io/crates/tansu), a
//! Kafka-compatible broker in another process (librdkafka's mock cluster, which the `kafka`
//! group uses, is known to differ: it keeps killed members for their whole session, for one).
//! Each check is a fixed number of events through fresh topics while something goes wrong,
//! then an independent reader counts the ids (`delivery.rs`): nothing may be missing.
//!
//! tansu is not built here (about 20 minutes): install it once with
//! `cargo install tansu --locked --features dynostore`; the group finds it as `tansu` on
//! `PATH`, in `~/.cargo/bin`, or at `EXPRESSWAY_TANSU`, and is skipped, saying so, without it.
//! `EXPRESSWAY_SKIP_BROKER=1` skips it too.

use crate::daemon::{free_port, Daemon};
use crate::delivery::{logs, scratch, until_sent, Stream};
use crate::harness::{group, verdict, Group, Problem, Verdict};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS: u64 = 30_000;
const EVENTS_PER_SEC: u64 = 6_000;
const PARTITIONS: i32 = 4;

pub fn group() -> Group<Broker> {
    group!(
        "broker",
        Broker::start,
        [
            two_kill_9s_under_load_lose_nothing,
            instances_joining_and_leaving_under_load_lose_nothing,
            sigterm_under_load_loses_nothing,
            a_restarted_static_member_owns_its_partitions_again_within_seconds,
            exactly_once_on_a_broker_without_transactions_stops_saying_why,
            the_stream_runs_over_tls_verified_against_its_certificate,
        ]
    )
    .skipped_by("EXPRESSWAY_SKIP_BROKER")
}

/// A tansu broker (in-memory storage) on a free port, killed when the group ends.
pub struct Broker {
    process: Child,
    binary: PathBuf,
    brokers: String,
    dir: PathBuf,
    runs: u32,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        // EXPRESSWAY_KEEP_RUNS=1 keeps the daemons' configs and logs for a look afterwards.
        if std::env::var_os("EXPRESSWAY_KEEP_RUNS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where tansu is installed, if it is.
fn tansu() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EXPRESSWAY_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin/tansu"));
    on_path.chain(cargo_home).find(|p| p.is_file())
}

/// Starts tansu (in-memory storage) listening on `listen` and advertising `advertised`
/// (another port when a TLS terminator stands in front), once it accepts connections.
fn spawn_tansu(binary: &Path, dir: &Path, listen: u16, advertised: &str) -> Result<Child, Problem> {
    let log = std::fs::File::create(dir.join(format!("tansu-{listen}.out")))
        .map_err(|e| e.to_string())?;
    let process = Command::new(binary)
        .args([
            "broker",
            "--storage-engine",
            &format!("memory://tansu{listen}/"),
        ])
        .args(["--listener-url", &format!("tcp://127.0.0.1:{listen}")])
        .args(["--advertised-listener-url", &format!("tcp://{advertised}")])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    wait_for_port(listen)?;
    Ok(process)
}

fn wait_for_port(port: u16) -> Result<(), Problem> {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("nothing listens on {port} after 30 s").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

impl Broker {
    fn start() -> Result<Broker, Problem> {
        let Some(binary) = tansu() else {
            return Err(Problem::Skipped(
                "no tansu broker: install it with `cargo install tansu --locked --features dynostore` (about 20 min) or set EXPRESSWAY_TANSU".into(),
            ));
        };
        let dir = scratch("broker");
        let port = free_port();
        let brokers = format!("127.0.0.1:{port}");
        let process = spawn_tansu(&binary, &dir, port, &brokers)?;
        Ok(Broker {
            process,
            binary,
            brokers,
            dir,
            runs: 0,
        })
    }

    /// A run on fresh topics and a fresh consumer group.
    fn stream(&mut self, label: &str, static_ids: bool) -> Result<Stream, Problem> {
        self.runs += 1;
        let name = format!("{label}{}", self.runs);
        let stream = Stream {
            brokers: self.brokers.clone(),
            dir: self.dir.join(&name),
            static_ids: static_ids.then(|| format!("{name}-instance")),
            name,
            delivery: "at_least_once",
            events: EVENTS,
            events_per_sec: EVENTS_PER_SEC,
            partitions: PARTITIONS,
            one_record_batches: true,
            properties: Vec::new(),
        };
        stream.create_topics()?;
        Ok(stream)
    }
}

/// Every id read, the three poison events dead-lettered; what went wrong otherwise.
fn nothing_lost(stream: &Stream, produced: std::thread::Result<Result<(), String>>) -> Verdict {
    produced.map_err(|_| "the producer panicked")??;
    let count = stream.count(Duration::from_secs(120));
    verdict(
        count.missing.is_empty() && count.poison_delivered(false),
        || format!("{}\n{}", count.summary(), logs(&stream.dir)),
    )
}

/// The daemon is `kill -9`ed at a third and at two thirds of the stream and restarted each
/// time (static membership, as deployed): every id gets its result.
fn two_kill_9s_under_load_lose_nothing(b: &mut Broker) -> Verdict {
    let stream = b.stream("kill", true)?;
    let sent = Arc::new(AtomicU64::new(0));
    let mut daemon = stream.daemon(0);
    let producing = stream.produce(sent.clone());
    for third in [1, 2] {
        until_sent(&sent, EVENTS * third / 3);
        daemon.kill_9();
        daemon = stream.daemon(0);
    }
    let produced = producing.join();
    let verdict = nothing_lost(&stream, produced);
    drop(daemon);
    verdict
}

/// A second and a third instance join under load, then the first leaves (SIGTERM):
/// rebalances move partitions back and forth and every id gets its result. Dynamic
/// membership: a stopped static member does not leave the group (it is expected back), and
/// tansu 0.6 never expires a silent member's session, so its partitions would stay with it.
fn instances_joining_and_leaving_under_load_lose_nothing(b: &mut Broker) -> Verdict {
    let stream = b.stream("scale", false)?;
    let sent = Arc::new(AtomicU64::new(0));
    let mut first = stream.daemon(0);
    let producing = stream.produce(sent.clone());
    until_sent(&sent, EVENTS / 4);
    let second = stream.daemon(1);
    until_sent(&sent, EVENTS / 2);
    let third = stream.daemon(2);
    until_sent(&sent, EVENTS * 3 / 4);
    let _ = first.sigterm();
    let first_exit = first.exit_within(Duration::from_secs(60));
    let produced = producing.join();
    let verdict = nothing_lost(&stream, produced);
    drop((second, third));
    match first_exit {
        Some(status) if status.success() => verdict,
        other => Err(format!(
            "the leaving instance ended with {other:?}\n{}",
            logs(&stream.dir)
        )
        .into()),
    }
}

/// SIGTERM halfway through: the daemon drains what it holds, commits and exits 0; its
/// restart carries on and every id gets its result.
fn sigterm_under_load_loses_nothing(b: &mut Broker) -> Verdict {
    let stream = b.stream("term", true)?;
    let sent = Arc::new(AtomicU64::new(0));
    let mut daemon = stream.daemon(0);
    let producing = stream.produce(sent.clone());
    until_sent(&sent, EVENTS / 2);
    let _ = daemon.sigterm();
    let status = daemon.exit_within(Duration::from_secs(60));
    let restarted = stream.daemon(0);
    let produced = producing.join();
    let verdict = nothing_lost(&stream, produced);
    drop(restarted);
    match status {
        Some(s) if s.success() => verdict,
        other => Err(format!(
            "SIGTERM ended the daemon with {other:?}\n{}",
            logs(&stream.dir)
        )
        .into()),
    }
}

/// KIP-345: a `kill -9`ed static member restarted with its `instance_id` is given its
/// partitions back without waiting out its session; a dynamic member on tansu sat with an
/// empty assignment for minutes.
fn a_restarted_static_member_owns_its_partitions_again_within_seconds(b: &mut Broker) -> Verdict {
    let stream = b.stream("static", true)?;
    let (config, _) = stream.config(0);
    let log = config.with_extension("log");
    let assigned = |from: usize| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let text = text.get(from..).unwrap_or_default().to_owned();
        text.lines().any(|l| {
            l.contains("partitions assigned") && l.contains(&format!("{}-in[0,1,2,3]", stream.name))
        })
    };
    let wait_for_assignment = |from: usize| {
        let started = Instant::now();
        while !assigned(from) && started.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    };
    let daemon = Daemon::start(&config);
    let first = wait_for_assignment(0);
    daemon.kill_9();
    let mark = std::fs::metadata(&log)
        .map(|m| m.len() as usize)
        .unwrap_or(0);
    let restarted = Daemon::start(&config);
    let again = wait_for_assignment(mark);
    let log_text = restarted.log();
    drop(restarted);
    verdict(again < Duration::from_secs(15), || {
        format!("first assignment after {first:?}, again after the restart {again:?}\n{log_text}")
    })
}

/// tansu 0.6 does not implement Kafka transactions (it accepts InitProducerId but not
/// EndTxn): an exactly-once source cannot run on it, and the daemon stops at its first
/// commit saying why (exit 75) instead of carrying on at-least-once.
fn exactly_once_on_a_broker_without_transactions_stops_saying_why(b: &mut Broker) -> Verdict {
    let mut stream = b.stream("eo", false)?;
    stream.delivery = "exactly_once";
    stream.events = 100;
    let mut daemon = stream.daemon(0);
    stream
        .produce(Arc::new(AtomicU64::new(0)))
        .join()
        .map_err(|_| "the producer panicked")??;
    let status = daemon.exit_within(Duration::from_secs(60));
    let log = daemon.log();
    verdict(
        status.and_then(|s| s.code()) == Some(75)
            && log.contains("transactional producer failed")
            && log.contains("not supported by broker"),
        || format!("exit {status:?}\n{log}"),
    )
}

/// A process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// TLS as managed clusters require it (`security.protocol = "SSL"`, the CA from a file, the
/// broker's name verified): a second broker behind a TLS terminator (`stunnel`, which
/// tansu 0.6's own listener lacks), the daemon and every client speaking TLS to it only.
fn the_stream_runs_over_tls_verified_against_its_certificate(b: &mut Broker) -> Verdict {
    let tool = |name: &str| {
        ["/usr/bin", "/usr/local/bin", "/bin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    };
    let (Some(stunnel), Some(openssl)) = (
        tool("stunnel4").or_else(|| tool("stunnel")),
        tool("openssl"),
    ) else {
        return Err(Problem::Skipped(
            "needs stunnel4 and openssl (Debian: apt-get install stunnel4)".into(),
        ));
    };
    let dir = b.dir.join("tls");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let (cert, key) = (dir.join("broker.crt"), dir.join("broker.key"));
    let made = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("openssl: {e}"))?;
    if !made.success() {
        return Err("openssl could not make a certificate".into());
    }
    let (plain, tls) = (free_port(), free_port());
    let _broker = Killed(spawn_tansu(
        &b.binary,
        &dir,
        plain,
        &format!("localhost:{tls}"),
    )?);
    let conf = dir.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls}\nconnect = 127.0.0.1:{plain}\ncert = {}\nkey = {}\n",
            cert.display(),
            key.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let _terminator = Killed(
        Command::new(stunnel)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("stunnel: {e}"))?,
    );
    wait_for_port(tls)?;
    b.runs += 1;
    let stream = Stream {
        brokers: format!("localhost:{tls}"),
        dir: dir.join("run"),
        name: format!("tls{}", b.runs),
        delivery: "at_least_once",
        static_ids: None,
        events: 5_000,
        events_per_sec: EVENTS_PER_SEC,
        partitions: PARTITIONS,
        one_record_batches: true,
        properties: vec![
            ("security.protocol".into(), "SSL".into()),
            ("ssl.ca.location".into(), cert.display().to_string()),
            // IPv4 only: the terminator listens on 127.0.0.1, `localhost` may be ::1 first.
            ("broker.address.family".into(), "v4".into()),
        ],
    };
    stream.create_topics()?;
    let daemon = stream.daemon(0);
    let produced = stream.produce(Arc::new(AtomicU64::new(0))).join();
    let verdict = nothing_lost(&stream, produced);
    drop(daemon);
    verdict
}
