//! Fuzzes the `.npy` header parser of the converter: arbitrary bytes never
//! panic, and an accepted header's sizes are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((shape, _offset, nbytes)) = safeweights_convert::npy_header(data) {
        let elements = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64));
        assert!(elements.is_some(), "an accepted shape overflows");
        if elements == Some(0) {
            assert_eq!(nbytes, 0, "no elements but {nbytes} bytes");
        }
    }
});
