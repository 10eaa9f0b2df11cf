//! The archive readers on files real writers made (the PyTorch fixtures of
//! `safeweights-pickle`, written by `torch.save`) and on the committed fuzz
//! corpora, through every kind of `Source`.
#![allow(clippy::disallowed_methods)] // Tests, examples and benches use std::fs directly; the rule is for library code.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use safeweights::{FileSource, MemorySource, MmapSource, Source};
use safeweights_archive::tar::{self, is_tar};
use safeweights_archive::zip::crc32;
use safeweights_archive::{
    Anomaly, Method, SliceSource, TarError, TarErrorKind, ZipArchive, ZipError, ZipErrorKind,
};

/// The torch zip checkpoints among the fixtures.
const TORCH_ZIPS: [&str; 7] = [
    "small.pt",
    "views.pt",
    "nested.pt",
    "all_dtypes.pt",
    "parameter.pt",
    "small_big_endian.pt",
    "torchscript.pt",
];

/// The legacy (PyTorch < 0.4) tar checkpoints among the fixtures.
const LEGACY_TARS: [&str; 6] = [
    "legacy_tar.pt",
    "legacy_tar_evil_pickle.pt",
    "legacy_tar_evil_storages.pt",
    "legacy_tar_short_storage.pt",
    "legacy_tar_truncated.pt",
    "legacy_tar_view_oob.pt",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../safeweights-pickle/tests/fixtures")
        .join(name)
}

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(name);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

/// Everything a strict open of a torch zip promises, on one source.
fn check_torch_zip<R: Source>(name: &str, src: R) {
    let zip = ZipArchive::new(src).unwrap_or_else(|e| panic!("{name}: {e}"));
    // torch streams its members: data descriptors and nothing else.
    for a in zip.anomalies() {
        assert!(matches!(a, Anomaly::DataDescriptor { .. }), "{name}: {a:?}");
    }
    let first = &zip.entries()[0];
    let (prefix, _) = first.name.split_once('/').expect("folder prefix");
    let pkl = zip
        .entry(&format!("{prefix}/data.pkl"))
        .unwrap_or_else(|| panic!("{name}: no data.pkl"));
    let body = zip.read(pkl, 1 << 20).unwrap();
    assert_eq!(body.first(), Some(&0x80), "{name}: pickle PROTO");
    for e in zip.entries() {
        let data = zip.read(e, 1 << 20).unwrap();
        assert_eq!(data.len() as u64, e.size);
        assert_eq!(crc32(0, &data), e.crc32, "{name}: {}", e.name);
        assert_eq!(&*zip.read_unverified(e, 1 << 20).unwrap(), &data[..]);
        assert_eq!(&*zip.head(e, 3).unwrap(), &data[..data.len().min(3)]);
        if e.method == Method::Stored && !data.is_empty() {
            let mut b = vec![0u8; data.len() - 1];
            zip.read_stored_at(e, 1, &mut b).unwrap();
            assert_eq!(b, &data[1..]);
        }
    }
}

#[test]
fn torch_zips_read_the_same_through_every_source() {
    for name in TORCH_ZIPS {
        let path = fixture(name);
        let bytes = std::fs::read(&path).unwrap();
        check_torch_zip(name, SliceSource::new(&bytes));
        check_torch_zip(name, MemorySource::new(bytes.clone()));
        check_torch_zip(name, FileSource::open(&path).unwrap());
        // SAFETY: the fixture is not changed while it is mapped.
        check_torch_zip(name, unsafe { MmapSource::open(&path) }.unwrap());
        let strict = ZipArchive::new(SliceSource::new(&bytes)).unwrap();
        let mut lenient = ZipArchive::inspect(SliceSource::new(&bytes)).unwrap();
        assert_eq!(strict.entries(), lenient.entries(), "{name}");
        assert_eq!(strict.anomalies(), lenient.anomalies(), "{name}");
        assert!(lenient.verify().is_empty(), "{name}");
    }
}

#[test]
fn a_flipped_byte_is_a_crc_mismatch_naming_the_member() {
    let bytes = std::fs::read(fixture("small.pt")).unwrap();
    let zip = ZipArchive::new(SliceSource::new(&bytes)).unwrap();
    let e = zip
        .entries()
        .iter()
        .find(|e| e.name.ends_with("data.pkl"))
        .unwrap()
        .clone();
    let mut bad = bytes.clone();
    bad[e.data_offset as usize + 3] ^= 0x55;
    let zip = ZipArchive::new(MemorySource::new(bad)).unwrap();
    match zip.read(&e, 1 << 20) {
        Err(ZipError {
            offset,
            kind: ZipErrorKind::CrcMismatch { name, .. },
            ..
        }) => {
            assert_eq!(offset, e.data_offset);
            assert_eq!(name, e.name);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn legacy_tars_list_their_members() {
    for name in LEGACY_TARS {
        let path = fixture(name);
        let src = FileSource::open(&path).unwrap();
        let t = tar::parse(&src, 16).unwrap();
        assert!(!t.more);
        for e in &t.entries {
            assert!(e.offset + e.size <= src.len(), "{name}: {}", e.name);
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(is_tar(&bytes), "{name}");
        let from_bytes = tar::parse_bytes(&bytes, 16);
        assert_eq!(from_bytes.entries, t.entries, "{name}");
        assert_eq!(from_bytes.error, t.error, "{name}");
        if name == "legacy_tar_truncated.pt" {
            assert!(
                matches!(
                    t.error,
                    Some(TarError {
                        offset,
                        kind: TarErrorKind::PastEnd { .. },
                        ..
                    }) if offset > 0
                ),
                "{:?}",
                t.error
            );
        } else {
            assert_eq!(t.error, None, "{name}");
            let names: Vec<&str> = t.entries.iter().map(|e| e.name.as_str()).collect();
            for m in ["pickle", "tensors", "storages"] {
                assert!(names.contains(&m), "{name}: {names:?}");
            }
        }
    }
}

#[test]
fn fuzz_corpora_never_panic() {
    let zips = corpus("zip");
    assert!(zips.len() >= 10, "zip corpus holds {}", zips.len());
    for data in &zips {
        for zip in [
            ZipArchive::new(SliceSource::new(data)),
            ZipArchive::inspect(SliceSource::new(data)),
        ]
        .into_iter()
        .flatten()
        {
            for e in zip.entries() {
                let _ = zip.read(e, 1 << 20);
                let _ = zip.head(e, 64);
                let _ = zip.read_unverified(e, 1 << 20);
            }
        }
    }
    let tars = corpus("tar");
    assert!(tars.len() >= 6, "tar corpus holds {}", tars.len());
    for data in &tars {
        let t = tar::parse_bytes(data, 64);
        for e in &t.entries {
            assert!(e.offset + e.size <= data.len() as u64);
        }
    }
}

fn mutate(mut d: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    let n = d.len();
    for &(i, b) in edits {
        d[i % n] ^= b | 1;
    }
    if let Some(c) = cut {
        d.truncate(c % n);
    }
    d
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_archives_never_panic(
        pick in 0usize..4,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let name = ["small.pt", "views.pt", "legacy_tar.pt", "legacy_tar_truncated.pt"][pick];
        let d = mutate(std::fs::read(fixture(name)).unwrap(), &edits, cut);
        for zip in [ZipArchive::new(SliceSource::new(&d)), ZipArchive::inspect(SliceSource::new(&d))]
            .into_iter()
            .flatten()
        {
            for e in zip.entries() {
                let _ = zip.read(e, 1 << 16);
                let _ = zip.head(e, 16);
                let _ = zip.read_unverified(e, 1 << 16);
            }
        }
        let t = tar::parse_bytes(&d, 16);
        for e in &t.entries {
            prop_assert!(e.offset + e.size <= d.len() as u64);
        }
    }
}
