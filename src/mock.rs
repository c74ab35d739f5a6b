//! Step Functions Local's mocked service integrations (`MockConfigFile.json`).
//!
//! A mock configuration says, per state machine and test case, which mocked response each
//! Task state uses, and a mocked response scripts the outcome of each invocation of that
//! state: `"0"` answers the first call, `"1-2"` the second and third, and so on.
//! [`MockConfig::test_case`] picks one test case and hands back a [`MockedTestCase`], a
//! [`TaskResource`] that answers Task calls from that script instead of calling services.
//!
//! Format and behaviour follow the AWS developer guide:
//! <https://docs.aws.amazon.com/step-functions/latest/dg/sfn-local-mock-cfg-file.html> and
//! <https://docs.aws.amazon.com/step-functions/latest/dg/sfn-local-test-sm-exec.html>.
//! Where this differs from Step Functions Local:
//! - The whole file is checked when it is loaded, and every problem is reported with a
//!   JSON pointer; Step Functions Local looks a mocked response up only when a state uses it.
//! - A Task state the test case does not mock fails the execution with `States.Runtime`:
//!   Step Functions Local would call the real service, and we never do.
//! - `Throw` may leave out `Error` or `Cause` (the guide asks for both).
//!
//! As in Step Functions Local, an invocation past the last key fails the execution (the
//! last response is not reused), and counts run over the whole execution: iterations of a
//! concurrent Map state take invocation numbers in the order they call.

use crate::asl::diagnostic::{pointer_push, Diagnostic};
use crate::asl::effect::TaskCall;
use crate::asl::error::{names, Failure};
use crate::resource::{TaskReply, TaskResource};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The codes of the problems [`MockConfig::from_json`] reports.
pub mod codes {
    /// The text is not JSON at all.
    pub const INVALID_JSON: &str = "INVALID_JSON";
    /// A value has the wrong JSON type, e.g. a test case that is not an object.
    pub const WRONG_TYPE: &str = "WRONG_TYPE";
    /// `StateMachines`, `MockedResponses` or `TestCases` is absent.
    pub const MISSING_FIELD: &str = "MISSING_FIELD";
    /// A field the format does not define, e.g. `Retrun` or `Throw.Message`.
    pub const UNKNOWN_FIELD: &str = "UNKNOWN_FIELD";
    /// The same name twice in one object (a JSON parser would silently keep the last).
    pub const DUPLICATE_KEY: &str = "DUPLICATE_KEY";
    /// A test case names a mocked response that `MockedResponses` does not define.
    pub const UNKNOWN_MOCKED_RESPONSE: &str = "UNKNOWN_MOCKED_RESPONSE";
    /// A mocked response key that is neither `"n"` nor `"n-m"` with n ≤ m.
    pub const INVALID_INVOCATION_KEY: &str = "INVALID_INVOCATION_KEY";
    /// Invocation numbers skipped: keys must number invocations consecutively from 0.
    pub const INVOCATION_GAP: &str = "INVOCATION_GAP";
    /// Two keys of one mocked response cover the same invocation.
    pub const INVOCATION_OVERLAP: &str = "INVOCATION_OVERLAP";
    /// A mocked response entry without exactly one of `Return` and `Throw`.
    pub const RETURN_OR_THROW: &str = "RETURN_OR_THROW";
}

/// Why a mock configuration cannot be loaded, or a test case cannot be picked from it.
#[derive(Debug, thiserror::Error)]
pub enum MockConfigError {
    /// Every problem found in the file, each located by a JSON pointer.
    #[error("invalid mock configuration:{}", problem_list(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("the mock configuration has no state machine '{name}' (it has {})", name_list(.available))]
    UnknownStateMachine {
        name: String,
        available: Vec<String>,
    },
    #[error(
        "no state machine named, and the mock configuration does not have exactly one (it has {})",
        name_list(.available)
    )]
    StateMachineRequired { available: Vec<String> },
    #[error(
        "state machine '{state_machine}' has no test case '{test_case}' in the mock configuration (it has {})",
        name_list(.available)
    )]
    UnknownTestCase {
        state_machine: String,
        test_case: String,
        available: Vec<String>,
    },
}

fn problem_list(problems: &[Diagnostic]) -> String {
    problems
        .iter()
        .map(|d| {
            let at = if d.pointer.is_empty() {
                "(root)"
            } else {
                &d.pointer
            };
            format!("\n  {at}: {} {}", d.code, d.message)
        })
        .collect()
}

fn name_list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    quoted.join(", ")
}

/// A parsed `MockConfigFile.json`.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// State machine name → test case name → that test case's mocks.
    /// Sorted maps, so names are listed in a stable order in errors.
    state_machines: BTreeMap<String, BTreeMap<String, StateMocks>>,
}

/// The mocks of one test case, by Task state name.
type StateMocks = HashMap<String, StateMock>;

#[derive(Clone, Debug)]
struct StateMock {
    response_name: String,
    /// Shared: several states and test cases may use one mocked response.
    response: Arc<MockedResponse>,
}

/// One entry of `MockedResponses`: what each invocation of a state answers.
#[derive(Debug, Default)]
struct MockedResponse {
    /// Sorted by `first`; after validation they cover 0, 1, 2, ... without gaps or overlaps.
    ranges: Vec<Range>,
}

#[derive(Debug)]
struct Range {
    first: u64,
    last: u64,
    outcome: Outcome,
}

#[derive(Debug)]
enum Outcome {
    Return(Value),
    Throw(Failure),
}

impl MockedResponse {
    fn outcome(&self, invocation: u64) -> Option<&Outcome> {
        let i = self.ranges.partition_point(|r| r.last < invocation);
        let range = self.ranges.get(i).filter(|r| r.first <= invocation)?;
        Some(&range.outcome)
    }

    /// How many invocations the response covers, for error messages.
    fn covered(&self) -> u64 {
        self.ranges.last().map_or(0, |r| r.last.saturating_add(1))
    }
}

impl MockConfig {
    /// Parses and checks a mock configuration, reporting every problem found.
    pub fn from_json(text: &str) -> Result<MockConfig, MockConfigError> {
        // Editors on Windows like to start files with a byte order mark; JSON forbids it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let root: Node = serde_json::from_str(text).map_err(|e| {
            let message = format!("not valid JSON: {e}");
            MockConfigError::Invalid(vec![Diagnostic::new(codes::INVALID_JSON, "", message)])
        })?;
        let mut reader = Reader::default();
        let config = reader.config(root);
        if reader.problems.is_empty() {
            Ok(config)
        } else {
            Err(MockConfigError::Invalid(reader.problems))
        }
    }

    /// The mocks of one test case, ready to serve executions. With `state_machine` `None`
    /// the configuration must define exactly one state machine.
    pub fn test_case(
        &self,
        state_machine: Option<&str>,
        test_case: &str,
    ) -> Result<MockedTestCase, MockConfigError> {
        let (machine, cases) = match state_machine {
            Some(name) => self.state_machines.get_key_value(name).ok_or_else(|| {
                MockConfigError::UnknownStateMachine {
                    name: name.to_owned(),
                    available: self.state_machines.keys().cloned().collect(),
                }
            })?,
            None => {
                let mut machines = self.state_machines.iter();
                match (machines.next(), machines.next()) {
                    (Some(only), None) => only,
                    _ => {
                        return Err(MockConfigError::StateMachineRequired {
                            available: self.state_machines.keys().cloned().collect(),
                        })
                    }
                }
            }
        };
        let mocks = cases
            .get(test_case)
            .ok_or_else(|| MockConfigError::UnknownTestCase {
                state_machine: machine.clone(),
                test_case: test_case.to_owned(),
                available: cases.keys().cloned().collect(),
            })?;
        Ok(MockedTestCase {
            state_machine: machine.clone(),
            name: test_case.to_owned(),
            states: mocks.clone(),
            invocations: Mutex::default(),
        })
    }

    /// Every (state machine, test case) pair the configuration defines, sorted.
    pub fn test_cases(&self) -> impl Iterator<Item = (&str, &str)> {
        self.state_machines.iter().flat_map(|(machine, cases)| {
            cases
                .keys()
                .map(move |case| (machine.as_str(), case.as_str()))
        })
    }
}

/// One test case of a [`MockConfig`]: answers Task calls with its mocked responses.
///
/// Invocations are numbered per execution and per state, so one value can serve many
/// executions at once; call [`MockedTestCase::forget_execution`] when one ends.
#[derive(Debug)]
pub struct MockedTestCase {
    state_machine: String,
    name: String,
    states: StateMocks,
    invocations: Mutex<Counters>,
}

/// Execution name → state name → invocations so far.
type Counters = HashMap<Arc<str>, HashMap<Arc<str>, u64>>;

impl MockedTestCase {
    pub fn state_machine(&self) -> &str {
        &self.state_machine
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the invocation counts of a finished execution. A later execution with the same
    /// name starts again from invocation 0.
    pub fn forget_execution(&self, execution_name: &str) {
        self.counters().remove(execution_name);
    }

    fn counters(&self) -> MutexGuard<'_, Counters> {
        // Nothing panics while the lock is held, and the counts stay consistent if something
        // ever did: a poisoned lock is safe to keep using.
        self.invocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers this call among the calls of its state in its execution, from 0.
    fn next_invocation(&self, call: &TaskCall) -> u64 {
        let mut counters = self.counters();
        let states = counters
            .entry(Arc::clone(&call.execution_name))
            .or_default();
        let count = states.entry(Arc::clone(&call.state_name)).or_insert(0);
        let invocation = *count;
        *count += 1;
        invocation
    }

    fn respond(&self, call: &TaskCall) -> Result<Value, Failure> {
        // `States.Runtime` for problems of the mock set-up itself: AWS lets no Retry or
        // Catch (not even `States.ALL`) handle it, so a missing mock cannot pass for a tested
        // failure path. Step Functions Local, too, fails the whole execution when an
        // invocation has no response.
        let Some(mock) = self.states.get(&*call.state_name) else {
            return Err(Failure::new(
                names::RUNTIME,
                format!(
                    "State '{}' has no mocked response in test case '{}' of state machine '{}', \
                     and mocked executions never call real services",
                    call.state_name, self.name, self.state_machine
                ),
            ));
        };
        let invocation = self.next_invocation(call);
        match mock.response.outcome(invocation) {
            Some(Outcome::Return(value)) => Ok(value.clone()),
            Some(Outcome::Throw(failure)) => Err(failure.clone()),
            None => Err(Failure::new(
                names::RUNTIME,
                format!(
                    "Mocked response '{}' of state '{}' in test case '{}' has no response for \
                     invocation {invocation}; it defines {}",
                    mock.response_name,
                    call.state_name,
                    self.name,
                    describe_covered(mock.response.covered())
                ),
            )),
        }
    }
}

impl TaskResource for MockedTestCase {
    fn invoke(&self, call: TaskCall, reply: TaskReply) {
        // `respond` has released the lock by now: `reply` may well invoke us again.
        reply.complete(self.respond(&call));
    }
}

fn describe_covered(count: u64) -> String {
    match count {
        0 => "no invocations".to_owned(),
        n => format!("{} only", describe_invocations(0, n - 1)),
    }
}

fn describe_invocations(first: u64, last: u64) -> String {
    if first == last {
        format!("invocation {first}")
    } else {
        format!("invocations {first}-{last}")
    }
}

/// Parses a mocked response key: `"3"` or the inclusive range `"1-2"`.
fn parse_invocations(key: &str) -> Option<(u64, u64)> {
    let number = |s: &str| -> Option<u64> {
        let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| s.parse().ok()).flatten()
    };
    match key.split_once('-') {
        None => number(key).map(|n| (n, n)),
        Some((first, last)) => {
            let (first, last) = (number(first)?, number(last)?);
            (first <= last).then_some((first, last))
        }
    }
}

/// JSON as read for checking. Unlike `serde_json::Value` it keeps every member of an
/// object, so a name given twice (AWS requires unique names) is reported, not dropped.
enum Node {
    Object(Vec<(String, Node)>),
    Other(Value),
}

impl Node {
    fn into_value(self) -> Value {
        match self {
            // A repeated name keeps its last value, as serde_json itself does.
            Node::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(name, node)| (name, node.into_value()))
                    .collect(),
            ),
            Node::Other(value) => value,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Object(_) | Node::Other(Value::Object(_)) => "an object",
            Node::Other(Value::Array(_)) => "an array",
            Node::Other(Value::String(_)) => "a string",
            Node::Other(Value::Number(_)) => "a number",
            Node::Other(Value::Bool(_)) => "a boolean",
            Node::Other(Value::Null) => "null",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Other(Value::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Other(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Other(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Other(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Other(Value::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Other(Value::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Other(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        // Arrays only occur inside `Return` payloads, which are the user's data.
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Node::Other(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Node>()? {
            members.push(member);
        }
        Ok(Node::Object(members))
    }
}

/// One member of a JSON object, with the pointer to its value.
struct Member {
    name: String,
    pointer: String,
    node: Node,
}

/// The members of an object whose fields AWS's format fixes.
struct Fields {
    pointer: String,
    what: String,
    members: Vec<Member>,
}

impl Fields {
    fn take(&mut self, name: &str) -> Option<Member> {
        let i = self.members.iter().position(|m| m.name == name)?;
        Some(self.members.swap_remove(i))
    }
}

/// A keyed invocation span, while checking that keys cover 0, 1, 2, ... exactly once.
struct Span {
    first: u64,
    last: u64,
    key: String,
    pointer: String,
}

/// Walks a parsed file, building the configuration and collecting every problem on the way:
/// a problem drops the part it is in and the walk goes on with the rest.
#[derive(Default)]
struct Reader {
    problems: Vec<Diagnostic>,
}

impl Reader {
    fn report(&mut self, code: &'static str, pointer: &str, message: String) {
        self.problems.push(Diagnostic::new(code, pointer, message));
    }

    fn config(&mut self, root: Node) -> MockConfig {
        let mut config = MockConfig {
            state_machines: BTreeMap::new(),
        };
        let known = ["StateMachines", "MockedResponses"];
        let Some(mut fields) = self.fields(root, "", "the mock configuration", &known) else {
            return config;
        };
        let machines = self.required(&mut fields, "StateMachines");
        // Responses first, so test cases can be checked against them.
        let responses = self
            .required(&mut fields, "MockedResponses")
            .and_then(|member| self.mocked_responses(member));
        if let Some(machines) = machines {
            config.state_machines = self.state_machines(machines, responses.as_ref());
        }
        config
    }

    fn mocked_responses(&mut self, member: Member) -> Option<HashMap<String, Arc<MockedResponse>>> {
        let entries = self.members(member.node, &member.pointer, "`MockedResponses`")?;
        let mut responses = HashMap::new();
        for entry in entries {
            let response = self.mocked_response(entry.node, &entry.pointer, &entry.name);
            responses.insert(entry.name, Arc::new(response));
        }
        Some(responses)
    }

    fn mocked_response(&mut self, node: Node, pointer: &str, name: &str) -> MockedResponse {
        let what = format!("mocked response '{name}'");
        let Some(entries) = self.members(node, pointer, &what) else {
            return MockedResponse::default();
        };
        let mut spans = Vec::new();
        let mut ranges = Vec::new();
        let mut keys_valid = true;
        for entry in entries {
            let span = parse_invocations(&entry.name);
            if span.is_none() {
                keys_valid = false;
                let message = format!(
                    "'{}' is not an invocation number like \"3\" or an inclusive range like \"1-2\"",
                    entry.name
                );
                self.report(codes::INVALID_INVOCATION_KEY, &entry.pointer, message);
            }
            let outcome = self.outcome(entry.node, &entry.pointer);
            if let Some((first, last)) = span {
                if let Some(outcome) = outcome {
                    ranges.push(Range {
                        first,
                        last,
                        outcome,
                    });
                }
                spans.push(Span {
                    first,
                    last,
                    key: entry.name,
                    pointer: entry.pointer,
                });
            }
        }
        // Gaps next to a key we could not read would only repeat that problem.
        self.check_coverage(spans, keys_valid);
        ranges.sort_by_key(|r| r.first);
        MockedResponse { ranges }
    }

    /// AWS: "you must specify a mocked response for every invocation", with "consecutive
    /// attempt numbers". So keys cover 0, 1, 2, ... up to the last, each exactly once.
    fn check_coverage(&mut self, mut spans: Vec<Span>, check_gaps: bool) {
        spans.sort_by_key(|s| (s.first, s.last));
        let mut next = 0; // the first invocation no key covers yet
        let mut reaching: Option<&Span> = None; // the key covering invocation `next - 1`
        for span in &spans {
            match reaching {
                Some(earlier) if span.first < next => {
                    let both = describe_invocations(span.first, span.last.min(next - 1));
                    let message = format!(
                        "keys '{}' and '{}' both give the response for {both}",
                        earlier.key, span.key
                    );
                    self.report(codes::INVOCATION_OVERLAP, &span.pointer, message);
                }
                _ if span.first > next && check_gaps => {
                    let message = format!(
                        "no response for {}: keys must number invocations consecutively from 0",
                        describe_invocations(next, span.first - 1)
                    );
                    self.report(codes::INVOCATION_GAP, &span.pointer, message);
                }
                _ => {}
            }
            if span.last >= next {
                next = span.last.saturating_add(1);
                reaching = Some(span);
            }
        }
    }

    fn outcome(&mut self, node: Node, pointer: &str) -> Option<Outcome> {
        let what = "a mocked response entry";
        let mut fields = self.fields(node, pointer, what, &["Return", "Throw"])?;
        match (fields.take("Return"), fields.take("Throw")) {
            // Any JSON value, as in Step Functions Local; its shape is not checked either.
            (Some(value), None) => Some(Outcome::Return(value.node.into_value())),
            (None, Some(throw)) => self.throw(throw).map(Outcome::Throw),
            (returns, _) => {
                let message = if returns.is_some() {
                    "this entry has both `Return` and `Throw`; it needs exactly one"
                } else {
                    "this entry has neither `Return` nor `Throw`; it needs exactly one"
                };
                self.report(codes::RETURN_OR_THROW, pointer, message.to_owned());
                None
            }
        }
    }

    fn throw(&mut self, throw: Member) -> Option<Failure> {
        let mut fields = self.fields(throw.node, &throw.pointer, "`Throw`", &["Error", "Cause"])?;
        // The guide asks for both; we accept either missing, as a Fail state may omit them.
        let error = fields
            .take("Error")
            .map(|m| self.string(m.node, &m.pointer, "`Error`"));
        let cause = fields
            .take("Cause")
            .map(|m| self.string(m.node, &m.pointer, "`Cause`"));
        match (error, cause) {
            // Present but not a string: already reported.
            (Some(None), _) | (_, Some(None)) => None,
            (error, cause) => Some(Failure {
                error: error.flatten(),
                cause: cause.flatten(),
            }),
        }
    }

    fn state_machines(
        &mut self,
        member: Member,
        responses: Option<&HashMap<String, Arc<MockedResponse>>>,
    ) -> BTreeMap<String, BTreeMap<String, StateMocks>> {
        let mut machines = BTreeMap::new();
        let Some(entries) = self.members(member.node, &member.pointer, "`StateMachines`") else {
            return machines;
        };
        for machine in entries {
            let what = format!("state machine '{}'", machine.name);
            let Some(mut fields) =
                self.fields(machine.node, &machine.pointer, &what, &["TestCases"])
            else {
                continue;
            };
            if let Some(test_cases) = self.required(&mut fields, "TestCases") {
                let cases = self.test_cases(test_cases, responses);
                machines.insert(machine.name, cases);
            }
        }
        machines
    }

    /// `responses` is `None` when `MockedResponses` itself is unusable: references cannot
    /// be checked then, and reporting each one would bury the real problem.
    fn test_cases(
        &mut self,
        member: Member,
        responses: Option<&HashMap<String, Arc<MockedResponse>>>,
    ) -> BTreeMap<String, StateMocks> {
        let mut cases = BTreeMap::new();
        let Some(entries) = self.members(member.node, &member.pointer, "`TestCases`") else {
            return cases;
        };
        for case in entries {
            let what = format!("test case '{}'", case.name);
            let Some(states) = self.members(case.node, &case.pointer, &what) else {
                continue;
            };
            let mut mocks = StateMocks::new();
            for state in states {
                let what = format!("the mocked response of state '{}'", state.name);
                let Some(response_name) = self.string(state.node, &state.pointer, &what) else {
                    continue;
                };
                let Some(responses) = responses else {
                    continue;
                };
                match responses.get(&response_name) {
                    Some(response) => {
                        let response = Arc::clone(response);
                        mocks.insert(
                            state.name,
                            StateMock {
                                response_name,
                                response,
                            },
                        );
                    }
                    None => {
                        let message = format!(
                            "state '{}' uses mocked response '{response_name}', which \
                             `MockedResponses` does not define",
                            state.name
                        );
                        self.report(codes::UNKNOWN_MOCKED_RESPONSE, &state.pointer, message);
                    }
                }
            }
            cases.insert(case.name, mocks);
        }
        cases
    }

    /// The members of an object, in document order. A repeated name is reported and its
    /// later value dropped.
    fn members(&mut self, node: Node, pointer: &str, what: &str) -> Option<Vec<Member>> {
        let entries = match node {
            Node::Object(entries) => entries,
            other => {
                let message = format!("{what} must be an object, not {}", other.kind());
                self.report(codes::WRONG_TYPE, pointer, message);
                return None;
            }
        };
        let mut seen = HashSet::new();
        let mut members = Vec::with_capacity(entries.len());
        for (name, node) in entries {
            let member_pointer = pointer_push(pointer, &name);
            if seen.insert(name.clone()) {
                members.push(Member {
                    name,
                    pointer: member_pointer,
                    node,
                });
            } else {
                let message = format!("{what} gives '{name}' more than once");
                self.report(codes::DUPLICATE_KEY, &member_pointer, message);
            }
        }
        Some(members)
    }

    /// An object with the fields `known` only: AWS's format is closed, so anything else is
    /// most likely a typo and is reported.
    fn fields(&mut self, node: Node, pointer: &str, what: &str, known: &[&str]) -> Option<Fields> {
        let mut members = self.members(node, pointer, what)?;
        members.retain(|member| {
            let is_known = known.contains(&member.name.as_str());
            if !is_known {
                let expected: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
                let message = format!(
                    "{what} has no field '{}'; its fields are {}",
                    member.name,
                    expected.join(" and ")
                );
                self.report(codes::UNKNOWN_FIELD, &member.pointer, message);
            }
            is_known
        });
        Some(Fields {
            pointer: pointer.to_owned(),
            what: what.to_owned(),
            members,
        })
    }

    fn required(&mut self, fields: &mut Fields, name: &str) -> Option<Member> {
        let member = fields.take(name);
        if member.is_none() {
            let message = format!("{} has no `{name}` field", fields.what);
            self.report(codes::MISSING_FIELD, &fields.pointer, message);
        }
        member
    }

    fn string(&mut self, node: Node, pointer: &str, what: &str) -> Option<String> {
        match node {
            Node::Other(Value::String(s)) => Some(s),
            other => {
                let message = format!("{what} must be a string, not {}", other.kind());
                self.report(codes::WRONG_TYPE, pointer, message);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Completion;
    use serde_json::json;
    use std::path::{Path, PathBuf};
    use std::sync::mpsc;
    use std::{fs, thread};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mock");

    fn load(fixture: &str) -> MockConfig {
        let text = fs::read_to_string(Path::new(FIXTURES).join(fixture)).unwrap();
        MockConfig::from_json(&text).unwrap()
    }

    /// The example of the AWS developer guide.
    fn aws_example(test_case: &str) -> MockedTestCase {
        load("valid/aws-docs-lambda-sqs-integration.json")
            .test_case(Some("LambdaSQSIntegration"), test_case)
            .unwrap()
    }

    fn call_of(execution: &str, state: &str) -> TaskCall {
        TaskCall {
            nesting_depth: 0,
            resource: "arn:aws:states:::lambda:invoke".into(),
            payload: json!({}),
            state_name: state.into(),
            execution_name: execution.into(),
            timeout_secs: None,
            heartbeat_secs: None,
            purpose: Default::default(),
            task_token: None,
        }
    }

    /// Invokes once and returns the result, which must be delivered before `invoke` returns.
    fn call(case: &MockedTestCase, execution: &str, state: &str) -> Result<Value, Failure> {
        let (sender, receiver) = mpsc::channel();
        let done: Completion = Box::new(move |result| sender.send(result).unwrap());
        case.invoke(
            call_of(execution, state),
            TaskReply::without_heartbeat(done),
        );
        receiver.try_recv().expect("a mock answers synchronously")
    }

    fn throw(error: &str, cause: &str) -> Result<Value, Failure> {
        Err(Failure::new(error, cause))
    }

    fn lambda_success() -> Result<Value, Failure> {
        Ok(json!({"StatusCode": 200, "Payload": {"StatusCode": 200, "body": "Hello from Lambda!"}}))
    }

    fn error_text(text: &str) -> String {
        MockConfig::from_json(text).unwrap_err().to_string()
    }

    fn problems(text: &str) -> Vec<Diagnostic> {
        match MockConfig::from_json(text) {
            Err(MockConfigError::Invalid(problems)) => problems,
            other => panic!("expected an invalid configuration, got {other:?}"),
        }
    }

    #[test]
    fn return_and_throw_answer_each_state() {
        let happy = aws_example("HappyPath");
        assert_eq!(call(&happy, "e", "LambdaState"), lambda_success());
        assert_eq!(
            call(&happy, "e", "SQSState"),
            Ok(json!({
                "MD5OfMessageBody": "3bcb6e8e-7h85-4375-b0bc-1a59812c6e51",
                "MessageId": "3bcb6e8e-8b51-4375-b0bc-1a59812c6e51"
            }))
        );
    }

    #[test]
    fn ranges_number_invocations_from_zero() {
        // "0", then "1-2", then "3": the retry path of the AWS guide.
        let retry = aws_example("RetryPath");
        let not_ready = || {
            throw(
                "Lambda.ResourceNotReadyException",
                "Lambda resource is not ready.",
            )
        };
        let timed_out = || throw("Lambda.TimeoutException", "Lambda timed out.");
        assert_eq!(call(&retry, "e", "LambdaState"), not_ready());
        assert_eq!(call(&retry, "e", "LambdaState"), timed_out());
        assert_eq!(call(&retry, "e", "LambdaState"), timed_out());
        assert_eq!(call(&retry, "e", "LambdaState"), lambda_success());
    }

    #[test]
    fn range_then_single_key() {
        let config = MockConfig::from_json(
            r#"{"StateMachines": {"M": {"TestCases": {"T": {"S": "R"}}}},
                "MockedResponses": {"R": {
                    "3": {"Return": "fourth"},
                    "0-2": {"Throw": {"Error": "E", "Cause": "C"}}}}}"#,
        )
        .unwrap();
        let case = config.test_case(None, "T").unwrap();
        for _ in 0..3 {
            assert_eq!(call(&case, "e", "S"), throw("E", "C"));
        }
        assert_eq!(call(&case, "e", "S"), Ok(json!("fourth")));
    }

    #[test]
    fn invocations_beyond_the_last_key_fail_the_execution() {
        let retry = aws_example("RetryPath");
        for _ in 0..4 {
            let _ = call(&retry, "e", "LambdaState");
        }
        let beyond = call(&retry, "e", "LambdaState").unwrap_err();
        assert_eq!(beyond.error_name(), "States.Runtime");
        assert_eq!(
            beyond.cause.as_deref(),
            Some(
                "Mocked response 'MockedLambdaRetry' of state 'LambdaState' in test case \
                 'RetryPath' has no response for invocation 4; it defines invocations 0-3 only"
            )
        );
        // The last response is not reused, not even for a single key.
        let happy = aws_example("HappyPath");
        assert_eq!(call(&happy, "e", "LambdaState"), lambda_success());
        let again = call(&happy, "e", "LambdaState").unwrap_err();
        assert!(again
            .cause
            .unwrap()
            .ends_with("invocation 1; it defines invocation 0 only"));
    }

    #[test]
    fn an_empty_mocked_response_fails_when_used() {
        let config = MockConfig::from_json(
            r#"{"StateMachines": {"M": {"TestCases": {"T": {"S": "Empty"}}}},
                "MockedResponses": {"Empty": {}}}"#,
        )
        .unwrap();
        let failure = call(&config.test_case(None, "T").unwrap(), "e", "S").unwrap_err();
        assert_eq!(failure.error_name(), "States.Runtime");
        assert!(failure
            .cause
            .unwrap()
            .ends_with("it defines no invocations"));
    }

    #[test]
    fn counts_are_per_execution_and_per_state() {
        let retry = aws_example("RetryPath");
        let first = throw(
            "Lambda.ResourceNotReadyException",
            "Lambda resource is not ready.",
        );
        let second = throw("Lambda.TimeoutException", "Lambda timed out.");
        assert_eq!(call(&retry, "a", "LambdaState"), first);
        assert_eq!(call(&retry, "b", "LambdaState"), first);
        assert_eq!(call(&retry, "a", "LambdaState"), second);
        // Another state of the same execution has its own count.
        assert!(call(&retry, "a", "SQSState").is_ok());
        assert_eq!(call(&retry, "b", "LambdaState"), second);
    }

    #[test]
    fn states_sharing_a_mocked_response_count_separately() {
        let config = MockConfig::from_json(
            r#"{"StateMachines": {"M": {"TestCases": {"T": {"A": "R", "B": "R"}}}},
                "MockedResponses": {"R": {"0": {"Return": 0}, "1": {"Return": 1}}}}"#,
        )
        .unwrap();
        let case = config.test_case(Some("M"), "T").unwrap();
        assert_eq!(call(&case, "e", "A"), Ok(json!(0)));
        assert_eq!(call(&case, "e", "B"), Ok(json!(0)));
        assert_eq!(call(&case, "e", "A"), Ok(json!(1)));
    }

    #[test]
    fn forgetting_an_execution_restarts_its_count() {
        let happy = aws_example("HappyPath");
        assert!(call(&happy, "e", "LambdaState").is_ok());
        assert!(call(&happy, "other", "LambdaState").is_ok());
        happy.forget_execution("e");
        assert!(call(&happy, "e", "LambdaState").is_ok());
        assert!(call(&happy, "other", "LambdaState").is_err());
        happy.forget_execution("never ran");
        assert_eq!(happy.counters().len(), 2);
        happy.forget_execution("e");
        happy.forget_execution("other");
        assert!(happy.counters().is_empty());
    }

    #[test]
    fn a_state_without_a_mock_fails_the_execution() {
        // AWS's "HybridPath" mocks LambdaState only; Step Functions Local would call SQS.
        let hybrid = aws_example("HybridPath");
        assert_eq!(call(&hybrid, "e", "LambdaState"), lambda_success());
        assert_eq!(
            call(&hybrid, "e", "SQSState"),
            Err(Failure::new(
                "States.Runtime",
                "State 'SQSState' has no mocked response in test case 'HybridPath' of state \
                 machine 'LambdaSQSIntegration', and mocked executions never call real services"
            ))
        );
        // Nothing is counted for it.
        assert!(!hybrid.counters()["e"].contains_key("SQSState"));
    }

    #[test]
    fn return_is_any_json_and_throw_fields_are_optional() {
        let case = load("valid/any-json-and-partial-throws.json")
            .test_case(Some("Shapes"), "All")
            .unwrap();
        assert_eq!(call(&case, "e", "Null"), Ok(Value::Null));
        assert_eq!(call(&case, "e", "Text"), Ok(json!("plain text")));
        assert_eq!(call(&case, "e", "List"), Ok(json!([1, {"a": null}, "x"])));
        let only_error = Failure {
            error: Some("Custom.Error".into()),
            cause: None,
        };
        assert_eq!(call(&case, "e", "ErrorOnly"), Err(only_error));
        let bare = Failure {
            error: None,
            cause: None,
        };
        assert_eq!(call(&case, "e", "Bare"), Err(bare));
    }

    #[test]
    fn picking_a_test_case() {
        let example = load("valid/aws-docs-lambda-sqs-integration.json");
        let case = example.test_case(None, "RetryPath").unwrap();
        assert_eq!(
            (case.state_machine(), case.name()),
            ("LambdaSQSIntegration", "RetryPath")
        );

        let missing = example.test_case(Some("Nope"), "HappyPath").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "the mock configuration has no state machine 'Nope' (it has 'LambdaSQSIntegration')"
        );
        let missing = example.test_case(None, "SadPath").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "state machine 'LambdaSQSIntegration' has no test case 'SadPath' in the mock \
             configuration (it has 'HappyPath', 'HybridPath', 'RetryPath')"
        );

        let two = load("valid/two-state-machines.json");
        assert!(two.test_case(Some("Orders"), "Paid").is_ok());
        let ambiguous = two.test_case(None, "Paid").unwrap_err();
        assert!(matches!(
            ambiguous,
            MockConfigError::StateMachineRequired { .. }
        ));
        assert_eq!(
            ambiguous.to_string(),
            "no state machine named, and the mock configuration does not have exactly one \
             (it has 'Orders', 'Refunds')"
        );

        let none =
            MockConfig::from_json(r#"{"StateMachines": {}, "MockedResponses": {}}"#).unwrap();
        assert_eq!(
            none.test_case(None, "T").unwrap_err().to_string(),
            "no state machine named, and the mock configuration does not have exactly one (it has none)"
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        for text in [
            "",
            "{",
            "nul",
            r#"{"StateMachines": [1,}"#,
            "{} {}",
            "\u{feff}",
            // serde_json's depth limit keeps deep nesting from overflowing the stack.
            &r#"{"a":"#.repeat(100_000),
        ] {
            let problems = problems(text);
            assert_eq!(problems.len(), 1, "{text:?}");
            assert_eq!(
                (problems[0].code, problems[0].pointer.as_str()),
                (codes::INVALID_JSON, "")
            );
        }
        let message = MockConfigError::Invalid(problems("{")).to_string();
        assert_eq!(
            message,
            "invalid mock configuration:\n  (root): INVALID_JSON not valid JSON: EOF while \
             parsing an object at line 1 column 1"
        );
    }

    #[test]
    fn problems_read_well() {
        let message = error_text(
            r#"{"StateMachines": {"M": {"TestCases": {"T": {"S": "Missing"}}}},
                "MockedResponses": {"R": {"0": {"Return": 1, "Throw": {}}, "2": {"Retrun": 1}}}}"#,
        );
        assert_eq!(
            message,
            "invalid mock configuration:\n  \
             /MockedResponses/R/0: RETURN_OR_THROW this entry has both `Return` and `Throw`; it needs exactly one\n  \
             /MockedResponses/R/2/Retrun: UNKNOWN_FIELD a mocked response entry has no field \
             'Retrun'; its fields are `Return` and `Throw`\n  \
             /MockedResponses/R/2: RETURN_OR_THROW this entry has neither `Return` nor `Throw`; it needs exactly one\n  \
             /MockedResponses/R/2: INVOCATION_GAP no response for invocation 1: keys must number \
             invocations consecutively from 0\n  \
             /StateMachines/M/TestCases/T/S: UNKNOWN_MOCKED_RESPONSE state 'S' uses mocked response \
             'Missing', which `MockedResponses` does not define"
        );
    }

    #[test]
    fn invocation_keys() {
        assert_eq!(parse_invocations("0"), Some((0, 0)));
        assert_eq!(parse_invocations("12"), Some((12, 12)));
        assert_eq!(parse_invocations("1-2"), Some((1, 2)));
        assert_eq!(parse_invocations("3-3"), Some((3, 3)));
        for bad in [
            "",
            "-",
            "-1",
            "1-",
            "2-1",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "0-1-2",
            "a",
            "1_000",
            "99999999999999999999",
        ] {
            assert_eq!(parse_invocations(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn completions_may_invoke_again() {
        // The driver may run the next state from inside `done`: no lock may be held then.
        let case = Arc::new(aws_example("RetryPath"));
        let (sender, receiver) = mpsc::channel();
        let again = Arc::clone(&case);
        let done: Completion = Box::new(move |first| {
            let inner: Completion = Box::new(move |second| sender.send((first, second)).unwrap());
            again.invoke(
                call_of("e", "LambdaState"),
                TaskReply::without_heartbeat(inner),
            );
        });
        case.invoke(
            call_of("e", "LambdaState"),
            TaskReply::without_heartbeat(done),
        );
        let (first, second) = receiver.try_recv().unwrap();
        assert_eq!(
            first.unwrap_err().error_name(),
            "Lambda.ResourceNotReadyException"
        );
        assert_eq!(second.unwrap_err().error_name(), "Lambda.TimeoutException");
    }

    #[test]
    fn executions_run_concurrently() {
        let case = Arc::new(aws_example("RetryPath"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let case = Arc::clone(&case);
                thread::spawn(move || {
                    let execution = format!("execution-{t}");
                    let outcome = |_| match call(&case, &execution, "LambdaState") {
                        Ok(_) => "ok".to_owned(),
                        Err(failure) => failure.error_name().to_owned(),
                    };
                    (0..5).map(outcome).collect::<Vec<_>>()
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(
                thread.join().unwrap(),
                [
                    "Lambda.ResourceNotReadyException",
                    "Lambda.TimeoutException",
                    "Lambda.TimeoutException",
                    "ok",
                    "States.Runtime",
                ]
            );
        }
    }

    fn fixtures(kind: &str) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = fs::read_dir(Path::new(FIXTURES).join(kind))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no fixtures in {kind}");
        paths
    }

    #[test]
    fn valid_fixtures_load_with_every_test_case() {
        for path in fixtures("valid") {
            let text = fs::read_to_string(&path).unwrap();
            let config =
                MockConfig::from_json(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for (machine, case) in config.test_cases() {
                let mocked = config.test_case(Some(machine), case).unwrap();
                assert_eq!((mocked.state_machine(), mocked.name()), (machine, case));
            }
        }
    }

    /// Each `invalid/<name>.json` comes with `<name>.expected`: one line per problem, its
    /// code and pointer, in the order reported (`#` starts a comment line).
    #[test]
    fn invalid_fixtures_report_every_problem() {
        for path in fixtures("invalid") {
            let text = fs::read_to_string(&path).unwrap();
            let expected_path = path.with_extension("expected");
            let expected = fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
            let expected: Vec<&str> = expected
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .collect();
            let problems = problems(&text);
            let actual: Vec<String> = problems
                .iter()
                .map(|d| format!("{} {}", d.code, d.pointer).trim_end().to_owned())
                .collect();
            assert_eq!(
                actual,
                expected,
                "{}; reported:{}",
                path.display(),
                problem_list(&problems)
            );
        }
    }
}
