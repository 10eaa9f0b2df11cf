//! Symbolic walk of pickle streams: every opcode of every pickle to the end
//! of the data, with a stack and memo good enough to resolve `STACK_GLOBAL`,
//! memoized globals, `getattr`/`__import__` chains, and to judge the callable
//! of every `REDUCE`, `OBJ`, `INST`, `NEWOBJ`, `BUILD` and `EXT*`.
//!
//! Decoding of opcodes is `safeweights_pickle::opcodes::Ops`; nothing here
//! evaluates anything.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use safeweights_pickle::opcodes::{Arg, BigInt, Opcode, Ops};

use crate::globals::{is_getattr, is_import_function, judge, Verdict};
use crate::rules::RuleId;
use crate::severity::Severity;

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
}

#[derive(Debug, Clone)]
enum V {
    Mark,
    Str(Rc<str>),
    Int,
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
        }
    }

    fn reset(&mut self) {
        self.stack.clear();
        self.marks.clear();
        self.memo.clear();
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
        match self.globals.get_mut(&full) {
            Some(g) => g.count += 1,
            None => {
                self.order.push(full.clone());
                self.globals.insert(
                    full.clone(),
                    GlobalUse {
                        first_offset: offset,
                        count: 1,
                        verdict,
                        via,
                        called: None,
                    },
                );
            }
        }
        V::Global(Rc::from(full.as_str()))
    }

    fn called(&mut self, callee: &V, op: &'static str, offset: u64) -> Rc<str> {
        match callee {
            V::Global(g) => {
                if let Some(u) = self.globals.get_mut(g.as_ref()) {
                    if u.called.is_none() {
                        u.called = Some((op, offset));
                    }
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
                    V::Int => "an integer".into(),
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

    /// REDUCE special cases that yield new references: `getattr(x, "name")`
    /// and `__import__("mod")`; both are critical themselves and also judged
    /// as the global they produce.
    fn reduce_result(&mut self, callee: &V, args: &V, offset: u64) -> V {
        let (V::Global(g), V::Tuple(items)) = (callee, args) else {
            return match callee {
                V::Global(g) => V::Call(g.clone()),
                _ => V::Other,
            };
        };
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
                    Arg::Int(_) => V::Int,
                    Arg::UInt(_) => V::Int,
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
            O::EmptyList | O::EmptyDict | O::EmptySet => self.push(V::Other),
            O::EmptyTuple => self.push(V::Tuple(Rc::new(Vec::new()))),
            O::Append => {
                self.pop(offset, "APPEND");
                true
            }
            O::SetItem => {
                self.pop(offset, "SETITEM");
                self.pop(offset, "SETITEM");
                true
            }
            O::Appends | O::SetItems | O::AddItems => {
                self.pop_mark(offset, opcode.name());
                true
            }
            O::List | O::Dict | O::FrozenSet => {
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
                    Arg::Int(i) => i.to_string(),
                    Arg::UInt(u) => u.to_string(),
                    _ => "?".into(),
                };
                self.out.push(RawFinding {
                    severity: Severity::High,
                    rule: RuleId::PickleExt,
                    what: format!("{} loads extension code {code}", opcode.name()),
                    why: "the copyreg extension registry maps the code to an arbitrary global at load time; it cannot be judged from the file".into(),
                    offset: Some(offset),
                });
                self.push(V::Global(Rc::from(format!("<extension {code}>").as_str())))
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
                self.push(V::Call(c))
            }
            O::NewObjEx => {
                self.pop(offset, "NEWOBJ_EX");
                self.pop(offset, "NEWOBJ_EX");
                let cls = self.pop(offset, "NEWOBJ_EX");
                let c = self.called(&cls, "NEWOBJ_EX", offset);
                self.push(V::Call(c))
            }
            O::Build => {
                self.pop(offset, "BUILD");
                match self.stack.last().cloned() {
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
                self.pop(offset, "BINPERSID");
                self.push(V::Other)
            }
            O::Proto | O::Frame => true,
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
        for full in std::mem::take(&mut self.order) {
            let Some(u) = self.globals.remove(&full) else {
                continue;
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
                    let shown = if resolved == full {
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

/// Walks the pickle stream in `data`.
pub(crate) fn scan(data: &[u8], walk: Walk, ctx: &Context) -> PickleScan {
    let mut m = Machine::new(ctx);
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
                    Ok(false) => {}
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
    res.findings = m.out;
    res
}

#[cfg(test)]
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
