//! Property tests: no bytes make the parser panic; write→read round trips.

use proptest::prelude::*;
use safeweights::{
    serialize, serialize_with, Dtype, ParseOptions, SafeTensors, WriteOptions, DTYPES,
};

use crate::testutil::{refs, Owned};

fn valid_file() -> Vec<u8> {
    let tensors = vec![
        Owned::counting("a", Dtype::F32, &[2, 3]),
        Owned::counting("b", Dtype::BF16, &[4]),
        Owned::counting("c", Dtype::F4, &[2, 2]),
    ];
    let mut meta = safeweights::Metadata::new();
    meta.insert("format".into(), "pt".into());
    serialize(&refs(&tensors), Some(&meta)).unwrap()
}

fn dtype_strategy() -> impl Strategy<Value = Dtype> {
    (0..DTYPES.len()).prop_map(|i| DTYPES[i].dtype)
}

fn tensor_strategy() -> impl Strategy<Value = Owned> {
    (
        "[a-z.0-9]{0,12}",
        dtype_strategy(),
        proptest::collection::vec(0usize..5, 0..4),
        any::<u8>(),
    )
        .prop_filter_map("whole bytes", |(name, dtype, shape, seed)| {
            let n = safeweights::element_count(&shape)?;
            let len = dtype.byte_size(n)?;
            let data = (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            Some(Owned::new(&name, dtype, &shape, data))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = SafeTensors::deserialize(&bytes);
        let _ = SafeTensors::deserialize_with(&bytes, &ParseOptions::lenient());
    }

    #[test]
    fn arbitrary_json_headers_never_panic(json in "\\{[\"a-z_:,0-9\\[\\]{} FUIBD]{0,80}\\}", data in 0usize..64) {
        let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        bytes.resize(bytes.len() + data, 0);
        let _ = SafeTensors::deserialize(&bytes);
    }

    #[test]
    fn mutated_valid_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        truncate in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = valid_file();
        for (index, value) in edits {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        if let Some(t) = truncate {
            let n = t.index(bytes.len());
            bytes.truncate(n);
        }
        if let Ok(file) = SafeTensors::deserialize_with(&bytes, &ParseOptions::lenient()) {
            for t in file.tensors() {
                prop_assert_eq!(Some(t.data().len()), t.dtype().byte_size(t.info().element_count()));
            }
        }
    }

    #[test]
    fn write_read_round_trip(
        tensors in proptest::collection::vec(tensor_strategy(), 0..8),
        meta in proptest::option::of(proptest::collection::btree_map("[a-z]{1,5}", ".{0,8}", 0..4)),
    ) {
        let mut seen = std::collections::HashSet::new();
        let tensors: Vec<Owned> = tensors.into_iter().filter(|t| seen.insert(t.name.clone())).collect();
        // Control characters other than tab and line feed in metadata are a
        // strict-mode error (issue 21): refused by the strict writer, written
        // and read back in lenient mode.
        let control = meta.as_ref().is_some_and(|m| {
            m.values().any(|v| v.chars().any(|c| c.is_control() && c != '\t' && c != '\n'))
        });
        let bytes = if control {
            prop_assert!(serialize(&refs(&tensors), meta.as_ref()).is_err());
            serialize_with(&refs(&tensors), meta.as_ref(), &WriteOptions::lenient()).unwrap()
        } else {
            serialize(&refs(&tensors), meta.as_ref()).unwrap()
        };
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        prop_assert_eq!(n % 8, 0, "header padded to a multiple of 8");
        let parse = if control { ParseOptions::lenient() } else { ParseOptions::strict() };
        let parsed = SafeTensors::deserialize_with(&bytes, &parse).unwrap();
        prop_assert_eq!(parsed.header().metadata(), meta.as_ref());
        prop_assert_eq!(parsed.header().len(), tensors.len());
        for t in &tensors {
            let v = parsed.tensor(&t.name).unwrap();
            prop_assert_eq!(v.dtype(), t.dtype);
            prop_assert_eq!(v.shape(), &t.shape[..]);
            prop_assert_eq!(v.data(), &t.data[..]);
        }
        // Written data starts 8-byte aligned, and wider dtypes come first.
        let order: Vec<Dtype> = parsed.header().tensors().iter().filter(|t| t.byte_len() > 0).map(|t| t.dtype).collect();
        prop_assert!(order.windows(2).all(|w| w[0] >= w[1]));
    }
}
