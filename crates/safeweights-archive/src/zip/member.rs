//! Streaming a member's bytes: stored members read in place, deflated ones
//! inflated once as they are read, with bounded memory. The member must
//! expand to exactly the size the central directory declares (never more:
//! a small archive cannot make the reader produce gigabytes) and match its
//! CRC-32; both are checked as the bytes pass, and the end is an error if
//! they do not hold.

use std::io::{self, Read};

use flate2::{Decompress, FlushDecompress, Status};
use safeweights::Source;

use super::entry::{Entry, Method};
use super::read::ZipArchive;
use crate::error::{ZipError, ZipErrorKind};

/// How much compressed input is read from the source at a time.
const INPUT_CHUNK: usize = 256 << 10;

/// A member being read from its start; see [`ZipArchive::open_member`].
///
/// Errors are `io::Error`s of kind `InvalidData` wrapping a [`ZipError`]
/// (a short member, one that expands past its declared size, a CRC
/// mismatch, a broken deflate stream), or the source's own I/O errors.
pub struct MemberReader<'a, R> {
    zip: &'a ZipArchive<R>,
    entry: &'a Entry,
    /// Compressed bytes consumed from the source so far.
    taken: u64,
    input: Vec<u8>,
    input_pos: usize,
    inflater: Option<Decompress>,
    produced: u64,
    crc: crc32fast::Hasher,
    finished: bool,
}

impl<R: Source> ZipArchive<R> {
    /// Streams member `e` from its first byte, inflating a deflated member
    /// once, as it is read, in bounded memory (a few hundred KiB), and
    /// checking its declared size and CRC-32 on the way.
    pub fn open_member<'a>(&'a self, e: &'a Entry) -> Result<MemberReader<'a, R>, ZipError> {
        self.check_readable(e)?;
        Ok(MemberReader {
            zip: self,
            entry: e,
            taken: 0,
            input: Vec::new(),
            input_pos: 0,
            inflater: (e.method != Method::Stored).then(|| Decompress::new(false)),
            produced: 0,
            crc: crc32fast::Hasher::new(),
            finished: false,
        })
    }
}

impl<R> MemberReader<'_, R> {
    /// Bytes produced so far.
    pub fn position(&self) -> u64 {
        self.produced
    }

    fn fail(&self, kind: ZipErrorKind) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            ZipError::new(self.entry.data_offset, kind),
        )
    }

    fn inflate_failed(&self, reason: String) -> io::Error {
        self.fail(ZipErrorKind::Inflate {
            name: self.entry.name.clone(),
            reason,
        })
    }

    /// Checks the end of the member: its size and CRC-32.
    fn finish(&mut self) -> io::Result<()> {
        self.finished = true;
        if self.produced != self.entry.size {
            return Err(self.inflate_failed(format!(
                "got {} bytes, directory says {}",
                self.produced, self.entry.size
            )));
        }
        let computed = self.crc.clone().finalize();
        if computed != self.entry.crc32 {
            return Err(self.fail(ZipErrorKind::CrcMismatch {
                name: self.entry.name.clone(),
                expected: self.entry.crc32,
                computed,
            }));
        }
        Ok(())
    }
}

impl<R: Source> MemberReader<'_, R> {
    fn read_stored(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.entry.size - self.produced;
        let n = (buf.len() as u64).min(left) as usize;
        self.zip
            .source()
            .read_exact_at(self.entry.data_offset + self.produced, &mut buf[..n])?;
        Ok(n)
    }

    fn refill(&mut self) -> io::Result<()> {
        let left = self.entry.compressed_size - self.taken;
        let n = (INPUT_CHUNK as u64).min(left) as usize;
        self.input.resize(n, 0);
        self.zip
            .source()
            .read_exact_at(self.entry.data_offset + self.taken, &mut self.input)?;
        self.taken += n as u64;
        self.input_pos = 0;
        Ok(())
    }

    fn read_deflated(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte of room past the declared size tells "exactly" from "more".
        let room = (self.entry.size - self.produced).saturating_add(1);
        let want = (buf.len() as u64).min(room) as usize;
        loop {
            if self.input_pos == self.input.len() && self.taken < self.entry.compressed_size {
                self.refill()?;
            }
            let Some(d) = self.inflater.as_mut() else {
                return Ok(0);
            };
            let (in_before, out_before) = (d.total_in(), d.total_out());
            let status = d
                .decompress(
                    &self.input[self.input_pos..],
                    &mut buf[..want],
                    FlushDecompress::None,
                )
                .map_err(|e| io::Error::other(e.to_string()));
            let (used, made) = (
                (d.total_in() - in_before) as usize,
                (d.total_out() - out_before) as usize,
            );
            let status = status.map_err(|_| self.inflate_failed("Failed".into()))?;
            self.input_pos += used;
            if self.produced + made as u64 > self.entry.size {
                return Err(self.inflate_failed(format!(
                    "expands past the {} bytes the directory declares",
                    self.entry.size
                )));
            }
            if made > 0 || status == Status::StreamEnd {
                if status == Status::StreamEnd {
                    self.inflater = None;
                }
                return Ok(made);
            }
            let exhausted =
                self.input_pos == self.input.len() && self.taken == self.entry.compressed_size;
            if exhausted || (used == 0 && made == 0 && self.input_pos < self.input.len()) {
                return Err(self.inflate_failed("FailedCannotMakeProgress".into()));
            }
        }
    }
}

impl<R: Source> Read for MemberReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.finished || buf.is_empty() {
            return Ok(0);
        }
        let n = match self.entry.method {
            Method::Stored => self.read_stored(buf)?,
            _ => self.read_deflated(buf)?,
        };
        self.crc.update(&buf[..n]);
        self.produced += n as u64;
        if n == 0 {
            self.finish()?;
        }
        Ok(n)
    }
}
