//! Bounds-checked parsing of the GGUF header, metadata and tensor directory.
//!
//! Every length and count read from the file is checked against the bytes that remain before
//! anything is allocated for it, so a corrupt or hostile file yields a [`GgufError`] naming
//! the field and its offset, never a panic or an allocation sized by an unchecked number.

use std::collections::HashMap;

use super::error::GgufError;
use super::meta::{ArrayItems, MetaArray, MetaEntry, MetaValue, Span, TensorInfo};
use super::types::{GgmlType, ValueType};

pub(crate) const GGUF_MAGIC: [u8; 4] = *b"GGUF";
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// Nesting limit for arrays of arrays (keeps recursion bounded on hostile input).
pub(crate) const MAX_ARRAY_DEPTH: usize = 8;
/// ggml's GGML_MAX_DIMS.
pub(crate) const MAX_DIMS: u32 = 4;
/// Smallest encoding of one key/value pair: key length, value type, a one-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Longest tensor name accepted, in bytes (ggml's `GGML_MAX_NAME`).
pub const MAX_TENSOR_NAME: usize = 64;

fn name_len_ok(name: &str) -> bool {
    name.len() <= MAX_TENSOR_NAME
}

/// Smallest encoding of one tensor info: name length, n_dims, type, offset.
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// What the parser read from the front of the file.
pub(crate) struct Parsed {
    pub version: u32,
    pub alignment: u64,
    pub metadata: Vec<MetaEntry>,
    pub key_index: HashMap<String, usize>,
    pub tensors: Vec<TensorInfo>,
    pub tensor_index: HashMap<String, usize>,
    pub data_start: u64,
    pub data_len: u64,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn take(&mut self, n: u64, what: impl FnOnce() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                what: what(),
                offset: self.pos as u64,
                needed: n,
                file_len: self.bytes.len() as u64,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: impl FnOnce() -> String) -> Result<[u8; N], GgufError> {
        let b = self.take(N as u64, what)?;
        Ok(b.try_into().expect("took N bytes"))
    }

    fn u32(&mut self, what: impl FnOnce() -> String) -> Result<u32, GgufError> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl FnOnce() -> String) -> Result<u64, GgufError> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// A GGUF string: u64 length then UTF-8 bytes. Returns its span.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<Span, GgufError> {
        let len = self.u64(|| format!("length of {}", what()))?;
        let offset = self.pos;
        let bytes = self.take(len, what)?;
        if std::str::from_utf8(bytes).is_err() {
            return Err(GgufError::InvalidUtf8 {
                what: what(),
                offset: offset as u64,
            });
        }
        Ok(Span {
            offset,
            len: bytes.len(),
        })
    }

    fn owned_string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let span = self.string(what)?;
        Ok(std::str::from_utf8(&self.bytes[span.offset..span.offset + span.len])
            .expect("validated")
            .to_owned())
    }

    /// Check that `count` items (the count stored at `offset`) of at least `min_bytes` each
    /// can fit in what is left.
    fn check_count(&self, what: &'static str, count: u64, offset: u64, min_bytes: u64) -> Result<usize, GgufError> {
        let fits = count
            .checked_mul(min_bytes)
            .is_some_and(|need| need <= self.remaining());
        if !fits {
            return Err(GgufError::CountTooLarge {
                what,
                count,
                offset,
                remaining: self.remaining(),
            });
        }
        Ok(count as usize)
    }
}

pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, GgufError> {
    let mut c = Cursor { bytes, pos: 0 };
    let magic = c.array::<4>(|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic { found: magic });
    }
    let version = c.u32(|| "version".into())?;
    match version {
        2 | 3 => {}
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => return Err(GgufError::BigEndian { version: v }),
        v => return Err(GgufError::UnsupportedVersion { version: v }),
    }
    let n_tensors = c.u64(|| "tensor count".into())?;
    let n_kv = c.u64(|| "metadata key/value count".into())?;
    let n_kv = c.check_count("metadata key/value", n_kv, 16, MIN_KV_BYTES)?;
    // The tensor infos come after the metadata, so this bound is loose but already rules out
    // counts that could never fit.
    let n_tensors = c.check_count("tensor", n_tensors, 8, MIN_TENSOR_INFO_BYTES)?;

    let mut metadata = Vec::with_capacity(n_kv);
    let mut key_index = HashMap::with_capacity(n_kv);
    for i in 0..n_kv {
        let offset = c.pos as u64;
        let key = c.owned_string(&|| format!("key of metadata entry {i}"))?;
        let code = c.u32(|| format!("value type of key {key:?}"))?;
        let ty = ValueType::from_code(code).ok_or_else(|| GgufError::UnknownValueType {
            key: key.clone(),
            offset: c.pos as u64 - 4,
            code,
        })?;
        let value = read_value(&mut c, &key, ty, 0)?;
        if key_index.insert(key.clone(), metadata.len()).is_some() {
            return Err(GgufError::DuplicateKey { key, offset });
        }
        metadata.push(MetaEntry { key, offset, value });
    }

    let alignment = match key_index.get("general.alignment").map(|&i| &metadata[i].value) {
        None => DEFAULT_ALIGNMENT,
        Some(MetaValue::U32(a)) => {
            let a = u64::from(*a);
            if a == 0 || !a.is_power_of_two() || a > 1 << 30 {
                return Err(GgufError::BadAlignment { value: a });
            }
            a
        }
        Some(v) => {
            return Err(GgufError::WrongKeyType {
                key: "general.alignment".into(),
                expected: "UINT32",
                found: v.type_name(),
            })
        }
    };

    let mut tensors = Vec::with_capacity(n_tensors.min(c.remaining() as usize / 24));
    let mut tensor_index = HashMap::with_capacity(n_tensors);
    for i in 0..n_tensors {
        let info_offset = c.pos as u64;
        let name = c.owned_string(&|| format!("name of tensor {i}"))?;
        // ggml's names fit 64 bytes; a NUL or control byte would let one name alias another
        // in C-string tools (and means the file is not what it claims).
        if name.len() > MAX_TENSOR_NAME || name.chars().any(char::is_control) {
            let why = if name_len_ok(&name) {
                "it contains a NUL or control character"
            } else {
                "it is longer than 64 bytes"
            };
            return Err(GgufError::BadTensorName {
                index: i,
                offset: info_offset,
                name,
                why,
            });
        }
        let n_dims = c.u32(|| format!("dimension count of tensor {name:?}"))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                tensor: name,
                offset: c.pos as u64 - 4,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(|| format!("dim {d} of tensor {name:?}"))?);
        }
        let code = c.u32(|| format!("type of tensor {name:?}"))?;
        let ty = GgmlType(code);
        let Some((block_len, block_bytes)) = ty.block() else {
            return Err(GgufError::UnknownTensorType {
                tensor: name,
                offset: c.pos as u64 - 4,
                code,
            });
        };
        let offset = c.u64(|| format!("data offset of tensor {name:?}"))?;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| GgufError::DimsOverflow {
                tensor: name.clone(),
                dims: dims.clone(),
            })?;
        let dim0 = dims.first().copied().unwrap_or(1);
        if dim0 % block_len as u64 != 0 {
            return Err(GgufError::BlockMisfit {
                tensor: name,
                ty: ty.to_string(),
                dim0,
                block: block_len,
            });
        }
        let n_bytes = (n_elements / block_len as u64)
            .checked_mul(block_bytes as u64)
            .ok_or_else(|| GgufError::DimsOverflow {
                tensor: name.clone(),
                dims: dims.clone(),
            })?;
        if offset % alignment != 0 {
            return Err(GgufError::MisalignedTensor {
                tensor: name,
                offset,
                alignment,
            });
        }
        if tensor_index.insert(name.clone(), tensors.len()).is_some() {
            return Err(GgufError::DuplicateTensor {
                tensor: name,
                offset: info_offset,
            });
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            n_bytes,
            info_offset,
        });
    }

    let file_len = bytes.len() as u64;
    let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
    let data_len = if tensors.is_empty() {
        file_len.saturating_sub(data_start)
    } else if data_start > file_len {
        return Err(GgufError::Truncated {
            what: "padding before the tensor data section".into(),
            offset: c.pos as u64,
            needed: data_start - c.pos as u64,
            file_len,
        });
    } else {
        file_len - data_start
    };
    check_tensor_extents(&tensors, data_len)?;

    Ok(Parsed {
        version,
        alignment,
        metadata,
        key_index,
        tensors,
        tensor_index,
        data_start,
        data_len,
    })
}

fn read_value(c: &mut Cursor<'_>, key: &str, ty: ValueType, depth: usize) -> Result<MetaValue, GgufError> {
    let what = || format!("value of key {key:?}");
    Ok(match ty {
        ValueType::U8 => MetaValue::U8(c.array::<1>(what)?[0]),
        ValueType::I8 => MetaValue::I8(c.array::<1>(what)?[0] as i8),
        ValueType::U16 => MetaValue::U16(u16::from_le_bytes(c.array(what)?)),
        ValueType::I16 => MetaValue::I16(i16::from_le_bytes(c.array(what)?)),
        ValueType::U32 => MetaValue::U32(u32::from_le_bytes(c.array(what)?)),
        ValueType::I32 => MetaValue::I32(i32::from_le_bytes(c.array(what)?)),
        ValueType::F32 => MetaValue::F32(f32::from_le_bytes(c.array(what)?)),
        ValueType::U64 => MetaValue::U64(u64::from_le_bytes(c.array(what)?)),
        ValueType::I64 => MetaValue::I64(i64::from_le_bytes(c.array(what)?)),
        ValueType::F64 => MetaValue::F64(f64::from_le_bytes(c.array(what)?)),
        ValueType::Bool => {
            let offset = c.pos as u64;
            match c.array::<1>(what)?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => {
                    return Err(GgufError::ValueOutOfRange {
                        key: key.into(),
                        value: format!("{b} (byte at offset {offset})"),
                        expected: "BOOL (0 or 1)",
                    })
                }
            }
        }
        ValueType::String => MetaValue::String(c.string(&|| format!("string value of key {key:?}"))?),
        ValueType::Array => MetaValue::Array(read_array(c, key, depth)?),
    })
}

fn read_array(c: &mut Cursor<'_>, key: &str, depth: usize) -> Result<MetaArray, GgufError> {
    let start = c.pos as u64;
    if depth >= MAX_ARRAY_DEPTH {
        return Err(GgufError::NestingTooDeep {
            key: key.into(),
            offset: start,
            max: MAX_ARRAY_DEPTH,
        });
    }
    let code = c.u32(|| format!("array element type of key {key:?}"))?;
    let elem = ValueType::from_code(code).ok_or_else(|| GgufError::UnknownValueType {
        key: key.into(),
        offset: start,
        code,
    })?;
    let count = c.u64(|| format!("array length of key {key:?}"))?;
    let len = c.check_count("array element", count, c.pos as u64 - 8, elem.min_encoded_size() as u64)?;
    let items = match elem {
        ValueType::String => {
            let mut spans = Vec::with_capacity(len);
            for i in 0..len {
                spans.push(c.string(&|| format!("element {i} of string array {key:?}"))?);
            }
            ArrayItems::Strings(spans)
        }
        ValueType::Array => {
            let mut arrays = Vec::with_capacity(len);
            for _ in 0..len {
                arrays.push(read_array(c, key, depth + 1)?);
            }
            ArrayItems::Arrays(arrays)
        }
        fixed => {
            let size = fixed.fixed_size().expect("fixed-size type") as u64;
            let offset = c.pos;
            // check_count already proved len * size fits.
            c.take(len as u64 * size, || format!("elements of array {key:?}"))?;
            if fixed == ValueType::Bool {
                if let Some(i) = c.bytes[offset..c.pos].iter().position(|&b| b > 1) {
                    return Err(GgufError::ValueOutOfRange {
                        key: key.into(),
                        value: format!("element {i} = {}", c.bytes[offset + i]),
                        expected: "BOOL (0 or 1)",
                    });
                }
            }
            ArrayItems::Fixed { offset }
        }
    };
    Ok(MetaArray { elem, len, items })
}

/// Every tensor must lie inside the data section, and no two may share bytes.
fn check_tensor_extents(tensors: &[TensorInfo], data_len: u64) -> Result<(), GgufError> {
    for t in tensors {
        let end = t.offset.checked_add(t.n_bytes);
        if end.is_none_or(|end| end > data_len) {
            return Err(GgufError::TensorPastEnd {
                tensor: t.name.clone(),
                start: t.offset,
                end: end.unwrap_or(u64::MAX),
                data_len,
            });
        }
    }
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
    by_offset.sort_by_key(|t| t.offset);
    for pair in by_offset.windows(2) {
        if pair[0].offset + pair[0].n_bytes > pair[1].offset {
            return Err(GgufError::OverlappingTensors {
                first: pair[0].name.clone(),
                second: pair[1].name.clone(),
                offset: pair[1].offset,
            });
        }
    }
    Ok(())
}
