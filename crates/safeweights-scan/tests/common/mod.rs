//! Byte-level builders for the test corpus. Everything here *writes* bytes;
//! nothing is ever unpickled or executed.
#![allow(dead_code)]

pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// Raw deflate (level 6), as zip members and gzip bodies hold it.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("deflate into memory");
    e.finish().expect("deflate into memory")
}

// ---------- pickles ----------

/// SHORT_BINUNICODE + MEMOIZE.
pub fn sbu(s: &str) -> Vec<u8> {
    let mut v = vec![0x8c, s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v.push(0x94);
    v
}

/// Protocol 0 `module.name(arg)` via GLOBAL + TUPLE + REDUCE.
pub fn p0_call(module: &str, name: &str, arg: &str) -> Vec<u8> {
    format!("c{module}\n{name}\n(S'{arg}'\ntR.").into_bytes()
}

/// Protocol 4 `module.name(arg)` via STACK_GLOBAL.
pub fn p4_call(module: &str, name: &str, arg: &str) -> Vec<u8> {
    let mut v = vec![0x80, 0x04];
    v.extend(sbu(module));
    v.extend(sbu(name));
    v.push(0x93); // STACK_GLOBAL
    v.push(0x94);
    v.extend(sbu(arg));
    v.push(0x85); // TUPLE1
    v.push(0x94);
    v.push(b'R');
    v.push(0x94);
    v.push(b'.');
    v
}

/// Protocol 2 `{'a': 1}`.
pub fn benign_p2() -> Vec<u8> {
    b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01K\x01s.".to_vec()
}

// ---------- zip ----------

#[derive(Clone)]
pub struct Member {
    pub name: String,
    pub data: Vec<u8>,
    pub deflate: bool,
    pub flags: u16,
    pub local_name: Option<String>,
    pub crc: Option<u32>,
    pub central_size: Option<u32>,
}

pub fn m(name: &str, data: &[u8]) -> Member {
    Member {
        name: name.into(),
        data: data.to_vec(),
        deflate: false,
        flags: 0,
        local_name: None,
        crc: None,
        central_size: None,
    }
}

fn le16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn le32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn local_header(
    out: &mut Vec<u8>,
    name: &[u8],
    flags: u16,
    method: u16,
    crc: u32,
    csize: u32,
    usize_: u32,
) {
    le32(out, 0x0403_4b50);
    le16(out, 20);
    le16(out, flags);
    le16(out, method);
    le32(out, 0);
    le32(out, crc);
    le32(out, csize);
    le32(out, usize_);
    le16(out, name.len() as u16);
    le16(out, 0);
    out.extend_from_slice(name);
}

#[allow(clippy::too_many_arguments)]
fn central(
    cd: &mut Vec<u8>,
    name: &[u8],
    flags: u16,
    method: u16,
    crc: u32,
    csize: u32,
    usize_: u32,
    off: u32,
) {
    le32(cd, 0x0201_4b50);
    le16(cd, 20);
    le16(cd, 20);
    le16(cd, flags);
    le16(cd, method);
    le32(cd, 0);
    le32(cd, crc);
    le32(cd, csize);
    le32(cd, usize_);
    le16(cd, name.len() as u16);
    cd.extend_from_slice(&[0; 12]);
    le32(cd, off);
    cd.extend_from_slice(name);
}

fn eocd(out: &mut Vec<u8>, n: usize, cd_len: usize, cd_off: usize) {
    le32(out, 0x0605_4b50);
    le32(out, 0);
    le16(out, n as u16);
    le16(out, n as u16);
    le32(out, cd_len as u32);
    le32(out, cd_off as u32);
    le16(out, 0);
}

pub fn zip_with(members: &[Member], prefix: &[u8]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    let mut cd = Vec::new();
    for mb in members {
        let off = (out.len() - prefix.len()) as u32;
        let body = if mb.deflate {
            deflate(&mb.data)
        } else {
            mb.data.clone()
        };
        let method = if mb.deflate { 8 } else { 0 };
        let crc = mb.crc.unwrap_or_else(|| crc32(&mb.data));
        let lname = mb.local_name.as_deref().unwrap_or(&mb.name);
        local_header(
            &mut out,
            lname.as_bytes(),
            mb.flags,
            method,
            crc,
            body.len() as u32,
            mb.data.len() as u32,
        );
        out.extend_from_slice(&body);
        let usize_ = mb.central_size.unwrap_or(mb.data.len() as u32);
        let csize = if mb.deflate {
            body.len() as u32
        } else {
            usize_
        };
        central(
            &mut cd,
            mb.name.as_bytes(),
            mb.flags,
            method,
            crc,
            csize,
            usize_,
            off,
        );
    }
    // Offsets in the directory are relative to the archive start (prefix excluded),
    // as when data is prepended to an existing archive.
    let cd_off = out.len() - prefix.len();
    out.extend_from_slice(&cd);
    eocd(&mut out, members.len(), cd.len(), cd_off);
    out
}

pub fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let ms: Vec<Member> = members.iter().map(|(n, d)| m(n, d)).collect();
    zip_with(&ms, &[])
}

/// Member "outer" (stored) whose data is a complete local header and data of
/// member "inner": both are listed, and their bytes overlap.
pub fn zip_overlapping(inner: &[u8]) -> Vec<u8> {
    let mut inner_rec = Vec::new();
    let icrc = crc32(inner);
    local_header(
        &mut inner_rec,
        b"archive/data.pkl",
        0,
        0,
        icrc,
        inner.len() as u32,
        inner.len() as u32,
    );
    inner_rec.extend_from_slice(inner);
    let mut out = Vec::new();
    let ocrc = crc32(&inner_rec);
    let oname = b"archive/version";
    local_header(
        &mut out,
        oname,
        0,
        0,
        ocrc,
        inner_rec.len() as u32,
        inner_rec.len() as u32,
    );
    let inner_off = out.len() as u32;
    out.extend_from_slice(&inner_rec);
    let mut cd = Vec::new();
    central(
        &mut cd,
        oname,
        0,
        0,
        ocrc,
        inner_rec.len() as u32,
        inner_rec.len() as u32,
        0,
    );
    central(
        &mut cd,
        b"archive/data.pkl",
        0,
        0,
        icrc,
        inner.len() as u32,
        inner.len() as u32,
        inner_off,
    );
    let cd_off = out.len();
    out.extend_from_slice(&cd);
    eocd(&mut out, 2, cd.len(), cd_off);
    out
}

/// A PyTorch zip checkpoint whose `archive/data.pkl` is `pickle`.
pub fn torch_zip(pickle: &[u8]) -> Vec<u8> {
    zip(&[
        ("archive/data.pkl", pickle),
        ("archive/byteorder", b"little"),
        ("archive/data/0", &[0u8; 64]),
        ("archive/version", b"3\n"),
    ])
}

// ---------- tar / gzip ----------

pub fn tar_entry(out: &mut Vec<u8>, name: &str, data: &[u8], kind: u8, link: &str) {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    let size = format!("{:011o}\0", data.len());
    h[124..136].copy_from_slice(size.as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

pub fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, d) in members {
        tar_entry(&mut out, n, d, b'0', "");
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.extend(deflate(data));
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

// ---------- npy / safetensors / onnx ----------

pub fn npy(descr: &str, body: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(h.len() as u16).to_le_bytes());
    v.extend_from_slice(h.as_bytes());
    v.extend_from_slice(body);
    v
}

pub fn safetensors_raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header.as_bytes());
    v.extend_from_slice(data);
    v
}

fn pb_bytes(out: &mut Vec<u8>, field: u8, data: &[u8]) {
    out.push((field << 3) | 2);
    let mut n = data.len();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
    out.extend_from_slice(data);
}

/// ModelProto { ir_version: 8, graph { initializer { name, external_data { location } } } }.
pub fn onnx_external(location: &str) -> Vec<u8> {
    let mut kv = Vec::new();
    pb_bytes(&mut kv, 1, b"location");
    pb_bytes(&mut kv, 2, location.as_bytes());
    let mut tensor = Vec::new();
    pb_bytes(&mut tensor, 8, b"w");
    pb_bytes(&mut tensor, 13, &kv);
    tensor.extend_from_slice(&[14 << 3, 1]); // data_location = EXTERNAL
    let mut graph = Vec::new();
    pb_bytes(&mut graph, 2, b"g");
    pb_bytes(&mut graph, 5, &tensor);
    let mut model = vec![0x08, 0x08];
    pb_bytes(&mut model, 2, b"test");
    pb_bytes(&mut model, 7, &graph);
    model
}
