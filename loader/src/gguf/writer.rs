//! Writing GGUF v3 files (used by the converter and by tests that build fixtures).

use std::io::{self, Write};

use super::meta::gguf_dims;
use super::parse::{DEFAULT_ALIGNMENT, GGUF_MAGIC};
use super::types::{GgmlType, ValueType};

/// An owned metadata value to write.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Element type, then the elements (all of that type).
    Array(ValueType, Vec<Value>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Array(..) => ValueType::Array,
        }
    }

    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Array(
            ValueType::String,
            items.into_iter().map(|s| Value::String(s.into())).collect(),
        )
    }

    pub fn f32s(items: impl IntoIterator<Item = f32>) -> Value {
        Value::Array(ValueType::F32, items.into_iter().map(Value::F32).collect())
    }

    pub fn i32s(items: impl IntoIterator<Item = i32>) -> Value {
        Value::Array(ValueType::I32, items.into_iter().map(Value::I32).collect())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.push(*v as u8),
            Value::U16(v) => out.extend(v.to_le_bytes()),
            Value::I16(v) => out.extend(v.to_le_bytes()),
            Value::U32(v) => out.extend(v.to_le_bytes()),
            Value::I32(v) => out.extend(v.to_le_bytes()),
            Value::F32(v) => out.extend(v.to_le_bytes()),
            Value::Bool(v) => out.push(u8::from(*v)),
            Value::String(s) => encode_str(s, out),
            Value::U64(v) => out.extend(v.to_le_bytes()),
            Value::I64(v) => out.extend(v.to_le_bytes()),
            Value::F64(v) => out.extend(v.to_le_bytes()),
            Value::Array(elem, items) => {
                out.extend(elem.code().to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for item in items {
                    debug_assert_eq!(item.value_type(), *elem, "array element of the wrong type");
                    item.encode(out);
                }
            }
        }
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    out.extend((s.len() as u64).to_le_bytes());
    out.extend(s.as_bytes());
}

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    data: Vec<u8>,
}

/// Collects metadata and tensors, then writes a GGUF v3 file.
pub struct GgufWriter {
    kvs: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
    alignment: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    pub fn new() -> GgufWriter {
        GgufWriter {
            kvs: Vec::new(),
            tensors: Vec::new(),
            alignment: DEFAULT_ALIGNMENT,
        }
    }

    /// Add (or replace) a metadata key.
    pub fn add(&mut self, key: impl Into<String>, value: Value) -> &mut Self {
        let key = key.into();
        if key == "general.alignment" {
            // An invalid alignment is still written (tests need such files) but not used.
            if let Value::U32(a) = value.clone() {
                if a.is_power_of_two() {
                    self.alignment = u64::from(a);
                }
            }
        }
        match self.kvs.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.kvs.push((key, value)),
        }
        self
    }

    /// Add a tensor; `shape` is row-major (outermost first), `data` its bytes in `ty`.
    pub fn add_tensor(&mut self, name: impl Into<String>, shape: &[usize], ty: GgmlType, data: Vec<u8>) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.into(),
            dims: gguf_dims(shape),
            ty,
            data,
        });
        self
    }

    pub fn n_tensors(&self) -> usize {
        self.tensors.len()
    }

    pub fn n_keys(&self) -> usize {
        self.kvs.len()
    }

    /// The whole file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_header(&mut out);
        for t in &self.tensors {
            pad_to(&mut out, self.alignment);
            out.extend(&t.data);
        }
        out
    }

    /// Write the file to `w`.
    pub fn write_to(&self, mut w: impl Write) -> io::Result<()> {
        let mut header = Vec::new();
        self.write_header(&mut header);
        w.write_all(&header)?;
        let mut pos = header.len() as u64;
        for t in &self.tensors {
            let pad = pos.next_multiple_of(self.alignment) - pos;
            w.write_all(&vec![0u8; pad as usize])?;
            w.write_all(&t.data)?;
            pos += pad + t.data.len() as u64;
        }
        w.flush()
    }

    /// Magic, version, counts, metadata, tensor directory, padding up to the data section.
    fn write_header(&self, out: &mut Vec<u8>) {
        out.extend(GGUF_MAGIC);
        out.extend(3u32.to_le_bytes());
        out.extend((self.tensors.len() as u64).to_le_bytes());
        out.extend((self.kvs.len() as u64).to_le_bytes());
        for (key, value) in &self.kvs {
            encode_str(key, out);
            out.extend(value.value_type().code().to_le_bytes());
            value.encode(out);
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            encode_str(&t.name, out);
            out.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(t.ty.0.to_le_bytes());
            offset = offset.next_multiple_of(self.alignment);
            out.extend(offset.to_le_bytes());
            offset += t.data.len() as u64;
        }
        if !self.tensors.is_empty() {
            pad_to(out, self.alignment);
        }
    }
}

fn pad_to(out: &mut Vec<u8>, alignment: u64) {
    let len = (out.len() as u64).next_multiple_of(alignment);
    out.resize(len as usize, 0);
}
