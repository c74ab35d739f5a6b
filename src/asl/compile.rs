//! Lowers a validated definition into a [`Program`].
//!
//! Validation ([`super::validate`]) decides what is allowed and reports every problem;
//! compilation only translates. It still never panics on input that slipped through: anything
//! it cannot translate becomes a diagnostic.

use super::choice::ChoiceRule;
use super::diagnostic::codes::{INVALID_FIELD, INVALID_JSONATA};
use super::diagnostic::{pointer_push, Diagnostic};
use super::error::names;
use super::intrinsics::{is_intrinsic, Intrinsic};
use super::jsonata::{expression_text, JTemplate};
use super::path::{JsonPath, Root};
use super::program::*;
use super::size::{self, Extent};
use super::template::Template;
use super::timestamp;
use super::unsupported;
use super::validate::validate;
use super::vars::Assign;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Validates and compiles a definition; on failure, every problem found.
pub fn compile(definition: &Value) -> Result<Program, Vec<Diagnostic>> {
    let validation = validate(definition);
    // Translated even when invalid: JSONata is parsed only here, and its syntax errors belong
    // next to the structural ones (the compiler never panics on invalid input).
    let mut translation = Vec::new();
    let mut c = Compiler {
        jsonata: false,
        states: Vec::new(),
        machines: Vec::new(),
        diags: &mut translation,
    };
    c.machine(definition, "", false);
    let program = Program {
        timeout_secs: definition.get("TimeoutSeconds").and_then(Value::as_u64),
        reads_execution_input: reads_execution_input(definition),
        states: c.states.into_iter().flatten().collect(),
        machines: c.machines,
    };
    let mut diags = if validation.is_empty() {
        translation
    } else {
        // The compiler's other diagnostics restate what validation already reported.
        let jsonata = translation
            .into_iter()
            .filter(|d| d.code == INVALID_JSONATA);
        validation.into_iter().chain(jsonata).collect()
    };
    diags.extend(unsupported::find(definition));
    if diags.is_empty() {
        Ok(program)
    } else {
        Err(diags)
    }
}

struct Compiler<'d> {
    /// The query language of the state being compiled.
    jsonata: bool,
    states: Vec<Option<State>>,
    machines: Vec<SubMachine>,
    diags: &'d mut Vec<Diagnostic>,
}

impl Compiler<'_> {
    fn err(&mut self, code: &'static str, pointer: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(code, pointer, message));
    }

    /// Compiles one `{StartAt, States}` object and returns its machine id. `jsonata`: the
    /// query language it inherits (from the state holding it).
    fn machine(&mut self, def: &Value, pointer: &str, jsonata: bool) -> MachineId {
        let jsonata = match def.get("QueryLanguage").and_then(Value::as_str) {
            Some(lang) => lang == "JSONata",
            None => jsonata,
        };
        let id = self.machines.len() as MachineId;
        self.machines.push(SubMachine { start: 0 });
        let empty = Map::new();
        let states = def
            .get("States")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let states_ptr = pointer_push(pointer, "States");
        // Reserve ids first so that `Next` can point forward.
        let base = self.states.len() as StateId;
        let ids: HashMap<&str, StateId> = states
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), base + i as StateId))
            .collect();
        self.states.extend(states.keys().map(|_| None));
        for (name, body) in states {
            let ptr = pointer_push(&states_ptr, name);
            let state = self.state(name, body, &ids, &ptr, jsonata);
            self.states[ids[name.as_str()] as usize] = Some(state);
        }
        let start = def.get("StartAt").and_then(Value::as_str).unwrap_or("");
        match ids.get(start) {
            Some(s) => self.machines[id as usize].start = *s,
            None => self.err(
                INVALID_FIELD,
                &pointer_push(pointer, "StartAt"),
                format!("StartAt '{start}' names no state"),
            ),
        }
        id
    }

    fn target(&mut self, ids: &HashMap<&str, StateId>, v: Option<&Value>, ptr: &str) -> StateId {
        match v.and_then(Value::as_str).and_then(|n| ids.get(n)) {
            Some(id) => *id,
            None => {
                self.err(INVALID_FIELD, ptr, "transition to an unknown state");
                0
            }
        }
    }

    fn state(
        &mut self,
        name: &str,
        body: &Value,
        ids: &HashMap<&str, StateId>,
        ptr: &str,
        machine_jsonata: bool,
    ) -> State {
        let field = |f: &str| body.get(f);
        let at = |f: &str| pointer_push(ptr, f);
        let jsonata = match field("QueryLanguage").and_then(Value::as_str) {
            Some(lang) => lang == "JSONata",
            None => machine_jsonata,
        };
        self.jsonata = jsonata;
        let next = field("Next").map(|n| self.target(ids, Some(n), &at("Next")));
        let mut io = Io {
            input_path: self.selection(field("InputPath"), &at("InputPath")),
            parameters: self.template(field("Parameters"), &at("Parameters")),
            result_selector: self.template(field("ResultSelector"), &at("ResultSelector")),
            result_path: self.result_path(field("ResultPath"), &at("ResultPath")),
            output_path: self.selection(field("OutputPath"), &at("OutputPath")),
            parameters_consume_input: false,
            result_selector_consumes: false,
        };
        // Only a Pass state drops its raw input right after Parameters; a Task keeps it for
        // retries, Parallel and Map hand it to several children.
        io.parameters_consume_input = field("Type").and_then(Value::as_str) == Some("Pass")
            && matches!(io.input_path, Selection::All)
            && matches!(io.result_path, ResultPath::Replace)
            && io.parameters.as_ref().is_some_and(Template::consumable);
        io.result_selector_consumes = io
            .result_selector
            .as_ref()
            .is_some_and(Template::consumable);
        let kind = match field("Type").and_then(Value::as_str).unwrap_or("") {
            "Pass" => Kind::Pass {
                result: field("Result").cloned(),
            },
            "Task" => Kind::Task(Box::new(TaskSpec {
                // JSONata does not allow the Resource to be computed.
                resource: Arc::from(field("Resource").and_then(Value::as_str).unwrap_or("")),
                timeout: self.count(body, "TimeoutSeconds", "TimeoutSecondsPath", ptr),
                heartbeat: self.count(body, "HeartbeatSeconds", "HeartbeatSecondsPath", ptr),
            })),
            "Choice" => {
                let mut choices = Vec::new();
                let rules = field("Choices").and_then(Value::as_array);
                for (i, rule) in rules.into_iter().flatten().enumerate() {
                    let rptr = pointer_push(&at("Choices"), &i.to_string());
                    let next = self.target(ids, rule.get("Next"), &pointer_push(&rptr, "Next"));
                    let assign = self.assign(rule.get("Assign"), &pointer_push(&rptr, "Assign"));
                    let output = self.jtemplate(rule.get("Output"), "Output", &rptr);
                    let compiled = match rule.get("Condition") {
                        Some(c) if jsonata => self
                            .jtemplate(Some(c), "Condition", &rptr)
                            .map(Rule::Condition),
                        _ => match ChoiceRule::compile(rule) {
                            Ok(r) => Some(Rule::Path(r)),
                            Err(e) => {
                                self.err(INVALID_FIELD, &rptr, e);
                                None
                            }
                        },
                    };
                    if let Some(rule) = compiled {
                        choices.push(Choice {
                            rule,
                            next,
                            assign,
                            output,
                        });
                    }
                }
                let default = field("Default").map(|d| self.target(ids, Some(d), &at("Default")));
                Kind::Choice { choices, default }
            }
            "Wait" => self.wait(body, ptr),
            "Succeed" => Kind::Succeed,
            "Fail" if jsonata => Kind::Fail {
                error: self.jsonata_dynamic(body, "Error", ptr),
                cause: self.jsonata_dynamic(body, "Cause", ptr),
            },
            "Fail" => Kind::Fail {
                error: self.dynamic(body, "Error", "ErrorPath", ptr),
                cause: self.dynamic(body, "Cause", "CausePath", ptr),
            },
            "Parallel" => {
                let branches = field("Branches").and_then(Value::as_array);
                let mut ids = Vec::new();
                for (i, b) in branches.into_iter().flatten().enumerate() {
                    let bptr = pointer_push(&at("Branches"), &i.to_string());
                    ids.push(self.machine(b, &bptr, jsonata));
                }
                Kind::Parallel { branches: ids }
            }
            "Map" => self.map(body, ptr),
            other => {
                self.err(
                    INVALID_FIELD,
                    &at("Type"),
                    format!("unknown state type '{other}'"),
                );
                Kind::Succeed
            }
        };
        // Nested machines (Parallel branches) set their own language while compiling.
        self.jsonata = jsonata;
        let retry = self.retriers(field("Retry"), &at("Retry"));
        let catch = self.catchers(field("Catch"), ids, &at("Catch"));
        let assign = self.assign(field("Assign"), &at("Assign"));
        let (io, size_bound) = match jsonata {
            true => {
                let jio = JsonataIo {
                    arguments: self.jtemplate(field("Arguments"), "Arguments", ptr),
                    output: self.jtemplate(field("Output"), "Output", ptr),
                };
                let size_bound = jsonata_size_bound(&kind, &jio);
                (StateIo::Jsonata(Box::new(jio)), size_bound)
            }
            false => {
                let size_bound = size_bound(&kind, &io);
                (StateIo::JsonPath(io), size_bound)
            }
        };
        State {
            name: Arc::from(name),
            kind,
            io,
            next,
            retry,
            catch,
            size_bound,
            assign,
        }
    }

    /// A JSONata field (`Arguments`, `Output`, `Items`...) of the object at `ptr`.
    fn jtemplate(&mut self, v: Option<&Value>, field: &str, ptr: &str) -> Option<JTemplate> {
        let v = v?;
        match JTemplate::compile(v, field) {
            Ok(t) => Some(t),
            Err((rel, e)) => {
                let at = format!("{}{rel}", pointer_push(ptr, field));
                self.err(INVALID_JSONATA, &at, e);
                None
            }
        }
    }

    /// `Assign`, in the language of the state being compiled.
    fn assign(&mut self, v: Option<&Value>, ptr: &str) -> Option<Box<Assign>> {
        let v = v?;
        let assign = if self.jsonata {
            let (parent, _) = ptr.rsplit_once('/').unwrap_or(("", ""));
            Assign::Jsonata(self.jtemplate(Some(v), "Assign", parent)?)
        } else {
            Assign::Path(self.template(Some(v), ptr)?)
        };
        Some(Box::new(assign))
    }

    /// `Error`/`Cause` of a JSONata Fail state: a string or an expression.
    fn jsonata_dynamic(&mut self, body: &Value, field: &'static str, ptr: &str) -> Option<Dynamic> {
        let v = body.get(field)?;
        if v.as_str().and_then(expression_text).is_some() {
            return self.jtemplate(Some(v), field, ptr).map(Dynamic::Jsonata);
        }
        Some(Dynamic::Literal(v.clone()))
    }

    fn path(&mut self, v: &Value, ptr: &str) -> Option<JsonPath> {
        let Some(s) = v.as_str() else {
            self.err(INVALID_FIELD, ptr, "expected a path string");
            return None;
        };
        match JsonPath::parse(s) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err(INVALID_FIELD, ptr, e.to_string());
                None
            }
        }
    }

    fn selection(&mut self, v: Option<&Value>, ptr: &str) -> Selection {
        match v {
            None => Selection::All,
            Some(Value::Null) => Selection::Nothing,
            Some(v) => match self.path(v, ptr) {
                Some(p) if p.is_root() && p.root() == Root::Input => Selection::All,
                Some(p) => Selection::Path(p),
                None => Selection::All,
            },
        }
    }

    fn result_path(&mut self, v: Option<&Value>, ptr: &str) -> ResultPath {
        match v {
            None => ResultPath::Replace,
            Some(Value::Null) => ResultPath::Discard,
            Some(v) => match self.path(v, ptr) {
                Some(p) if p.is_root() => ResultPath::Replace,
                Some(p) => ResultPath::At(p),
                None => ResultPath::Replace,
            },
        }
    }

    fn template(&mut self, v: Option<&Value>, ptr: &str) -> Option<Template> {
        let v = v?;
        match Template::compile(v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(INVALID_FIELD, ptr, e);
                None
            }
        }
    }

    fn count(
        &mut self,
        body: &Value,
        literal: &'static str,
        path: &'static str,
        ptr: &str,
    ) -> Option<Count> {
        if let Some(v) = body.get(literal) {
            if v.as_str().and_then(expression_text).is_some() {
                let expr = self.jtemplate(Some(v), literal, ptr)?;
                return Some(Count::Jsonata {
                    field: literal,
                    expr,
                });
            }
            return match v.as_u64() {
                Some(n) => Some(Count::Literal(n)),
                None => {
                    self.err(
                        INVALID_FIELD,
                        &pointer_push(ptr, literal),
                        "expected a non-negative integer",
                    );
                    None
                }
            };
        }
        let v = body.get(path)?;
        let p = self.path(v, &pointer_push(ptr, path))?;
        Some(Count::Path {
            field: path,
            path: p,
        })
    }

    fn dynamic(
        &mut self,
        body: &Value,
        literal: &'static str,
        path: &'static str,
        ptr: &str,
    ) -> Option<Dynamic> {
        if let Some(v) = body.get(literal) {
            return Some(Dynamic::Literal(v.clone()));
        }
        let v = body.get(path)?;
        let fptr = pointer_push(ptr, path);
        if let Some(s) = v.as_str().filter(|s| is_intrinsic(s)) {
            return match Intrinsic::parse(s) {
                Ok(call) => Some(Dynamic::Call(Box::new(call))),
                Err(e) => {
                    self.err(INVALID_FIELD, &fptr, e);
                    None
                }
            };
        }
        let p = self.path(v, &fptr)?;
        Some(Dynamic::Path {
            field: path,
            path: p,
        })
    }

    fn wait(&mut self, body: &Value, ptr: &str) -> Kind {
        for (field, seconds) in [("Seconds", true), ("Timestamp", false)] {
            let Some(v) = body
                .get(field)
                .filter(|v| v.as_str().and_then(expression_text).is_some())
            else {
                continue;
            };
            return match self.jtemplate(Some(v), field, ptr) {
                Some(expr) => Kind::Wait(WaitSpec::Jsonata { seconds, expr }),
                None => Kind::Wait(WaitSpec::Seconds(0)),
            };
        }
        let spec = if let Some(v) = body.get("Seconds") {
            WaitSpec::Seconds(v.as_u64().unwrap_or(0))
        } else if let Some(v) = body.get("SecondsPath") {
            match self.path(v, &pointer_push(ptr, "SecondsPath")) {
                Some(p) => WaitSpec::SecondsPath(p),
                None => WaitSpec::Seconds(0),
            }
        } else if let Some(v) = body.get("Timestamp") {
            match v.as_str().and_then(timestamp::parse) {
                Some(t) => WaitSpec::Timestamp(t.timestamp_millis()),
                None => {
                    self.err(
                        INVALID_FIELD,
                        &pointer_push(ptr, "Timestamp"),
                        "invalid timestamp",
                    );
                    WaitSpec::Seconds(0)
                }
            }
        } else if let Some(v) = body.get("TimestampPath") {
            match self.path(v, &pointer_push(ptr, "TimestampPath")) {
                Some(p) => WaitSpec::TimestampPath(p),
                None => WaitSpec::Seconds(0),
            }
        } else {
            WaitSpec::Seconds(0)
        };
        Kind::Wait(spec)
    }

    fn map(&mut self, body: &Value, ptr: &str) -> Kind {
        let (proc_field, processor) = match body.get("ItemProcessor") {
            Some(p) => ("ItemProcessor", p),
            None => ("Iterator", body.get("Iterator").unwrap_or(&Value::Null)),
        };
        let jsonata = self.jsonata;
        let processor_ptr = pointer_push(ptr, proc_field);
        let distributed = processor
            .pointer("/ProcessorConfig/Mode")
            .and_then(Value::as_str)
            == Some("DISTRIBUTED");
        let processor = self.machine(processor, &processor_ptr, jsonata);
        self.jsonata = jsonata;
        let jsonata_items = self.jtemplate(body.get("Items").filter(|_| jsonata), "Items", ptr);
        let jsonata_selector = self.jtemplate(
            body.get("ItemSelector").filter(|_| jsonata),
            "ItemSelector",
            ptr,
        );
        let items_path = match body.get("ItemsPath") {
            Some(v) => self
                .path(v, &pointer_push(ptr, "ItemsPath"))
                .filter(|p| !p.is_root()),
            None => None,
        };
        // `Parameters` on a Map is the legacy name of `ItemSelector`.
        let selector_field = if body.get("ItemSelector").is_some() {
            "ItemSelector"
        } else {
            "Parameters"
        };
        let item_selector = match jsonata {
            true => None,
            false => self.template(body.get(selector_field), &pointer_push(ptr, selector_field)),
        };
        let batcher = body.get("ItemBatcher").map(|b| {
            let bptr = pointer_push(ptr, "ItemBatcher");
            Batcher {
                max_items: self.count(b, "MaxItemsPerBatch", "MaxItemsPerBatchPath", &bptr),
                max_bytes: self.count(
                    b,
                    "MaxInputBytesPerBatch",
                    "MaxInputBytesPerBatchPath",
                    &bptr,
                ),
                batch_input: self.template(b.get("BatchInput"), &pointer_push(&bptr, "BatchInput")),
            }
        });
        let tolerated_percentage = if let Some(v) = body.get("ToleratedFailurePercentage") {
            match v.as_str().and_then(expression_text) {
                Some(_) => self
                    .jtemplate(Some(v), "ToleratedFailurePercentage", ptr)
                    .map(Percentage::Jsonata),
                None => v.as_f64().map(Percentage::Literal),
            }
        } else {
            body.get("ToleratedFailurePercentagePath")
                .and_then(|v| self.path(v, &pointer_push(ptr, "ToleratedFailurePercentagePath")))
                .map(Percentage::Path)
        };
        let reader = self.map_io(body, "ItemReader", "ReaderConfig", jsonata, ptr);
        let writer = self.map_io(body, "ResultWriter", "WriterConfig", jsonata, ptr);
        Kind::Map(Box::new(MapSpec {
            reader,
            writer,
            label: body.get("Label").and_then(Value::as_str).map(Arc::from),
            processor,
            items_path,
            item_selector,
            batcher,
            max_concurrency: self.count(body, "MaxConcurrency", "MaxConcurrencyPath", ptr),
            tolerated_count: self.count(
                body,
                "ToleratedFailureCount",
                "ToleratedFailureCountPath",
                ptr,
            ),
            tolerated_percentage,
            jsonata_items,
            jsonata_selector,
            distributed,
        }))
    }

    /// A Distributed Map's `ItemReader` or `ResultWriter` (`field`), with its `config_field`.
    fn map_io(
        &mut self,
        body: &Value,
        field: &str,
        config_field: &str,
        jsonata: bool,
        ptr: &str,
    ) -> Option<MapIo> {
        let io = body.get(field)?;
        let at = pointer_push(ptr, field);
        Some(MapIo {
            resource: Arc::from(
                io.get("Resource")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            parameters: match jsonata {
                true => None,
                false => self.template(io.get("Parameters"), &pointer_push(&at, "Parameters")),
            },
            arguments: match jsonata {
                true => self.jtemplate(io.get("Arguments"), "Arguments", &at),
                false => None,
            },
            config: io.get(config_field).cloned(),
        })
    }

    fn errors(&mut self, v: Option<&Value>) -> ErrorMatcher {
        let mut m = ErrorMatcher {
            names: Vec::new(),
            all: false,
        };
        for name in v.and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = name.as_str() else { continue };
            if name == names::ALL {
                m.all = true;
            } else {
                m.names.push(Arc::from(name));
            }
        }
        m
    }

    fn retriers(&mut self, v: Option<&Value>, ptr: &str) -> Vec<Retrier> {
        let Some(list) = v.and_then(Value::as_array) else {
            return Vec::new();
        };
        let _ = ptr;
        list.iter()
            .map(|r| Retrier {
                errors: self.errors(r.get("ErrorEquals")),
                interval_secs: r
                    .get("IntervalSeconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0),
                max_attempts: r
                    .get("MaxAttempts")
                    .and_then(Value::as_u64)
                    .map_or(3, |n| n.min(u32::MAX as u64) as u32),
                backoff_rate: r.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0),
                max_delay_secs: r.get("MaxDelaySeconds").and_then(Value::as_f64),
                full_jitter: r.get("JitterStrategy").and_then(Value::as_str) == Some("FULL"),
            })
            .collect()
    }

    fn catchers(
        &mut self,
        v: Option<&Value>,
        ids: &HashMap<&str, StateId>,
        ptr: &str,
    ) -> Vec<Catcher> {
        let Some(list) = v.and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            let cptr = pointer_push(ptr, &i.to_string());
            out.push(Catcher {
                errors: self.errors(c.get("ErrorEquals")),
                next: self.target(ids, c.get("Next"), &pointer_push(&cptr, "Next")),
                result_path: self
                    .result_path(c.get("ResultPath"), &pointer_push(&cptr, "ResultPath")),
                assign: self.assign(c.get("Assign"), &pointer_push(&cptr, "Assign")),
                output: self.jtemplate(c.get("Output"), "Output", &cptr),
                jsonata: self.jsonata,
            });
        }
        out
    }
}

/// Bounds a state's output size from its input size where the compiler can (see
/// [`SizeBound`]): selections never grow data; a Pass adds its result.
fn size_bound(kind: &Kind, io: &Io) -> SizeBound {
    let as_input = SizeBound::Linear {
        constant: Extent::default(),
        per_input: 1,
    };
    let result = match kind {
        Kind::Choice { .. } | Kind::Wait(_) | Kind::Succeed | Kind::Fail { .. } => return as_input,
        Kind::Pass { result: Some(r) } => Some((size::extent(r), 0)),
        Kind::Pass { result: None } => match &io.parameters {
            Some(t) => t.size_bound(),
            None => Some((Extent::default(), 1)),
        },
        _ => None,
    };
    let Some((constant, per_input)) = result else {
        return SizeBound::Measure;
    };
    match &io.result_path {
        ResultPath::Replace => SizeBound::Linear {
            constant,
            per_input,
        },
        ResultPath::Discard => as_input,
        // The input, plus the result under keys no longer than the path's text, as deep
        // as the path is long.
        ResultPath::At(path) => SizeBound::Linear {
            constant: constant.nested(path.segments().len(), 4 * path.as_str().len() + 8),
            per_input: per_input + 1,
        },
    }
}

/// Bounds a JSONata state's output size from its input size where the compiler can: by its
/// `Output` (and each Choice rule's), or as the input itself where a state without one
/// passes its input on (a Task, Map or Parallel passes its result: measured).
fn jsonata_size_bound(kind: &Kind, jio: &JsonataIo) -> SizeBound {
    let passes_input = matches!(
        kind,
        Kind::Pass { .. } | Kind::Choice { .. } | Kind::Wait(_) | Kind::Succeed
    );
    let of = |output: Option<&JTemplate>| match output {
        Some(t) => t.size_bound(),
        None => passes_input.then_some((Extent::default(), 1)),
    };
    let mut bound = of(jio.output.as_ref());
    if let Kind::Choice { choices, .. } = kind {
        // Whichever rule matches: a bound on all of them.
        for choice in choices {
            bound = bound
                .zip(of(choice.output.as_ref()))
                .map(|((c, k), (oc, ok))| (c.beside(oc), k + ok));
        }
    }
    match bound {
        Some((constant, per_input)) => SizeBound::Linear {
            constant,
            per_input,
        },
        None => SizeBound::Measure,
    }
}

/// Whether a JSONata string may read the execution input through `$states.context`: every
/// `$states` must be followed by `.input`, `.result`, `.errorOutput` or a context path that
/// names another part (`.context.Map…`, `.State…`, `.StateMachine…`, `.Task…`, or an
/// `.Execution` field other than `Input`); anything else (`$states` alone, brackets, a bare
/// `.context`) counts as reading it. (Counting every mention of "context" cloned each
/// iot-enrich-jsonata input for its `Map.Item.Value` reads, ~3% of an execution.)
fn jsonata_reads_execution_input(text: &str) -> bool {
    /// After optional blanks, a `.` and a name: the name, and what follows it.
    fn member(rest: &str) -> Option<(&str, &str)> {
        let rest = rest.trim_start().strip_prefix('.')?.trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (end > 0).then(|| rest.split_at(end))
    }
    text.match_indices("$states").any(|(i, _)| {
        let reads_safely = || {
            let (name, rest) = member(&text[i + "$states".len()..])?;
            if matches!(name, "input" | "result" | "errorOutput") {
                return Some(());
            }
            let (part, rest) = member(rest).filter(|_| name == "context")?;
            match part {
                "Map" | "State" | "StateMachine" | "Task" => Some(()),
                "Execution" => member(rest)
                    .filter(|(field, _)| *field != "Input")
                    .map(|_| ()),
                _ => None,
            }
        };
        reads_safely().is_none()
    })
}

/// Whether any string of the definition may read `$$.Execution.Input`: a `$$` not followed
/// by `.State`, `.StateMachine`, `.Map` or `.Task`. Conservative by construction: it looks at
/// every string, so paths inside templates, intrinsic calls and Choice rules all count.
fn reads_execution_input(v: &Value) -> bool {
    match v {
        Value::String(s) if s.starts_with("{%") => jsonata_reads_execution_input(s),
        Value::String(s) => s.match_indices("$$").any(|(i, _)| {
            let rest = &s[i + 2..];
            ![".State", ".Map", ".Task"]
                .iter()
                .any(|p| rest.starts_with(p))
        }),
        Value::Array(a) => a.iter().any(reads_execution_input),
        Value::Object(m) => m.values().any(reads_execution_input),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::jsonata_reads_execution_input as reads;

    #[test]
    fn jsonata_reads_the_execution_input_unless_every_states_path_names_another_part() {
        for text in [
            "{% $states.input.x & $states.result.y %}",
            "{% $states.errorOutput.Cause %}",
            "{% $states.context.Map.Item.Value %}",
            "{% $states . context . Task.Token %}",
            "{% $states.context.State.Name & $states.context.StateMachine.Id %}",
            "{% $states.context.Execution.Name %}",
            "{% $x + 1 %}",
        ] {
            assert!(!reads(text), "{text}");
        }
        for text in [
            "{% $states.context.Execution.Input %}",
            "{% $states.context.Execution %}",
            "{% $states.context %}",
            "{% $states %}",
            "{% $states.context['Execution'] %}",
            "{% $states.context.Map.Item.Value & $states.context.Execution.Input.a %}",
            "{% $keys($states) %}",
        ] {
            assert!(reads(text), "{text}");
        }
    }
}
