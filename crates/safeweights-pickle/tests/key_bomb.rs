//! Memory that the evaluator builds is counted: a few hundred bytes of
//! pickle that nest one shared tuple 2^26 times and use it as a dict key
//! (hashing walks the whole tree) cost gigabytes before the limit on hash
//! keys; now it is a limit error at once.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use safeweights_pickle::{evaluate, Limits, PickleErrorKind};

/// `{ T26: None }` where T0 = "a" and T(n+1) = (Tn, Tn), through the memo.
fn key_bomb(levels: u8) -> Vec<u8> {
    let mut p = b"\x80\x02}q\x00".to_vec(); // PROTO 2, EMPTY_DICT, BINPUT 0
    p.extend_from_slice(b"X\x01\x00\x00\x00aq\x010"); // "a", BINPUT 1, POP
    for n in 1..=levels {
        // BINGET n, BINGET n, TUPLE2, BINPUT n+1, POP
        p.extend_from_slice(&[b'h', n, b'h', n, 0x86, b'q', n + 1, b'0']);
    }
    p.extend_from_slice(&[b'h', levels + 1]); // the last tuple
    p.extend_from_slice(b"Ns."); // None, SETITEM, STOP
    p
}

#[test]
fn a_shared_tuple_key_is_a_limit_not_gigabytes() {
    let bomb = key_bomb(26);
    assert!(bomb.len() < 256, "{} bytes", bomb.len());
    let err = evaluate(&bomb, &Limits::default()).unwrap_err();
    assert!(
        matches!(
            err.kind,
            PickleErrorKind::LimitExceeded {
                limit: "max_key_elements",
                ..
            }
        ),
        "{err}"
    );
    // A small shared key is still fine.
    assert!(evaluate(&key_bomb(8), &Limits::default()).is_ok());
}

#[test]
fn many_keys_count_against_a_total() {
    let limits = Limits::default()
        .max_key_elements(1_000)
        .max_total_key_elements(5_000);
    // Each 511-element key fits alone; the total is spent after a few.
    let mut p = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x010".to_vec();
    for n in 1..=8u8 {
        p.extend_from_slice(&[b'h', n, b'h', n, 0x86, b'q', n + 1, b'0']);
    }
    for _ in 0..20 {
        p.extend_from_slice(b"h\x09Ns"); // BINGET 9 (the tuple), None, SETITEM
    }
    p.push(b'.');
    let err = evaluate(&p, &limits).unwrap_err();
    assert!(
        matches!(
            err.kind,
            PickleErrorKind::LimitExceeded {
                limit: "max_total_key_elements",
                ..
            }
        ),
        "{err}"
    );
}
