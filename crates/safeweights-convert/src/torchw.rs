//! Writing the PyTorch zip checkpoint format (what `torch.save` writes since
//! 1.6), readable by `torch.load(..., weights_only=True)`.
//!
//! `archive/data.pkl` is a protocol-2 pickle of an `OrderedDict` mapping
//! each name to `torch._utils._rebuild_tensor_v2(storage, offset, size,
//! stride, False, OrderedDict())` (or `_rebuild_tensor_v3(..., dtype)` with
//! an `UntypedStorage` for dtypes that have no typed storage class), where
//! `storage` is the persistent id `('storage', torch.FloatStorage, key,
//! 'cpu', numel)`. Storage bytes are `archive/data/<key>`, stored and
//! 64-byte aligned.

use safeweights::Dtype;

/// How a safetensors dtype is written in a torch pickle.
pub(crate) enum TorchType {
    /// `_rebuild_tensor_v2` with `torch.<class>` typed storage.
    Typed(&'static str),
    /// `_rebuild_tensor_v3` with `UntypedStorage` and `torch.<dtype>`.
    Untyped(&'static str),
}

/// The torch spelling of a safetensors dtype (`None`: torch has none, e.g. F6).
pub(crate) fn torch_type(d: Dtype) -> Option<TorchType> {
    use TorchType::*;
    Some(match d {
        Dtype::F32 => Typed("FloatStorage"),
        Dtype::F64 => Typed("DoubleStorage"),
        Dtype::F16 => Typed("HalfStorage"),
        Dtype::BF16 => Typed("BFloat16Storage"),
        Dtype::I64 => Typed("LongStorage"),
        Dtype::I32 => Typed("IntStorage"),
        Dtype::I16 => Typed("ShortStorage"),
        Dtype::I8 => Typed("CharStorage"),
        Dtype::U8 => Typed("ByteStorage"),
        Dtype::BOOL => Typed("BoolStorage"),
        Dtype::C64 => Typed("ComplexFloatStorage"),
        Dtype::U16 => Untyped("uint16"),
        Dtype::U32 => Untyped("uint32"),
        Dtype::U64 => Untyped("uint64"),
        Dtype::F8_E4M3 => Untyped("float8_e4m3fn"),
        Dtype::F8_E5M2 => Untyped("float8_e5m2"),
        Dtype::F8_E4M3FNUZ => Untyped("float8_e4m3fnuz"),
        Dtype::F8_E5M2FNUZ => Untyped("float8_e5m2fnuz"),
        Dtype::F8_E8M0 => Untyped("float8_e8m0fnu"),
        Dtype::F4 => Untyped("float4_e2m1fn_x2"),
        _ => return None,
    })
}

/// One tensor record of the pickle.
pub(crate) struct PickleTensor<'a> {
    pub name: &'a str,
    pub key: &'a str,
    pub dtype: Dtype,
    /// Torch shape (F4: packed bytes in the last dimension).
    pub shape: &'a [u64],
    /// Bytes of the storage.
    pub storage_bytes: u64,
}

/// A minimal protocol-2 pickle emitter.
struct P(Vec<u8>);

impl P {
    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend_from_slice(module.as_bytes());
        self.0.push(b'\n');
        self.0.extend_from_slice(name.as_bytes());
        self.0.push(b'\n');
    }
    fn str(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: u64) {
        if v < 256 {
            self.0.extend_from_slice(&[b'K', v as u8]);
        } else if v < 65536 {
            self.0.push(b'M');
            self.0.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v < (1 << 31) {
            self.0.push(b'J');
            self.0.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            // LONG1: minimal little-endian two's complement
            let mut b = v.to_le_bytes().to_vec();
            while b.len() > 1 && b[b.len() - 1] == 0 && b[b.len() - 2] & 0x80 == 0 {
                b.pop();
            }
            if b[b.len() - 1] & 0x80 != 0 {
                b.push(0);
            }
            self.0.extend_from_slice(&[0x8a, b.len() as u8]);
            self.0.extend_from_slice(&b);
        }
    }
    fn tuple(&mut self, items: &[u64]) {
        match items.len() {
            0 => self.0.push(b')'),
            1..=3 => {
                for &i in items {
                    self.int(i);
                }
                self.0.push([0x85, 0x86, 0x87][items.len() - 1]);
            }
            _ => {
                self.0.push(b'(');
                for &i in items {
                    self.int(i);
                }
                self.0.push(b't');
            }
        }
    }
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.0.push(b')');
        self.0.push(b'R');
    }
}

/// The `data.pkl` bytes for these tensors (in this order).
pub(crate) fn data_pkl(tensors: &[PickleTensor<'_>]) -> Vec<u8> {
    let mut p = P(vec![0x80, 2]);
    p.ordered_dict();
    for chunk in tensors.chunks(1000) {
        p.0.push(b'(');
        for t in chunk {
            p.str(t.name);
            let tt = torch_type(t.dtype);
            let v3 = match tt {
                Some(TorchType::Typed(_)) => None,
                Some(TorchType::Untyped(d)) => Some(d),
                None => Some("uint8"),
            };
            p.global(
                "torch._utils",
                if v3.is_some() {
                    "_rebuild_tensor_v3"
                } else {
                    "_rebuild_tensor_v2"
                },
            );
            p.0.push(b'(');
            // persistent id tuple
            p.0.push(b'(');
            p.str("storage");
            let elem = match tt {
                Some(TorchType::Typed(class)) => {
                    p.global("torch", class);
                    t.dtype.size_bytes().unwrap_or(1) as u64
                }
                _ => {
                    p.global("torch.storage", "UntypedStorage");
                    1
                }
            };
            p.str(t.key);
            p.str("cpu");
            p.int(t.storage_bytes / elem);
            p.0.push(b't');
            p.0.push(b'Q'); // BINPERSID
            p.int(0);
            p.tuple(t.shape);
            let mut stride = vec![1u64; t.shape.len()];
            for k in (0..t.shape.len().saturating_sub(1)).rev() {
                stride[k] = stride[k + 1].saturating_mul(t.shape[k + 1].max(1));
            }
            p.tuple(&stride);
            p.0.push(0x89); // NEWFALSE
            p.ordered_dict();
            if let Some(d) = v3 {
                p.global("torch", d);
            }
            p.0.push(b't');
            p.0.push(b'R');
        }
        p.0.push(b'u'); // SETITEMS
    }
    p.0.push(b'.');
    p.0
}
