//! jsonata-core panics on some inputs; the engine runs it under `catch_unwind` and fails the
//! expression instead (`asl::jsonata::contained`). libFuzzer's panic hook aborts on every
//! panic, caught or not, so the targets that reach jsonata-core let those unwind to the
//! engine's catch: what the engine contains is not a crash, anything else still is.

/// Installs the hook; call it from the target's `init`.
pub fn let_jsonata_core_panics_unwind() {
    let abort = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !expressway::asl::jsonata::panicked_in_jsonata_core(info) {
            abort(info);
        }
    }));
}
