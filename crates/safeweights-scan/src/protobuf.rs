//! A small protobuf wire-format reader: fields one at a time, every length
//! checked against the buffer. Message structs (ONNX, TensorFlow) are walked
//! by hand over it.

pub(crate) struct Pb<'a> {
    d: &'a [u8],
    p: usize,
}

pub(crate) enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8], usize),
    Fixed,
}

impl<'a> Pb<'a> {
    /// A reader at the start of `d`.
    pub(crate) fn new(d: &'a [u8]) -> Self {
        Pb { d, p: 0 }
    }
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.d.get(self.p)?;
            self.p += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// Next (field number, value); `None` at end, `Some(Err)` when broken.
    pub(crate) fn next(&mut self) -> Option<Result<(u64, Field<'a>), ()>> {
        if self.p >= self.d.len() {
            return None;
        }
        let r = (|| {
            let key = self.varint()?;
            let (num, wire) = (key >> 3, key & 7);
            if num == 0 {
                return None;
            }
            let f = match wire {
                0 => Field::Varint(self.varint()?),
                1 => {
                    self.p = self.p.checked_add(8).filter(|&e| e <= self.d.len())?;
                    Field::Fixed
                }
                5 => {
                    self.p = self.p.checked_add(4).filter(|&e| e <= self.d.len())?;
                    Field::Fixed
                }
                2 => {
                    let n = usize::try_from(self.varint()?).ok()?;
                    let start = self.p;
                    let end = start.checked_add(n).filter(|&e| e <= self.d.len())?;
                    self.p = end;
                    Field::Bytes(&self.d[start..end], start)
                }
                _ => return None,
            };
            Some((num, f))
        })();
        Some(r.ok_or(()))
    }
}
