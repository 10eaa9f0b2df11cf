//! The data-only pickle evaluator.
//!
//! It runs the pickle machine (stack, marks, memo) over decoded opcodes, but
//! the only "callables" it knows are the allow-listed [`Global`]s, each
//! implemented here in Rust as a pure data constructor. Any other GLOBAL,
//! STACK_GLOBAL or INST is a [`PickleErrorKind::ForbiddenGlobal`] error.

use crate::dtype::TorchDtype;
use crate::error::{PickleError, PickleErrorKind};
use crate::opcodes::{Arg, Opcode, Ops};
use crate::value::{
    Dict, Global, Graph, Key, Node, NumpyArray, NumpyDtype, ObjId, Set, StorageRef, Tensor, Value,
};
use std::collections::HashMap;
use std::sync::Arc;

/// Resource limits for decoding and evaluating a pickle (and for walking the result).
///
/// Built with chained setters from [`Limits::default`]:
/// `Limits::default().max_ops(1_000).max_memo_entries(10)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Maximum number of opcodes executed.
    pub max_ops: u64,
    /// Maximum number of memo entries.
    pub max_memo_entries: usize,
    /// Maximum number of values on the stack.
    pub max_stack_depth: usize,
    /// Maximum number of open MARKs (nesting of MARK-based constructs).
    pub max_marks: usize,
    /// Maximum size of one string / bytes object.
    pub max_string_bytes: u64,
    /// Maximum total size of all strings / bytes objects created.
    pub max_total_bytes: u64,
    /// Maximum number of items in one list / tuple / dict / set.
    pub max_collection_len: usize,
    /// Maximum number of container/object nodes.
    pub max_nodes: usize,
    /// Maximum tensor rank.
    pub max_dims: usize,
    /// Maximum container nesting depth when walking the graph (flattening, JSON export).
    pub max_nesting_depth: usize,
    /// Maximum number of named entries produced when flattening (guards shared-reference blow-up).
    pub max_flattened_entries: usize,
    /// Maximum size of a pickle to read into memory (archive member or legacy prefix).
    pub max_pickle_bytes: u64,
    /// Maximum number of elements in one hash key (a tuple used as a dict key
    /// or set member, counted through nested tuples: a few hundred bytes of
    /// pickle can nest shared tuples into 2^n elements).
    pub max_key_elements: usize,
    /// Maximum number of hash-key elements built over the whole evaluation.
    pub max_total_key_elements: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ops: 100_000_000,
            max_memo_entries: 10_000_000,
            max_stack_depth: 10_000_000,
            max_marks: 10_000,
            max_string_bytes: 256 << 20,
            max_total_bytes: 1 << 30,
            max_collection_len: 10_000_000,
            max_nodes: 5_000_000,
            max_dims: 64,
            max_nesting_depth: 200,
            max_flattened_entries: 10_000_000,
            max_pickle_bytes: 1 << 30,
            max_key_elements: 100_000,
            max_total_key_elements: 10_000_000,
        }
    }
}

macro_rules! setters {
    ($($f:ident: $t:ty),*) => {
        impl Limits {
            $(
                #[doc = concat!("Set `", stringify!($f), "`.")]
                pub fn $f(mut self, v: $t) -> Self {
                    self.$f = v;
                    self
                }
            )*
        }
    };
}
setters!(max_ops: u64, max_memo_entries: usize, max_stack_depth: usize, max_marks: usize,
    max_string_bytes: u64, max_total_bytes: u64, max_collection_len: usize, max_nodes: usize,
    max_dims: usize, max_nesting_depth: usize, max_flattened_entries: usize, max_pickle_bytes: u64,
    max_key_elements: usize, max_total_key_elements: u64);

/// Evaluate the first pickle in `data` (up to its STOP) with the given limits.
pub fn evaluate(data: &[u8], limits: &Limits) -> Result<Graph, PickleError> {
    Evaluator::new(limits).run(data, 0)
}

/// Evaluate the pickle starting at `start` in `data`; offsets in errors are from the start of `data`.
pub fn evaluate_at(data: &[u8], start: usize, limits: &Limits) -> Result<Graph, PickleError> {
    Evaluator::new(limits).run(data, start)
}

/// Evaluate the object pickle of a legacy tar checkpoint: persistent ids are
/// `str(key)` (or int) keys of the already-read tensors and storages in
/// `objects`, resolved like torch's `legacy_load` (`int(saved_id)`).
pub(crate) fn evaluate_legacy_tar_object(
    data: &[u8],
    limits: &Limits,
    objects: &HashMap<i64, Node>,
) -> Result<Graph, PickleError> {
    let mut e = Evaluator::new(limits);
    e.legacy_objects = Some(objects);
    e.run(data, 0)
}

/// Evaluate a record pickle of a legacy tar checkpoint's `tensors` member:
/// besides the usual allow-list, the legacy tensor classes `torch.FloatTensor`,
/// `torch.cuda.LongTensor`, ... are accepted as inert names (torch ignores
/// them); they evaluate to `torch.Tensor`.
pub(crate) fn evaluate_legacy_tar_record(
    data: &[u8],
    start: usize,
    limits: &Limits,
) -> Result<Graph, PickleError> {
    let mut e = Evaluator::new(limits);
    e.legacy_tensor_types = true;
    e.run(data, start)
}

struct Evaluator<'l> {
    limits: &'l Limits,
    nodes: Vec<Node>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    total_bytes: u64,
    /// Hash-key elements built so far (see [`Limits::max_total_key_elements`]).
    key_elements: std::cell::Cell<u64>,
    offset: u64,
    opname: &'static str,
    /// Legacy tar mode: persistent ids name these objects by key.
    legacy_objects: Option<&'l HashMap<i64, Node>>,
    /// Nodes already made for legacy persistent ids (the same key is the same object).
    legacy_seen: HashMap<i64, Value>,
    /// Accept `torch.XTensor` legacy tensor classes as inert names.
    legacy_tensor_types: bool,
}

type R<T> = Result<T, PickleErrorKind>;

fn limit(limit: &'static str, max: u64) -> PickleErrorKind {
    PickleErrorKind::LimitExceeded { limit, max }
}

impl<'l> Evaluator<'l> {
    fn new(limits: &'l Limits) -> Self {
        Evaluator {
            limits,
            nodes: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            total_bytes: 0,
            key_elements: std::cell::Cell::new(0),
            offset: 0,
            opname: "",
            legacy_objects: None,
            legacy_seen: HashMap::new(),
            legacy_tensor_types: false,
        }
    }

    fn run(mut self, data: &[u8], start: usize) -> Result<Graph, PickleError> {
        let window = data.get(start..).unwrap_or(&[]);
        let mut ops = Ops::new(window).with_base_offset(start as u64);
        let mut count = 0u64;
        let mut protocol = 0u8;
        loop {
            let op = match ops.next_op()? {
                Some(op) => op,
                None => {
                    return Err(PickleError::new(
                        data.len() as u64,
                        PickleErrorKind::MissingStop,
                    ))
                }
            };
            count += 1;
            self.offset = op.offset;
            self.opname = op.opcode.name();
            if count > self.limits.max_ops {
                return Err(PickleError::new(
                    op.offset,
                    limit("max_ops", self.limits.max_ops),
                ));
            }
            if op.opcode == Opcode::Proto {
                if let Arg::Int(p) = op.arg {
                    protocol = p as u8;
                }
            }
            if op.opcode == Opcode::Stop {
                let root = self
                    .stack
                    .pop()
                    .ok_or_else(|| PickleError::new(op.offset, self.underflow()))?;
                return Ok(Graph {
                    nodes: self.nodes,
                    root,
                    consumed: ops.position(),
                    protocol,
                });
            }
            let off = op.offset;
            self.step(op.opcode, op.arg)
                .map_err(|k| PickleError::new(off, k))?;
            if self.stack.len() > self.limits.max_stack_depth {
                return Err(PickleError::new(
                    off,
                    limit("max_stack_depth", self.limits.max_stack_depth as u64),
                ));
            }
        }
    }

    fn underflow(&self) -> PickleErrorKind {
        PickleErrorKind::StackUnderflow {
            opcode: self.opname,
        }
    }
    fn fence(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }
    fn pop(&mut self) -> R<Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.pop().ok_or_else(|| self.underflow())
    }
    fn top(&self) -> R<&Value> {
        if self.stack.len() <= self.fence() {
            return Err(self.underflow());
        }
        self.stack.last().ok_or_else(|| self.underflow())
    }
    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let m = self.marks.pop().ok_or(PickleErrorKind::MissingMark {
            opcode: self.opname,
        })?;
        if m > self.stack.len() {
            return Err(self.underflow());
        }
        Ok(self.stack.split_off(m))
    }
    fn alloc(&mut self, n: Node) -> R<Value> {
        if self.nodes.len() >= self.limits.max_nodes || self.nodes.len() >= u32::MAX as usize {
            return Err(limit("max_nodes", self.limits.max_nodes as u64));
        }
        let id = ObjId(self.nodes.len() as u32);
        self.nodes.push(n);
        Ok(Value::Obj(id))
    }
    fn node(&self, v: &Value) -> Option<&Node> {
        match v {
            Value::Obj(id) => self.nodes.get(id.0 as usize),
            _ => None,
        }
    }
    fn node_mut(&mut self, v: &Value) -> Option<&mut Node> {
        match v {
            Value::Obj(id) => self.nodes.get_mut(id.0 as usize),
            _ => None,
        }
    }
    fn type_of(&self, v: &Value) -> String {
        match self.node(v) {
            Some(n) => n.type_name().to_string(),
            None => v.type_name().to_string(),
        }
    }
    fn account_bytes(&mut self, n: usize) -> R<()> {
        let n = n as u64;
        if n > self.limits.max_string_bytes {
            return Err(limit("max_string_bytes", self.limits.max_string_bytes));
        }
        self.total_bytes = self.total_bytes.saturating_add(n);
        if self.total_bytes > self.limits.max_total_bytes {
            return Err(limit("max_total_bytes", self.limits.max_total_bytes));
        }
        Ok(())
    }
    fn check_len(&self, n: usize) -> R<()> {
        if n > self.limits.max_collection_len {
            return Err(limit(
                "max_collection_len",
                self.limits.max_collection_len as u64,
            ));
        }
        Ok(())
    }
    fn mismatch(&self, expected: &'static str, v: &Value) -> PickleErrorKind {
        PickleErrorKind::TypeMismatch {
            opcode: self.opname,
            expected,
            found: self.type_of(v),
        }
    }

    /// Hash key of a value (Python hashing rules); tuples are hashed up to a
    /// bounded depth and a bounded number of elements, per key and in total.
    fn key(&self, v: &Value, depth: usize) -> R<Key> {
        let mut elements = 0usize;
        let key = self.key_in(v, depth, &mut elements)?;
        let total = self.key_elements.get().saturating_add(elements as u64);
        if total > self.limits.max_total_key_elements {
            return Err(limit(
                "max_total_key_elements",
                self.limits.max_total_key_elements,
            ));
        }
        self.key_elements.set(total);
        Ok(key)
    }

    fn key_in(&self, v: &Value, depth: usize, elements: &mut usize) -> R<Key> {
        *elements += 1;
        if *elements > self.limits.max_key_elements {
            return Err(limit(
                "max_key_elements",
                self.limits.max_key_elements as u64,
            ));
        }
        Ok(match v {
            Value::None => Key::None,
            Value::Bool(b) => Key::Int(i64::from(*b)),
            Value::Int(i) => Key::Int(*i),
            Value::BigInt(b) => Key::Big((**b).clone()),
            Value::Float(f) => {
                if f.fract() == 0.0 && f.abs() < 9.0e18 {
                    Key::Int(*f as i64)
                } else {
                    Key::Float(f.to_bits())
                }
            }
            Value::Str(s) => Key::Str(s.clone()),
            Value::Bytes(b) => Key::Bytes(b.clone()),
            Value::Obj(id) => match self.nodes.get(id.0 as usize) {
                Some(Node::Tuple(items)) => {
                    if depth >= self.limits.max_nesting_depth {
                        return Err(limit(
                            "max_nesting_depth",
                            self.limits.max_nesting_depth as u64,
                        ));
                    }
                    let mut ks = Vec::with_capacity(items.len());
                    for it in items {
                        ks.push(self.key_in(it, depth + 1, elements)?);
                    }
                    Key::Tuple(ks)
                }
                Some(
                    n @ (Node::List(_)
                    | Node::Dict(_)
                    | Node::OrderedDict { .. }
                    | Node::Set(_)
                    | Node::ByteArray(_)
                    | Node::NumpyArray(_)),
                ) => {
                    return Err(PickleErrorKind::Unhashable {
                        opcode: self.opname,
                        found: n.type_name().into(),
                    })
                }
                _ => Key::Obj(id.0),
            },
        })
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn push_str(&mut self, s: &str) -> R<()> {
        self.account_bytes(s.len())?;
        self.push(Value::Str(Arc::from(s)));
        Ok(())
    }

    fn step(&mut self, op: Opcode, arg: Arg<'_>) -> R<()> {
        use Opcode as O;
        match op {
            O::Proto | O::Frame => {}
            O::Stop => {}
            O::Int | O::BinInt | O::BinInt1 | O::BinInt2 | O::Long | O::Long1 | O::Long4 => {
                match arg {
                    Arg::Int(i) => self.push(Value::Int(i)),
                    Arg::Bool(b) => self.push(Value::Bool(b)),
                    Arg::BigInt(b) => {
                        let n = match &b {
                            crate::opcodes::BigInt::Bytes(v) => v.len(),
                            crate::opcodes::BigInt::Decimal(s) => s.len(),
                        };
                        self.account_bytes(n)?;
                        self.push(Value::BigInt(Arc::new(b)))
                    }
                    _ => return Err(self.bad_arg()),
                }
            }
            O::String | O::BinString | O::ShortBinString => {
                let Arg::PyStr(b) = arg else {
                    return Err(self.bad_arg());
                };
                self.account_bytes(b.len())?;
                match std::str::from_utf8(&b) {
                    Ok(s) => self.push(Value::Str(Arc::from(s))),
                    Err(_) => self.push(Value::Bytes(Arc::from(&*b))),
                }
            }
            O::BinBytes | O::ShortBinBytes | O::BinBytes8 => {
                let Arg::Bytes(b) = arg else {
                    return Err(self.bad_arg());
                };
                self.account_bytes(b.len())?;
                self.push(Value::Bytes(Arc::from(b)));
            }
            O::ByteArray8 => {
                let Arg::Bytes(b) = arg else {
                    return Err(self.bad_arg());
                };
                self.account_bytes(b.len())?;
                let v = self.alloc(Node::ByteArray(Arc::from(b)))?;
                self.push(v);
            }
            O::NextBuffer => {
                return Err(PickleErrorKind::Unsupported {
                    opcode: "NEXT_BUFFER",
                    reason: "out-of-band buffers are not provided",
                })
            }
            O::ReadonlyBuffer => {
                let t = self.top()?.clone();
                let ok = matches!(t, Value::Bytes(_))
                    || matches!(self.node(&t), Some(Node::ByteArray(_)));
                if !ok {
                    return Err(self.mismatch("a buffer", &t));
                }
            }
            O::None => self.push(Value::None),
            O::NewTrue => self.push(Value::Bool(true)),
            O::NewFalse => self.push(Value::Bool(false)),
            O::Unicode | O::ShortBinUnicode | O::BinUnicode | O::BinUnicode8 => {
                let Arg::Str(s) = arg else {
                    return Err(self.bad_arg());
                };
                self.push_str(&s)?;
            }
            O::Float | O::BinFloat => {
                let Arg::Float(f) = arg else {
                    return Err(self.bad_arg());
                };
                self.push(Value::Float(f));
            }
            O::EmptyList => {
                let v = self.alloc(Node::List(Vec::new()))?;
                self.push(v);
            }
            O::EmptyTuple => {
                let v = self.alloc(Node::Tuple(Vec::new()))?;
                self.push(v);
            }
            O::EmptyDict => {
                let v = self.alloc(Node::Dict(Dict::default()))?;
                self.push(v);
            }
            O::EmptySet => {
                let v = self.alloc(Node::Set(Set::default()))?;
                self.push(v);
            }
            O::List => {
                let items = self.pop_mark()?;
                self.check_len(items.len())?;
                let v = self.alloc(Node::List(items))?;
                self.push(v);
            }
            O::Tuple => {
                let items = self.pop_mark()?;
                self.check_len(items.len())?;
                let v = self.alloc(Node::Tuple(items))?;
                self.push(v);
            }
            O::Tuple1 | O::Tuple2 | O::Tuple3 => {
                let n = match op {
                    O::Tuple1 => 1,
                    O::Tuple2 => 2,
                    _ => 3,
                };
                if self.stack.len() < self.fence() + n {
                    return Err(self.underflow());
                }
                let items = self.stack.split_off(self.stack.len() - n);
                let v = self.alloc(Node::Tuple(items))?;
                self.push(v);
            }
            O::Dict => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err(PickleErrorKind::InvalidArgument {
                        opcode: "DICT",
                        reason: "odd number of items".into(),
                    });
                }
                self.check_len(items.len() / 2)?;
                let mut d = Dict::default();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    let key = self.key(&k, 0)?;
                    d.insert(key, k, v);
                }
                let v = self.alloc(Node::Dict(d))?;
                self.push(v);
            }
            O::FrozenSet => {
                let items = self.pop_mark()?;
                self.check_len(items.len())?;
                let mut s = Set::default();
                for it in items {
                    let key = self.key(&it, 0)?;
                    s.insert(key, it);
                }
                let v = self.alloc(Node::FrozenSet(s))?;
                self.push(v);
            }
            O::Append => {
                let v = self.pop()?;
                let target = self.top()?.clone();
                self.extend_list(&target, vec![v])?;
            }
            O::Appends => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                self.extend_list(&target, items)?;
            }
            O::SetItem => {
                let v = self.pop()?;
                let k = self.pop()?;
                let target = self.top()?.clone();
                self.set_items(&target, vec![k, v])?;
            }
            O::SetItems => {
                let items = self.pop_mark()?;
                if items.len() % 2 != 0 {
                    return Err(PickleErrorKind::InvalidArgument {
                        opcode: "SETITEMS",
                        reason: "odd number of items".into(),
                    });
                }
                let target = self.top()?.clone();
                self.set_items(&target, items)?;
            }
            O::AddItems => {
                let items = self.pop_mark()?;
                let target = self.top()?.clone();
                let mut keys = Vec::with_capacity(items.len());
                for it in &items {
                    keys.push(self.key(it, 0)?);
                }
                let max = self.limits.max_collection_len;
                let found = self.type_of(&target);
                match self.node_mut(&target) {
                    Some(Node::Set(s)) => {
                        if s.items().len().saturating_add(items.len()) > max {
                            return Err(limit("max_collection_len", max as u64));
                        }
                        for (k, it) in keys.into_iter().zip(items) {
                            s.insert(k, it);
                        }
                    }
                    _ => {
                        return Err(PickleErrorKind::TypeMismatch {
                            opcode: "ADDITEMS",
                            expected: "set",
                            found,
                        })
                    }
                }
            }
            O::Pop => {
                if self.stack.len() > self.fence() {
                    self.stack.pop();
                } else if self.marks.pop().is_none() {
                    return Err(self.underflow());
                }
            }
            O::Dup => {
                let t = self.top()?.clone();
                self.push(t);
            }
            O::Mark => {
                if self.marks.len() >= self.limits.max_marks {
                    return Err(limit("max_marks", self.limits.max_marks as u64));
                }
                self.marks.push(self.stack.len());
            }
            O::PopMark => {
                self.pop_mark()?;
            }
            O::Get | O::BinGet | O::LongBinGet => {
                let Arg::UInt(i) = arg else {
                    return Err(self.bad_arg());
                };
                let v = self
                    .memo
                    .get(&i)
                    .cloned()
                    .ok_or(PickleErrorKind::MemoKeyMissing(i))?;
                self.push(v);
            }
            O::Put | O::BinPut | O::LongBinPut => {
                let Arg::UInt(i) = arg else {
                    return Err(self.bad_arg());
                };
                let t = self.top()?.clone();
                self.memo_put(i, t)?;
            }
            O::Memoize => {
                let t = self.top()?.clone();
                let i = self.memo.len() as u64;
                self.memo_put(i, t)?;
            }
            O::Ext1 | O::Ext2 | O::Ext4 => {
                return Err(PickleErrorKind::Unsupported {
                    opcode: op.name(),
                    reason: "the copyreg extension registry resolves to arbitrary globals",
                })
            }
            O::Global => {
                let Arg::Global { module, name } = arg else {
                    return Err(self.bad_arg());
                };
                let v = self.global(module, name)?;
                self.push(v);
            }
            O::StackGlobal => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Some(m), Some(n)) = (module.as_str(), name.as_str()) else {
                    return Err(PickleErrorKind::TypeMismatch {
                        opcode: "STACK_GLOBAL",
                        expected: "two str",
                        found: format!("{} and {}", self.type_of(&module), self.type_of(&name)),
                    });
                };
                let v = self.global(m, n)?;
                self.push(v);
            }
            O::Inst => {
                let Arg::Global { module, name } = arg else {
                    return Err(self.bad_arg());
                };
                // resolve first so a forbidden class is reported as such
                let g = self.resolve(module, name)?;
                let args = self.pop_mark()?;
                let v = self.call(g, args)?;
                self.push(v);
            }
            O::Obj => {
                let mut items = self.pop_mark()?;
                if items.is_empty() {
                    return Err(self.underflow());
                }
                let cls = items.remove(0);
                let g = self.callable(&cls)?;
                let v = self.call(g, items)?;
                self.push(v);
            }
            O::Reduce | O::NewObj => {
                let args = self.pop()?;
                let f = self.pop()?;
                let g = self.callable(&f)?;
                let args = self.tuple_items(&args)?;
                let v = self.call(g, args)?;
                self.push(v);
            }
            O::NewObjEx => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let f = self.pop()?;
                let g = self.callable(&f)?;
                if !self.is_empty_mapping(&kwargs) {
                    return Err(PickleErrorKind::BadCall {
                        callable: g.dotted_name(),
                        reason: "keyword arguments are not accepted".into(),
                    });
                }
                let args = self.tuple_items(&args)?;
                let v = self.call(g, args)?;
                self.push(v);
            }
            O::Build => {
                let state = self.pop()?;
                let target = self.top()?.clone();
                self.build(&target, state)?;
            }
            O::PersId if self.legacy_objects.is_some() => {
                let key = match arg {
                    Arg::Str(s) => parse_py_int(&s),
                    _ => None,
                }
                .ok_or_else(|| {
                    PickleErrorKind::BadPersistentId("text persistent id is not an int".into())
                })?;
                let v = self.legacy_load(key)?;
                self.push(v);
            }
            O::PersId => {
                return Err(PickleErrorKind::BadPersistentId(match arg {
                    Arg::Str(s) => format!("text persistent id {s:?} (torch uses tuples)"),
                    _ => "text persistent id".into(),
                }))
            }
            O::BinPersId => {
                let pid = self.pop()?;
                let v = if self.legacy_objects.is_some() {
                    self.legacy_persistent_load(&pid)?
                } else {
                    self.persistent_load(&pid)?
                };
                self.push(v);
            }
        }
        Ok(())
    }

    fn bad_arg(&self) -> PickleErrorKind {
        PickleErrorKind::InvalidArgument {
            opcode: self.opname,
            reason: "unexpected argument kind".into(),
        }
    }

    fn memo_put(&mut self, i: u64, v: Value) -> R<()> {
        if !self.memo.contains_key(&i) && self.memo.len() >= self.limits.max_memo_entries {
            return Err(limit(
                "max_memo_entries",
                self.limits.max_memo_entries as u64,
            ));
        }
        self.memo.insert(i, v);
        Ok(())
    }

    fn extend_list(&mut self, target: &Value, items: Vec<Value>) -> R<()> {
        let max = self.limits.max_collection_len;
        let found = self.type_of(target);
        let opname = self.opname;
        match self.node_mut(target) {
            Some(Node::List(l)) => {
                if l.len().saturating_add(items.len()) > max {
                    return Err(limit("max_collection_len", max as u64));
                }
                l.extend(items);
                Ok(())
            }
            _ => Err(PickleErrorKind::TypeMismatch {
                opcode: opname,
                expected: "list",
                found,
            }),
        }
    }

    fn set_items(&mut self, target: &Value, items: Vec<Value>) -> R<()> {
        let mut keyed = Vec::with_capacity(items.len() / 2);
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let key = self.key(&k, 0)?;
            keyed.push((key, k, v));
        }
        let max = self.limits.max_collection_len;
        let found = self.type_of(target);
        let opname = self.opname;
        let d = match self.node_mut(target) {
            Some(Node::Dict(d)) => d,
            Some(Node::OrderedDict { items, .. }) => items,
            _ => {
                return Err(PickleErrorKind::TypeMismatch {
                    opcode: opname,
                    expected: "dict",
                    found,
                })
            }
        };
        if d.len().saturating_add(keyed.len()) > max {
            return Err(limit("max_collection_len", max as u64));
        }
        for (key, k, v) in keyed {
            d.insert(key, k, v);
        }
        Ok(())
    }

    fn resolve(&self, module: &str, name: &str) -> R<Global> {
        Global::resolve(module, name).ok_or_else(|| PickleErrorKind::ForbiddenGlobal {
            module: module.into(),
            name: name.into(),
        })
    }

    fn global(&mut self, module: &str, name: &str) -> R<Value> {
        if module == "torch" {
            if let Some(d) = TorchDtype::from_torch_name(name) {
                return self.alloc(Node::Dtype(d));
            }
        }
        if self.legacy_tensor_types && (module == "torch" || module == "torch.cuda") {
            let storage = name.strip_suffix("Tensor").map(|n| format!("{n}Storage"));
            if storage.is_some_and(|s| TorchDtype::from_storage_class(&s).is_some()) {
                return self.alloc(Node::Global(Global::TensorClass));
            }
        }
        let g = self.resolve(module, name)?;
        self.alloc(Node::Global(g))
    }

    /// torch's legacy_load `persistent_load`: a tuple names a pickled module
    /// class (refused: it carries source code); anything else is `int(saved_id)`.
    fn legacy_persistent_load(&mut self, pid: &Value) -> R<Value> {
        let key = match pid {
            Value::Int(i) => Some(*i),
            Value::Str(s) => parse_py_int(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok().and_then(parse_py_int),
            _ => {
                if let Some(Node::Tuple(_)) = self.node(pid) {
                    return Err(PickleErrorKind::BadPersistentId(
                        "a tuple names a pickled module class (with its source code); refused"
                            .into(),
                    ));
                }
                None
            }
        };
        let key = key.ok_or_else(|| {
            PickleErrorKind::BadPersistentId(format!(
                "expected a tensor or storage key, got {}",
                self.type_of(pid)
            ))
        })?;
        self.legacy_load(key)
    }

    fn legacy_load(&mut self, key: i64) -> R<Value> {
        if let Some(v) = self.legacy_seen.get(&key) {
            return Ok(v.clone());
        }
        let node = self
            .legacy_objects
            .and_then(|o| o.get(&key))
            .cloned()
            .ok_or_else(|| {
                PickleErrorKind::BadPersistentId(format!(
                    "key {key} is neither a tensor nor a storage of the checkpoint"
                ))
            })?;
        let v = self.alloc(node)?;
        self.legacy_seen.insert(key, v.clone());
        Ok(v)
    }

    fn callable(&self, v: &Value) -> R<Global> {
        match self.node(v) {
            Some(Node::Global(g)) => Ok(*g),
            _ => Err(self.mismatch("an allowed class or function", v)),
        }
    }

    fn tuple_items(&self, v: &Value) -> R<Vec<Value>> {
        match self.node(v) {
            Some(Node::Tuple(items)) => Ok(items.clone()),
            _ => Err(self.mismatch("tuple", v)),
        }
    }

    fn is_empty_mapping(&self, v: &Value) -> bool {
        match self.node(v) {
            Some(Node::Dict(d)) => d.is_empty(),
            Some(Node::OrderedDict { items, attrs }) => items.is_empty() && attrs.is_empty(),
            _ => false,
        }
    }

    fn bad_call(&self, g: Global, reason: impl Into<String>) -> PickleErrorKind {
        PickleErrorKind::BadCall {
            callable: g.dotted_name(),
            reason: reason.into(),
        }
    }

    fn int_arg(&self, g: Global, v: &Value, what: &str) -> R<u64> {
        match v.as_i64() {
            Some(i) if i >= 0 => Ok(i as u64),
            _ => Err(self.bad_call(
                g,
                format!("{what} must be a non-negative int, got {}", self.type_of(v)),
            )),
        }
    }

    fn dims(&self, g: Global, v: &Value, what: &str) -> R<Vec<u64>> {
        let items = match self.node(v) {
            Some(Node::Tuple(items)) | Some(Node::List(items)) => items,
            _ => {
                return Err(self.bad_call(
                    g,
                    format!("{what} must be a tuple, got {}", self.type_of(v)),
                ))
            }
        };
        if items.len() > self.limits.max_dims {
            return Err(limit("max_dims", self.limits.max_dims as u64));
        }
        items.iter().map(|it| self.int_arg(g, it, what)).collect()
    }

    fn call(&mut self, g: Global, args: Vec<Value>) -> R<Value> {
        match g {
            Global::RebuildTensorV2 | Global::RebuildTensorV3 => {
                let t = self.rebuild_tensor(g, &args)?;
                self.alloc(Node::Tensor(t))
            }
            Global::RebuildParameter | Global::RebuildParameterWithState => {
                let want = if g == Global::RebuildParameter { 3 } else { 4 };
                if args.len() != want {
                    return Err(self.bad_call(g, format!("expected {want} arguments")));
                }
                let mut t = match self.node(&args[0]) {
                    Some(Node::Tensor(t)) => t.clone(),
                    _ => return Err(self.bad_call(g, "data must be a tensor")),
                };
                t.requires_grad = matches!(args[1], Value::Bool(true) | Value::Int(1));
                t.is_parameter = true;
                if !self.is_empty_mapping(&args[2]) && args[2] != Value::None {
                    return Err(self.bad_call(g, "backward hooks must be empty"));
                }
                if want == 4 && !self.is_empty_state(&args[3]) {
                    return Err(self.bad_call(g, "parameter state must be empty"));
                }
                self.alloc(Node::Tensor(t))
            }
            Global::RebuildFromTypeV2 => {
                if args.len() != 4 {
                    return Err(self.bad_call(g, "expected 4 arguments"));
                }
                let func = self.callable(&args[0])?;
                if !matches!(
                    func,
                    Global::RebuildTensorV2 | Global::RebuildTensorV3 | Global::RebuildParameter
                ) {
                    return Err(self.bad_call(
                        g,
                        format!(
                            "func {} is not a tensor rebuild function",
                            func.dotted_name()
                        ),
                    ));
                }
                let param = match self.node(&args[1]) {
                    Some(Node::Global(Global::TensorClass)) => false,
                    Some(Node::Global(Global::ParameterClass)) => true,
                    _ => {
                        return Err(
                            self.bad_call(g, "new_type must be torch.Tensor or torch.nn.Parameter")
                        )
                    }
                };
                if !self.is_empty_state(&args[3]) {
                    return Err(self.bad_call(g, "tensor subclass state must be empty"));
                }
                let inner = self.tuple_items(&args[2])?;
                let v = self.call(func, inner)?;
                if let Some(Node::Tensor(t)) = self.node_mut(&v) {
                    t.is_parameter |= param;
                }
                Ok(v)
            }
            Global::OrderedDict => {
                let mut items = Dict::default();
                match args.as_slice() {
                    [] => {}
                    [pairs] => {
                        let list = match self.node(pairs) {
                            Some(Node::List(l)) | Some(Node::Tuple(l)) => l.clone(),
                            _ => return Err(self.bad_call(g, "argument must be a list of pairs")),
                        };
                        for p in list {
                            let kv = match self.node(&p) {
                                Some(Node::Tuple(kv)) | Some(Node::List(kv)) if kv.len() == 2 => {
                                    kv.clone()
                                }
                                _ => return Err(self.bad_call(g, "items must be pairs")),
                            };
                            let key = self.key(&kv[0], 0)?;
                            items.insert(key, kv[0].clone(), kv[1].clone());
                        }
                    }
                    _ => return Err(self.bad_call(g, "too many arguments")),
                }
                self.alloc(Node::OrderedDict {
                    items,
                    attrs: Dict::default(),
                })
            }
            Global::TorchSize => {
                let dims = match args.as_slice() {
                    [] => Vec::new(),
                    [d] => self.dims(g, d, "size")?,
                    _ => return Err(self.bad_call(g, "expected one argument")),
                };
                let items = dims.into_iter().map(|d| Value::Int(d as i64)).collect();
                self.alloc(Node::Tuple(items))
            }
            Global::NumpyReconstruct => {
                if args.len() != 3 {
                    return Err(self.bad_call(g, "expected 3 arguments"));
                }
                if !matches!(
                    self.node(&args[0]),
                    Some(Node::Global(Global::NumpyNdarray))
                ) {
                    return Err(self.bad_call(g, "subtype must be numpy.ndarray"));
                }
                self.alloc(Node::NumpyArrayStub)
            }
            Global::NumpyDtype => {
                let descr = match args.first() {
                    Some(Value::Str(s)) => s.to_string(),
                    _ => return Err(self.bad_call(g, "first argument must be a type string")),
                };
                if args.len() > 3 {
                    return Err(self.bad_call(g, "expected at most 3 arguments"));
                }
                if !is_plain_numpy_descr(&descr) {
                    return Err(self.bad_call(
                        g,
                        format!("unsupported numpy dtype {descr:?} (object/structured types are refused)"),
                    ));
                }
                self.alloc(Node::NumpyDtype(NumpyDtype {
                    descr,
                    byteorder: '=',
                }))
            }
            Global::NumpyScalar => {
                let (dt, data) = match args.as_slice() {
                    [dt, Value::Bytes(b)] => (dt, b.clone()),
                    [dt, Value::Str(s)] => (dt, Arc::from(latin1_bytes(s)?)),
                    _ => return Err(self.bad_call(g, "expected (dtype, bytes)")),
                };
                let dtype = match self.node(dt) {
                    Some(Node::NumpyDtype(d)) => d.clone(),
                    _ => return Err(self.bad_call(g, "first argument must be a numpy.dtype")),
                };
                self.alloc(Node::NumpyScalar { dtype, data })
            }
            Global::CodecsEncode => match args.as_slice() {
                [Value::Str(s), Value::Str(enc)]
                    if matches!(&**enc, "latin1" | "latin-1" | "iso-8859-1") =>
                {
                    let b = latin1_bytes(s)?;
                    self.account_bytes(b.len())?;
                    Ok(Value::Bytes(Arc::from(b)))
                }
                _ => Err(self.bad_call(g, "only encode(str, 'latin1') is accepted")),
            },
            Global::NumpyFromBuffer => {
                let (buf, dt, shape, order) = match args.as_slice() {
                    [b, d, s, o] => (b, d, s, o),
                    _ => return Err(self.bad_call(g, "expected (buffer, dtype, shape, order)")),
                };
                let data: Arc<[u8]> = match buf {
                    Value::Bytes(b) => b.clone(),
                    _ => match self.node(buf) {
                        Some(Node::ByteArray(b)) => b.clone(),
                        _ => return Err(self.bad_call(g, "buffer must be bytes")),
                    },
                };
                let dtype = match self.node(dt) {
                    Some(Node::NumpyDtype(d)) => d.clone(),
                    _ => return Err(self.bad_call(g, "dtype must be a numpy.dtype")),
                };
                let shape = self.dims(g, shape, "shape")?;
                let fortran_order = match order.as_str() {
                    Some("C") => false,
                    Some("F") => true,
                    _ => return Err(self.bad_call(g, "order must be 'C' or 'F'")),
                };
                let arr = NumpyArray {
                    dtype,
                    shape,
                    fortran_order,
                    data,
                };
                check_numpy_len(&arr).map_err(|r| self.bad_call(g, r))?;
                self.alloc(Node::NumpyArray(arr))
            }
            Global::BuiltinSet | Global::BuiltinFrozenSet => {
                let items = match args.as_slice() {
                    [] => Vec::new(),
                    [l] => match self.node(l) {
                        Some(Node::List(v)) | Some(Node::Tuple(v)) => v.clone(),
                        _ => return Err(self.bad_call(g, "argument must be a list")),
                    },
                    _ => return Err(self.bad_call(g, "expected at most one argument")),
                };
                self.check_len(items.len())?;
                let mut s = Set::default();
                for it in items {
                    let k = self.key(&it, 0)?;
                    s.insert(k, it);
                }
                self.alloc(if g == Global::BuiltinSet {
                    Node::Set(s)
                } else {
                    Node::FrozenSet(s)
                })
            }
            Global::BuiltinBytes | Global::BuiltinByteArray => {
                let b: Vec<u8> = match args.as_slice() {
                    [] => Vec::new(),
                    [Value::Bytes(b)] => b.to_vec(),
                    [Value::Str(s), Value::Str(enc)]
                        if matches!(&**enc, "latin1" | "latin-1" | "iso-8859-1") =>
                    {
                        latin1_bytes(s)?
                    }
                    [l] => match self.node(l) {
                        Some(Node::List(v)) => v
                            .iter()
                            .map(|x| x.as_i64().and_then(|i| u8::try_from(i).ok()))
                            .collect::<Option<Vec<u8>>>()
                            .ok_or_else(|| self.bad_call(g, "list items must be 0..=255"))?,
                        _ => return Err(self.bad_call(g, "unsupported argument")),
                    },
                    _ => return Err(self.bad_call(g, "unsupported arguments")),
                };
                self.account_bytes(b.len())?;
                if g == Global::BuiltinBytes {
                    Ok(Value::Bytes(Arc::from(b)))
                } else {
                    self.alloc(Node::ByteArray(Arc::from(b)))
                }
            }
            Global::StorageClass { .. }
            | Global::TensorClass
            | Global::ParameterClass
            | Global::NumpyNdarray => Err(self.bad_call(
                g,
                "this class may appear as data but is never called by torch.save",
            )),
        }
    }

    fn is_empty_state(&self, v: &Value) -> bool {
        match v {
            Value::None => true,
            _ => match self.node(v) {
                Some(Node::Dict(d)) => d.is_empty(),
                Some(Node::OrderedDict { items, attrs }) => items.is_empty() && attrs.is_empty(),
                // (dict_state, slots_state) form
                Some(Node::Tuple(t)) => {
                    t.len() == 2
                        && t.iter()
                            .all(|x| *x == Value::None || self.is_empty_mapping(x))
                }
                _ => false,
            },
        }
    }

    fn rebuild_tensor(&self, g: Global, args: &[Value]) -> R<Tensor> {
        let v3 = g == Global::RebuildTensorV3;
        let (min, max) = if v3 { (7, 8) } else { (6, 7) };
        if args.len() < min || args.len() > max {
            return Err(self.bad_call(
                g,
                format!("expected {min} or {max} arguments, got {}", args.len()),
            ));
        }
        let storage = match self.node(&args[0]) {
            Some(Node::Storage(s)) => s.clone(),
            _ => {
                return Err(self.bad_call(
                    g,
                    format!(
                        "storage must come from a persistent id, got {}",
                        self.type_of(&args[0])
                    ),
                ))
            }
        };
        let offset = self.int_arg(g, &args[1], "storage_offset")?;
        let shape = self.dims(g, &args[2], "size")?;
        let stride = self.dims(g, &args[3], "stride")?;
        if shape.len() != stride.len() {
            return Err(self.bad_call(g, "size and stride have different lengths"));
        }
        let requires_grad = matches!(args[4], Value::Bool(true) | Value::Int(1));
        if args[5] != Value::None && !self.is_empty_mapping(&args[5]) {
            return Err(self.bad_call(g, "backward hooks must be empty"));
        }
        let dtype = if v3 {
            match self.node(&args[6]) {
                Some(Node::Dtype(d)) => *d,
                _ => return Err(self.bad_call(g, "dtype must be a torch dtype")),
            }
        } else {
            storage.dtype
        };
        if let Some(meta) = args.get(if v3 { 7 } else { 6 }) {
            if *meta != Value::None && !self.is_empty_mapping(meta) {
                return Err(self.bad_call(g, "tensor metadata must be empty"));
            }
        }
        // legacy storage views: shift by the view's element offset (in storage dtype units)
        let view_elems = if storage.view_offset > 0 {
            let bytes = storage
                .view_offset
                .checked_mul(storage.dtype.element_size())
                .ok_or_else(|| self.bad_call(g, "view offset overflows"))?;
            if bytes % dtype.element_size() != 0 {
                return Err(self.bad_call(g, "view offset not aligned to dtype"));
            }
            bytes / dtype.element_size()
        } else {
            0
        };
        let storage_offset = offset
            .checked_add(view_elems)
            .ok_or_else(|| self.bad_call(g, "storage offset overflows"))?;
        Ok(Tensor {
            storage,
            dtype,
            storage_offset,
            shape,
            stride,
            requires_grad,
            is_parameter: false,
        })
    }

    fn ascii_str(&self, v: &Value) -> Option<String> {
        match v {
            Value::Str(s) => Some(s.to_string()),
            Value::Bytes(b) if b.is_ascii() => std::str::from_utf8(b).ok().map(String::from),
            _ => None,
        }
    }

    fn persistent_load(&mut self, pid: &Value) -> R<Value> {
        let items = match self.node(pid) {
            Some(Node::Tuple(t)) => t.clone(),
            _ => {
                return Err(PickleErrorKind::BadPersistentId(format!(
                    "expected a tuple, got {}",
                    self.type_of(pid)
                )))
            }
        };
        let bad = |m: &str| PickleErrorKind::BadPersistentId(m.to_string());
        let typename = items
            .first()
            .and_then(|v| self.ascii_str(v))
            .ok_or_else(|| bad("missing type name"))?;
        if typename != "storage" {
            return Err(bad(&format!(
                "type {typename:?} is not 'storage' (pickled modules carry source code and are refused)"
            )));
        }
        if items.len() != 5 && items.len() != 6 {
            return Err(bad("a storage id has 5 (zip) or 6 (legacy) fields"));
        }
        let (dtype, untyped) = match self.node(&items[1]) {
            Some(Node::Global(Global::StorageClass { dtype, untyped })) => (*dtype, *untyped),
            _ => return Err(bad("storage type is not a torch storage class")),
        };
        let key = match &items[2] {
            Value::Int(i) => i.to_string(),
            v => self
                .ascii_str(v)
                .ok_or_else(|| bad("storage key must be a string"))?,
        };
        if key.is_empty() || key.contains('/') || key.contains('\\') || key == ".." || key == "." {
            return Err(bad("storage key must be a plain name"));
        }
        let location = self
            .ascii_str(&items[3])
            .ok_or_else(|| bad("location must be a string"))?;
        let numel = items[4]
            .as_i64()
            .filter(|&n| n >= 0)
            .ok_or_else(|| bad("numel must be a non-negative int"))? as u64;
        let mut view_offset = 0;
        if let Some(view) = items.get(5) {
            if *view != Value::None {
                let vm = match self.node(view) {
                    Some(Node::Tuple(t)) if t.len() == 3 => t.clone(),
                    _ => return Err(bad("view metadata must be (key, offset, size)")),
                };
                view_offset = vm[1]
                    .as_i64()
                    .filter(|&n| n >= 0)
                    .ok_or_else(|| bad("view offset must be a non-negative int"))?
                    as u64;
            }
        }
        self.alloc(Node::Storage(StorageRef {
            key,
            dtype,
            untyped,
            location,
            numel,
            view_offset,
        }))
    }

    fn build(&mut self, target: &Value, state: Value) -> R<()> {
        let tname = self.type_of(target);
        match self.node(target) {
            Some(Node::OrderedDict { .. }) => {
                // state is a dict of attributes, or (dict, slots)
                let dict_state = match self.node(&state) {
                    Some(Node::Dict(d)) => d.clone(),
                    Some(Node::Tuple(t)) if t.len() == 2 => match self.node(&t[0]) {
                        Some(Node::Dict(d)) => d.clone(),
                        _ if t[0] == Value::None => Dict::default(),
                        _ => return Err(self.mismatch("dict state", &state)),
                    },
                    _ if state == Value::None => Dict::default(),
                    _ => return Err(self.mismatch("dict state", &state)),
                };
                if let Some(Node::OrderedDict { attrs, .. }) = self.node_mut(target) {
                    for (k, v) in dict_state.entries() {
                        if let Value::Str(s) = k {
                            attrs.insert(Key::Str(s.clone()), k.clone(), v.clone());
                        }
                    }
                }
                Ok(())
            }
            Some(Node::NumpyArrayStub) => {
                let arr = self.numpy_state(&state)?;
                if let Some(n) = self.node_mut(target) {
                    *n = Node::NumpyArray(arr);
                }
                Ok(())
            }
            Some(Node::NumpyDtype(_)) => {
                let t = match self.node(&state) {
                    Some(Node::Tuple(t)) => t.clone(),
                    _ => return Err(self.mismatch("numpy dtype state tuple", &state)),
                };
                if t.len() < 8 {
                    return Err(self.mismatch("numpy dtype state tuple", &state));
                }
                let bo = match t[1].as_str() {
                    Some(s) if s.len() == 1 && "<>|=".contains(s) => {
                        s.chars().next().unwrap_or('=')
                    }
                    _ => return Err(self.mismatch("byte order string", &t[1])),
                };
                if t[2] != Value::None || t[3] != Value::None || t[4] != Value::None {
                    return Err(PickleErrorKind::BadCall {
                        callable: "numpy.dtype".into(),
                        reason: "structured/sub-array dtypes are refused".into(),
                    });
                }
                if let Some(Node::NumpyDtype(d)) = self.node_mut(target) {
                    d.byteorder = bo;
                }
                Ok(())
            }
            _ => Err(PickleErrorKind::TypeMismatch {
                opcode: "BUILD",
                expected: "OrderedDict, numpy array or numpy dtype",
                found: tname,
            }),
        }
    }

    fn numpy_state(&self, state: &Value) -> R<NumpyArray> {
        let bad = |r: &str| PickleErrorKind::BadCall {
            callable: "numpy.ndarray.__setstate__".into(),
            reason: r.into(),
        };
        let t = match self.node(state) {
            Some(Node::Tuple(t)) if t.len() == 5 || t.len() == 4 => t.clone(),
            _ => return Err(bad("state must be (version, shape, dtype, fortran, data)")),
        };
        let (shape_v, dt_v, fort_v, data_v) = if t.len() == 5 {
            (&t[1], &t[2], &t[3], &t[4])
        } else {
            (&t[0], &t[1], &t[2], &t[3])
        };
        let shape = self.dims(Global::NumpyReconstruct, shape_v, "shape")?;
        let dtype = match self.node(dt_v) {
            Some(Node::NumpyDtype(d)) => d.clone(),
            _ => return Err(bad("dtype must be a numpy.dtype")),
        };
        let fortran_order = matches!(fort_v, Value::Bool(true) | Value::Int(1));
        let data: Arc<[u8]> = match data_v {
            Value::Bytes(b) => b.clone(),
            Value::Str(s) => Arc::from(latin1_bytes(s)?),
            _ => match self.node(data_v) {
                Some(Node::ByteArray(b)) => b.clone(),
                _ => return Err(bad("data must be bytes (object arrays are refused)")),
            },
        };
        let arr = NumpyArray {
            dtype,
            shape,
            fortran_order,
            data,
        };
        check_numpy_len(&arr).map_err(|r| bad(&r))?;
        Ok(arr)
    }
}

/// Python `int(str)` for plain decimal text (surrounding whitespace, optional sign).
fn parse_py_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn check_numpy_len(a: &NumpyArray) -> Result<(), String> {
    let elsize = numpy_itemsize(&a.dtype.descr).ok_or("unknown dtype size")?;
    let need = a
        .shape
        .iter()
        .try_fold(elsize, |acc, &d| acc.checked_mul(d))
        .ok_or("array size overflows")?;
    if need != a.data.len() as u64 {
        return Err(format!(
            "data has {} bytes, shape and dtype need {need}",
            a.data.len()
        ));
    }
    Ok(())
}

fn latin1_bytes(s: &str) -> R<Vec<u8>> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or(PickleErrorKind::BadCall {
            callable: "numpy".into(),
            reason: "latin-1 encoded data string has non-latin-1 characters".into(),
        })
}

fn is_plain_numpy_descr(d: &str) -> bool {
    numpy_itemsize(d).is_some()
}

/// Item size of a simple numpy type code (`f4`, `i8`, `b1`, `u2`, `c16`, ...).
pub(crate) fn numpy_itemsize(d: &str) -> Option<u64> {
    let d = d.trim_start_matches(['<', '>', '|', '=']);
    let (kind, size) = d.split_at(d.len().min(1));
    let n: u64 = size.parse().ok()?;
    let ok = match kind {
        "b" => n == 1,
        "i" | "u" => matches!(n, 1 | 2 | 4 | 8),
        "f" => matches!(n, 2 | 4 | 8),
        "c" => matches!(n, 8 | 16),
        _ => false,
    };
    ok.then_some(n)
}
