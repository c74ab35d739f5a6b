//! What this engine does not run yet, found before compiling: valid ASL (validation accepts
//! it) that gets an `UNSUPPORTED` diagnostic instead of a program. One list, so that adding a
//! feature means deleting a line here.

use super::diagnostic::codes::UNSUPPORTED;
use super::diagnostic::{pointer_push, Diagnostic};
use super::walk::{each_machine, states};
use serde_json::Value;

/// State fields that belong to Distributed Map's S3 integration.
const FIELDS: &[(&str, &str)] = &[
    (
        "ItemReader",
        "ItemReader (Distributed Map over S3) is not supported yet",
    ),
    (
        "ResultWriter",
        "ResultWriter (Distributed Map to S3) is not supported yet",
    ),
];

/// Every use of an unsupported feature in a (valid) definition.
pub fn find(definition: &Value) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    each_machine(definition, &mut |machine, ptr| {
        for (state, sptr) in states(machine, ptr) {
            for (field, why) in FIELDS {
                if state.get(*field).is_some() {
                    out.push(Diagnostic::new(
                        UNSUPPORTED,
                        pointer_push(&sptr, field),
                        *why,
                    ));
                }
            }
        }
    });
    out
}
