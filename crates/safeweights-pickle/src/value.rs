//! The data-only object graph produced by the evaluator.
//!
//! Scalars are stored inline in [`Value`]; containers and typed torch/numpy
//! objects live in a flat arena ([`Graph::nodes`]) and are referenced by
//! [`ObjId`]. This keeps shared references (memo GETs, tied weights) and even
//! cycles representable without reference-counting cycles, and dropping a
//! graph never recurses.

use crate::dtype::TorchDtype;
use crate::opcodes::BigInt;
use std::collections::HashMap;
use std::sync::Arc;

/// Index of a node in [`Graph::nodes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjId(pub u32);

/// A pickle value: a scalar, or a reference to a node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`
    None,
    /// `bool`
    Bool(bool),
    /// `int` fitting in i64
    Int(i64),
    /// `int` outside the i64 range
    BigInt(Arc<BigInt>),
    /// `float`
    Float(f64),
    /// `str` (also Python 2 `str` that decoded as UTF-8)
    Str(Arc<str>),
    /// `bytes` (also Python 2 `str` that is not UTF-8)
    Bytes(Arc<[u8]>),
    /// Reference to a container or typed object.
    Obj(ObjId),
}

impl Value {
    /// Short type name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Obj(_) => "object",
        }
    }
    /// The string, if this is a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// The integer, if this is an `int` in i64 range (or a bool).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }
}

/// Hashable identity of a dict key / set element (Python equality: `True == 1 == 1.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    None,
    Int(i64),
    Float(u64),
    Big(BigInt),
    Str(Arc<str>),
    Bytes(Arc<[u8]>),
    Tuple(Vec<Key>),
    Obj(u32),
}

/// An insertion-ordered dictionary (Python `dict` semantics: a repeated key
/// overwrites the value in place).
#[derive(Debug, Clone, Default)]
pub struct Dict {
    entries: Vec<(Value, Value)>,
    index: HashMap<Key, usize>,
}

impl Dict {
    /// Key/value pairs in insertion order.
    pub fn entries(&self) -> &[(Value, Value)] {
        &self.entries
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Look up a `str` key.
    pub fn get_str(&self, key: &str) -> Option<&Value> {
        let i = self.index.get(&Key::Str(Arc::from(key)))?;
        self.entries.get(*i).map(|(_, v)| v)
    }
    pub(crate) fn insert(&mut self, key: Key, k: Value, v: Value) {
        if let Some(&i) = self.index.get(&key) {
            if let Some(slot) = self.entries.get_mut(i) {
                slot.1 = v;
                return;
            }
        }
        self.index.insert(key, self.entries.len());
        self.entries.push((k, v));
    }
}

/// A set (insertion order kept, duplicates dropped).
#[derive(Debug, Clone, Default)]
pub struct Set {
    items: Vec<Value>,
    index: HashMap<Key, ()>,
}

impl Set {
    /// Elements.
    pub fn items(&self) -> &[Value] {
        &self.items
    }
    pub(crate) fn insert(&mut self, key: Key, v: Value) {
        if self.index.insert(key, ()).is_none() {
            self.items.push(v);
        }
    }
}

/// A storage reference produced by a torch persistent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Storage key (the file name under `data/`, or the legacy key).
    pub key: String,
    /// Element dtype of the storage (`uint8` for `torch.UntypedStorage`).
    pub dtype: TorchDtype,
    /// Whether the storage class was `torch.UntypedStorage` (numel counts bytes).
    pub untyped: bool,
    /// Device location string (`cpu`, `cuda:0`, ...), informational.
    pub location: String,
    /// Number of elements the pickle claims the storage holds.
    pub numel: u64,
    /// Legacy storage views: element offset of this view inside the root storage.
    pub view_offset: u64,
}

/// A tensor rebuilt by `torch._utils._rebuild_tensor_v2/v3` (optionally wrapped as a Parameter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tensor {
    /// The storage it views.
    pub storage: StorageRef,
    /// Tensor element dtype (storage dtype for v2, explicit dtype for v3).
    pub dtype: TorchDtype,
    /// Offset into the storage, in elements of `dtype` (includes a legacy view offset).
    pub storage_offset: u64,
    /// Shape.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
    /// `requires_grad` flag (informational).
    pub requires_grad: bool,
    /// Whether it was wrapped as `torch.nn.Parameter`.
    pub is_parameter: bool,
}

impl Tensor {
    /// Number of elements (`None` on overflow).
    pub fn numel(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }
    /// Whether the tensor is C-contiguous (dims of size 1 ignored).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&d, &s) in self.shape.iter().zip(&self.stride).rev() {
            if d != 1 && s != expected {
                return false;
            }
            expected = match expected.checked_mul(d) {
                Some(e) => e,
                None => return false,
            };
        }
        true
    }
    /// Byte range `[start, end)` of the storage the tensor touches, or `None` for an
    /// empty tensor (or arithmetic overflow, reported as `Err`).
    pub fn byte_extent(&self) -> Result<Option<(u64, u64)>, String> {
        if self.shape.len() != self.stride.len() {
            return Err(format!(
                "shape has {} dims but stride has {}",
                self.shape.len(),
                self.stride.len()
            ));
        }
        if self.shape.contains(&0) {
            return Ok(None);
        }
        let mut last = self.storage_offset;
        for (&d, &s) in self.shape.iter().zip(&self.stride) {
            let step = (d - 1)
                .checked_mul(s)
                .ok_or("element extent overflows u64")?;
            last = last
                .checked_add(step)
                .ok_or("element extent overflows u64")?;
        }
        let es = self.dtype.element_size();
        let start = self
            .storage_offset
            .checked_mul(es)
            .ok_or("byte offset overflows u64")?;
        let end = last
            .checked_add(1)
            .and_then(|e| e.checked_mul(es))
            .ok_or("byte extent overflows u64")?;
        Ok(Some((start, end)))
    }
}

/// A numpy dtype from `numpy.dtype(descr, align, copy)` + BUILD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumpyDtype {
    /// Type code, e.g. `f4`, `i8`, `b1`, `u2`.
    pub descr: String,
    /// Byte order character from the state (`<`, `>`, `|`, `=`).
    pub byteorder: char,
}

/// A numpy array from `numpy.core.multiarray._reconstruct` + BUILD.
#[derive(Debug, Clone, PartialEq)]
pub struct NumpyArray {
    /// Element dtype.
    pub dtype: NumpyDtype,
    /// Shape.
    pub shape: Vec<u64>,
    /// Fortran (column-major) order.
    pub fortran_order: bool,
    /// Raw element bytes.
    pub data: Arc<[u8]>,
}

/// A reference to an allowed global (a class or function), not yet called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Global {
    /// `torch._utils._rebuild_tensor_v2`
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3`
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter`
    RebuildParameter,
    /// `torch._utils._rebuild_parameter_with_state`
    RebuildParameterWithState,
    /// `torch._tensor._rebuild_from_type_v2`
    RebuildFromTypeV2,
    /// A typed storage class (`torch.FloatStorage`, ...) or `torch.UntypedStorage`.
    StorageClass {
        /// Element dtype.
        dtype: TorchDtype,
        /// `torch.UntypedStorage`
        untyped: bool,
    },
    /// `collections.OrderedDict`
    OrderedDict,
    /// `torch.Size`
    TorchSize,
    /// `torch.Tensor`
    TensorClass,
    /// `torch.nn.parameter.Parameter`
    ParameterClass,
    /// `numpy.core.multiarray._reconstruct`
    NumpyReconstruct,
    /// `numpy.ndarray`
    NumpyNdarray,
    /// `numpy.dtype`
    NumpyDtype,
    /// `numpy.core.multiarray.scalar`
    NumpyScalar,
    /// `_codecs.encode`, accepted only as `encode(str, "latin1")` (how protocol 2 pickles `bytes`)
    CodecsEncode,
    /// `numpy._core.numeric._frombuffer(buffer, dtype, shape, order)` (numpy 2, protocol 5)
    NumpyFromBuffer,
    /// `builtins.set` / `__builtin__.set` (protocols 0-3 pickle sets by calling it on a list)
    BuiltinSet,
    /// `builtins.frozenset`
    BuiltinFrozenSet,
    /// `builtins.bytes` (protocols 0-2: `bytes()` for `b""`)
    BuiltinBytes,
    /// `builtins.bytearray` (protocols 0-4)
    BuiltinByteArray,
}

/// The allow-list: every `(module, name)` a pickle may import by name, and the
/// [`Global`] it resolves to. Typed storage classes are listed apart
/// ([`TYPED_STORAGE_CLASSES`] under each of [`STORAGE_MODULES`]).
const ALLOWED: &[(&str, &str, Global)] = &[
    (
        "torch._utils",
        "_rebuild_tensor_v2",
        Global::RebuildTensorV2,
    ),
    (
        "torch._utils",
        "_rebuild_tensor_v3",
        Global::RebuildTensorV3,
    ),
    (
        "torch._utils",
        "_rebuild_parameter",
        Global::RebuildParameter,
    ),
    (
        "torch._utils",
        "_rebuild_parameter_with_state",
        Global::RebuildParameterWithState,
    ),
    (
        "torch._tensor",
        "_rebuild_from_type_v2",
        Global::RebuildFromTypeV2,
    ),
    ("collections", "OrderedDict", Global::OrderedDict),
    ("torch", "Size", Global::TorchSize),
    ("torch", "Tensor", Global::TensorClass),
    ("torch._tensor", "Tensor", Global::TensorClass),
    ("torch.nn.parameter", "Parameter", Global::ParameterClass),
    ("torch.nn", "Parameter", Global::ParameterClass),
    ("torch", "UntypedStorage", UNTYPED_STORAGE),
    ("torch.storage", "UntypedStorage", UNTYPED_STORAGE),
    (
        "numpy.core.multiarray",
        "_reconstruct",
        Global::NumpyReconstruct,
    ),
    (
        "numpy._core.multiarray",
        "_reconstruct",
        Global::NumpyReconstruct,
    ),
    ("numpy.core.multiarray", "scalar", Global::NumpyScalar),
    ("numpy._core.multiarray", "scalar", Global::NumpyScalar),
    ("numpy", "ndarray", Global::NumpyNdarray),
    ("numpy", "dtype", Global::NumpyDtype),
    ("_codecs", "encode", Global::CodecsEncode),
    ("numpy.core.numeric", "_frombuffer", Global::NumpyFromBuffer),
    (
        "numpy._core.numeric",
        "_frombuffer",
        Global::NumpyFromBuffer,
    ),
    ("builtins", "set", Global::BuiltinSet),
    ("__builtin__", "set", Global::BuiltinSet),
    ("builtins", "frozenset", Global::BuiltinFrozenSet),
    ("__builtin__", "frozenset", Global::BuiltinFrozenSet),
    ("builtins", "bytes", Global::BuiltinBytes),
    ("__builtin__", "bytes", Global::BuiltinBytes),
    ("builtins", "bytearray", Global::BuiltinByteArray),
    ("__builtin__", "bytearray", Global::BuiltinByteArray),
];

const UNTYPED_STORAGE: Global = Global::StorageClass {
    dtype: TorchDtype::UInt8,
    untyped: true,
};

/// Modules whose typed storage classes are allowed.
const STORAGE_MODULES: &[&str] = &["torch", "torch.cuda"];

/// The typed storage classes allowed (each under every one of
/// [`STORAGE_MODULES`]); their dtype comes from [`TorchDtype::from_storage_class`].
const TYPED_STORAGE_CLASSES: &[&str] = &[
    "DoubleStorage",
    "FloatStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexDoubleStorage",
    "ComplexFloatStorage",
    "QUInt8Storage",
    "QInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
];

/// Every `(module, name)` pair [`Global::resolve`] accepts, exactly: the
/// allow-list of globals the data-only evaluator may import (besides the
/// `torch.<dtype>` attributes it reads as dtypes).
pub fn allowed_globals() -> impl Iterator<Item = (&'static str, &'static str)> {
    ALLOWED.iter().map(|&(m, n, _)| (m, n)).chain(
        STORAGE_MODULES
            .iter()
            .flat_map(|&m| TYPED_STORAGE_CLASSES.iter().map(move |&n| (m, n))),
    )
}

impl Global {
    /// Resolve a `module.name` against the allow-list ([`allowed_globals`]).
    pub fn resolve(module: &str, name: &str) -> Option<Global> {
        if let Some(&(_, _, g)) = ALLOWED.iter().find(|(m, n, _)| *m == module && *n == name) {
            return Some(g);
        }
        if STORAGE_MODULES.contains(&module) && TYPED_STORAGE_CLASSES.contains(&name) {
            return TorchDtype::from_storage_class(name).map(|dtype| Global::StorageClass {
                dtype,
                untyped: false,
            });
        }
        None
    }
    /// The canonical dotted name.
    pub fn dotted_name(&self) -> String {
        match self {
            Global::RebuildTensorV2 => "torch._utils._rebuild_tensor_v2".into(),
            Global::RebuildTensorV3 => "torch._utils._rebuild_tensor_v3".into(),
            Global::RebuildParameter => "torch._utils._rebuild_parameter".into(),
            Global::RebuildParameterWithState => {
                "torch._utils._rebuild_parameter_with_state".into()
            }
            Global::RebuildFromTypeV2 => "torch._tensor._rebuild_from_type_v2".into(),
            Global::StorageClass { untyped: true, .. } => "torch.UntypedStorage".into(),
            Global::StorageClass { dtype, .. } => format!("torch storage class of {dtype}"),
            Global::OrderedDict => "collections.OrderedDict".into(),
            Global::TorchSize => "torch.Size".into(),
            Global::TensorClass => "torch.Tensor".into(),
            Global::ParameterClass => "torch.nn.parameter.Parameter".into(),
            Global::NumpyReconstruct => "numpy.core.multiarray._reconstruct".into(),
            Global::NumpyNdarray => "numpy.ndarray".into(),
            Global::NumpyDtype => "numpy.dtype".into(),
            Global::NumpyScalar => "numpy.core.multiarray.scalar".into(),
            Global::CodecsEncode => "_codecs.encode".into(),
            Global::NumpyFromBuffer => "numpy._core.numeric._frombuffer".into(),
            Global::BuiltinSet => "builtins.set".into(),
            Global::BuiltinFrozenSet => "builtins.frozenset".into(),
            Global::BuiltinBytes => "builtins.bytes".into(),
            Global::BuiltinByteArray => "builtins.bytearray".into(),
        }
    }
}

/// A node of the graph.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Node {
    /// `list`
    List(Vec<Value>),
    /// `tuple`
    Tuple(Vec<Value>),
    /// `dict`
    Dict(Dict),
    /// `collections.OrderedDict`; `attrs` holds instance attributes set by BUILD (e.g. `_metadata`).
    OrderedDict {
        /// Items.
        items: Dict,
        /// Attributes (`__dict__`).
        attrs: Dict,
    },
    /// `set`
    Set(Set),
    /// `frozenset`
    FrozenSet(Set),
    /// `bytearray`
    ByteArray(Arc<[u8]>),
    /// `torch.<dtype>`
    Dtype(TorchDtype),
    /// A storage from a persistent id.
    Storage(StorageRef),
    /// A tensor or parameter.
    Tensor(Tensor),
    /// A numpy array (after `_reconstruct` + BUILD).
    NumpyArray(NumpyArray),
    /// A numpy array stub between `_reconstruct` and BUILD.
    NumpyArrayStub,
    /// A numpy dtype.
    NumpyDtype(NumpyDtype),
    /// A numpy scalar: dtype and its raw bytes.
    NumpyScalar {
        /// Scalar dtype.
        dtype: NumpyDtype,
        /// Raw bytes.
        data: Arc<[u8]>,
    },
    /// An allowed class or function, not called.
    Global(Global),
}

impl Node {
    /// Short type name for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::List(_) => "list",
            Node::Tuple(_) => "tuple",
            Node::Dict(_) => "dict",
            Node::OrderedDict { .. } => "OrderedDict",
            Node::Set(_) => "set",
            Node::FrozenSet(_) => "frozenset",
            Node::ByteArray(_) => "bytearray",
            Node::Dtype(_) => "torch.dtype",
            Node::Storage(_) => "torch storage",
            Node::Tensor(_) => "torch.Tensor",
            Node::NumpyArray(_) | Node::NumpyArrayStub => "numpy.ndarray",
            Node::NumpyDtype(_) => "numpy.dtype",
            Node::NumpyScalar { .. } => "numpy scalar",
            Node::Global(_) => "class or function",
        }
    }
}

/// The result of evaluating one pickle: the arena and the root value.
#[derive(Debug, Clone)]
pub struct Graph {
    /// All container/object nodes, indexed by [`ObjId`].
    pub nodes: Vec<Node>,
    /// The value returned by STOP.
    pub root: Value,
    /// Number of bytes consumed (the STOP opcode included).
    pub consumed: usize,
    /// Protocol announced by PROTO (0 if none).
    pub protocol: u8,
}

impl Graph {
    /// The node a value refers to.
    pub fn node(&self, v: &Value) -> Option<&Node> {
        match v {
            Value::Obj(id) => self.nodes.get(id.0 as usize),
            _ => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn every_allowed_global_resolves_and_nothing_else_does() {
        for (m, n) in allowed_globals() {
            assert!(Global::resolve(m, n).is_some(), "{m}.{n}");
        }
        // every typed storage class names a distinct dtype
        let mut dtypes: Vec<TorchDtype> = TYPED_STORAGE_CLASSES
            .iter()
            .filter_map(|n| TorchDtype::from_storage_class(n))
            .collect();
        assert_eq!(dtypes.len(), TYPED_STORAGE_CLASSES.len());
        dtypes.sort_by_key(|d| d.torch_name());
        dtypes.dedup();
        assert_eq!(dtypes.len(), TYPED_STORAGE_CLASSES.len());
        for (m, n) in [
            ("torch.storage", "FloatStorage"),
            ("torch", "UntypedStorageX"),
            ("os", "system"),
            ("builtins", "eval"),
            ("torch", "load"),
        ] {
            assert_eq!(Global::resolve(m, n), None, "{m}.{n}");
        }
    }
}
