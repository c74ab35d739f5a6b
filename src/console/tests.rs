use super::*;
use crate::telemetry::history::HistoryConfig;
use std::io::{Read, Write};
use std::net::TcpStream;

fn definition() -> Value {
    json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Fail", "Error": "Boom", "Cause": "<script>alert(1)</script>"}
    }})
}

/// A console over one state machine, `sm`, with one failed execution kept.
fn console(token: Option<&str>) -> SocketAddr {
    let program = crate::asl::compile(&definition()).expect("valid");
    let history = HistoryStore::new(HistoryConfig::default());
    let machine = history.machine("sm");
    machine.finished(ExecutionTrace {
        arn: "arn:aws:states:us-east-1:123456789012:express:sm:in-0-7".into(),
        name: "in-0-7".into(),
        state_machine: Arc::from("sm"),
        status: TraceStatus::Failed,
        start_ms: 1_700_000_000_000,
        stop_ms: Some(1_700_000_000_001),
        input: None,
        output: None,
        error: Some("Boom".into()),
        cause: Some("<script>alert(1)</script>".into()),
        failed_state: Some(Arc::from("B")),
        transitions: 2,
        events: None,
    });
    let figures = Arc::new(StateFigures::new(&program));
    figures.executions.add([3, 2, 1, 0]);
    let console = Console {
        machines: vec![MachineView {
            name: "sm".into(),
            svg: crate::graph::svg(&definition()).expect("graph"),
            figures,
            history: Some(machine),
            sources: vec!["sensors".into()],
            rates: Rates::default(),
        }],
        history: Some(history),
        bearer_token: token.map(|t| Secret(t.into())),
    };
    start("127.0.0.1:0".parse().unwrap(), console).expect("console starts")
}

/// `(status, headers, body)` of a GET.
fn get(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

/// The body of a chunked or plain response as JSON.
fn json_body(body: &str) -> Value {
    let start = body.find('{').unwrap();
    let end = body.rfind('}').unwrap();
    serde_json::from_str(&body[start..=end]).unwrap()
}

#[test]
fn pages_and_documents_are_served_on_a_loopback_console_without_a_token() {
    let addr = console(None);
    let (status, head, page) = get(addr, "/machines/sm", "");
    assert_eq!(status, 200);
    assert!(head.contains("text/html"));
    assert!(page.contains("/console.js"));
    let (status, _, _) = get(addr, "/console.js", "");
    assert_eq!(status, 200);
    let (_, _, body) = get(addr, "/api/machines", "");
    let list = json_body(&body);
    assert_eq!(list["machines"][0]["name"], "sm");
    assert_eq!(list["machines"][0]["executions"]["inFlight"], 0);
    assert_eq!(list["machines"][0]["sources"][0]["name"], "sensors");
}

#[test]
fn a_state_machine_document_has_its_graph_and_every_state() {
    let addr = console(None);
    let (status, _, body) = get(addr, "/api/machines/sm", "");
    assert_eq!(status, 200);
    let m = json_body(&body);
    assert!(m["svg"].as_str().unwrap().contains("data-state=\"A\""));
    let names: Vec<&str> = m["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(get(addr, "/api/machines/nope", "").0, 404);
}

#[test]
fn kept_executions_are_listed_by_status_and_shown_with_their_failure() {
    let addr = console(None);
    let (_, _, body) = get(addr, "/api/machines/sm/executions?status=FAILED", "");
    let list = json_body(&body);
    assert_eq!(list["executions"][0]["name"], "in-0-7");
    assert_eq!(list["executions"][0]["failedState"], "B");
    let (_, _, body) = get(addr, "/api/machines/sm/executions?status=SUCCEEDED", "");
    assert_eq!(json_body(&body)["executions"], json!([]));
    assert_eq!(
        get(addr, "/api/machines/sm/executions?status=NOPE", "").0,
        400
    );
    let arn = "arn%3Aaws%3Astates%3Aus-east-1%3A123456789012%3Aexpress%3Asm%3Ain-0-7";
    let (status, _, body) = get(addr, &format!("/api/executions/{arn}"), "");
    assert_eq!(status, 200);
    let x = json_body(&body);
    assert_eq!(x["error"], "Boom");
    assert_eq!(x["failedStates"], json!(["B"]));
    assert_eq!(x["events"], Value::Null, "not sampled");
}

#[test]
fn with_a_token_nothing_but_the_assets_is_served_without_it() {
    let addr = console(Some("a-token-of-16-chars"));
    assert_eq!(get(addr, "/", "").0, 401);
    assert_eq!(get(addr, "/api/machines", "").0, 401);
    assert_eq!(get(addr, "/login?token=wrong-token-of-16", "").0, 401);
    let bearer = "Authorization: Bearer a-token-of-16-chars\r\n";
    assert_eq!(get(addr, "/api/machines", bearer).0, 200);
    let (status, head, _) = get(addr, "/login?token=a-token-of-16-chars", "");
    assert_eq!(status, 303);
    assert!(head.contains("expressway_console=a-token-of-16-chars; Path=/; HttpOnly"));
    let cookie = "Cookie: other=1; expressway_console=a-token-of-16-chars\r\n";
    assert_eq!(get(addr, "/machines/sm", cookie).0, 200);
}

#[test]
fn rates_are_counts_over_the_time_between_two_samples() {
    let program = crate::asl::compile(&definition()).expect("valid");
    let figures = StateFigures::new(&program);
    let rates = Rates::default();
    rates.tick(&figures);
    assert_eq!(rates.get(), (None, vec![]), "one sample has no rate");
    figures.executions.add([50, 0, 0, 0]);
    figures.counts[1]
        .entered
        .fetch_add(20, std::sync::atomic::Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(100));
    rates.tick(&figures);
    let (started, entered) = rates.get();
    let started = started.expect("a rate");
    assert!((50.0..=500.0).contains(&started), "{started}");
    assert_eq!(entered[0], 0.0);
    assert!(entered[1] > 0.0 && entered[1] < started);
}
