//! PyTorch checkpoint consistency, as a hostile checkpoint breaks it: a
//! storage whose declared size disagrees with its data record, and tensor
//! views that reach past their storage. torch's own bounds checks are all
//! that stand between such a file and memory outside the storage; other
//! loaders (and older torch) trust the declarations.

use safeweights_pickle::TorchDtype;

/// A storage declared by a PyTorch persistent id
/// `('storage', StorageClass, key, location, numel)`.
#[derive(Debug, Clone)]
pub(crate) struct StorageDecl {
    /// Record name under `data/`.
    pub key: String,
    /// The storage class global (`torch.FloatStorage`).
    pub class: String,
    /// Declared element count.
    pub numel: u64,
    /// Bytes the record must hold (`numel` times the element size), when
    /// the class is known.
    pub nbytes: Option<u64>,
    /// Stream offset of the persistent id.
    pub offset: u64,
}

impl StorageDecl {
    /// What is wrong with this declaration given its record's size
    /// (`None`: no record): `(what, why)`, or `None` when consistent or
    /// when the storage class is unknown.
    pub(crate) fn record_problem(&self, record: Option<u64>) -> Option<(String, &'static str)> {
        let want = self.nbytes?;
        match record {
            None => Some((
                format!(
                    "storage {:?} ({} x {}) has no data record data/{}",
                    self.key, self.numel, self.class, self.key
                ),
                "torch.load fails or, in lax readers, reads from wherever the record is found",
            )),
            Some(have) if have != want => Some((
                format!(
                    "storage {:?} is declared as {} x {} = {want} bytes, its data record holds {have}",
                    self.key, self.numel, self.class
                ),
                "a loader that trusts the declaration reads past the record (or ignores bytes in it): the heap-corruption class of hostile checkpoints",
            )),
            Some(_) => None,
        }
    }
}

/// Bytes per element of a storage class global; untyped storages count bytes.
pub(crate) fn storage_element_size(class: &str) -> Option<u64> {
    let name = class.rsplit('.').next().unwrap_or(class);
    if name == "UntypedStorage" || name == "_UntypedStorage" {
        return Some(1);
    }
    TorchDtype::from_storage_class(name).map(TorchDtype::element_size)
}

/// Globals whose call returns a tensor.
pub(crate) fn returns_tensor(g: &str) -> bool {
    matches!(
        g,
        "torch._utils._rebuild_tensor"
            | "torch._utils._rebuild_tensor_v2"
            | "torch._utils._rebuild_tensor_v3"
            | "torch._utils._rebuild_parameter"
            | "torch._utils._rebuild_parameter_with_state"
            | "torch._utils._rebuild_qtensor"
            | "torch._utils._rebuild_sparse_tensor"
            | "torch._utils._rebuild_sparse_csr"
            | "torch._utils._rebuild_meta_tensor_no_storage"
            | "torch._utils._rebuild_device_tensor_from_numpy"
            | "torch._utils._rebuild_nested_tensor"
            | "torch._utils._rebuild_wrapper_subclass"
            | "torch._tensor._rebuild_from_type_v2"
            | "torch._tensor._rebuild_from_type"
            | "torch.nn.parameter.Parameter"
            | "torch.nn.Parameter"
            | "torch.Tensor"
            | "torch._tensor.Tensor"
    )
}

/// The rebuilders whose arguments are `(storage, offset, size, stride, ...)`.
pub(crate) fn is_view_rebuilder(g: &str) -> bool {
    matches!(
        g,
        "torch._utils._rebuild_tensor"
            | "torch._utils._rebuild_tensor_v2"
            | "torch._utils._rebuild_tensor_v3"
            | "torch._utils._rebuild_qtensor"
    )
}

/// Why a view past its storage is a finding.
pub(crate) const VIEW_WHY: &str = "the view reaches memory outside its storage: a loader without torch's bounds check reads or writes out of bounds, and torch refuses the file";

/// A tensor view over a storage, as its rebuilder's arguments give it.
pub(crate) struct View<'a> {
    /// Storage offset, in elements.
    pub start: i64,
    /// Sizes.
    pub size: &'a [i64],
    /// Strides, in elements.
    pub stride: &'a [i64],
    /// The `torch.<dtype>` argument of `_rebuild_tensor_v3` (its storage is untyped).
    pub dtype: Option<&'a str>,
}

impl View<'_> {
    /// What is wrong with the view over `st`, or `None` when it fits (or
    /// cannot be judged: an unknown storage class or dtype).
    pub(crate) fn problem(&self, st: &StorageDecl) -> Option<String> {
        let st_elem = storage_element_size(&st.class)?;
        let elem = match self.dtype {
            // An untyped storage counts bytes: the dtype gives the element size.
            Some(d) if st_elem == 1 => {
                TorchDtype::from_torch_name(d.strip_prefix("torch.")?)?.element_size()
            }
            _ => st_elem,
        };
        if elem == 0 {
            return None;
        }
        let (start, size, stride) = (self.start, self.size, self.stride);
        let shown = format!(
            "tensor view (offset {start}, size {size:?}, stride {stride:?}) of storage {:?} ({} x {})",
            st.key, st.numel, st.class
        );
        if size.len() != stride.len() {
            return Some(format!("{shown}: size and stride differ in length"));
        }
        if start < 0 || size.iter().chain(stride).any(|&x| x < 0) {
            return Some(format!("{shown}: negative offset, size or stride"));
        }
        if size.contains(&0) {
            return None;
        }
        // Last element reached: offset + sum((size - 1) * stride), in elements.
        let last = size
            .iter()
            .zip(stride)
            .try_fold(start as u64, |acc, (&n, &s)| {
                (n as u64 - 1)
                    .checked_mul(s as u64)
                    .and_then(|x| acc.checked_add(x))
            });
        let capacity = st.numel.checked_mul(st_elem).map(|b| b / elem);
        match (last, capacity) {
            (Some(l), Some(c)) if l < c => None,
            (Some(l), Some(c)) => Some(format!(
                "{shown}: reaches element {l}, the storage holds {c}"
            )),
            _ => Some(format!("{shown}: its extent overflows")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    fn floats(numel: u64) -> StorageDecl {
        StorageDecl {
            key: "0".into(),
            class: "torch.FloatStorage".into(),
            numel,
            nbytes: Some(numel * 4),
            offset: 0,
        }
    }

    fn view<'a>(start: i64, size: &'a [i64], stride: &'a [i64]) -> View<'a> {
        View {
            start,
            size,
            stride,
            dtype: None,
        }
    }

    #[test]
    fn views_against_a_naive_walk_of_every_index() {
        // The extent formula against visiting every element of small views.
        for numel in 0..12u64 {
            for start in 0..4i64 {
                for (size, stride) in [
                    (vec![2, 3], vec![3, 1]),
                    (vec![3, 2], vec![1, 3]),
                    (vec![4], vec![2]),
                    (vec![2, 2], vec![0, 1]),
                    (vec![1], vec![9]),
                ] {
                    let mut max = start;
                    for i in 0..size[0] {
                        for j in 0..*size.get(1).unwrap_or(&1) {
                            let at = start + i * stride[0] + j * stride.get(1).unwrap_or(&0);
                            max = max.max(at);
                        }
                    }
                    let fits = (max as u64) < numel;
                    let p = view(start, &size, &stride).problem(&floats(numel));
                    assert_eq!(
                        p.is_none(),
                        fits,
                        "{numel} {start} {size:?} {stride:?}: {p:?}"
                    );
                }
            }
        }
        assert!(view(0, &[0, 5], &[5, 1]).problem(&floats(0)).is_none());
        assert!(view(0, &[2], &[-1]).problem(&floats(9)).is_some());
        assert!(view(0, &[2, 2], &[1]).problem(&floats(9)).is_some());
        assert!(view(i64::MAX, &[2], &[i64::MAX])
            .problem(&floats(9))
            .is_some());
    }

    #[test]
    fn untyped_storage_counts_bytes() {
        let st = StorageDecl {
            key: "0".into(),
            class: "torch.UntypedStorage".into(),
            numel: 8,
            nbytes: Some(8),
            offset: 0,
        };
        let mut v = view(0, &[2], &[1]);
        v.dtype = Some("torch.float32");
        assert!(v.problem(&st).is_none());
        let mut v = view(0, &[3], &[1]);
        v.dtype = Some("torch.float32");
        assert!(v.problem(&st).is_some());
        assert_eq!(floats(4).record_problem(Some(16)), None);
        assert!(floats(4).record_problem(Some(15)).is_some());
        assert!(floats(4).record_problem(None).is_some());
    }
}
