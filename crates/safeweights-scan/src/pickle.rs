//! Symbolic walk of pickle streams: every opcode of every pickle to the end
//! of the data, with a stack and memo good enough to resolve `STACK_GLOBAL`,
//! memoized globals, `getattr`/`__import__` chains, and to judge the callable
//! of every `REDUCE`, `OBJ`, `INST`, `NEWOBJ`, `BUILD` and `EXT*`.
//!
//! Decoding of opcodes is `safeweights_pickle::opcodes::Ops`; nothing here
//! evaluates anything.
//!
//! Beyond globals the walk follows what a hostile PyTorch or joblib file
//! breaks: storages declared by persistent ids (their size is checked
//! against the data records by the scanner), tensor views against their
//! storage, `BUILD`/`SETITEM` applied to storages and tensors, joblib's
//! array bytes between opcodes (skipped, or walked as the nested pickle of
//! an object array), the copyreg extension registry, Python 2 names of
//! protocol 0-2 pickles, and protocol 4 frames crossed by an opcode.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use safeweights_pickle::opcodes::{Arg, BigInt, Opcode, Ops};

use crate::globals::{is_getattr, is_import_function, judge, py2_mapping, Verdict};
use crate::rules::RuleId;
use crate::severity::Severity;
use crate::torch_checks::{self, returns_tensor, storage_element_size, StorageDecl};

/// A finding without file/member (filled in by the caller).
#[derive(Debug, Clone)]
pub(crate) struct RawFinding {
    pub severity: Severity,
    pub rule: RuleId,
    pub what: String,
    pub why: String,
    pub offset: Option<u64>,
}

/// How far to walk.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Walk {
    /// Every pickle until the end of the data.
    ToEnd,
    /// At most this many pickles (the legacy torch format: raw storages follow).
    Pickles(usize),
}

/// Context-dependent leniency.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    /// `__torch__.*` globals name TorchScript classes compiled from `code/`.
    pub torchscript: bool,
    /// The user's own allowed globals.
    pub allowed: std::sync::Arc<crate::options::AllowedGlobals>,
}

/// Result of walking a stream.
#[derive(Debug, Default)]
pub(crate) struct PickleScan {
    pub findings: Vec<RawFinding>,
    /// Number of pickles (STOPs) seen.
    pub pickles: usize,
    /// Bytes consumed (end of the last complete pickle, or where parsing broke).
    pub consumed: usize,
    /// A `joblib` wrapper was imported.
    pub joblib: bool,
    /// Whether parsing stopped on an error.
    pub broken: bool,
    /// Whether any global was imported at all.
    pub imports: usize,
    /// Storages declared by persistent ids, first declaration of each key.
    pub storages: Vec<StorageDecl>,
}

/// Element size of a NumPy dtype `descr` (`f8`, `<i4`, `U10`, `V24`);
/// `None` for object dtypes (their data is a pickle). `state_elsize` is the
/// element size in the dtype's pickled state, set for flexible types.
fn dtype_itemsize(descr: &str, state_elsize: Option<u64>) -> Option<Option<u64>> {
    let d = descr.trim_start_matches(['<', '>', '|', '=']);
    let kind = d.chars().next()?;
    if kind == 'O' {
        return Some(None);
    }
    if let Some(e) = state_elsize {
        return Some(Some(e));
    }
    let digits: String = d[kind.len_utf8()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let n: u64 = digits.parse().ok()?;
    Some(Some(if kind == 'U' { n.checked_mul(4)? } else { n }))
}

/// Most storages remembered per stream (a hostile one may declare millions).
const MAX_STORAGES: usize = 1 << 16;

/// A joblib array between opcodes, as `NumpyArrayWrapper.read` reads it.
#[derive(Debug, Clone, Copy)]
enum Inline {
    /// Raw array bytes, after an alignment byte and its padding when `aligned`.
    Bytes { aligned: bool, len: u64 },
    /// An object array: a whole pickle (protocol 2) follows.
    Pickle,
}

#[derive(Debug, Clone)]
enum V {
    Mark,
    Str(Rc<str>),
    Int(Option<i64>),
    /// A small dict with its items (joblib array state).
    Dict(Rc<Vec<(V, V)>>),
    /// `numpy.dtype(descr, ...)`, with the element size its state gives.
    Dtype(Rc<str>, Option<u64>),
    /// A storage from a persistent id.
    Storage(Rc<StorageDecl>),
    /// A tensor rebuilt by torch.
    Tensor,
    /// A resolved global (dotted), whether it is a function, class or module attribute.
    Global(Rc<str>),
    /// A module object obtained through `__import__`.
    Module(Rc<str>),
    Tuple(Rc<Vec<V>>),
    /// The result of calling a global.
    Call(Rc<str>),
    Other,
}

const MAX_TUPLE: usize = 64;
const MAX_DICT: usize = 64;
const MAX_STR: usize = 4096;
const MAX_STACK: usize = 1 << 20;
const MAX_MEMO: usize = 1 << 20;

#[derive(Debug)]
struct GlobalUse {
    first_offset: u64,
    count: usize,
    verdict: Verdict,
    via: &'static str,
    called: Option<(&'static str, u64)>,
    /// Whether it is called with arguments from the file (`REDUCE`, `OBJ`,
    /// `INST`), not only instantiated by `NEWOBJ`.
    init_called: bool,
    /// The Python 2 name in the file, when a protocol 0-2 pickle's name
    /// was mapped to the Python 3 one (the key).
    original: Option<String>,
}

struct Machine<'c> {
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u64, V>,
    globals: BTreeMap<String, GlobalUse>,
    order: Vec<String>,
    out: Vec<RawFinding>,
    malformed: Option<(u64, String)>,
    ctx: &'c Context,
    joblib: bool,
    /// Protocol of the current pickle (0 until a PROTO opcode).
    proto: u8,
    /// copyreg extension codes registered by earlier calls in the stream.
    ext: HashMap<i64, (String, String)>,
    storages: Vec<StorageDecl>,
    storage_keys: HashMap<String, usize>,
    /// What the last opcode left to read between opcodes.
    inline: Option<Inline>,
    /// Whether a `NumpyArrayWrapper` BUILD reads array bytes (joblib does,
    /// a plain unpickler does not).
    reads_arrays: bool,
    /// Array regions walked as a plain unpickler would.
    plain_walks: usize,
}

fn py2str(b: &[u8]) -> V {
    if b.len() > MAX_STR {
        return V::Other;
    }
    V::Str(Rc::from(String::from_utf8_lossy(b).as_ref()))
}

impl<'c> Machine<'c> {
    fn new(ctx: &'c Context) -> Self {
        Machine {
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            globals: BTreeMap::new(),
            order: Vec::new(),
            out: Vec::new(),
            malformed: None,
            ctx,
            joblib: false,
            proto: 0,
            ext: HashMap::new(),
            storages: Vec::new(),
            storage_keys: HashMap::new(),
            inline: None,
            reads_arrays: true,
            plain_walks: 0,
        }
    }

    fn reset(&mut self) {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
        self.proto = 0;
    }

    fn finding(&mut self, severity: Severity, rule: RuleId, what: String, why: &str, offset: u64) {
        self.out.push(RawFinding {
            severity,
            rule,
            what,
            why: why.into(),
            offset: Some(offset),
        });
    }

    fn bad(&mut self, offset: u64, msg: impl Into<String>) {
        if self.malformed.is_none() {
            self.malformed = Some((offset, msg.into()));
        }
    }

    fn push(&mut self, v: V) -> bool {
        if self.stack.len() >= MAX_STACK {
            return false;
        }
        self.stack.push(v);
        true
    }

    fn pop(&mut self, offset: u64, op: &str) -> V {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() > floor {
            self.stack.pop().unwrap_or(V::Other)
        } else {
            self.bad(offset, format!("{op}: stack underflow"));
            V::Other
        }
    }

    fn pop_mark(&mut self, offset: u64, op: &str) -> Vec<V> {
        match self.marks.pop() {
            Some(m) => {
                let m = m.min(self.stack.len());
                let items = self.stack.split_off(m);
                // Remove the Mark sentinel itself.
                if matches!(self.stack.last(), Some(V::Mark)) {
                    self.stack.pop();
                }
                items
            }
            None => {
                self.bad(offset, format!("{op}: no MARK on the stack"));
                Vec::new()
            }
        }
    }

    /// A dict value with `items` (key, value, key, value, ...) added.
    fn dict(mut base: Vec<(V, V)>, items: Vec<V>) -> V {
        if base.len().saturating_add(items.len() / 2) > MAX_DICT {
            return V::Other;
        }
        let mut it = items.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            base.push((k, v));
        }
        V::Dict(Rc::new(base))
    }

    /// SETITEM(S): the target is the value under the popped items.
    fn set_items(&mut self, items: Vec<V>, op: &str, offset: u64) {
        let top = self.stack.last().cloned();
        match top {
            Some(V::Dict(d)) => {
                let merged = Self::dict(d.as_ref().clone(), items);
                if let Some(t) = self.stack.last_mut() {
                    *t = merged;
                }
            }
            other => self.mutates(other.as_ref(), op, offset),
        }
    }

    fn tuple(items: Vec<V>) -> V {
        if items.len() > MAX_TUPLE {
            V::Other
        } else {
            V::Tuple(Rc::new(items))
        }
    }

    /// Records an import of `module.name` (dotted form for display).
    fn import(&mut self, module: &str, name: &str, offset: u64, via: &'static str) -> V {
        let full = if name == "*" {
            module.to_string()
        } else {
            format!("{module}.{name}")
        };
        // `find_class` of protocol 0-2 pickles maps Python 2 names first.
        let mapped = (self.proto < 3 && name != "*")
            .then(|| py2_mapping(module, name))
            .flatten();
        let (module, name): (&str, String) = match mapped {
            Some((m, n)) => (m, n),
            None => (module, name.to_string()),
        };
        let name = name.as_str();
        // Keyed by what is imported; the name in the file is kept for display.
        let (key, original) = if self.proto < 3 && name != "*" && format!("{module}.{name}") != full
        {
            (format!("{module}.{name}"), Some(full))
        } else {
            (full, None)
        };
        if module == "joblib.numpy_pickle" {
            self.joblib = true;
        }
        let verdict = if self.ctx.torchscript
            && (module == "__torch__" || module.starts_with("__torch__."))
        {
            Verdict::Safe
        } else {
            match judge(module, name) {
                Verdict::Unknown if self.ctx.allowed.allows(module, name) => Verdict::Safe,
                verdict => verdict,
            }
        };
        match self.globals.get_mut(&key) {
            Some(g) => g.count += 1,
            None => {
                self.order.push(key.clone());
                self.globals.insert(
                    key.clone(),
                    GlobalUse {
                        first_offset: offset,
                        count: 1,
                        verdict,
                        via,
                        called: None,
                        init_called: false,
                        original,
                    },
                );
            }
        }
        V::Global(Rc::from(key.as_str()))
    }

    fn called(&mut self, callee: &V, op: &'static str, offset: u64) -> Rc<str> {
        match callee {
            V::Global(g) => {
                if let Some(u) = self.globals.get_mut(g.as_ref()) {
                    if u.called.is_none() {
                        u.called = Some((op, offset));
                    }
                    u.init_called |= matches!(op, "REDUCE" | "OBJ" | "INST");
                }
                g.clone()
            }
            V::Module(m) => {
                self.out.push(RawFinding {
                    severity: Severity::High,
                    rule: RuleId::PickleCallUnresolved,
                    what: format!("{op} calls the module object {m}"),
                    why: "calling a module object is never part of a weights file".into(),
                    offset: Some(offset),
                });
                m.clone()
            }
            other => {
                let desc = match other {
                    V::Call(c) => format!("the result of calling {c}"),
                    V::Str(_) => "a string".into(),
                    V::Tuple(_) => "a tuple".into(),
                    V::Int(_) => "an integer".into(),
                    V::Storage(_) => "a storage".into(),
                    V::Tensor => "a tensor".into(),
                    _ => "a value that is not a named global".into(),
                };
                self.out.push(RawFinding {
                    severity: Severity::High,
                    rule: RuleId::PickleCallUnresolved,
                    what: format!("{op} at offset {offset} calls {desc}"),
                    why:
                        "the callable cannot be resolved to an allowlisted global; loading calls it"
                            .into(),
                    offset: Some(offset),
                });
                Rc::from("<unresolved>")
            }
        }
    }

    /// A tensor view `(storage, offset, size, stride, ...)` must stay inside
    /// its storage.
    fn check_view(&mut self, g: &str, items: &[V], offset: u64) {
        if !torch_checks::is_view_rebuilder(g) {
            return;
        }
        let [V::Storage(st), V::Int(Some(start)), V::Tuple(size), V::Tuple(stride), rest @ ..] =
            items
        else {
            return;
        };
        let ints = |t: &[V]| -> Option<Vec<i64>> {
            t.iter()
                .map(|v| match v {
                    V::Int(Some(i)) => Some(*i),
                    _ => None,
                })
                .collect()
        };
        let (Some(size), Some(stride)) = (ints(size), ints(stride)) else {
            return;
        };
        // `_rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, ...)`.
        let dtype = match rest.get(2) {
            Some(V::Global(d)) if g == "torch._utils._rebuild_tensor_v3" => Some(d.as_ref()),
            _ => None,
        };
        let view = torch_checks::View {
            start: *start,
            size: &size,
            stride: &stride,
            dtype,
        };
        if let Some(what) = view.problem(st) {
            self.finding(
                Severity::High,
                RuleId::TorchViewBounds,
                what,
                torch_checks::VIEW_WHY,
                offset,
            );
        }
    }

    /// A storage from a persistent id `('storage', Class, key, location, numel)`.
    fn persistent(&mut self, pid: V, offset: u64) -> V {
        let V::Tuple(items) = pid else {
            return V::Other;
        };
        let [V::Str(tag), V::Global(class), V::Str(key), _, V::Int(Some(numel))] = items.as_slice()
        else {
            return V::Other;
        };
        let Ok(numel) = u64::try_from(*numel) else {
            return V::Other;
        };
        if tag.as_ref() != "storage" {
            return V::Other;
        }
        let decl = StorageDecl {
            key: key.to_string(),
            class: class.to_string(),
            numel,
            nbytes: storage_element_size(class).and_then(|e| numel.checked_mul(e)),
            offset,
        };
        match self.storage_keys.get(key.as_ref()) {
            Some(&i) => {
                let first = &self.storages[i];
                if first.class != decl.class || first.numel != decl.numel {
                    let what = format!(
                        "storage {:?} is declared twice: {} x {} at offset {}, then {} x {}",
                        decl.key, first.numel, first.class, first.offset, decl.numel, decl.class
                    );
                    self.finding(
                        Severity::High,
                        RuleId::TorchStorageSize,
                        what,
                        "torch keeps the first declaration: tensors built on the second read past it",
                        offset,
                    );
                }
            }
            None if self.storages.len() < MAX_STORAGES => {
                self.storage_keys
                    .insert(decl.key.clone(), self.storages.len());
                self.storages.push(decl.clone());
            }
            None => {}
        }
        V::Storage(Rc::new(decl))
    }

    /// `SETITEM`, `APPEND` or `BUILD` applied to a storage or tensor.
    fn mutates(&mut self, target: Option<&V>, op: &str, offset: u64) {
        let what = match target {
            Some(V::Storage(st)) => format!("storage {:?}", st.key),
            Some(V::Tensor) => "a tensor".to_string(),
            _ => return,
        };
        let (severity, why) = if op == "BUILD" {
            (
                Severity::Critical,
                "BUILD on a tensor calls Tensor.__setstate__, whose legacy form set_()s arbitrary storage, offset, size and stride: the weights_only heap-corruption class (CVE-2026-24747)",
            )
        } else {
            (
                Severity::High,
                "torch.save never writes into a storage or tensor after building it; unpicklers that allow it corrupt memory (CVE-2026-24747)",
            )
        };
        self.finding(
            severity,
            RuleId::TorchTensorMutation,
            format!("{op} at offset {offset} is applied to {what}"),
            why,
            offset,
        );
    }

    /// joblib: after BUILD of a `NumpyArrayWrapper`, `read_array` reads the
    /// array from the stream (object arrays as a nested pickle).
    fn joblib_array(&mut self, state: &V, offset: u64) {
        let V::Dict(items) = state else {
            self.bad(offset, "joblib array wrapper without its state dict");
            return;
        };
        let get = |k: &str| {
            items
                .iter()
                .rev()
                .find(|(key, _)| matches!(key, V::Str(s) if s.as_ref() == k))
                .map(|(_, v)| v)
        };
        let aligned = matches!(get("numpy_array_alignment_bytes"), Some(V::Int(Some(_))));
        let (Some(V::Dtype(descr, elsize)), Some(V::Tuple(shape))) = (get("dtype"), get("shape"))
        else {
            self.bad(offset, "joblib array wrapper without a dtype or shape");
            return;
        };
        let itemsize = match dtype_itemsize(descr, *elsize) {
            Some(Some(n)) => n,
            Some(None) => {
                self.inline = Some(Inline::Pickle);
                return;
            }
            None => {
                self.bad(offset, format!("joblib array of unknown dtype {descr:?}"));
                return;
            }
        };
        let count = shape.iter().try_fold(1u64, |acc, v| match v {
            V::Int(Some(n)) => u64::try_from(*n).ok().and_then(|n| acc.checked_mul(n)),
            _ => None,
        });
        match count.and_then(|c| c.checked_mul(itemsize)) {
            Some(len) => self.inline = Some(Inline::Bytes { aligned, len }),
            None => self.bad(
                offset,
                "joblib array shape is not a tuple of small integers",
            ),
        }
    }

    /// REDUCE special cases that yield new references: `getattr(x, "name")`
    /// and `__import__("mod")`; both are critical themselves and also judged
    /// as the global they produce.
    fn reduce_result(&mut self, callee: &V, args: &V, offset: u64) -> V {
        let (V::Global(g), V::Tuple(items)) = (callee, args) else {
            return match callee {
                V::Global(g) if returns_tensor(g) => V::Tensor,
                V::Global(g) => V::Call(g.clone()),
                _ => V::Other,
            };
        };
        if returns_tensor(g) {
            self.check_view(g, items, offset);
            return V::Tensor;
        }
        if matches!(g.as_ref(), "numpy.dtype" | "numpy.core.multiarray.dtype") {
            if let Some(V::Str(d)) = items.first() {
                return V::Dtype(d.clone(), None);
            }
        }
        if g.as_ref() == "copyreg.add_extension" {
            if let [V::Str(m), V::Str(n), V::Int(Some(code))] = items.as_slice() {
                self.ext.insert(*code, (m.to_string(), n.to_string()));
            }
        }
        if is_import_function(g) {
            if let Some(V::Str(m)) = items.first() {
                let m = m.clone();
                // Judge the module itself as an import of its top level.
                let _ = self.import(&m, "*", offset, "__import__");
                return V::Module(m);
            }
        }
        if is_getattr(g) && items.len() >= 2 {
            if let V::Str(attr) = &items[1] {
                let base = match &items[0] {
                    V::Global(b) | V::Module(b) => Some(b.clone()),
                    _ => None,
                };
                if let Some(base) = base {
                    let (module, name) = match base.rsplit_once('.') {
                        Some((m, n)) if !matches!(items[0], V::Module(_)) => {
                            (m.to_string(), format!("{n}.{attr}"))
                        }
                        _ => (base.to_string(), attr.to_string()),
                    };
                    return self.import(&module, &name, offset, "getattr");
                }
            }
        }
        V::Call(g.clone())
    }

    fn step(&mut self, offset: u64, opcode: Opcode, arg: Arg<'_>) -> Result<bool, ()> {
        use Opcode as O;
        let ok = match opcode {
            O::Int | O::BinInt | O::BinInt1 | O::BinInt2 | O::Long | O::Long1 | O::Long4 => {
                let v = match arg {
                    Arg::Int(i) => V::Int(Some(i)),
                    Arg::Bool(b) => V::Int(Some(i64::from(b))),
                    Arg::UInt(u) => V::Int(i64::try_from(u).ok()),
                    Arg::BigInt(_) => V::Int(None),
                    _ => V::Other,
                };
                self.push(v)
            }
            O::String | O::BinString | O::ShortBinString => {
                let v = match &arg {
                    Arg::PyStr(b) => py2str(b),
                    Arg::Str(s) if s.len() <= MAX_STR => V::Str(Rc::from(s.as_ref())),
                    _ => V::Other,
                };
                self.push(v)
            }
            O::Unicode | O::ShortBinUnicode | O::BinUnicode | O::BinUnicode8 => {
                let v = match &arg {
                    Arg::Str(s) if s.len() <= MAX_STR => V::Str(Rc::from(s.as_ref())),
                    _ => V::Other,
                };
                self.push(v)
            }
            O::BinBytes | O::ShortBinBytes | O::BinBytes8 | O::ByteArray8 | O::NextBuffer => {
                self.push(V::Other)
            }
            O::ReadonlyBuffer => true,
            O::None | O::NewTrue | O::NewFalse | O::Float | O::BinFloat => self.push(V::Other),
            O::EmptyDict => self.push(V::Dict(Rc::new(Vec::new()))),
            O::EmptyList | O::EmptySet => self.push(V::Other),
            O::EmptyTuple => self.push(V::Tuple(Rc::new(Vec::new()))),
            O::Append => {
                self.pop(offset, "APPEND");
                let top = self.stack.last().cloned();
                self.mutates(top.as_ref(), "APPEND", offset);
                true
            }
            O::SetItem => {
                let v = self.pop(offset, "SETITEM");
                let k = self.pop(offset, "SETITEM");
                self.set_items(vec![k, v], "SETITEM", offset);
                true
            }
            O::SetItems => {
                let items = self.pop_mark(offset, "SETITEMS");
                self.set_items(items, "SETITEMS", offset);
                true
            }
            O::Appends | O::AddItems => {
                self.pop_mark(offset, opcode.name());
                let top = self.stack.last().cloned();
                self.mutates(top.as_ref(), opcode.name(), offset);
                true
            }
            O::Dict => {
                let items = self.pop_mark(offset, "DICT");
                self.push(Self::dict(Vec::new(), items))
            }
            O::List | O::FrozenSet => {
                self.pop_mark(offset, opcode.name());
                self.push(V::Other)
            }
            O::Tuple => {
                let items = self.pop_mark(offset, "TUPLE");
                self.push(Self::tuple(items))
            }
            O::Tuple1 | O::Tuple2 | O::Tuple3 => {
                let n = match opcode {
                    O::Tuple1 => 1,
                    O::Tuple2 => 2,
                    _ => 3,
                };
                let mut items: Vec<V> = (0..n).map(|_| self.pop(offset, opcode.name())).collect();
                items.reverse();
                self.push(Self::tuple(items))
            }
            O::Pop => {
                if matches!(self.stack.last(), Some(V::Mark))
                    && self.marks.last() == Some(&self.stack.len())
                {
                    self.pop_mark(offset, "POP");
                } else {
                    self.pop(offset, "POP");
                }
                true
            }
            O::Dup => {
                let top = self.stack.last().cloned();
                match top {
                    Some(v) => self.push(v),
                    None => {
                        self.bad(offset, "DUP: empty stack");
                        self.push(V::Other)
                    }
                }
            }
            O::Mark => {
                if self.marks.len() >= MAX_STACK || !self.push(V::Mark) {
                    false
                } else {
                    self.marks.push(self.stack.len());
                    true
                }
            }
            O::PopMark => {
                self.pop_mark(offset, "POP_MARK");
                true
            }
            O::Get | O::BinGet | O::LongBinGet => {
                let key = match arg {
                    Arg::Int(i) => u64::try_from(i).ok(),
                    Arg::UInt(u) => Some(u),
                    _ => None,
                };
                let v = key.and_then(|k| self.memo.get(&k).cloned());
                match v {
                    Some(v) => self.push(v),
                    None => {
                        self.bad(
                            offset,
                            format!("{}: memo key {key:?} was never stored", opcode.name()),
                        );
                        self.push(V::Other)
                    }
                }
            }
            O::Put | O::BinPut | O::LongBinPut | O::Memoize => {
                let key = match (opcode, arg) {
                    (O::Memoize, _) => Some(self.memo.len() as u64),
                    (_, Arg::Int(i)) => u64::try_from(i).ok(),
                    (_, Arg::UInt(u)) => Some(u),
                    _ => None,
                };
                let top = self.stack.last().cloned();
                match (key, top) {
                    (Some(k), Some(v)) if !matches!(v, V::Mark) => {
                        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&k) {
                            return Err(());
                        }
                        self.memo.insert(k, v);
                    }
                    _ => self.bad(offset, format!("{}: nothing to memoize", opcode.name())),
                }
                true
            }
            O::Ext1 | O::Ext2 | O::Ext4 => {
                let code = match arg {
                    Arg::Int(i) => Some(i),
                    Arg::UInt(u) => i64::try_from(u).ok(),
                    _ => None,
                };
                let shown = code.map_or_else(|| "?".to_string(), |c| c.to_string());
                // An earlier `copyreg.add_extension` in the stream names the target.
                let registered = code.and_then(|c| self.ext.get(&c).cloned());
                let (what, why) = match &registered {
                    Some((m, n)) => (
                        format!("{} loads extension code {shown}, registered earlier in the stream as {m}.{n}", opcode.name()),
                        "the pickle fills the copyreg extension registry itself, then imports through it",
                    ),
                    None => (
                        format!("{} loads extension code {shown}, which no standard registry entry defines", opcode.name()),
                        "the copyreg extension registry maps the code to an arbitrary global at load time; it cannot be judged from the file",
                    ),
                };
                self.finding(Severity::High, RuleId::PickleExt, what, why, offset);
                let v = match registered {
                    Some((m, n)) => self.import(&m, &n, offset, opcode.name()),
                    None => V::Global(Rc::from(format!("<extension {shown}>").as_str())),
                };
                self.push(v)
            }
            O::Global => {
                let v = match arg {
                    Arg::Global { module, name } => self.import(module, name, offset, "GLOBAL"),
                    _ => V::Other,
                };
                self.push(v)
            }
            O::StackGlobal => {
                let name = self.pop(offset, "STACK_GLOBAL");
                let module = self.pop(offset, "STACK_GLOBAL");
                let v = match (&module, &name) {
                    (V::Str(m), V::Str(n)) => self.import(m, n, offset, "STACK_GLOBAL"),
                    _ => {
                        self.out.push(RawFinding {
                            severity: Severity::High,
                            rule: RuleId::PickleGlobalUnresolved,
                            what: "STACK_GLOBAL with a module or name that is not a literal string"
                                .into(),
                            why:
                                "the imported global is computed at load time and cannot be judged"
                                    .into(),
                            offset: Some(offset),
                        });
                        V::Global(Rc::from("<unresolved>"))
                    }
                };
                self.push(v)
            }
            O::Inst => {
                self.pop_mark(offset, "INST");
                let v = match arg {
                    Arg::Global { module, name } => {
                        let g = self.import(module, name, offset, "INST");
                        let c = self.called(&g, "INST", offset);
                        V::Call(c)
                    }
                    _ => V::Other,
                };
                self.push(v)
            }
            O::Obj => {
                let mut items = self.pop_mark(offset, "OBJ");
                if items.is_empty() {
                    self.bad(offset, "OBJ: no class on the stack");
                    self.push(V::Other)
                } else {
                    let cls = items.remove(0);
                    let c = self.called(&cls, "OBJ", offset);
                    self.push(V::Call(c))
                }
            }
            O::Reduce => {
                let args = self.pop(offset, "REDUCE");
                let callee = self.pop(offset, "REDUCE");
                self.called(&callee, "REDUCE", offset);
                let v = self.reduce_result(&callee, &args, offset);
                self.push(v)
            }
            O::NewObj => {
                self.pop(offset, "NEWOBJ");
                let cls = self.pop(offset, "NEWOBJ");
                let c = self.called(&cls, "NEWOBJ", offset);
                if returns_tensor(&c) {
                    self.push(V::Tensor)
                } else {
                    self.push(V::Call(c))
                }
            }
            O::NewObjEx => {
                self.pop(offset, "NEWOBJ_EX");
                self.pop(offset, "NEWOBJ_EX");
                let cls = self.pop(offset, "NEWOBJ_EX");
                let c = self.called(&cls, "NEWOBJ_EX", offset);
                self.push(V::Call(c))
            }
            O::Build => {
                let state = self.pop(offset, "BUILD");
                match self.stack.last().cloned() {
                    Some(t @ (V::Storage(_) | V::Tensor)) => {
                        self.mutates(Some(&t), "BUILD", offset)
                    }
                    Some(V::Call(c))
                        if self.reads_arrays
                            && c.as_ref() == "joblib.numpy_pickle.NumpyArrayWrapper" =>
                    {
                        self.joblib_array(&state, offset)
                    }
                    Some(V::Dtype(d, _)) => {
                        // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
                        let elsize = match &state {
                            V::Tuple(t) => match t.get(5) {
                                Some(V::Int(Some(e))) => u64::try_from(*e).ok().filter(|&e| e > 0),
                                _ => None,
                            },
                            _ => None,
                        };
                        if let Some(top) = self.stack.last_mut() {
                            *top = V::Dtype(d, elsize);
                        }
                    }
                    Some(V::Global(g)) | Some(V::Module(g)) => {
                        let safe = self
                            .globals
                            .get(g.as_ref())
                            .is_some_and(|u| u.verdict == Verdict::Safe);
                        self.out.push(RawFinding {
                            severity: if safe { Severity::High } else { Severity::Critical },
                            rule: RuleId::PickleBuildGlobal,
                            what: format!("BUILD sets the state of {g} itself, not of an instance"),
                            why: "updating a module's or class's attributes at load time monkey-patches code that runs later".into(),
                            offset: Some(offset),
                        });
                    }
                    Some(_) => {}
                    None => self.bad(offset, "BUILD: stack underflow"),
                }
                true
            }
            O::PersId => self.push(V::Other),
            O::BinPersId => {
                let pid = self.pop(offset, "BINPERSID");
                let v = self.persistent(pid, offset);
                self.push(v)
            }
            O::Proto => {
                if let Arg::Int(p) = arg {
                    self.proto = u8::try_from(p).unwrap_or(u8::MAX);
                }
                true
            }
            O::Frame => true,
            O::Stop => {
                self.pop(offset, "STOP");
                return Ok(true);
            }
            _ => self.push(V::Other),
        };
        if ok {
            Ok(false)
        } else {
            Err(())
        }
    }

    fn flush_globals(&mut self) {
        for key in std::mem::take(&mut self.order) {
            let Some(u) = self.globals.remove(&key) else {
                continue;
            };
            // The name in the file, and what a protocol 0-2 unpickler maps it to.
            let (full, key) = match u.original {
                Some(o) => (format!("{o} (Python 2 name of {key})"), key),
                None => (key.clone(), key),
            };
            let how = match u.called {
                Some((op, off)) => format!(" and calls it ({op} at offset {off})"),
                None => String::new(),
            };
            let times = if u.count > 1 {
                format!(", {} references", u.count)
            } else {
                String::new()
            };
            match u.verdict {
                Verdict::Safe => {}
                Verdict::Critical { category, resolved } => {
                    let shown = if resolved == key {
                        full.clone()
                    } else {
                        format!("{full} (resolves to {resolved})")
                    };
                    self.out.push(RawFinding {
                        severity: Severity::Critical,
                        rule: RuleId::PickleGlobalCritical,
                        what: format!("pickle imports {shown} via {}{how}{times}", u.via),
                        why: format!("{category} primitive: loading this file can run arbitrary commands or code"),
                        offset: Some(u.first_offset),
                    });
                }
                Verdict::Harmless(h) if !h.call_ok && u.init_called => {
                    self.out.push(RawFinding {
                        severity: Severity::High,
                        rule: RuleId::PickleGlobalUnknown,
                        what: format!("pickle imports {full} via {}{how}{times}, calling its constructor", u.via),
                        why: format!("{} is data when pickle writes it (NEWOBJ, then its state), but calling it runs its __init__ with the file's arguments", h.builds),
                        offset: Some(u.first_offset),
                    });
                }
                Verdict::Harmless(h) => {
                    let builds = h.builds;
                    self.out.push(RawFinding {
                        severity: Severity::Low,
                        rule: RuleId::PickleGlobalHarmless,
                        what: format!("pickle imports {full} via {}{how}{times}: it builds {builds}", u.via),
                        why: "unknown but harmless constructor: not on the weights allowlist, but building it runs no code of the file's choosing".into(),
                        offset: Some(u.first_offset),
                    });
                }
                Verdict::Unknown => {
                    self.out.push(RawFinding {
                        severity: Severity::High,
                        rule: RuleId::PickleGlobalUnknown,
                        what: format!("pickle imports {full} via {}{how}{times}", u.via),
                        why: "unknown import: not on the allowlist of what weight checkpoints use; loading imports and may run it".into(),
                        offset: Some(u.first_offset),
                    });
                }
            }
        }
    }
}

/// Checks each declared storage against its data record in a PyTorch zip
/// (`record_size(key)`: the uncompressed size of `data/<key>`, `None` when
/// there is no such record).
pub(crate) fn storage_record_findings(
    decls: &[StorageDecl],
    record_size: impl Fn(&str) -> Option<u64>,
) -> Vec<RawFinding> {
    decls
        .iter()
        .filter_map(|d| {
            let (what, why) = d.record_problem(record_size(&d.key))?;
            Some(RawFinding {
                severity: Severity::High,
                rule: RuleId::TorchStorageSize,
                what,
                why: why.into(),
                offset: Some(d.offset),
            })
        })
        .collect()
}

/// The torch legacy magic number as a LONG1 argument.
pub(crate) const TORCH_LEGACY_MAGIC: [u8; 10] =
    [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Whether the first pickle of `data` is the torch legacy magic number.
pub(crate) fn is_torch_legacy(data: &[u8]) -> bool {
    let mut ops = Ops::new(&data[..data.len().min(64)]);
    let mut first = None;
    while let Ok(Some(op)) = ops.next_op() {
        match op.opcode {
            Opcode::Proto | Opcode::Frame => continue,
            Opcode::Long1 | Opcode::Long4 | Opcode::Long => {
                first = Some(op.arg);
                break;
            }
            _ => break,
        }
    }
    match first {
        Some(Arg::BigInt(BigInt::Bytes(b))) => b == TORCH_LEGACY_MAGIC,
        Some(Arg::BigInt(BigInt::Decimal(d))) => d == "119547037146038801333356",
        _ => false,
    }
}

/// Heuristic: does `data` start with a pickle? Protocol 2+ starts with
/// PROTO; protocols 0/1 have no header, so the first opcodes must decode
/// cleanly, and reach a STOP or the end of a decent window.
pub(crate) fn looks_like_pickle(data: &[u8]) -> bool {
    match data {
        [0x80, p, ..] if (2..=5).contains(p) => return true,
        [] => return false,
        _ => {}
    }
    const FIRST: &[u8] = b"(]}).cdlNIJKLMSTUVXFGpqgh";
    if !FIRST.contains(&data[0]) {
        return false;
    }
    let window = &data[..data.len().min(4096)];
    // A full window may be a prefix of a longer stream (a member's head).
    let full = window.len() >= 4096;
    let mut ops = Ops::new(window);
    let mut n = 0usize;
    loop {
        match ops.next_op() {
            Ok(Some(op)) => {
                n += 1;
                if op.opcode == Opcode::Stop {
                    return n >= 2 || data.len() == 2;
                }
                if op.opcode == Opcode::Proto {
                    return false;
                }
            }
            Ok(None) => return n >= 8 && full,
            Err(e) => {
                return full
                    && n >= 2
                    && matches!(
                        e.kind,
                        safeweights_pickle::PickleErrorKind::UnexpectedEof { .. }
                    )
            }
        }
    }
}

/// Deepest nesting of joblib object arrays walked.
const MAX_NESTED: usize = 8;

/// Walks the pickle stream in `data`.
pub(crate) fn scan(data: &[u8], walk: Walk, ctx: &Context) -> PickleScan {
    scan_nested(data, walk, ctx, 0, Reader::Joblib)
}

/// Which unpickler the walk follows where they differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// joblib's: after a `NumpyArrayWrapper` it reads the array bytes.
    Joblib,
    /// A plain `pickle.load`: every byte is an opcode.
    Plain,
}

/// Bytes of joblib array data also walked as a plain unpickler reads them.
const PLAIN_WINDOW: usize = 1 << 20;
/// Array regions per stream also walked as a plain unpickler reads them.
const MAX_PLAIN_WALKS: usize = 64;

/// Reads what joblib wrote between opcodes (`Err` with the reason when it
/// runs past the data).
fn read_inline(
    data: &[u8],
    ops: &mut Ops<'_>,
    inline: Inline,
    m: &mut Machine<'_>,
    ctx: &Context,
    depth: usize,
) -> Result<(), String> {
    let pos = Ops::position(ops);
    match inline {
        Inline::Bytes { aligned, len } => {
            let mut skip = 0usize;
            if aligned {
                let pad = data.get(pos).ok_or("joblib array alignment byte missing")?;
                skip = 1 + usize::from(*pad);
            }
            let len = usize::try_from(len).map_err(|_| "joblib array too large")?;
            let total = skip.checked_add(len).ok_or("joblib array too large")?;
            // `pickle.load` of the same file reads these bytes as opcodes:
            // what it would import is judged too (only the primitives, as
            // array data decoded as opcodes may name anything).
            if depth == 0 && m.plain_walks < MAX_PLAIN_WALKS {
                m.plain_walks += 1;
                let end = data.len().min(pos.saturating_add(PLAIN_WINDOW));
                let window = data.get(pos..end).unwrap_or_default();
                let plain = scan_nested(window, Walk::Pickles(1), ctx, depth + 1, Reader::Plain);
                for mut f in plain.findings {
                    if f.severity == Severity::Critical {
                        f.offset = f.offset.map(|o| o + pos as u64);
                        f.what = format!(
                            "{} (in joblib array data at offset {pos}, which a plain unpickler reads as opcodes)",
                            f.what
                        );
                        m.out.push(f);
                    }
                }
            }
            if !ops.skip(total) {
                return Err(format!(
                    "joblib array of {len} bytes runs past the end of the data"
                ));
            }
            Ok(())
        }
        Inline::Pickle => {
            if depth >= MAX_NESTED {
                return Err("joblib object arrays nested too deep".into());
            }
            let rest = data.get(pos..).unwrap_or_default();
            let nested = scan_nested(rest, Walk::Pickles(1), ctx, depth + 1, Reader::Joblib);
            for mut f in nested.findings {
                f.offset = f.offset.map(|o| o + pos as u64);
                m.out.push(f);
            }
            if nested.broken || !ops.skip(nested.consumed) {
                return Err("the object array's nested pickle is broken".into());
            }
            Ok(())
        }
    }
}

fn scan_nested(data: &[u8], walk: Walk, ctx: &Context, depth: usize, reader: Reader) -> PickleScan {
    let mut m = Machine::new(ctx);
    m.reads_arrays = reader == Reader::Joblib;
    let mut ops = Ops::new(data);
    let mut res = PickleScan::default();
    let mut started = false;
    loop {
        match ops.next_op() {
            Ok(None) => {
                if started {
                    m.bad(data.len() as u64, "pickle ended without a STOP opcode");
                    res.broken = true;
                }
                break;
            }
            Ok(Some(op)) => {
                started = true;
                match m.step(op.offset, op.opcode, op.arg) {
                    Ok(true) => {
                        res.pickles += 1;
                        res.consumed = ops.position();
                        started = false;
                        m.reset();
                        if let Walk::Pickles(n) = walk {
                            if res.pickles >= n {
                                break;
                            }
                        }
                    }
                    Ok(false) => {
                        if let Some(inline) = m.inline.take() {
                            if let Err(msg) =
                                read_inline(data, &mut ops, inline, &mut m, ctx, depth)
                            {
                                m.bad(op.offset, msg);
                                res.broken = true;
                                break;
                            }
                        }
                    }
                    Err(()) => {
                        m.bad(op.offset, "stack or memo size limit exceeded");
                        res.broken = true;
                        break;
                    }
                }
            }
            Err(e) => {
                m.bad(e.offset, e.kind.to_string());
                res.broken = true;
                break;
            }
        }
    }
    if res.broken {
        res.consumed = ops.position();
    }
    res.imports = m.order.len();
    m.flush_globals();
    if let Some(a) = ops.frame_anomaly() {
        let more = match ops.frame_anomalies() {
            1 => String::new(),
            n => format!(" ({n} framing breaks in all)"),
        };
        m.finding(
            Severity::High,
            RuleId::PickleFrame,
            format!("protocol 4 framing is broken: {a}{more}"),
            "CPython's C unpickler reads through frame ends, the pure-Python one and frame-by-frame scanners do not: readers see different opcodes (the stream was walked as CPython loads it)",
            a.offset(),
        );
    }
    if let Some((off, msg)) = m.malformed.take() {
        let after = if res.pickles > 0 {
            format!(" (after {} complete pickle(s))", res.pickles)
        } else {
            String::new()
        };
        m.out.push(RawFinding {
            severity: Severity::Medium,
            rule: RuleId::PickleMalformed,
            what: format!("pickle stream cannot be fully parsed at offset {off}: {msg}{after}"),
            why: "a loader may read it differently; what was found before the break is reported"
                .into(),
            offset: Some(off),
        });
    }
    res.joblib = m.joblib;
    res.storages = std::mem::take(&mut m.storages);
    res.findings = m.out;
    res
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    fn rules(data: &[u8]) -> Vec<&'static str> {
        scan(data, Walk::ToEnd, &Context::default())
            .findings
            .iter()
            .map(|f| f.rule.as_str())
            .collect()
    }

    #[test]
    fn protocol0_os_system() {
        let p = b"cos\nsystem\n(S'echo hi'\ntR.";
        assert!(looks_like_pickle(p));
        assert_eq!(rules(p), vec!["pickle.global.critical"]);
    }

    #[test]
    fn benign() {
        // protocol 2: {'a': 1}
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.";
        assert!(rules(p).is_empty());
    }

    #[test]
    fn trailing_garbage_after_dangerous() {
        let mut p = b"cos\nsystem\n(S'x'\ntR.".to_vec();
        p.extend_from_slice(b"\xff\xfe");
        let r = rules(&p);
        assert!(r.contains(&"pickle.global.critical"));
        assert!(r.contains(&"pickle.malformed"));
    }

    #[test]
    fn legacy_magic() {
        let mut p = vec![0x80, 0x02, 0x8a, 0x0a];
        p.extend_from_slice(&TORCH_LEGACY_MAGIC);
        p.push(b'.');
        assert!(is_torch_legacy(&p));
    }

    #[test]
    fn text_is_not_pickle() {
        assert!(!looks_like_pickle(b"hello world"));
        assert!(!looks_like_pickle(b"{\"a\": 1}"));
        assert!(!looks_like_pickle(b"# comment\n"));
    }
}
