//! Walks a definition's state machines: the top level, every Parallel branch and every Map
//! processor, each with its JSON pointer. For checks that read the definition as written
//! (what is not supported yet, which resources it calls) rather than the compiled program.

use super::diagnostic::pointer_push;
use serde_json::{Map, Value};

/// Calls `f(machine, pointer)` for `definition` and every machine nested in its states,
/// outer before inner.
pub fn each_machine(definition: &Value, f: &mut impl FnMut(&Value, &str)) {
    machine(definition, "", f);
}

fn machine(def: &Value, ptr: &str, f: &mut impl FnMut(&Value, &str)) {
    f(def, ptr);
    for (state, sptr) in states(def, ptr) {
        for (i, branch) in state
            .get("Branches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let bptr = pointer_push(&pointer_push(&sptr, "Branches"), &i.to_string());
            machine(branch, &bptr, f);
        }
        for field in ["ItemProcessor", "Iterator"] {
            if let Some(processor) = state.get(field) {
                machine(processor, &pointer_push(&sptr, field), f);
            }
        }
    }
}

/// The states of one machine (not of nested ones) with their pointers.
pub fn states<'a>(machine: &'a Value, ptr: &str) -> Vec<(&'a Value, String)> {
    machine
        .get("States")
        .and_then(Value::as_object)
        .map(Map::iter)
        .into_iter()
        .flatten()
        .map(|(name, state)| (state, pointer_push(&pointer_push(ptr, "States"), name)))
        .collect()
}
