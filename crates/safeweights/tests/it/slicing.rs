//! Slicing against a naive oracle that walks every element.

use proptest::prelude::*;
use safeweights::{write_file, Dtype, ResolvedSlice, SafeTensorsFile, SliceIndex};

use crate::testutil::Owned;

/// Python's `range(*slice.indices(len))`, written the obvious way.
fn naive_positions(index: SliceIndex, len: i64) -> Option<Vec<i64>> {
    match index {
        SliceIndex::Select(i) => {
            let p = if i < 0 { i + len } else { i };
            (0..len).contains(&p).then(|| vec![p])
        }
        SliceIndex::Range { start, stop, step } => {
            let step = step.unwrap_or(1);
            if step == 0 {
                return None;
            }
            let mut out = Vec::new();
            let norm = |v: i64| if v < 0 { v + len } else { v };
            if step > 0 {
                let s = start.map(norm).unwrap_or(0).clamp(0, len);
                let e = stop.map(norm).unwrap_or(len).clamp(0, len);
                let mut i = s;
                while i < e {
                    out.push(i);
                    i += step;
                }
            } else {
                let s = start.map(norm).unwrap_or(len - 1).clamp(-1, len - 1);
                let e = stop.map(norm).unwrap_or(-1).clamp(-1, len - 1);
                let mut i = s;
                while i > e {
                    out.push(i);
                    i += step;
                }
            }
            Some(out)
        }
    }
}

/// The selected elements' bytes, element by element.
fn naive_slice(
    data: &[u8],
    shape: &[usize],
    elem: usize,
    indices: &[SliceIndex],
) -> Option<Vec<u8>> {
    let mut per_dim = Vec::new();
    for (d, &size) in shape.iter().enumerate() {
        let idx = indices.get(d).copied().unwrap_or(SliceIndex::FULL);
        per_dim.push(naive_positions(idx, size as i64)?);
    }
    let mut out = Vec::new();
    let mut counter = vec![0usize; shape.len()];
    if per_dim.iter().any(|p| p.is_empty()) {
        return Some(out);
    }
    loop {
        let mut flat = 0usize;
        for d in 0..shape.len() {
            flat = flat * shape[d] + per_dim[d][counter[d]] as usize;
        }
        out.extend_from_slice(&data[flat * elem..(flat + 1) * elem]);
        let mut d = shape.len();
        loop {
            if d == 0 {
                return Some(out);
            }
            d -= 1;
            counter[d] += 1;
            if counter[d] < per_dim[d].len() {
                break;
            }
            counter[d] = 0;
        }
    }
}

fn index_strategy() -> impl Strategy<Value = SliceIndex> {
    prop_oneof![
        (-6i64..6).prop_map(SliceIndex::Select),
        (
            proptest::option::of(-7i64..7),
            proptest::option::of(-7i64..7),
            proptest::option::of(prop_oneof![
                Just(1i64),
                Just(2),
                Just(3),
                Just(-1),
                Just(-2)
            ]),
        )
            .prop_map(|(start, stop, step)| SliceIndex::Range { start, stop, step }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn slices_match_the_naive_oracle(
        shape in proptest::collection::vec(1usize..5, 0..4),
        indices in proptest::collection::vec(index_strategy(), 0..4),
    ) {
        let t = Owned::counting("t", Dtype::I16, &shape);
        let expected = naive_slice(&t.data, &shape, 2, &indices);
        match ResolvedSlice::new(&shape, &indices) {
            Err(_) => prop_assert!(expected.is_none() || indices.len() > shape.len()),
            Ok(slice) => {
                let expected = expected.expect("oracle accepts what we accept");
                let mut got = Vec::new();
                let ranges = slice.byte_ranges(Dtype::I16).unwrap();
                for r in &ranges {
                    got.extend_from_slice(&t.data[r.clone()]);
                }
                prop_assert_eq!(&got, &expected);
                prop_assert_eq!(slice.element_count().unwrap() * 2, expected.len());
                // Coalesced: no two consecutive ranges touch.
                prop_assert!(ranges.windows(2).all(|w| w[0].end != w[1].start));
            }
        }
    }
}

#[test]
fn reading_a_slice_reads_only_its_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let t = Owned::counting("w", Dtype::F32, &[8, 16]);
    let other = Owned::counting("x", Dtype::F32, &[4]);
    write_file(&path, &[t.as_ref(), other.as_ref()], None).unwrap();
    let file = SafeTensorsFile::open(&path).unwrap();
    // Rows 2..4, all columns: one contiguous range of 2 rows x 64 bytes.
    let ranges = file
        .slice_file_ranges("w", &[SliceIndex::range(2, 4)])
        .unwrap();
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0].end - ranges[0].start, 128);
    let start = file.file_range(file.info("w").unwrap()).start;
    assert_eq!(ranges[0].start, start + 2 * 64);
    // A column: one range per row.
    let col = file
        .slice_file_ranges("w", &[SliceIndex::FULL, SliceIndex::Select(-1)])
        .unwrap();
    assert_eq!(col.len(), 8);
    let (shape, bytes) = file
        .read_slice("w", &[SliceIndex::FULL, SliceIndex::Select(-1)])
        .unwrap();
    assert_eq!(shape, vec![8]);
    assert_eq!(&bytes[..4], &t.data[60..64]);
}

#[test]
fn slice_errors_are_clear() {
    let err = ResolvedSlice::new(&[3], &[SliceIndex::Select(3)]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "index 3 is out of range for dimension 0 of size 3"
    );
    let err = ResolvedSlice::new(&[3], &[SliceIndex::FULL, SliceIndex::FULL]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "too many indices: 2 given for a tensor of 1 dimensions"
    );
    let s = SliceIndex::Range {
        start: None,
        stop: None,
        step: Some(0),
    };
    assert!(matches!(
        ResolvedSlice::new(&[3], &[s]),
        Err(safeweights::SliceError::ZeroStep { dim: 0 })
    ));
    // Sub-byte: an odd F4 element boundary cannot be read as bytes.
    let slice = ResolvedSlice::new(&[4], &[SliceIndex::range(1, 3)]).unwrap();
    assert!(slice.byte_ranges(Dtype::F4).is_err());
    let slice = ResolvedSlice::new(&[4], &[SliceIndex::range(2, 4)]).unwrap();
    assert_eq!(slice.byte_ranges(Dtype::F4).unwrap(), vec![1..2]);
}

/// Reading one tensor through the mapping does not pull its neighbours'
/// pages into memory (checked with `mincore` after evicting the file).
#[cfg(target_os = "linux")]
#[test]
fn reading_one_tensor_leaves_the_others_on_disk() {
    use std::os::unix::io::AsRawFd;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let mb = 1 << 20;
    let tensors: Vec<Owned> = ["a", "b", "c"]
        .iter()
        .map(|n| Owned::counting(n, Dtype::U8, &[8 * mb]))
        .collect();
    let refs: Vec<_> = tensors.iter().map(Owned::as_ref).collect();
    write_file(&path, &refs, None).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    // SAFETY: plain syscalls on a valid descriptor.
    unsafe {
        libc::fsync(file.as_raw_fd());
        libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
    }
    // SAFETY: nothing changes the file while it is mapped.
    let reader = unsafe { safeweights::OpenOptions::new().mmap() }
        .open(&path)
        .unwrap();
    let sum: u64 = reader
        .tensor("b")
        .unwrap()
        .data()
        .iter()
        .map(|&x| x as u64)
        .sum();
    assert!(sum > 0);

    // Residency of each tensor's pages, through a fresh mapping.
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    // SAFETY: a read-only private mapping of a file we own, unmapped below.
    let resident = unsafe {
        let addr = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        );
        assert_ne!(addr, libc::MAP_FAILED);
        let pages = len.div_ceil(4096);
        let mut vec = vec![0u8; pages];
        assert_eq!(libc::mincore(addr, len, vec.as_mut_ptr()), 0);
        libc::munmap(addr, len);
        vec
    };
    let fraction = |name: &str| {
        let r = reader.file_range(reader.info(name).unwrap());
        let pages = &resident[r.start as usize / 4096..(r.end as usize).div_ceil(4096)];
        pages.iter().filter(|&&p| p & 1 == 1).count() as f64 / pages.len() as f64
    };
    assert!(fraction("b") > 0.99, "b: {}", fraction("b"));
    assert!(fraction("a") < 0.05, "a: {}", fraction("a"));
    assert!(fraction("c") < 0.05, "c: {}", fraction("c"));
}
