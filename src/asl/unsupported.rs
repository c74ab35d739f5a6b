//! What this engine does not run yet, found before compiling: valid ASL (validation accepts
//! it) that gets an `UNSUPPORTED` diagnostic instead of a program. One list, so that adding a
//! feature means deleting a line here.

use super::diagnostic::codes::UNSUPPORTED;
use super::diagnostic::{pointer_push, Diagnostic};
use super::walk::{each_machine, states};
use serde_json::Value;

/// Values of state fields this engine does not run: (path to the field, value, why).
const VALUES: &[(&[&str], &str, &str)] = &[(
    &["ItemReader", "ReaderConfig", "InputType"],
    "MANIFEST",
    "an ItemReader over an S3 inventory manifest is not supported yet",
)];

/// Every use of an unsupported feature in a (valid) definition.
pub fn find(definition: &Value) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    each_machine(definition, &mut |machine, ptr| {
        for (state, sptr) in states(machine, ptr) {
            for (path, value, why) in VALUES {
                let found = path.iter().try_fold(state, |v, k| v.get(*k));
                if found.and_then(Value::as_str) == Some(*value) {
                    let at = path.iter().fold(sptr.clone(), |p, k| pointer_push(&p, k));
                    out.push(Diagnostic::new(UNSUPPORTED, at, *why));
                }
            }
        }
    });
    out
}
