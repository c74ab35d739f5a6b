use super::*;
use crate::asl::effect::TaskCall;
use serde_json::json;

fn suspended(definition: Value) -> Execution {
    let program = Arc::new(crate::asl::compile(&definition).expect("valid"));
    let mut exec = Execution::start(program, json!({"k": 1}), ExecutionOptions::default(), 0);
    exec.run(0);
    assert!(exec.outcome().is_none(), "the execution must be waiting");
    exec.drain_effects().for_each(drop);
    exec
}

#[test]
fn a_suspended_execution_costs_under_1_kib_beyond_its_data() {
    let on_task = suspended(json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f", "End": true}}}));
    let on_wait = suspended(json!({"StartAt": "W", "States": {"W": {
        "Type": "Wait", "Seconds": 10, "End": true}}}));
    for exec in [on_task, on_wait] {
        let bytes = exec.footprint_bytes();
        eprintln!("suspended execution footprint: {bytes} bytes");
        assert!(bytes < 1024, "{bytes} bytes");
    }
}

/// Starts a one-Task machine and returns its first invoke and timer.
fn task_effects(task: Value) -> (Execution, Option<(Token, TaskCall)>, Vec<Millis>) {
    let mut state = json!({"Type": "Task", "End": true});
    for (k, v) in task.as_object().unwrap() {
        state[k] = v.clone();
    }
    let program = Arc::new(
        crate::asl::compile(&json!({"StartAt": "T", "States": {"T": state}})).expect("valid"),
    );
    let opts = ExecutionOptions {
        max_duration_ms: None,
        ..ExecutionOptions::default()
    };
    let mut exec = Execution::start(program, json!({"k": 1}), opts, 0);
    exec.run(0);
    let (mut call, mut timers) = (None, Vec::new());
    for effect in exec.drain_effects() {
        match effect {
            Effect::Invoke { token, call: c } => call = Some((token, *c)),
            Effect::Timer { at, .. } => timers.push(at),
        }
    }
    (exec, call, timers)
}

#[test]
fn only_token_resources_get_a_task_token_in_the_context_object() {
    let params = json!({"token.$": "$$.Task.Token", "k.$": "$.k"});
    for resource in [
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "arn:aws:states:us-east-1:123456789012:activity:work",
    ] {
        let (_, call, _) = task_effects(json!({"Resource": resource, "Parameters": params}));
        let (_, call) = call.expect("invoked");
        let token = call.task_token.clone().expect("a token");
        assert!(crate::asl::context::is_task_token(&token), "{token}");
        assert_eq!(
            call.payload,
            json!({"token": &*token, "k": 1}),
            "{resource}"
        );
    }
    // A new token per execution (and per attempt).
    let resource = "arn:aws:states:::lambda:invoke.waitForTaskToken";
    let (_, a, _) = task_effects(json!({"Resource": resource}));
    let (_, b, _) = task_effects(json!({"Resource": resource}));
    assert_ne!(a.unwrap().1.task_token, b.unwrap().1.task_token);
    // Other resources have no `$$.Task`: reading it is a runtime error.
    for resource in [
        "arn:aws:states:::lambda:invoke",
        "arn:aws:lambda:us-east-1:123456789012:function:f",
    ] {
        let (exec, call, _) = task_effects(json!({"Resource": resource, "Parameters": params}));
        assert!(call.is_none());
        let Some(Outcome::Failed(f)) = exec.outcome() else {
            panic!("must fail")
        };
        assert_eq!(f.error.as_deref(), Some(names::RUNTIME));
        let (_, call, _) = task_effects(json!({"Resource": resource}));
        assert_eq!(call.expect("invoked").1.task_token, None);
    }
}

#[test]
fn heartbeats_push_the_heartbeat_deadline() {
    let (mut exec, call, timers) = task_effects(json!({
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "HeartbeatSeconds": 10, "TimeoutSeconds": 60}));
    let (token, call) = call.expect("invoked");
    assert_eq!(
        (call.heartbeat_secs, call.timeout_secs),
        (Some(10), Some(60))
    );
    assert_eq!(timers, vec![10_000]);
    exec.heartbeat(token, 4_000);
    let new: Vec<_> = exec.drain_effects().collect();
    assert!(
        matches!(new[..], [Effect::Timer { at: 14_000, .. }]),
        "{new:?}"
    );
    // The first timer is stale now.
    exec.fire_timer(token, 10_000);
    exec.run(10_000);
    assert!(exec.outcome().is_none());
    // Close to the timeout, the timer is the timeout's.
    exec.heartbeat(token, 55_000);
    let new: Vec<_> = exec.drain_effects().collect();
    assert!(new.is_empty(), "missed at 14 s: {new:?}");
    exec.fire_timer(token, 14_000);
    exec.run(14_000);
    let Some(Outcome::Failed(f)) = exec.outcome() else {
        panic!("must time out")
    };
    assert_eq!(f.error.as_deref(), Some(names::TIMEOUT));
}

#[test]
fn a_heartbeat_never_moves_the_timer_past_the_timeout() {
    let (mut exec, call, _) = task_effects(json!({
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "HeartbeatSeconds": 10, "TimeoutSeconds": 12}));
    let (token, _) = call.expect("invoked");
    exec.heartbeat(token, 5_000);
    let new: Vec<_> = exec.drain_effects().collect();
    assert!(
        matches!(new[..], [Effect::Timer { at: 12_000, .. }]),
        "{new:?}"
    );
}

#[test]
fn state_marks_say_how_each_state_was_left_and_after_how_long() {
    use crate::asl::effect::{StateEnd, StateMark};
    let definition = json!({"StartAt": "Wait", "States": {
        "Wait": {"Type": "Wait", "Seconds": 2, "Next": "Split"},
        "Split": {"Type": "Parallel", "Branches": [
            {"StartAt": "Ok", "States": {"Ok": {"Type": "Pass", "End": true}}},
            {"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "E"}}}
        ], "Catch": [{"ErrorEquals": ["E"], "Next": "Done"}], "Next": "Done"},
        "Done": {"Type": "Succeed"}
    }});
    let program = Arc::new(crate::asl::compile(&definition).expect("valid"));
    let id = |name: &str| {
        program
            .states
            .iter()
            .position(|s| &*s.name == name)
            .unwrap() as u32
    };
    let opts = ExecutionOptions {
        state_marks: true,
        ..ExecutionOptions::default()
    };
    let mut exec = Execution::start(program.clone(), json!({}), opts, 0);
    exec.run(0);
    let wait = exec
        .drain_effects()
        .find_map(|e| match e {
            Effect::Timer { token, at: 2_000 } => Some(token),
            _ => None,
        })
        .expect("the Wait's timer");
    exec.fire_timer(wait, 2_000);
    exec.run(2_000);
    assert!(matches!(exec.outcome(), Some(Outcome::Succeeded(_))));
    let marks: Vec<StateMark> = exec.drain_marks().collect();
    let left = |name: &str| {
        marks.iter().find_map(|m| match m {
            StateMark::Left { state, end, millis } if *state == id(name) => Some((*end, *millis)),
            _ => None,
        })
    };
    assert_eq!(left("Wait"), Some((StateEnd::Succeeded, 2_000)));
    assert_eq!(left("Ok"), Some((StateEnd::Succeeded, 0)));
    assert_eq!(left("Boom"), Some((StateEnd::Failed, 0)));
    assert_eq!(left("Split"), Some((StateEnd::Caught, 0)));
    assert_eq!(left("Done"), Some((StateEnd::Succeeded, 0)));
    let entered = marks
        .iter()
        .filter(|m| matches!(m, StateMark::Entered(_)))
        .count();
    assert_eq!(entered, 5);
    assert_eq!(exec.drain_marks().count(), 0, "drained");
}

/// Runs `definition` with its history recorded, answering each Task call (in order) with
/// the next of `answers` and firing timers as they fall due.
fn recorded(
    definition: Value,
    input: Value,
    history_data: bool,
    answers: Vec<Result<Value, Failure>>,
) -> Execution {
    let program = Arc::new(crate::asl::compile(&definition).expect("valid"));
    let opts = ExecutionOptions {
        record_history: true,
        history_data,
        max_duration_ms: None,
        ..ExecutionOptions::default()
    };
    let mut exec = Execution::start(program, input, opts, 0);
    let (mut answers, mut timers, mut now) = (answers.into_iter(), Vec::new(), 0);
    loop {
        exec.run(now);
        if exec.outcome().is_some() {
            return exec;
        }
        let mut invoked = Vec::new();
        for effect in exec.drain_effects() {
            match effect {
                Effect::Invoke { token, .. } => invoked.push(token),
                Effect::Timer { token, at } => timers.push((at, token)),
            }
        }
        if invoked.is_empty() {
            timers.sort_by_key(|t| std::cmp::Reverse(t.0));
            let (at, token) = timers.pop().expect("the execution waits on something");
            now = at;
            exec.fire_timer(token, now);
        }
        for token in invoked {
            exec.complete_task(token, answers.next().expect("an answer"), now);
        }
    }
}

/// `(type, id, previousEventId)` of each recorded event.
fn links(exec: &Execution) -> Vec<(&'static str, u64, u64)> {
    exec.history()
        .iter()
        .map(|e| (e.kind, e.id, e.previous))
        .collect()
}

#[test]
fn parallel_branches_link_their_events_along_their_own_threads() {
    let two_passes = |a: &str, b: &str| {
        json!({"StartAt": a, "States": {
            a: {"Type": "Pass", "Next": b},
            b: {"Type": "Pass", "End": true}}})
    };
    let exec = recorded(
        json!({"StartAt": "Split", "States": {
            "Split": {"Type": "Parallel", "Next": "After",
                "Branches": [two_passes("A1", "A2"), two_passes("B1", "B2")]},
            "After": {"Type": "Pass", "End": true}}}),
        json!({}),
        true,
        vec![],
    );
    assert_eq!(
        links(&exec),
        [
            ("ExecutionStarted", 1, 0),
            // AWS links the first event after ExecutionStarted to 0.
            ("ParallelStateEntered", 2, 0),
            ("ParallelStateStarted", 3, 2),
            // Each branch starts from the ParallelStateStarted.
            ("PassStateEntered", 4, 3),
            ("PassStateExited", 5, 4),
            ("PassStateEntered", 6, 5),
            ("PassStateExited", 7, 6),
            ("PassStateEntered", 8, 3),
            ("PassStateExited", 9, 8),
            ("PassStateEntered", 10, 9),
            ("PassStateExited", 11, 10),
            // The last branch to end hands its last event on: the Succeeded event follows
            // it without becoming the Parallel's last, so the Exited follows it too.
            ("ParallelStateSucceeded", 12, 11),
            ("ParallelStateExited", 13, 11),
            ("PassStateEntered", 14, 13),
            ("PassStateExited", 15, 14),
            ("ExecutionSucceeded", 16, 15),
        ]
    );
}

#[test]
fn a_retried_task_links_its_events_in_order_and_task_succeeded_carries_the_result() {
    let definition = json!({"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": true,
        "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 1, "MaxAttempts": 1}]}}});
    let answers = || vec![Err(Failure::new("E", "once")), Ok(json!({"r": 1}))];
    let exec = recorded(definition.clone(), json!({}), true, answers());
    assert_eq!(
        links(&exec),
        [
            ("ExecutionStarted", 1, 0),
            ("TaskStateEntered", 2, 0),
            ("TaskScheduled", 3, 2),
            ("TaskStarted", 4, 3),
            ("TaskFailed", 5, 4),
            // The retry follows the failure.
            ("TaskScheduled", 6, 5),
            ("TaskStarted", 7, 6),
            ("TaskSucceeded", 8, 7),
            ("TaskStateExited", 9, 8),
            ("ExecutionSucceeded", 10, 9),
        ]
    );
    assert_eq!(exec.history()[7].details, json!({"output": r#"{"r":1}"#}));
    // Without history data, no output (the resource comes from the TaskScheduled).
    let exec = recorded(definition, json!({}), false, answers());
    assert_eq!(exec.history()[7].details, json!({"output": null}));
}

#[test]
fn a_map_state_failed_is_recorded_only_when_the_map_is_not_retried() {
    let definition = |retry: Value| {
        json!({"StartAt": "M", "States": {"M": {
            "Type": "Map", "ItemsPath": "$.items", "Retry": retry, "End": true,
            "ItemProcessor": {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E"}}}}}})
    };
    let input = json!({"items": [1]});
    let of_kind = |exec: &Execution, kind: &str| -> Vec<(u64, u64)> {
        exec.history()
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| (e.id, e.previous))
            .collect()
    };
    // ExecutionStarted, MapStateEntered, MapStateStarted, MapIterationStarted (4),
    // FailStateEntered (5), MapIterationFailed (6): the Map fails from event 5.
    let once = recorded(definition(json!([])), input.clone(), true, vec![]);
    assert_eq!(of_kind(&once, "MapStateFailed"), [(7, 5)]);
    let retry = json!([{"ErrorEquals": ["E"], "MaxAttempts": 1}]);
    let retried = recorded(definition(retry), input, true, vec![]);
    // The retry's MapStateStarted follows the failing event; MapStateFailed comes once.
    assert_eq!(of_kind(&retried, "MapStateStarted"), [(3, 2), (7, 5)]);
    assert_eq!(of_kind(&retried, "MapStateFailed"), [(11, 9)]);
    assert_eq!(of_kind(&retried, "ExecutionFailed"), [(12, 11)]);
}
