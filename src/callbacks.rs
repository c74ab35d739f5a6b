//! Task tokens: the callback pattern (`….waitForTaskToken`) and activities.
//!
//! A Task whose resource waits for a task token does not end when its call returns: the VM
//! makes a token (`$$.Task.Token`, [`TaskCall::task_token`]) and the call's [`TaskReply`] is
//! parked here under it until someone answers with `SendTaskSuccess`, `SendTaskFailure` or
//! `SendTaskHeartbeat` (the HTTP API calls [`Callbacks::send_success`] and friends). An
//! activity Task also queues its input on the activity, where a worker long-polls for it
//! (`GetActivityTask`, [`Callbacks::get_activity_task`]) and gets the token to answer with.
//!
//! The registry never times a task out itself: the VM does, from `TimeoutSeconds` and
//! `HeartbeatSeconds` (heartbeats reach it through [`TaskReply::heartbeat`]). The registry
//! only keeps the same deadlines to answer `TaskTimedOut` as AWS does, and drops every entry
//! at its expiry (the Express 5-minute cap), so that nothing leaks. Expired entries are swept
//! on every access, soonest first from a heap: memory stays bounded by what is parked within
//! one expiry period.

use crate::asl::arn::is_activity_arn;
use crate::asl::context::{is_task_token, new_task_token};
use crate::asl::effect::TaskCall;
use crate::asl::effect::EXPRESS_MAX_DURATION_MS;
use crate::asl::error::{json_text, names, Failure};
use crate::asl::time::Millis;
use crate::engine::wall_millis;
use crate::resource::{TaskReply, TaskResource};
use serde_json::Value;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

/// What `DescribeActivity` and `ListActivities` show of an activity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityInfo {
    pub arn: String,
    pub name: String,
    pub created_ms: i64,
}

/// A task handed to an activity worker by `GetActivityTask`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityTask {
    pub task_token: String,
    /// The Task state's effective input, as JSON text.
    pub input: String,
}

/// Why a `SendTask*` or activity request was refused, as AWS names it.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("{0}")]
    TaskDoesNotExist(String),
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    TaskTimedOut(String),
    #[error("{0}")]
    ActivityDoesNotExist(String),
    #[error("{0}")]
    InvalidArn(String),
}

impl CallbackError {
    /// The error code of AWS's response (`__type`).
    pub fn aws_code(&self) -> &'static str {
        match self {
            CallbackError::TaskDoesNotExist(_) => "TaskDoesNotExist",
            CallbackError::InvalidToken(_) => "InvalidToken",
            CallbackError::TaskTimedOut(_) => "TaskTimedOut",
            CallbackError::ActivityDoesNotExist(_) => "ActivityDoesNotExist",
            CallbackError::InvalidArn(_) => "InvalidArn",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CallbackError::TaskDoesNotExist(m)
            | CallbackError::InvalidToken(m)
            | CallbackError::TaskTimedOut(m)
            | CallbackError::ActivityDoesNotExist(m)
            | CallbackError::InvalidArn(m) => m,
        }
    }
}

/// The deadlines of a parked task, as its Task state set them: past either, answers are
/// refused with `TaskTimedOut` (the VM has failed the task by then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskLimits {
    /// `TimeoutSeconds` from when the task was parked, as wall-clock milliseconds.
    pub timeout_at_ms: Option<i64>,
    /// `HeartbeatSeconds` in milliseconds: each heartbeat moves the heartbeat deadline to
    /// now plus this.
    pub heartbeat_ms: Option<i64>,
}

impl TaskLimits {
    /// The limits of `call`, parked at `now_ms`.
    pub fn of(call: &TaskCall, now_ms: i64) -> TaskLimits {
        TaskLimits {
            timeout_at_ms: call
                .timeout_secs
                .map(|s| now_ms.saturating_add(s as i64 * 1000)),
            heartbeat_ms: call.heartbeat_secs.map(|s| s as i64 * 1000),
        }
    }
}

struct Parked {
    reply: TaskReply,
    timeout_at: Option<Millis>,
    /// `(deadline, interval)` when the task has `HeartbeatSeconds`.
    heartbeat: Option<(Millis, Millis)>,
    expires_at: Millis,
}

impl Parked {
    fn new(reply: TaskReply, expires_at: Millis, limits: TaskLimits, now: Millis) -> Parked {
        Parked {
            reply,
            timeout_at: limits.timeout_at_ms,
            heartbeat: limits
                .heartbeat_ms
                .map(|every| (now.saturating_add(every), every)),
            expires_at,
        }
    }

    fn timed_out(&self, now: Millis) -> bool {
        self.timeout_at.is_some_and(|t| now >= t) || self.heartbeat.is_some_and(|(h, _)| now >= h)
    }
}

struct Activity {
    info: ActivityInfo,
    /// Tasks not handed to a worker yet, oldest first. Entries whose token is no longer
    /// parked (answered, expired) are skipped when polled and dropped by the sweep.
    queue: VecDeque<ActivityTask>,
    /// Wakes the workers polling this activity when a task is queued or it is deleted.
    ready: Arc<Notify>,
}

#[derive(Default)]
struct Inner {
    tasks: HashMap<Arc<str>, Parked>,
    /// `(expires_at, token)`, soonest first. An entry whose token is gone (answered) or was
    /// parked again with another expiry is skipped.
    expiries: BinaryHeap<Reverse<(Millis, Arc<str>)>>,
    /// By ARN.
    activities: HashMap<String, Activity>,
}

/// The registry of parked tasks and of activities, shared by the Task resources below and
/// the HTTP API. `Send + Sync`; used as `Arc<Callbacks>`.
pub struct Callbacks {
    region: String,
    account: String,
    inner: Mutex<Inner>,
}

/// What a poll of an activity's queue found.
enum Polled {
    Task(ActivityTask),
    Empty(Arc<Notify>),
}

impl Callbacks {
    pub fn new(region: &str, account: &str) -> Arc<Callbacks> {
        Arc::new(Callbacks {
            region: region.to_string(),
            account: account.to_string(),
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Parks a running task until its token is answered; `expires_at_ms` bounds how long the
    /// entry is kept (5-minute Express cap).
    pub fn park(&self, token: Arc<str>, reply: TaskReply, expires_at_ms: i64) {
        self.park_task(token, reply, expires_at_ms, TaskLimits::default())
    }

    /// [`park`](Self::park), with the Task state's deadlines so that late answers get
    /// `TaskTimedOut` and heartbeats are checked against `HeartbeatSeconds`.
    pub fn park_task(
        &self,
        token: Arc<str>,
        reply: TaskReply,
        expires_at_ms: i64,
        limits: TaskLimits,
    ) {
        let now = wall_millis();
        let parked = Parked::new(reply, expires_at_ms, limits, now);
        let expired = {
            let mut inner = self.lock();
            insert(&mut inner, token, parked);
            sweep(&mut inner, now)
        };
        complete_expired(expired);
    }

    pub fn send_success(&self, token: &str, output: Value) -> Result<(), CallbackError> {
        let parked = self.take_answerable(token)?;
        parked.reply.complete(Ok(output));
        Ok(())
    }

    pub fn send_failure(
        &self,
        token: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<(), CallbackError> {
        let parked = self.take_answerable(token)?;
        parked.reply.complete(Err(Failure { error, cause }));
        Ok(())
    }

    pub fn send_heartbeat(&self, token: &str) -> Result<(), CallbackError> {
        let now = wall_millis();
        let (heartbeat, expired) = {
            let mut inner = self.lock();
            let expired = sweep(&mut inner, now);
            let found = match inner.tasks.get_mut(token) {
                None => Err(not_found(token)),
                Some(p) if p.timed_out(now) => Err(timed_out()),
                Some(p) => {
                    if let Some((at, every)) = &mut p.heartbeat {
                        *at = now.saturating_add(*every);
                    }
                    Ok(p.reply.heartbeat())
                }
            };
            (found, expired)
        };
        complete_expired(expired);
        // Outside the lock: the driver may answer on this thread.
        heartbeat?();
        Ok(())
    }

    /// Idempotent by name: an existing activity is returned as it is.
    pub fn create_activity(&self, name: &str) -> ActivityInfo {
        let arn = format!(
            "arn:aws:states:{}:{}:activity:{name}",
            self.region, self.account
        );
        let mut inner = self.lock();
        let activity = inner
            .activities
            .entry(arn.clone())
            .or_insert_with(|| Activity {
                info: ActivityInfo {
                    arn,
                    name: name.to_string(),
                    created_ms: wall_millis(),
                },
                queue: VecDeque::new(),
                ready: Arc::new(Notify::new()),
            });
        activity.info.clone()
    }

    pub fn describe_activity(&self, arn: &str) -> Result<ActivityInfo, CallbackError> {
        check_arn(arn)?;
        let inner = self.lock();
        match inner.activities.get(arn) {
            Some(a) => Ok(a.info.clone()),
            None => Err(activity_does_not_exist(arn)),
        }
    }

    /// Oldest first.
    pub fn list_activities(&self) -> Vec<ActivityInfo> {
        let inner = self.lock();
        let mut all: Vec<ActivityInfo> =
            inner.activities.values().map(|a| a.info.clone()).collect();
        all.sort_by(|a, b| (a.created_ms, &a.name).cmp(&(b.created_ms, &b.name)));
        all
    }

    /// Deleting an activity that does not exist succeeds, as on AWS. Tasks already queued
    /// stay parked until they are answered or expire; polling workers get
    /// `ActivityDoesNotExist`.
    pub fn delete_activity(&self, arn: &str) -> Result<(), CallbackError> {
        check_arn(arn)?;
        let removed = self.lock().activities.remove(arn);
        if let Some(a) = removed {
            a.ready.notify_waiters();
        }
        Ok(())
    }

    /// Long poll: waits up to `wait` for a task of this activity; Ok(None) when none came.
    pub async fn get_activity_task(
        &self,
        arn: &str,
        worker_name: Option<&str>,
        wait: Duration,
    ) -> Result<Option<ActivityTask>, CallbackError> {
        // The worker's name only shows in AWS's history (`ActivityStarted`), which we keep
        // per execution, not here.
        let _ = worker_name;
        check_arn(arn)?;
        let now = tokio::time::Instant::now();
        // A day is as good as forever for a poll; it spares an overflow on absurd waits.
        let deadline = now + wait.min(Duration::from_secs(86_400));
        loop {
            let ready = match self.poll(arn)? {
                Polled::Task(task) => return Ok(Some(task)),
                Polled::Empty(ready) => ready,
            };
            let mut notified = std::pin::pin!(ready.notified());
            notified.as_mut().enable();
            // Queued between the poll and `enable`: `notify_waiters` missed us.
            if let Polled::Task(task) = self.poll(arn)? {
                return Ok(Some(task));
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    /// Parked tasks: not answered yet (timed-out ones included) and not expired.
    pub fn parked_count(&self) -> usize {
        self.lock().tasks.len()
    }

    /// Drops entries past their expiry now, rather than at the next access.
    pub fn sweep(&self) {
        let expired = sweep(&mut self.lock(), wall_millis());
        complete_expired(expired);
    }

    /// Starts an activity Task: queues its input on the activity and parks `reply` under
    /// the call's token, both at once (a worker may poll in between otherwise). An unknown
    /// activity fails the task with `States.Runtime`.
    pub fn start_activity_task(&self, call: TaskCall, reply: TaskReply) {
        let now = wall_millis();
        let token = call.task_token.clone().unwrap_or_else(new_task_token);
        let task = ActivityTask {
            task_token: token.to_string(),
            input: json_text(&call.payload),
        };
        let parked = Parked::new(reply, expiry(&call, now), TaskLimits::of(&call, now), now);
        let refused = {
            let mut inner = self.lock();
            match inner.activities.get_mut(&*call.resource) {
                None => Some(parked.reply),
                Some(a) => {
                    a.queue.push_back(task);
                    a.ready.notify_waiters();
                    insert(&mut inner, token, parked);
                    None
                }
            }
        };
        if let Some(reply) = refused {
            reply.complete(Err(Failure::new(
                names::RUNTIME,
                format!(
                    "The activity '{}' of state '{}' does not exist.",
                    call.resource, call.state_name
                ),
            )));
        }
    }

    /// Removes and returns the parked task of `token` unless it cannot be answered now.
    fn take_answerable(&self, token: &str) -> Result<Parked, CallbackError> {
        let now = wall_millis();
        let (taken, expired) = {
            let mut inner = self.lock();
            let expired = sweep(&mut inner, now);
            let taken = match inner.tasks.get(token) {
                None => Err(not_found(token)),
                // Kept until it expires, so that every late answer gets `TaskTimedOut`.
                Some(p) if p.timed_out(now) => Err(timed_out()),
                Some(_) => Ok(inner.tasks.remove(token).expect("just found")),
            };
            (taken, expired)
        };
        complete_expired(expired);
        taken
    }

    fn poll(&self, arn: &str) -> Result<Polled, CallbackError> {
        let now = wall_millis();
        let (polled, expired) = {
            let mut inner = self.lock();
            let expired = sweep(&mut inner, now);
            let Inner {
                tasks, activities, ..
            } = &mut *inner;
            let Some(activity) = activities.get_mut(arn) else {
                return Err(activity_does_not_exist(arn));
            };
            let mut polled = Polled::Empty(activity.ready.clone());
            while let Some(task) = activity.queue.pop_front() {
                if tasks
                    .get(task.task_token.as_str())
                    .is_some_and(|p| !p.timed_out(now))
                {
                    polled = Polled::Task(task);
                    break;
                }
            }
            (polled, expired)
        };
        complete_expired(expired);
        Ok(polled)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the maps consistent: each change
        // is one insert or remove.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn insert(inner: &mut Inner, token: Arc<str>, parked: Parked) {
    inner
        .expiries
        .push(Reverse((parked.expires_at, token.clone())));
    inner.tasks.insert(token, parked);
}

/// How long a parked call's entry is kept: the Express cap, or its `TimeoutSeconds` when
/// longer (executions run without the cap).
fn expiry(call: &TaskCall, now: Millis) -> Millis {
    let timeout = call.timeout_secs.map_or(0, |s| s as Millis * 1000);
    now.saturating_add(timeout.max(EXPRESS_MAX_DURATION_MS))
}

/// Removes every entry past its expiry; returns their replies, to be completed once the lock
/// is released. Drops queued activity tasks of the removed tokens.
fn sweep(inner: &mut Inner, now: Millis) -> Vec<TaskReply> {
    let mut expired = Vec::new();
    while let Some(Reverse((at, _))) = inner.expiries.peek() {
        if *at > now {
            break;
        }
        let Some(Reverse((at, token))) = inner.expiries.pop() else {
            break;
        };
        if inner.tasks.get(&token).is_some_and(|p| p.expires_at == at) {
            let parked = inner.tasks.remove(&token).expect("just found");
            expired.push(parked.reply);
        }
    }
    if !expired.is_empty() {
        let Inner {
            tasks, activities, ..
        } = inner;
        // Queues run in expiry order, mostly: dropping dead heads keeps them bounded without
        // scanning them whole (a dead entry further in goes when it reaches the head).
        for a in activities.values_mut() {
            while a
                .queue
                .front()
                .is_some_and(|t| !tasks.contains_key(t.task_token.as_str()))
            {
                a.queue.pop_front();
            }
        }
    }
    // Answered tokens leave their heap entries behind: rebuild when they dominate.
    if inner.expiries.len() > 64 && inner.expiries.len() > 2 * inner.tasks.len() {
        let tasks = &inner.tasks;
        inner
            .expiries
            .retain(|Reverse((at, t))| tasks.get(t).is_some_and(|p| p.expires_at == *at));
    }
    expired
}

/// Ends expired calls. Their executions have normally ended already (the Express cap), and
/// the result is ignored; it matters only to executions run without the cap.
fn complete_expired(expired: Vec<TaskReply>) {
    for reply in expired {
        reply.complete(Err(Failure::new(
            names::TIMEOUT,
            "The task token expired before the task was answered.",
        )));
    }
}

fn not_found(token: &str) -> CallbackError {
    if is_task_token(token) {
        CallbackError::TaskDoesNotExist("Task does not exist anymore".to_string())
    } else {
        CallbackError::InvalidToken("Invalid token".to_string())
    }
}

fn timed_out() -> CallbackError {
    CallbackError::TaskTimedOut("Task Timed Out".to_string())
}

fn activity_does_not_exist(arn: &str) -> CallbackError {
    CallbackError::ActivityDoesNotExist(format!("Activity Does Not Exist: '{arn}'"))
}

/// An activity ARN; anything else is `InvalidArn`.
fn check_arn(arn: &str) -> Result<(), CallbackError> {
    if is_activity_arn(arn) {
        Ok(())
    } else {
        Err(CallbackError::InvalidArn(format!("Invalid Arn: '{arn}'")))
    }
}

/// The callback pattern: calls the inner resource with the `.waitForTaskToken` suffix
/// stripped from the resource, and completes the Task when its token is answered, not when
/// the call returns. A failed call fails the Task. Activity Tasks are run as by
/// [`ActivityResource`] and every other resource goes to the inner one unchanged, so one
/// wrapper serves a whole configuration.
pub struct WaitForTaskToken<R> {
    inner: R,
    callbacks: Arc<Callbacks>,
}

impl<R: TaskResource> WaitForTaskToken<R> {
    pub fn new(inner: R, callbacks: Arc<Callbacks>) -> Self {
        WaitForTaskToken { inner, callbacks }
    }
}

impl<R: TaskResource> TaskResource for WaitForTaskToken<R> {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        if is_activity_arn(&call.resource) {
            return self.callbacks.start_activity_task(call, reply);
        }
        let Some(base) = call.resource.strip_suffix(".waitForTaskToken") else {
            return self.inner.invoke(call, reply);
        };
        let now = wall_millis();
        let token = call.task_token.clone().unwrap_or_else(new_task_token);
        let heartbeat = reply.heartbeat();
        // Parked before the call is made: the service may answer before the call returns.
        self.callbacks.park_task(
            token.clone(),
            reply,
            expiry(&call, now),
            TaskLimits::of(&call, now),
        );
        let callbacks = self.callbacks.clone();
        let call = TaskCall {
            resource: Arc::from(base),
            ..call
        };
        let done = Box::new(move |result: Result<Value, Failure>| {
            if let Err(failure) = result {
                // Unless the token was answered first, the failed call fails the Task.
                let parked = callbacks.lock().tasks.remove(&token);
                if let Some(p) = parked {
                    p.reply.complete(Err(failure));
                }
            }
        });
        self.inner.invoke(call, TaskReply::new(done, heartbeat));
    }
}

/// Activity Tasks (`arn:aws:states:REGION:ACCOUNT:activity:NAME`): queues the Task's input
/// for `GetActivityTask` and completes the Task when a worker answers its token. Any other
/// resource fails with `States.Runtime`.
pub struct ActivityResource {
    callbacks: Arc<Callbacks>,
}

impl ActivityResource {
    pub fn new(callbacks: Arc<Callbacks>) -> Self {
        ActivityResource { callbacks }
    }
}

impl TaskResource for ActivityResource {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        if is_activity_arn(&call.resource) {
            self.callbacks.start_activity_task(call, reply);
        } else {
            reply.complete(Err(Failure::new(
                names::RUNTIME,
                format!(
                    "The resource '{}' of state '{}' is not an activity.",
                    call.resource, call.state_name
                ),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asl::effect::{ExecutionOptions, Outcome};
    use crate::engine::Clock;
    use crate::runner::run_to_completion;
    use serde_json::json;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Instant;

    /// A service that accepts every call at once and hands it to the test.
    struct Accepting(Mutex<mpsc::Sender<TaskCall>>);

    impl TaskResource for Accepting {
        fn invoke(&self, call: TaskCall, reply: TaskReply) {
            let _ = self.0.lock().unwrap().send(call);
            reply.complete(Ok(json!({"accepted": true})));
        }
    }

    /// A service whose every call fails.
    struct Refusing;

    impl TaskResource for Refusing {
        fn invoke(&self, _call: TaskCall, reply: TaskReply) {
            reply.complete(Err(Failure::new("Sqs.QueueDoesNotExist", "no queue")));
        }
    }

    /// Runs `definition` on the real clock on another thread, with `resource` in front.
    fn start(
        definition: Value,
        resource: impl TaskResource + 'static,
    ) -> thread::JoinHandle<Option<Outcome>> {
        let program = Arc::new(crate::asl::compile(&definition).expect("valid"));
        thread::spawn(move || {
            let exec = run_to_completion(
                program,
                json!({"order": 7}),
                ExecutionOptions::default(),
                &resource,
                &mut Clock::Real,
            );
            exec.into_outcome()
        })
    }

    /// A callback Task passing its token, caught errors going to `Caught`.
    fn callback_machine(task: Value) -> Value {
        let mut state = json!({
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": "q", "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.order"}},
            "Catch": [{"ErrorEquals": ["MyError", "States.HeartbeatTimeout"], "Next": "Caught"}],
            "End": true
        });
        for (k, v) in task.as_object().unwrap() {
            state[k] = v.clone();
        }
        json!({"StartAt": "Call", "States": {
            "Call": state,
            "Caught": {"Type": "Pass", "End": true}
        }})
    }

    fn accepting() -> (Accepting, mpsc::Receiver<TaskCall>) {
        let (tx, rx) = mpsc::channel();
        (Accepting(Mutex::new(tx)), rx)
    }

    /// The token the service was given in the message body.
    fn token_of(rx: &mpsc::Receiver<TaskCall>) -> String {
        let call = rx.recv_timeout(Duration::from_secs(2)).expect("called");
        assert_eq!(&*call.resource, "arn:aws:states:::sqs:sendMessage");
        let token = call.payload["MessageBody"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(call.task_token.as_deref(), Some(token.as_str()));
        assert_eq!(call.payload["MessageBody"]["order"], json!(7));
        token
    }

    fn finished(h: thread::JoinHandle<Option<Outcome>>) -> Outcome {
        h.join().unwrap().expect("ended")
    }

    #[test]
    fn send_success_completes_the_task_once() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let (service, rx) = accepting();
        let h = start(
            callback_machine(json!({})),
            WaitForTaskToken::new(service, callbacks.clone()),
        );
        let token = token_of(&rx);
        callbacks.send_success(&token, json!({"done": 1})).unwrap();
        assert_eq!(finished(h), Outcome::Succeeded(json!({"done": 1})));
        let again = callbacks.send_success(&token, json!({})).unwrap_err();
        assert_eq!(again.aws_code(), "TaskDoesNotExist");
        assert_eq!(callbacks.parked_count(), 0);
    }

    #[test]
    fn send_failure_error_and_cause_reach_the_catcher() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let (service, rx) = accepting();
        let h = start(
            callback_machine(json!({})),
            WaitForTaskToken::new(service, callbacks.clone()),
        );
        let token = token_of(&rx);
        callbacks
            .send_failure(&token, Some("MyError".into()), Some("it broke".into()))
            .unwrap();
        assert_eq!(
            finished(h),
            Outcome::Succeeded(json!({"Error": "MyError", "Cause": "it broke"}))
        );
    }

    #[test]
    fn an_uncaught_failure_fails_the_execution_with_its_error() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let (service, rx) = accepting();
        let h = start(
            callback_machine(json!({})),
            WaitForTaskToken::new(service, callbacks.clone()),
        );
        let token = token_of(&rx);
        callbacks
            .send_failure(&token, Some("Other".into()), None)
            .unwrap();
        let Outcome::Failed(f) = finished(h) else {
            panic!("must fail")
        };
        assert_eq!((f.error.as_deref(), f.cause), (Some("Other"), None));
    }

    #[test]
    fn a_failed_call_fails_the_task_without_waiting() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let h = start(
            callback_machine(json!({"Catch": [{"ErrorEquals": ["MyError"], "Next": "Caught"}]})),
            WaitForTaskToken::new(Refusing, callbacks.clone()),
        );
        let Outcome::Failed(f) = finished(h) else {
            panic!("must fail")
        };
        assert_eq!(f.error.as_deref(), Some("Sqs.QueueDoesNotExist"));
        assert_eq!(callbacks.parked_count(), 0);
    }

    #[test]
    fn heartbeats_extend_the_deadline() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let (service, rx) = accepting();
        let h = start(
            callback_machine(json!({"HeartbeatSeconds": 1})),
            WaitForTaskToken::new(service, callbacks.clone()),
        );
        let token = token_of(&rx);
        let started = Instant::now();
        for _ in 0..3 {
            thread::sleep(Duration::from_millis(500));
            callbacks.send_heartbeat(&token).unwrap();
        }
        thread::sleep(Duration::from_millis(300));
        assert!(started.elapsed() > Duration::from_millis(1500));
        callbacks
            .send_success(&token, json!("late but alive"))
            .unwrap();
        assert_eq!(finished(h), Outcome::Succeeded(json!("late but alive")));
    }

    #[test]
    fn a_missed_heartbeat_is_caught_as_states_heartbeat_timeout() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let (service, rx) = accepting();
        let h = start(
            callback_machine(json!({"HeartbeatSeconds": 1})),
            WaitForTaskToken::new(service, callbacks.clone()),
        );
        let token = token_of(&rx);
        assert_eq!(
            finished(h),
            Outcome::Succeeded(json!({"Error": "States.Timeout", "Cause": ""}))
        );
        // The registry's mirrored deadline is set when the token is parked, a little after
        // the VM's heartbeat timer starts: on a loaded machine it can trail it by a few ms.
        thread::sleep(Duration::from_millis(200));
        for answer in [
            callbacks.send_heartbeat(&token),
            callbacks.send_success(&token, json!({})),
            callbacks.send_failure(&token, None, None),
        ] {
            assert_eq!(answer.unwrap_err().aws_code(), "TaskTimedOut");
        }
    }

    #[test]
    fn malformed_and_unknown_tokens() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let bad = callbacks
            .send_success("not-a-token", json!({}))
            .unwrap_err();
        assert_eq!(bad.aws_code(), "InvalidToken");
        assert_eq!(bad.message(), "Invalid token");
        let unknown = callbacks.send_heartbeat(&new_task_token()).unwrap_err();
        assert_eq!(unknown.aws_code(), "TaskDoesNotExist");
    }

    #[test]
    fn expired_entries_are_dropped_and_their_calls_ended() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let (tx, rx) = mpsc::channel();
        let token = new_task_token();
        let reply = TaskReply::without_heartbeat(Box::new(move |r| tx.send(r).unwrap()));
        callbacks.park(token.clone(), reply, wall_millis() + 50);
        assert_eq!(callbacks.parked_count(), 1);
        thread::sleep(Duration::from_millis(80));
        let gone = callbacks.send_success(&token, json!({})).unwrap_err();
        assert_eq!(gone.aws_code(), "TaskDoesNotExist");
        assert_eq!(callbacks.parked_count(), 0);
        let ended = rx.try_recv().unwrap().unwrap_err();
        assert_eq!(ended.error.as_deref(), Some(names::TIMEOUT));
    }

    #[test]
    fn answered_tokens_do_not_grow_the_expiry_heap() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        for _ in 0..1000 {
            let token = new_task_token();
            let reply = TaskReply::without_heartbeat(Box::new(|_| {}));
            callbacks.park(token.clone(), reply, wall_millis() + 60_000);
            callbacks.send_success(&token, json!({})).unwrap();
        }
        assert!(callbacks.lock().expiries.len() <= 130);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    fn activity_machine(arn: &str) -> Value {
        json!({"StartAt": "Work", "States": {"Work": {
            "Type": "Task", "Resource": arn, "HeartbeatSeconds": 2,
            "Parameters": {"order.$": "$.order"}, "End": true}}})
    }

    #[test]
    fn a_worker_long_polling_gets_the_activity_task() {
        let callbacks = Callbacks::new("eu-west-1", "111122223333");
        let info = callbacks.create_activity("pack");
        assert_eq!(
            info.arn,
            "arn:aws:states:eu-west-1:111122223333:activity:pack"
        );
        let delayed = {
            let (callbacks, arn) = (callbacks.clone(), info.arn.clone());
            thread::spawn(move || {
                // Starts while the worker already waits.
                thread::sleep(Duration::from_millis(150));
                start(activity_machine(&arn), ActivityResource::new(callbacks)).join()
            })
        };
        let started = Instant::now();
        let task = runtime()
            .block_on(callbacks.get_activity_task(&info.arn, Some("w1"), Duration::from_secs(2)))
            .unwrap()
            .expect("a task");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(task.input, r#"{"order":7}"#);
        callbacks.send_heartbeat(&task.task_token).unwrap();
        callbacks
            .send_success(&task.task_token, json!({"packed": true}))
            .unwrap();
        let outcome = delayed.join().unwrap().unwrap().unwrap();
        assert_eq!(outcome, Outcome::Succeeded(json!({"packed": true})));
    }

    #[test]
    fn a_poll_with_nothing_queued_returns_none_after_its_wait() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let arn = callbacks.create_activity("idle").arn;
        let started = Instant::now();
        let rt = runtime();
        let none = rt
            .block_on(callbacks.get_activity_task(&arn, None, Duration::from_millis(100)))
            .unwrap();
        assert_eq!(none, None);
        assert!(started.elapsed() >= Duration::from_millis(100));
        let missing = "arn:aws:states:us-east-1:123456789012:activity:nope";
        let err = rt
            .block_on(callbacks.get_activity_task(missing, None, Duration::ZERO))
            .unwrap_err();
        assert_eq!(err.aws_code(), "ActivityDoesNotExist");
        let err = rt
            .block_on(callbacks.get_activity_task("nope", None, Duration::ZERO))
            .unwrap_err();
        assert_eq!(err.aws_code(), "InvalidArn");
    }

    #[test]
    fn the_long_poll_can_be_awaited_by_a_multi_threaded_server() {
        fn send<T: Send>(_: &T) {}
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        send(&callbacks.get_activity_task("arn", None, Duration::MAX));
        // A queued task comes at once, whatever the wait (`Duration::MAX` must not overflow).
        let arn = callbacks.create_activity("a").arn;
        callbacks.start_activity_task(
            activity_call(&arn),
            TaskReply::without_heartbeat(Box::new(|_| {})),
        );
        let task = runtime().block_on(callbacks.get_activity_task(&arn, None, Duration::MAX));
        assert!(task.unwrap().is_some());
    }

    fn activity_call(arn: &str) -> TaskCall {
        TaskCall {
            nesting_depth: 0,
            resource: Arc::from(arn),
            payload: json!({}),
            state_name: Arc::from("S"),
            execution_name: Arc::from("e"),
            timeout_secs: None,
            heartbeat_secs: None,
            purpose: Default::default(),
            task_token: Some(new_task_token()),
        }
    }

    #[test]
    fn expired_activity_tasks_leave_the_queue() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let arn = callbacks.create_activity("slow").arn;
        callbacks.start_activity_task(
            activity_call(&arn),
            TaskReply::without_heartbeat(Box::new(|_| {})),
        );
        {
            // Expire it by hand: `start_activity_task` keeps it for the Express cap.
            let mut inner = callbacks.lock();
            let token = inner.tasks.keys().next().unwrap().clone();
            inner.tasks.get_mut(&token).unwrap().expires_at = 0;
            inner.expiries.clear();
            inner.expiries.push(Reverse((0, token)));
        }
        callbacks.sweep();
        assert_eq!(callbacks.parked_count(), 0);
        assert!(callbacks.lock().activities[&arn].queue.is_empty());
    }

    #[test]
    fn activities_are_created_once_listed_described_and_deleted() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let a = callbacks.create_activity("a");
        assert_eq!(callbacks.create_activity("a"), a);
        let b = callbacks.create_activity("b");
        assert_eq!(callbacks.list_activities(), vec![a.clone(), b.clone()]);
        assert_eq!(callbacks.describe_activity(&b.arn).unwrap(), b);
        callbacks.delete_activity(&b.arn).unwrap();
        callbacks.delete_activity(&b.arn).unwrap();
        let err = callbacks.describe_activity(&b.arn).unwrap_err();
        assert_eq!(err.aws_code(), "ActivityDoesNotExist");
        let err = callbacks.describe_activity("arn:aws:lambda:x").unwrap_err();
        assert_eq!(err.aws_code(), "InvalidArn");
        assert_eq!(callbacks.list_activities(), vec![a]);
    }

    #[test]
    fn an_unknown_activity_fails_the_execution() {
        let callbacks = Callbacks::new("us-east-1", "123456789012");
        let arn = "arn:aws:states:us-east-1:123456789012:activity:ghost";
        let outcome = finished(start(
            activity_machine(arn),
            ActivityResource::new(callbacks),
        ));
        let Outcome::Failed(f) = outcome else {
            panic!("must fail")
        };
        assert_eq!(f.error.as_deref(), Some(names::RUNTIME));
        assert!(f.cause.unwrap().contains("does not exist"));
    }
}
