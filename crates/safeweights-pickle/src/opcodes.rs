//! Pickle opcode table and a zero-copy decoder for protocols 0-5.
//!
//! [`Ops`] walks a byte slice and yields [`Op`] values (`offset`, `opcode`,
//! decoded [`Arg`]). It does not stop at STOP: a scanner can keep reading the
//! pickles that follow in the same stream. After an error the iterator yields
//! the error once and then ends; [`Ops::position`] tells where it broke.

use crate::error::{PickleError, PickleErrorKind};
use std::borrow::Cow;

macro_rules! opcodes {
    ($($name:ident = $byte:literal, $pname:literal, $proto:literal;)*) => {
        /// A pickle opcode (protocols 0 to 5).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Opcode {
            $(
                #[doc = concat!("`", $pname, "`")]
                $name,
            )*
        }

        impl Opcode {
            /// Opcode for a byte, if it is one.
            pub fn from_byte(b: u8) -> Option<Opcode> {
                match b {
                    $($byte => Some(Opcode::$name),)*
                    _ => None,
                }
            }
            /// The opcode byte.
            pub fn byte(self) -> u8 {
                match self { $(Opcode::$name => $byte,)* }
            }
            /// The name `pickletools` uses.
            pub fn name(self) -> &'static str {
                match self { $(Opcode::$name => $pname,)* }
            }
            /// Protocol that introduced the opcode.
            pub fn protocol(self) -> u8 {
                match self { $(Opcode::$name => $proto,)* }
            }
            /// All opcodes.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$name,)*];
        }
    };
}

opcodes! {
    Int = b'I', "INT", 0;
    BinInt = b'J', "BININT", 1;
    BinInt1 = b'K', "BININT1", 1;
    BinInt2 = b'M', "BININT2", 1;
    Long = b'L', "LONG", 0;
    Long1 = 0x8a, "LONG1", 2;
    Long4 = 0x8b, "LONG4", 2;
    String = b'S', "STRING", 0;
    BinString = b'T', "BINSTRING", 1;
    ShortBinString = b'U', "SHORT_BINSTRING", 1;
    BinBytes = b'B', "BINBYTES", 3;
    ShortBinBytes = b'C', "SHORT_BINBYTES", 3;
    BinBytes8 = 0x8e, "BINBYTES8", 4;
    ByteArray8 = 0x96, "BYTEARRAY8", 5;
    NextBuffer = 0x97, "NEXT_BUFFER", 5;
    ReadonlyBuffer = 0x98, "READONLY_BUFFER", 5;
    None = b'N', "NONE", 0;
    NewTrue = 0x88, "NEWTRUE", 2;
    NewFalse = 0x89, "NEWFALSE", 2;
    Unicode = b'V', "UNICODE", 0;
    ShortBinUnicode = 0x8c, "SHORT_BINUNICODE", 4;
    BinUnicode = b'X', "BINUNICODE", 1;
    BinUnicode8 = 0x8d, "BINUNICODE8", 4;
    Float = b'F', "FLOAT", 0;
    BinFloat = b'G', "BINFLOAT", 1;
    EmptyList = b']', "EMPTY_LIST", 1;
    Append = b'a', "APPEND", 0;
    Appends = b'e', "APPENDS", 1;
    List = b'l', "LIST", 0;
    EmptyTuple = b')', "EMPTY_TUPLE", 1;
    Tuple = b't', "TUPLE", 0;
    Tuple1 = 0x85, "TUPLE1", 2;
    Tuple2 = 0x86, "TUPLE2", 2;
    Tuple3 = 0x87, "TUPLE3", 2;
    EmptyDict = b'}', "EMPTY_DICT", 1;
    Dict = b'd', "DICT", 0;
    SetItem = b's', "SETITEM", 0;
    SetItems = b'u', "SETITEMS", 1;
    EmptySet = 0x8f, "EMPTY_SET", 4;
    AddItems = 0x90, "ADDITEMS", 4;
    FrozenSet = 0x91, "FROZENSET", 4;
    Pop = b'0', "POP", 0;
    Dup = b'2', "DUP", 0;
    Mark = b'(', "MARK", 0;
    PopMark = b'1', "POP_MARK", 1;
    Get = b'g', "GET", 0;
    BinGet = b'h', "BINGET", 1;
    LongBinGet = b'j', "LONG_BINGET", 1;
    Put = b'p', "PUT", 0;
    BinPut = b'q', "BINPUT", 1;
    LongBinPut = b'r', "LONG_BINPUT", 1;
    Memoize = 0x94, "MEMOIZE", 4;
    Ext1 = 0x82, "EXT1", 2;
    Ext2 = 0x83, "EXT2", 2;
    Ext4 = 0x84, "EXT4", 2;
    Global = b'c', "GLOBAL", 0;
    StackGlobal = 0x93, "STACK_GLOBAL", 4;
    Reduce = b'R', "REDUCE", 0;
    Build = b'b', "BUILD", 0;
    Inst = b'i', "INST", 0;
    Obj = b'o', "OBJ", 1;
    NewObj = 0x81, "NEWOBJ", 2;
    NewObjEx = 0x92, "NEWOBJ_EX", 4;
    Proto = 0x80, "PROTO", 2;
    Stop = b'.', "STOP", 0;
    Frame = 0x95, "FRAME", 4;
    PersId = b'P', "PERSID", 0;
    BinPersId = b'Q', "BINPERSID", 1;
}

/// An integer too large for `i64`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BigInt {
    /// Little-endian two's complement bytes (from LONG1/LONG4).
    Bytes(Vec<u8>),
    /// Normalised decimal text with optional leading `-` (from INT/LONG text opcodes).
    Decimal(String),
}

impl BigInt {
    /// Decimal representation (for JSON export). Conversion of byte form is
    /// quadratic; inputs are bounded by the string-size limit.
    pub fn to_decimal(&self) -> String {
        match self {
            BigInt::Decimal(s) => s.clone(),
            BigInt::Bytes(b) => bytes_to_decimal(b),
        }
    }
}

fn bytes_to_decimal(le: &[u8]) -> String {
    if le.is_empty() {
        return "0".into();
    }
    let neg = le.last().is_some_and(|b| b & 0x80 != 0);
    // magnitude, little-endian
    let mut mag: Vec<u8> = le.to_vec();
    if neg {
        // two's complement negate
        let mut carry = 1u16;
        for b in mag.iter_mut() {
            let v = u16::from(!*b) + carry;
            *b = (v & 0xff) as u8;
            carry = v >> 8;
        }
    }
    // big-endian u32 limbs for division
    let mut digits = Vec::new();
    let mut limbs: Vec<u8> = mag.into_iter().rev().collect();
    while limbs.iter().any(|&b| b != 0) {
        let mut rem = 0u32;
        for b in limbs.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 10) as u8;
            rem = cur % 10;
        }
        digits.push(b'0' + rem as u8);
        while limbs.first() == Some(&0) {
            limbs.remove(0);
        }
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    if neg {
        digits.push(b'-');
    }
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}

/// A decoded opcode argument, borrowing from the input where possible.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Arg<'a> {
    /// Opcode takes no argument.
    None,
    /// Integer argument (BININT*, INT, LONG*, memo indices, EXT codes, PROTO, FRAME).
    Int(i64),
    /// Unsigned 64-bit argument (FRAME length, LONG_BINGET/PUT, BINGET, ...).
    UInt(u64),
    /// Text INT "01"/"00" (protocol 0 booleans).
    Bool(bool),
    /// An integer not fitting in i64.
    BigInt(BigInt),
    /// Float argument.
    Float(f64),
    /// Python 2 `str` (STRING, BINSTRING, SHORT_BINSTRING): raw bytes.
    PyStr(Cow<'a, [u8]>),
    /// `bytes` (BINBYTES*, SHORT_BINBYTES) or `bytearray` (BYTEARRAY8).
    Bytes(&'a [u8]),
    /// Unicode text.
    Str(Cow<'a, str>),
    /// GLOBAL / INST: module and name.
    Global {
        /// Module.
        module: &'a str,
        /// Name.
        name: &'a str,
    },
}

/// One decoded opcode.
#[derive(Debug, Clone, PartialEq)]
pub struct Op<'a> {
    /// Byte offset of the opcode byte (stream offset, see [`Ops::with_base_offset`]).
    pub offset: u64,
    /// The opcode.
    pub opcode: Opcode,
    /// Its argument.
    pub arg: Arg<'a>,
}

/// How a stream breaks the protocol 4 framing that CPython's C unpickler
/// ignores (it reads an opcode's argument wherever it lies) but the
/// pure-Python unpickler, and any reader that takes one frame at a time,
/// refuse: the two read different opcodes from the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameAnomaly {
    /// An opcode starts inside a frame and ends after it.
    Crosses {
        /// Stream offset of the opcode.
        offset: u64,
        /// Stream offset where the frame ends.
        frame_end: u64,
    },
    /// A `FRAME` opcode before the end of the current frame.
    NestedFrame {
        /// Stream offset of the inner `FRAME` opcode.
        offset: u64,
        /// Stream offset where the current frame ends.
        frame_end: u64,
    },
}

impl FrameAnomaly {
    /// Stream offset of the offending opcode.
    pub fn offset(&self) -> u64 {
        match *self {
            FrameAnomaly::Crosses { offset, .. } | FrameAnomaly::NestedFrame { offset, .. } => {
                offset
            }
        }
    }
}

impl std::fmt::Display for FrameAnomaly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameAnomaly::Crosses { offset, frame_end } => write!(
                f,
                "the opcode at offset {offset} crosses the end of its frame at offset {frame_end}"
            ),
            FrameAnomaly::NestedFrame { offset, frame_end } => write!(
                f,
                "a FRAME opcode at offset {offset} begins a new frame before the current one ends at offset {frame_end}"
            ),
        }
    }
}

/// Iterator over the opcodes of a pickle stream. See the module docs.
///
/// Opcodes are decoded as CPython's C unpickler reads them: a `FRAME` only
/// announces a length, and opcodes are read wherever they lie. Where that
/// differs from a frame-by-frame reading, the difference is recorded
/// ([`Ops::frame_anomaly`]).
#[derive(Debug, Clone)]
pub struct Ops<'a> {
    data: &'a [u8],
    pos: usize,
    base: u64,
    failed: bool,
    /// End (in `data`) of the current frame.
    frame_end: Option<usize>,
    frame_anomaly: Option<FrameAnomaly>,
    frame_anomalies: usize,
}

impl<'a> Ops<'a> {
    /// Decode `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Ops {
            data,
            pos: 0,
            base: 0,
            failed: false,
            frame_end: None,
            frame_anomaly: None,
            frame_anomalies: 0,
        }
    }
    /// Report offsets shifted by `base` (when `data` is a window of a larger stream).
    pub fn with_base_offset(mut self, base: u64) -> Self {
        self.base = base;
        self
    }
    /// Current position in `data` (after the last decoded opcode, or where the failing opcode started).
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Whether all input was consumed.
    pub fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Skips `n` bytes that are not opcodes (joblib writes array data
    /// between the opcodes of its pickle). False, and nothing skipped, when
    /// fewer than `n` bytes are left.
    pub fn skip(&mut self, n: usize) -> bool {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                self.pos = end;
                true
            }
            _ => false,
        }
    }

    /// The first framing anomaly met so far, if any.
    pub fn frame_anomaly(&self) -> Option<FrameAnomaly> {
        self.frame_anomaly
    }

    /// How many framing anomalies were met so far.
    pub fn frame_anomalies(&self) -> usize {
        self.frame_anomalies
    }

    fn frame_check(&mut self, start: usize, end: usize, opcode: Opcode, arg: &Arg<'_>) {
        let to_stream = |p: usize| self.base.saturating_add(p as u64);
        let mut anomaly = None;
        if let Some(fe) = self.frame_end {
            if start >= fe {
                self.frame_end = None;
            } else if opcode == Opcode::Frame {
                anomaly = Some(FrameAnomaly::NestedFrame {
                    offset: to_stream(start),
                    frame_end: to_stream(fe),
                });
            } else if end > fe {
                anomaly = Some(FrameAnomaly::Crosses {
                    offset: to_stream(start),
                    frame_end: to_stream(fe),
                });
                self.frame_end = None;
            }
        }
        if let (Opcode::Frame, Arg::UInt(n)) = (opcode, arg) {
            // The length was checked against the data when decoded.
            self.frame_end = usize::try_from(*n).ok().and_then(|n| end.checked_add(n));
        }
        if let Some(a) = anomaly {
            self.frame_anomalies += 1;
            if self.frame_anomaly.is_none() {
                self.frame_anomaly = Some(a);
            }
        }
    }

    /// Decode the next opcode; `Ok(None)` at end of input.
    pub fn next_op(&mut self) -> Result<Option<Op<'a>>, PickleError> {
        if self.failed {
            return Ok(None);
        }
        let start = self.pos;
        let Some(&b) = self.data.get(start) else {
            return Ok(None);
        };
        let offset = self.base.saturating_add(start as u64);
        let mk = |kind| PickleError::new(offset, kind);
        let opcode = match Opcode::from_byte(b) {
            Some(o) => o,
            None => {
                self.failed = true;
                return Err(mk(PickleErrorKind::UnknownOpcode(b)));
            }
        };
        let mut cur = Cursor {
            data: self.data,
            pos: start + 1,
            opcode,
        };
        match decode_arg(&mut cur) {
            Ok(arg) => {
                self.frame_check(start, cur.pos, opcode, &arg);
                self.pos = cur.pos;
                Ok(Some(Op {
                    offset,
                    opcode,
                    arg,
                }))
            }
            Err(kind) => {
                self.failed = true;
                Err(mk(kind))
            }
        }
    }
}

impl<'a> Iterator for Ops<'a> {
    type Item = Result<Op<'a>, PickleError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_op().transpose()
    }
}

/// Length in bytes of the first pickle in `data` (up to and including STOP).
pub fn pickle_len(data: &[u8]) -> Result<usize, PickleError> {
    let mut ops = Ops::new(data);
    while let Some(op) = ops.next_op()? {
        if op.opcode == Opcode::Stop {
            return Ok(ops.position());
        }
    }
    Err(PickleError::new(
        data.len() as u64,
        PickleErrorKind::MissingStop,
    ))
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    opcode: Opcode,
}

type KResult<T> = Result<T, PickleErrorKind>;

impl<'a> Cursor<'a> {
    fn take(&mut self, n: u64, what: &'static str) -> KResult<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| PickleErrorKind::UnexpectedEof { what })?;
        let end = self
            .pos
            .checked_add(n)
            .ok_or(PickleErrorKind::UnexpectedEof { what })?;
        let s = self
            .data
            .get(self.pos..end)
            .ok_or(PickleErrorKind::UnexpectedEof { what })?;
        self.pos = end;
        Ok(s)
    }
    fn fixed<const N: usize>(&mut self, what: &'static str) -> KResult<[u8; N]> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    /// A line without its trailing '\n'.
    fn line(&mut self) -> KResult<&'a [u8]> {
        let rest = self.data.get(self.pos..).unwrap_or(&[]);
        let nl = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or(PickleErrorKind::UnexpectedEof {
                what: "newline-terminated argument",
            })?;
        let line = rest.get(..nl).unwrap_or(&[]);
        self.pos += nl + 1;
        Ok(line)
    }
    fn bad(&self, reason: impl Into<String>) -> PickleErrorKind {
        PickleErrorKind::InvalidArgument {
            opcode: self.opcode.name(),
            reason: reason.into(),
        }
    }
    fn utf8(&self, b: &'a [u8]) -> KResult<&'a str> {
        std::str::from_utf8(b).map_err(|e| self.bad(format!("invalid UTF-8: {e}")))
    }
}

fn decode_arg<'a>(c: &mut Cursor<'a>) -> KResult<Arg<'a>> {
    use Opcode as O;
    Ok(match c.opcode {
        O::Int => {
            let line = c.line()?;
            match line {
                b"00" => Arg::Bool(false),
                b"01" => Arg::Bool(true),
                _ => parse_int_text(c, line)?,
            }
        }
        O::Long => {
            let line = c.line()?;
            let line = line.strip_suffix(b"L").unwrap_or(line);
            parse_int_text(c, line)?
        }
        O::BinInt => Arg::Int(i64::from(i32::from_le_bytes(c.fixed::<4>("BININT")?))),
        O::BinInt1 => Arg::Int(i64::from(c.fixed::<1>("BININT1")?[0])),
        O::BinInt2 => Arg::Int(i64::from(u16::from_le_bytes(c.fixed::<2>("BININT2")?))),
        O::Long1 => {
            let n = c.fixed::<1>("LONG1 length")?[0];
            long_bytes(c.take(u64::from(n), "LONG1 data")?)
        }
        O::Long4 => {
            let n = i32::from_le_bytes(c.fixed::<4>("LONG4 length")?);
            if n < 0 {
                return Err(c.bad("negative byte count"));
            }
            long_bytes(c.take(n as u64, "LONG4 data")?)
        }
        O::String => {
            let line = c.line()?;
            let inner = match line {
                [q, inner @ .., q2] if (*q == b'\'' || *q == b'"') && q == q2 => inner,
                _ => return Err(c.bad("the STRING opcode argument must be quoted")),
            };
            Arg::PyStr(Cow::Owned(escape_decode(inner).map_err(|r| c.bad(r))?))
        }
        O::BinString => {
            let n = i32::from_le_bytes(c.fixed::<4>("BINSTRING length")?);
            if n < 0 {
                return Err(c.bad("negative byte count"));
            }
            Arg::PyStr(Cow::Borrowed(c.take(n as u64, "BINSTRING data")?))
        }
        O::ShortBinString => {
            let n = c.fixed::<1>("SHORT_BINSTRING length")?[0];
            Arg::PyStr(Cow::Borrowed(c.take(u64::from(n), "SHORT_BINSTRING data")?))
        }
        O::BinBytes => {
            let n = u32::from_le_bytes(c.fixed::<4>("BINBYTES length")?);
            Arg::Bytes(c.take(u64::from(n), "BINBYTES data")?)
        }
        O::ShortBinBytes => {
            let n = c.fixed::<1>("SHORT_BINBYTES length")?[0];
            Arg::Bytes(c.take(u64::from(n), "SHORT_BINBYTES data")?)
        }
        O::BinBytes8 | O::ByteArray8 => {
            let n = u64::from_le_bytes(c.fixed::<8>("8-byte length")?);
            Arg::Bytes(c.take(n, "bytes data")?)
        }
        O::Unicode => {
            let line = c.line()?;
            Arg::Str(Cow::Owned(raw_unicode_escape(line).map_err(|r| c.bad(r))?))
        }
        O::ShortBinUnicode => {
            let n = c.fixed::<1>("SHORT_BINUNICODE length")?[0];
            let b = c.take(u64::from(n), "SHORT_BINUNICODE data")?;
            Arg::Str(Cow::Borrowed(c.utf8(b)?))
        }
        O::BinUnicode => {
            let n = u32::from_le_bytes(c.fixed::<4>("BINUNICODE length")?);
            let b = c.take(u64::from(n), "BINUNICODE data")?;
            Arg::Str(Cow::Borrowed(c.utf8(b)?))
        }
        O::BinUnicode8 => {
            let n = u64::from_le_bytes(c.fixed::<8>("BINUNICODE8 length")?);
            let b = c.take(n, "BINUNICODE8 data")?;
            Arg::Str(Cow::Borrowed(c.utf8(b)?))
        }
        O::Float => {
            let line = c.line()?;
            let s = c.utf8(line)?.trim();
            let f: f64 = s
                .parse()
                .map_err(|_| c.bad(format!("could not convert string to float: {s:?}")))?;
            Arg::Float(f)
        }
        O::BinFloat => Arg::Float(f64::from_be_bytes(c.fixed::<8>("BINFLOAT")?)),
        O::Get | O::Put => {
            let line = c.line()?;
            match parse_int_text(c, line)? {
                Arg::Int(v) if v >= 0 => Arg::UInt(v as u64),
                Arg::Int(_) => return Err(c.bad("negative memo index")),
                Arg::Bool(b) => Arg::UInt(u64::from(b)),
                _ => return Err(c.bad("memo index too large")),
            }
        }
        O::BinGet | O::BinPut => Arg::UInt(u64::from(c.fixed::<1>("memo index")?[0])),
        O::LongBinGet | O::LongBinPut => {
            Arg::UInt(u64::from(u32::from_le_bytes(c.fixed::<4>("memo index")?)))
        }
        O::Ext1 => Arg::Int(i64::from(c.fixed::<1>("EXT1 code")?[0])),
        O::Ext2 => Arg::Int(i64::from(u16::from_le_bytes(c.fixed::<2>("EXT2 code")?))),
        O::Ext4 => Arg::Int(i64::from(i32::from_le_bytes(c.fixed::<4>("EXT4 code")?))),
        O::Global | O::Inst => {
            let module = c.line()?;
            let name = c.line()?;
            Arg::Global {
                module: c.utf8(module)?,
                name: c.utf8(name)?,
            }
        }
        O::PersId => {
            let line = c.line()?;
            if !line.is_ascii() {
                return Err(c.bad("persistent IDs in protocol 0 must be ASCII strings"));
            }
            Arg::Str(Cow::Borrowed(c.utf8(line)?))
        }
        O::Proto => {
            let p = c.fixed::<1>("PROTO")?[0];
            if p > 5 {
                return Err(PickleErrorKind::UnsupportedProtocol(p));
            }
            Arg::Int(i64::from(p))
        }
        O::Frame => {
            let n = u64::from_le_bytes(c.fixed::<8>("FRAME length")?);
            let remaining = (c.data.len().saturating_sub(c.pos)) as u64;
            if n > remaining {
                return Err(PickleErrorKind::UnexpectedEof {
                    what: "frame (pickle exhausted before end of frame)",
                });
            }
            Arg::UInt(n)
        }
        O::NextBuffer
        | O::ReadonlyBuffer
        | O::None
        | O::NewTrue
        | O::NewFalse
        | O::EmptyList
        | O::Append
        | O::Appends
        | O::List
        | O::EmptyTuple
        | O::Tuple
        | O::Tuple1
        | O::Tuple2
        | O::Tuple3
        | O::EmptyDict
        | O::Dict
        | O::SetItem
        | O::SetItems
        | O::EmptySet
        | O::AddItems
        | O::FrozenSet
        | O::Pop
        | O::Dup
        | O::Mark
        | O::PopMark
        | O::Memoize
        | O::StackGlobal
        | O::Reduce
        | O::Build
        | O::Obj
        | O::NewObj
        | O::NewObjEx
        | O::Stop
        | O::BinPersId => Arg::None,
    })
}

fn long_bytes(b: &[u8]) -> Arg<'_> {
    if b.is_empty() {
        return Arg::Int(0);
    }
    if b.len() <= 8 {
        let neg = b.last().is_some_and(|x| x & 0x80 != 0);
        let mut a = if neg { [0xffu8; 8] } else { [0u8; 8] };
        a[..b.len()].copy_from_slice(b);
        return Arg::Int(i64::from_le_bytes(a));
    }
    Arg::BigInt(BigInt::Bytes(b.to_vec()))
}

/// Parse integer text like CPython `int(s, 0)` (sign, 0x/0o/0b prefixes,
/// underscores between digits, surrounding whitespace).
fn parse_int_text<'a>(c: &Cursor<'a>, line: &[u8]) -> KResult<Arg<'a>> {
    let text = std::str::from_utf8(line).map_err(|_| c.bad("non-UTF-8 integer"))?;
    let bad = || c.bad(format!("invalid literal for int() with base 0: {text:?}"));
    let s = text.trim_matches(|ch: char| ch.is_ascii_whitespace());
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r.strip_prefix('_').unwrap_or(r))
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r.strip_prefix('_').unwrap_or(r))
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r.strip_prefix('_').unwrap_or(r))
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err(bad());
    }
    let clean: String = digits.chars().filter(|&ch| ch != '_').collect();
    if !clean.chars().all(|ch| ch.is_digit(radix)) {
        return Err(bad());
    }
    if radix == 10 && clean.len() > 1 && clean.starts_with('0') && clean.chars().any(|d| d != '0') {
        // Python 3 rejects leading zeros in non-zero decimal literals
        return Err(bad());
    }
    match i128::from_str_radix(&clean, radix) {
        Ok(v) => {
            let v = if neg { -v } else { v };
            if let Ok(x) = i64::try_from(v) {
                return Ok(Arg::Int(x));
            }
            Ok(Arg::BigInt(BigInt::Decimal(v.to_string())))
        }
        Err(_) if radix == 10 => {
            let t = clean.trim_start_matches('0');
            let mut out = String::with_capacity(t.len() + 1);
            if neg {
                out.push('-');
            }
            out.push_str(t);
            Ok(Arg::BigInt(BigInt::Decimal(out)))
        }
        Err(_) => {
            // non-decimal huge literal: convert to little-endian two's complement bytes
            let mut mag: Vec<u8> = vec![0]; // little-endian base-256 magnitude
            for ch in clean.chars() {
                let d = ch.to_digit(radix).unwrap_or(0);
                let mut carry = d;
                for limb in mag.iter_mut() {
                    let v = u32::from(*limb) * radix + carry;
                    *limb = (v & 0xff) as u8;
                    carry = v >> 8;
                }
                while carry > 0 {
                    mag.push((carry & 0xff) as u8);
                    carry >>= 8;
                }
            }
            mag.push(0); // sign byte
            if neg {
                let mut carry = 1u16;
                for b in mag.iter_mut() {
                    let v = u16::from(!*b) + carry;
                    *b = (v & 0xff) as u8;
                    carry = v >> 8;
                }
            }
            Ok(Arg::BigInt(BigInt::Bytes(mag)))
        }
    }
}

/// Python `codecs.escape_decode` for the STRING opcode.
fn escape_decode(s: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0usize;
    while let Some(&ch) = s.get(i) {
        i += 1;
        if ch != b'\\' {
            out.push(ch);
            continue;
        }
        let Some(&e) = s.get(i) else {
            return Err("\\ at end of string".into());
        };
        i += 1;
        match e {
            b'\n' => {}
            b'\\' => out.push(b'\\'),
            b'\'' => out.push(b'\''),
            b'"' => out.push(b'"'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(11),
            b'a' => out.push(7),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match s.get(i) {
                        Some(&d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let h = s
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("invalid \\x escape at position {}", i - 2))?;
                out.push(h);
                i += 2;
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Ok(out)
}

/// Python `raw_unicode_escape` decoding: bytes are Latin-1, except
/// `\uXXXX` / `\UXXXXXXXX` preceded by an odd number of backslashes.
fn raw_unicode_escape(s: &[u8]) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut i = 0usize;
    while let Some(&ch) = s.get(i) {
        if ch != b'\\' {
            out.push(char::from(ch));
            i += 1;
            continue;
        }
        // count run of backslashes
        let run = s[i..].iter().take_while(|&&c| c == b'\\').count();
        let after = i + run;
        let esc = s.get(after).copied();
        if run % 2 == 1 && (esc == Some(b'u') || esc == Some(b'U')) {
            for _ in 0..run - 1 {
                out.push('\\');
            }
            let n = if esc == Some(b'u') { 4 } else { 8 };
            let hex = s
                .get(after + 1..after + 1 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    format!("truncated \\{}XXXX escape", char::from(esc.unwrap_or(b'u')))
                })?;
            let cp = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
            let c = char::from_u32(cp).ok_or_else(|| {
                format!("code point U+{cp:X} is not representable (surrogate or out of range)")
            })?;
            out.push(c);
            i = after + 1 + n;
        } else {
            for _ in 0..run {
                out.push('\\');
            }
            i = after;
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // Tests build fixtures with std::fs.
mod tests {
    use super::*;

    #[test]
    fn big_decimal() {
        assert_eq!(bytes_to_decimal(&[0xff]), "-1");
        assert_eq!(bytes_to_decimal(&[0x00, 0x01]), "256");
        assert_eq!(
            bytes_to_decimal(&[0, 0, 0, 0, 0, 0, 0, 0, 1]),
            "18446744073709551616"
        );
        assert_eq!(
            bytes_to_decimal(&[0, 0, 0, 0, 0, 0, 0, 0, 0xff]),
            "-18446744073709551616"
        );
    }

    #[test]
    fn frames_are_read_through_and_their_breaks_recorded() {
        // PROTO 4, FRAME(3) holding `(`, `K` and half of BININT1's argument.
        let mut p = vec![0x80, 4, 0x95];
        p.extend_from_slice(&3u64.to_le_bytes());
        p.extend_from_slice(b"]K");
        p.extend_from_slice(&[7, b'a', b'.']);
        let mut ops = Ops::new(&p);
        let names: Vec<&str> = std::iter::from_fn(|| ops.next_op().ok().flatten())
            .map(|o| o.opcode.name())
            .collect();
        assert_eq!(
            names,
            ["PROTO", "FRAME", "EMPTY_LIST", "BININT1", "APPEND", "STOP"]
        );
        // Bytes 11.. : `]` at 11, `K` at 12 ends at 14, the frame at 14: clean.
        assert_eq!(ops.frame_anomaly(), None);

        // FRAME(2) holding `]` and the BININT1 opcode byte only.
        let mut p = vec![0x80, 4, 0x95];
        p.extend_from_slice(&2u64.to_le_bytes());
        p.extend_from_slice(&[b']', b'K', 7, b'a', b'.']);
        let mut ops = Ops::new(&p);
        while let Ok(Some(_)) = ops.next_op() {}
        assert_eq!(
            ops.frame_anomaly(),
            Some(FrameAnomaly::Crosses {
                offset: 12,
                frame_end: 13
            })
        );
        assert_eq!(ops.frame_anomalies(), 1);

        // A frame inside a frame.
        let mut p = vec![0x80, 4, 0x95];
        p.extend_from_slice(&11u64.to_le_bytes());
        p.push(0x95);
        p.extend_from_slice(&1u64.to_le_bytes());
        p.extend_from_slice(b"N.");
        let mut ops = Ops::new(&p);
        while let Ok(Some(_)) = ops.next_op() {}
        assert!(matches!(
            ops.frame_anomaly(),
            Some(FrameAnomaly::NestedFrame { offset: 11, .. })
        ));
    }

    #[test]
    fn raw_unicode() {
        assert_eq!(raw_unicode_escape(b"a\\u00e9").unwrap(), "a\u{e9}");
        assert_eq!(raw_unicode_escape(b"a\\\\u00e9").unwrap(), "a\\\\u00e9");
        assert_eq!(raw_unicode_escape(b"\xe9").unwrap(), "\u{e9}");
        assert!(raw_unicode_escape(b"\\ud800").is_err());
    }
}
