//! Property tests: arbitrary and mutated inputs never panic.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use proptest::prelude::*;
use safeweights::MemorySource;
use safeweights_pickle::archive::ZipArchive;
use safeweights_pickle::eval::{evaluate, Limits};
use safeweights_pickle::opcodes::Ops;
use safeweights_pickle::torch::{flatten_graph, TorchCheckpoint};

fn limits() -> Limits {
    Limits::default()
        .max_ops(100_000)
        .max_total_bytes(1 << 20)
        .max_nodes(100_000)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn seeds() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for f in ["nested.pt", "views.pt", "all_dtypes.pt"] {
        let z = ZipArchive::new(MemorySource::new(fixture(f))).unwrap();
        let e = z
            .entries()
            .iter()
            .find(|e| e.name.ends_with("data.pkl"))
            .unwrap()
            .clone();
        v.push(z.read(&e, 1 << 20).unwrap());
    }
    for p in 2..=5 {
        v.push(fixture(&format!("numpy_p{p}.pkl")));
    }
    v
}

fn exercise(data: &[u8]) {
    for op in Ops::new(data) {
        if op.is_err() {
            break;
        }
    }
    if let Ok(g) = evaluate(data, &limits()) {
        let _ = flatten_graph(&g, &limits());
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(mut d: Vec<u8>, ms: &[Mutation]) -> Vec<u8> {
    for m in ms {
        if d.is_empty() {
            break;
        }
        let n = d.len();
        match *m {
            Mutation::Flip(i, b) => d[i % n] ^= b | 1,
            Mutation::Insert(i, b) => d.insert(i % n, b),
            Mutation::Delete(i) => {
                d.remove(i % n);
            }
            Mutation::Truncate(i) => d.truncate(i % n),
        }
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&data);
    }

    #[test]
    fn opcode_soup(data in proptest::collection::vec(
        prop_oneof![
            Just(b'('), Just(b']'), Just(b'}'), Just(b')'), Just(b'a'), Just(b'e'), Just(b's'),
            Just(b'u'), Just(b't'), Just(b'l'), Just(b'd'), Just(b'0'), Just(b'1'), Just(b'2'),
            Just(b'R'), Just(b'b'), Just(b'o'), Just(0x81u8), Just(0x85u8), Just(0x86u8),
            Just(0x87u8), Just(0x90u8), Just(0x91u8), Just(0x94u8), Just(0x93u8), Just(b'N'),
            Just(b'h'), Just(b'q'), Just(b'Q'), any::<u8>()
        ], 0..256)) {
        exercise(&data);
    }

    #[test]
    fn mutated_pickles(seed in 0usize..7, ms in proptest::collection::vec(mutation(), 1..8)) {
        let seeds = seeds();
        let d = apply(seeds[seed % seeds.len()].clone(), &ms);
        exercise(&d);
    }

    #[test]
    fn mutated_checkpoints(seed in 0usize..3, ms in proptest::collection::vec(mutation(), 1..4)) {
        let f = ["small.pt", "views_legacy.pt", "nested_legacy.pt"][seed];
        let d = apply(fixture(f), &ms);
        if let Ok(ck) = TorchCheckpoint::from_source(MemorySource::new(d), f, limits()) {
            for t in ck.tensors() {
                let _ = ck.tensor_bytes(&t.tensor);
            }
        }
    }
}
