//! What a GGUF file holds, as the reader hands it out: metadata entries and values, tensor
//! infos, and where each was in the file.

use super::types::{GgmlType, ValueType};

/// A byte range of the file (absolute offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

/// One metadata entry.
#[derive(Clone, Debug)]
pub struct MetaEntry {
    pub key: String,
    /// Byte offset of the entry in the file.
    pub offset: u64,
    pub value: MetaValue,
}

/// A metadata value. Strings and arrays point into the file; resolve them through [`Gguf`].
#[derive(Clone, Debug)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Span),
    Array(MetaArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array: element type, length and where its items are.
#[derive(Clone, Debug)]
pub struct MetaArray {
    pub elem: ValueType,
    pub len: usize,
    pub(crate) items: ArrayItems,
}

#[derive(Clone, Debug)]
pub(crate) enum ArrayItems {
    /// Fixed-size elements packed from this absolute offset.
    Fixed {
        offset: usize,
    },
    Strings(Vec<Span>),
    Arrays(Vec<MetaArray>),
}

impl MetaValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(_) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }

    /// gguf-py's spelling of the type: `UINT32`, `ARRAY[STRING]`, `ARRAY[ARRAY[INT32]]`...
    pub fn type_name(&self) -> String {
        match self {
            MetaValue::Array(a) => a.type_name(),
            v => v.value_type().name().to_string(),
        }
    }

    /// The value as an integer, if it is one.
    pub(crate) fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }
}

impl MetaArray {
    pub fn type_name(&self) -> String {
        match &self.items {
            ArrayItems::Arrays(inner) => match inner.first() {
                Some(a) => format!("ARRAY[{}]", a.type_name()),
                None => "ARRAY[ARRAY]".into(),
            },
            _ => format!("ARRAY[{}]", self.elem.name()),
        }
    }
}

/// One entry of the tensor directory.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions as GGUF stores them: innermost (contiguous) first.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data, relative to the start of the data section.
    pub offset: u64,
    pub n_bytes: u64,
    /// Byte offset of this entry in the directory.
    pub info_offset: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Shape outermost first (row-major: `[rows, cols]` for a matrix).
    ///
    /// This is the one place where GGUF's innermost-first dims are reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// GGUF dims (innermost first) for a row-major shape (outermost first): the inverse of
/// [`TensorInfo::shape`], and the only other place dims are reversed.
pub fn gguf_dims(shape: &[usize]) -> Vec<u64> {
    shape.iter().rev().map(|&d| d as u64).collect()
}
