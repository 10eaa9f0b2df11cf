//! Fuzzes the pickle opcode walker and the data-only evaluator: no input may
//! panic, and the walker must terminate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use safeweights_pickle::eval::{evaluate, Limits};
use safeweights_pickle::opcodes::Ops;

fuzz_target!(|data: &[u8]| {
    for op in Ops::new(data) {
        if op.is_err() {
            break;
        }
    }
    let _ = evaluate(data, &Limits::default());
});
