//! The context object (`$$`), built only as far as a path reads it.
//!
//! `$$.Execution` and `$$.StateMachine` are fixed per execution and built once (only when the
//! program reads `$$` at all); `$$.State`, `$$.Map` and `$$.Task` are made per lookup.
//! `$$.Task` exists only while a Task state that waits for a task token (`.waitForTaskToken`,
//! activities) evaluates its `Parameters`.

use super::effect::{ExecutionOptions, WorkflowType};
use super::path::{JsonPath, Root, Segment};
use super::scope::Scope;
use super::time::iso8601;
use super::time::Millis;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Arc;

// At its old path for callers outside `asl`.

/// The per-execution parts of the context object, built on first use.
pub struct ContextParts {
    start: Millis,
    /// A copy of the execution input, kept only when the program can read
    /// `$$.Execution.Input` (the original is consumed by the first state).
    input: Option<Box<Value>>,
    // Boxed: a suspended execution should cost little until `$$` is read.
    execution: OnceCell<Box<Value>>,
    state_machine: OnceCell<Box<Value>>,
}

impl ContextParts {
    pub fn new(start: Millis, input: Option<Value>) -> Self {
        ContextParts {
            start,
            input: input.map(Box::new),
            execution: OnceCell::new(),
            state_machine: OnceCell::new(),
        }
    }

    fn execution(&self, opts: &ExecutionOptions) -> &Value {
        self.execution.get_or_init(|| {
            let kind = match opts.workflow_type {
                WorkflowType::Express => "express",
                WorkflowType::Standard => "execution",
            };
            let mut execution = json!({
                "Id": format!(
                    "arn:aws:states:{}:{}:{kind}:{}:{}",
                    opts.region, opts.account, opts.state_machine_name, opts.name
                ),
                "Input": self.input.as_deref().cloned().unwrap_or(Value::Null),
                "Name": &*opts.name,
                "RoleArn": &*opts.role_arn,
                "StartTime": iso8601(self.start),
            });
            // Only Standard workflows can be redriven.
            if opts.workflow_type == WorkflowType::Standard {
                execution["RedriveCount"] = json!(0);
            }
            // Expressway's own: the daemon's source message (not on AWS).
            if let Some(source) = &opts.source {
                execution["Source"] = (**source).clone();
            }
            Box::new(execution)
        })
    }

    fn state_machine(&self, opts: &ExecutionOptions) -> &Value {
        self.state_machine.get_or_init(|| {
            Box::new(json!({
                "Id": format!(
                    "arn:aws:states:{}:{}:stateMachine:{}",
                    opts.region, opts.account, opts.state_machine_name
                ),
                "Name": &*opts.state_machine_name,
            }))
        })
    }
}

/// A new task token (`$$.Task.Token`): 64 lowercase hex digits carrying 244 random bits from
/// the operating system's generator (two UUIDv4), so that tokens are unique and cannot be
/// guessed. The one source of randomness in the engine that is not seeded per execution:
/// whoever holds a token can complete the task.
pub fn new_task_token() -> Arc<str> {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    Arc::from(format!("{}{}", a.simple(), b.simple()))
}

/// Whether `token` has the shape of a token made by [`new_task_token`].
pub fn is_task_token(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What expressions of one state see: its input and the context object.
pub struct StateScope<'a> {
    pub input: &'a Value,
    pub ctx: &'a ContextParts,
    pub opts: &'a ExecutionOptions,
    pub state_name: &'a str,
    pub entered_at: Millis,
    /// `$$.Map.Item` while evaluating a Map state's `ItemSelector`.
    pub map_item: Option<(usize, &'a Value)>,
    /// `$$.State.RetryCount`, on states that can retry (Task, Parallel, Map).
    pub retry_count: Option<u32>,
    /// `$$.Task.Token`, while a Task state that waits for its token evaluates `Parameters`.
    pub task_token: Option<&'a str>,
    /// The workflow variables the state sees (`$name`).
    pub variables: Option<&'a Map<String, Value>>,
}

impl StateScope<'_> {
    fn state_object(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "EnteredTime".into(),
            Value::String(iso8601(self.entered_at)),
        );
        m.insert("Name".into(), Value::String(self.state_name.to_string()));
        if let Some(n) = self.retry_count {
            m.insert("RetryCount".into(), json!(n));
        }
        Value::Object(m)
    }

    fn map_object(&self) -> Option<Value> {
        let (index, value) = self.map_item?;
        Some(json!({ "Item": { "Index": index, "Value": value } }))
    }

    fn task_object(&self) -> Option<Value> {
        Some(json!({ "Token": self.task_token? }))
    }

    /// The whole context object: JSONata's `$states.context`.
    pub fn whole(&self) -> Value {
        let mut m = Map::new();
        m.insert("Execution".into(), self.ctx.execution(self.opts).clone());
        m.insert(
            "StateMachine".into(),
            self.ctx.state_machine(self.opts).clone(),
        );
        m.insert("State".into(), self.state_object());
        if let Some(map) = self.map_object() {
            m.insert("Map".into(), map);
        }
        if let Some(task) = self.task_object() {
            m.insert("Task".into(), task);
        }
        Value::Object(m)
    }
}

impl crate::asl::jsonata::ContextObject for StateScope<'_> {
    fn whole(&self) -> Value {
        StateScope::whole(self)
    }
    fn select(&self, path: &JsonPath) -> Option<Cow<'_, Value>> {
        Scope::select(self, path)
    }
}

fn owned(v: Option<Cow<'_, Value>>) -> Option<Cow<'static, Value>> {
    v.map(|c| Cow::Owned(c.into_owned()))
}

impl Scope for StateScope<'_> {
    fn select(&self, path: &JsonPath) -> Option<Cow<'_, Value>> {
        match path.root() {
            Root::Input => return path.select(self.input),
            Root::Variable => {
                let value = self.variables?.get(path.variable()?)?;
                return path.select_from(value, 1);
            }
            Root::Context => {}
        }
        let segs = path.segments();
        let Some(Segment::Name(top)) = segs.first() else {
            return owned(path.select(&self.whole()));
        };
        match top.as_str() {
            "Execution" => path.select_from(self.ctx.execution(self.opts), 1),
            "StateMachine" => path.select_from(self.ctx.state_machine(self.opts), 1),
            "State" => owned(path.select_from(&self.state_object(), 1)),
            "Task" => owned(path.select_from(&self.task_object()?, 1)),
            "Map" => {
                // Fast path for the common `$$.Map.Item.Value` / `.Index`.
                let (index, value) = self.map_item?;
                match segs.get(1..3) {
                    Some([Segment::Name(item), Segment::Name(field)]) if item == "Item" => {
                        match field.as_str() {
                            "Value" => path.select_from(value, 3),
                            "Index" => owned(path.select_from(&json!(index), 3)),
                            _ => None,
                        }
                    }
                    _ => owned(path.select_from(&self.map_object()?, 1)),
                }
            }
            _ => owned(path.select(&self.whole())),
        }
    }

    fn input(&self) -> &Value {
        self.input
    }

    fn payload_limit(&self) -> usize {
        self.opts.payload_limit_bytes
    }
}
