//! An opened GGUF file: metadata, tensor directory and zero-copy tensor views.

use std::collections::HashMap;
use std::path::Path;

use gg_ops::WeightView;

use super::error::GgufError;
use super::meta::{ArrayItems, MetaArray, MetaEntry, MetaValue, Span, TensorInfo};
use super::parse;
use super::types::ValueType;

enum Bytes {
    Mapped(memmap2::Mmap),
    /// Owned bytes, stored in u64 words so typed views are aligned.
    Owned {
        words: Vec<u64>,
        len: usize,
    },
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned { words, len } => &bytemuck::cast_slice(words)[..*len],
        }
    }
}

/// A parsed GGUF file (version 2 or 3, little-endian).
pub struct Gguf {
    bytes: Bytes,
    version: u32,
    alignment: u64,
    metadata: Vec<MetaEntry>,
    key_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    data_start: u64,
    data_len: u64,
}

impl Gguf {
    /// Memory-map and parse a file. Errors name the file.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf, GgufError> {
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = Self::open_file(path)?;
        // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not
        // being truncated or rewritten while it is open (documented on `Model::load`).
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::from_storage(Bytes::Mapped(map)).map_err(|e| e.in_file(path))
    }

    /// Read the whole file into memory and parse it (no memory map: a file truncated or
    /// rewritten while the model runs cannot crash the process with SIGBUS).
    pub fn read(path: impl AsRef<Path>) -> Result<Gguf, GgufError> {
        use std::io::Read;
        let path = path.as_ref();
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = Self::open_file(path)?;
        let len = file.metadata().map_err(io)?.len() as usize;
        let mut words = vec![0u64; len.div_ceil(8)];
        let bytes = &mut bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..len];
        file.read_exact(bytes).map_err(io)?;
        Self::from_storage(Bytes::Owned { words, len }).map_err(|e| e.in_file(path))
    }

    /// Open a model file, refusing what is not a regular file with a clear reason.
    fn open_file(path: &Path) -> Result<std::fs::File, GgufError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.is_dir() {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a directory, not a GGUF file",
            )));
        }
        std::fs::File::open(path).map_err(io)
    }

    /// Parse a file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Gguf, GgufError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Self::from_storage(Bytes::Owned {
            words,
            len: bytes.len(),
        })
    }

    fn from_storage(bytes: Bytes) -> Result<Gguf, GgufError> {
        let p = parse::parse(bytes.as_slice())?;
        Ok(Gguf {
            bytes,
            version: p.version,
            alignment: p.alignment,
            metadata: p.metadata,
            key_index: p.key_index,
            tensors: p.tensors,
            tensor_index: p.tensor_index,
            data_start: p.data_start,
            data_len: p.data_len,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the tensor data section.
    pub fn data_start(&self) -> u64 {
        self.data_start
    }

    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    /// The whole file's bytes (memory-mapped for opened files).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Tell the kernel that bytes `start..start + len` will not be read again soon, so their
    /// pages may leave memory (whole pages inside the range only; a mapped file's pages are
    /// read again from the file if touched later). A no-op for files read into memory.
    pub fn release(&self, start: usize, len: usize) {
        #[cfg(unix)]
        if let Bytes::Mapped(m) = &self.bytes {
            let page = 4096;
            let (lo, hi) = (start.div_ceil(page) * page, (start + len) / page * page);
            if hi > lo && hi <= m.len() {
                // SAFETY: the map is a private read-only mapping of a file we never write:
                // dropping its pages loses nothing, a later read faults them in again.
                #[allow(unsafe_code)]
                let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, lo, hi - lo) };
            }
        }
    }

    pub fn file_len(&self) -> u64 {
        self.bytes.as_slice().len() as u64
    }

    /// Metadata entries in file order.
    pub fn metadata(&self) -> &[MetaEntry] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.key_index.get(key).map(|&i| &self.metadata[i].value)
    }

    fn require(&self, key: &str) -> Result<&MetaValue, GgufError> {
        self.get(key).ok_or_else(|| GgufError::MissingKey { key: key.into() })
    }

    /// The text of a string span.
    pub fn str_at(&self, span: Span) -> &str {
        let bytes = &self.bytes.as_slice()[span.offset..span.offset + span.len];
        // Spans are only made by the parser after UTF-8 validation.
        std::str::from_utf8(bytes).expect("string spans are validated when parsed")
    }

    fn wrong_type(key: &str, expected: &'static str, v: &MetaValue) -> GgufError {
        GgufError::WrongKeyType {
            key: key.into(),
            expected,
            found: v.type_name(),
        }
    }

    /// An integer key as u32 (any integer type whose value fits is accepted).
    pub fn u32(&self, key: &str) -> Result<u32, GgufError> {
        let v = self.require(key)?;
        let i = v.as_i128().ok_or_else(|| Self::wrong_type(key, "an integer", v))?;
        u32::try_from(i).map_err(|_| GgufError::ValueOutOfRange {
            key: key.into(),
            value: i.to_string(),
            expected: "u32",
        })
    }

    pub fn f32(&self, key: &str) -> Result<f32, GgufError> {
        match self.require(key)? {
            MetaValue::F32(v) => Ok(*v),
            MetaValue::F64(v) => Ok(*v as f32),
            v => Err(Self::wrong_type(key, "FLOAT32", v)),
        }
    }

    pub fn bool(&self, key: &str) -> Result<bool, GgufError> {
        match self.require(key)? {
            MetaValue::Bool(v) => Ok(*v),
            v => Err(Self::wrong_type(key, "BOOL", v)),
        }
    }

    pub fn str(&self, key: &str) -> Result<&str, GgufError> {
        match self.require(key)? {
            MetaValue::String(s) => Ok(self.str_at(*s)),
            v => Err(Self::wrong_type(key, "STRING", v)),
        }
    }

    fn array(&self, key: &str, elem: ValueType, expected: &'static str) -> Result<&MetaArray, GgufError> {
        match self.require(key)? {
            MetaValue::Array(a) if a.elem == elem => Ok(a),
            v => Err(Self::wrong_type(key, expected, v)),
        }
    }

    /// A string array.
    pub fn strings(&self, key: &str) -> Result<Vec<&str>, GgufError> {
        let a = self.array(key, ValueType::String, "ARRAY[STRING]")?;
        Ok(self.array_strs(a))
    }

    /// A FLOAT32 array.
    pub fn f32s(&self, key: &str) -> Result<Vec<f32>, GgufError> {
        let a = self.array(key, ValueType::F32, "ARRAY[FLOAT32]")?;
        Ok(self
            .fixed_items(a)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect())
    }

    /// An INT32 array.
    pub fn i32s(&self, key: &str) -> Result<Vec<i32>, GgufError> {
        let a = self.array(key, ValueType::I32, "ARRAY[INT32]")?;
        Ok(self
            .fixed_items(a)
            .map(|b| i32::from_le_bytes(b.try_into().unwrap()))
            .collect())
    }

    pub fn array_strs(&self, a: &MetaArray) -> Vec<&str> {
        match &a.items {
            ArrayItems::Strings(spans) => spans.iter().map(|&s| self.str_at(s)).collect(),
            _ => Vec::new(),
        }
    }

    /// The raw little-endian bytes of each element of a fixed-size array.
    fn fixed_items<'a>(&'a self, a: &MetaArray) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (offset, size) = match a.items {
            ArrayItems::Fixed { offset } => (offset, a.elem.fixed_size().unwrap_or(1)),
            _ => (0, 1),
        };
        let bytes = match a.items {
            ArrayItems::Fixed { .. } => &self.bytes.as_slice()[offset..offset + a.len * size],
            _ => &[][..],
        };
        bytes.chunks_exact(size)
    }

    /// A value as JSON, the way gguf-py's `contents()` would give it.
    pub fn value_to_json(&self, v: &MetaValue) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            MetaValue::String(s) => J::from(self.str_at(*s)),
            MetaValue::Bool(b) => J::from(*b),
            MetaValue::F32(f) => J::from(f64::from(*f)),
            MetaValue::F64(f) => J::from(*f),
            MetaValue::Array(a) => self.array_to_json(a),
            other => J::from(other.as_i128().expect("integer") as i64),
        }
    }

    pub fn array_to_json(&self, a: &MetaArray) -> serde_json::Value {
        use serde_json::Value as J;
        match &a.items {
            ArrayItems::Strings(spans) => J::Array(spans.iter().map(|&s| J::from(self.str_at(s))).collect()),
            ArrayItems::Arrays(inner) => J::Array(inner.iter().map(|x| self.array_to_json(x)).collect()),
            ArrayItems::Fixed { .. } => J::Array(
                self.fixed_items(a)
                    .map(|b| match a.elem {
                        ValueType::U8 => J::from(b[0]),
                        ValueType::I8 => J::from(b[0] as i8),
                        ValueType::Bool => J::from(b[0] != 0),
                        ValueType::U16 => J::from(u16::from_le_bytes([b[0], b[1]])),
                        ValueType::I16 => J::from(i16::from_le_bytes([b[0], b[1]])),
                        ValueType::U32 => J::from(u32::from_le_bytes(b.try_into().unwrap())),
                        ValueType::I32 => J::from(i32::from_le_bytes(b.try_into().unwrap())),
                        ValueType::F32 => J::from(f64::from(f32::from_le_bytes(b.try_into().unwrap()))),
                        ValueType::U64 => J::from(u64::from_le_bytes(b.try_into().unwrap())),
                        ValueType::I64 => J::from(i64::from_le_bytes(b.try_into().unwrap())),
                        ValueType::F64 => J::from(f64::from_le_bytes(b.try_into().unwrap())),
                        ValueType::String | ValueType::Array => J::Null,
                    })
                    .collect(),
            ),
        }
    }

    /// The tensor directory in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Result<&TensorInfo, GgufError> {
        self.tensor_index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| GgufError::MissingTensor { name: name.into() })
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.tensor_index.contains_key(name)
    }

    /// The raw bytes of a tensor (bounds were checked when the file was parsed).
    pub fn tensor_bytes(&self, t: &TensorInfo) -> &[u8] {
        let start = (self.data_start + t.offset) as usize;
        &self.bytes.as_slice()[start..start + t.n_bytes as usize]
    }

    /// A typed zero-copy view of a tensor's data (the same view every kernel reads): 1-D
    /// tensors are one row.
    pub fn tensor_data(&self, t: &TensorInfo) -> Result<WeightView<'_>, GgufError> {
        let dtype = t.ty.to_dtype().ok_or_else(|| GgufError::UnsupportedTensorType {
            tensor: t.name.clone(),
            ty: t.ty.to_string(),
        })?;
        let shape = t.shape();
        let cols = shape.last().copied().unwrap_or(1);
        let rows = shape[..shape.len().saturating_sub(1)].iter().product::<usize>();
        WeightView::new(dtype, rows, cols, self.tensor_bytes(t)).map_err(|e| match e {
            gg_ops::ViewError::Misaligned { align, .. } => GgufError::UnalignedView {
                tensor: t.name.clone(),
                align,
            },
            other => GgufError::BadTensorData {
                tensor: t.name.clone(),
                what: other.to_string(),
            },
        })
    }
}

#[cfg(target_endian = "big")]
compile_error!(
    "gemma-graph reads little-endian GGUF files by reinterpreting bytes; big-endian hosts are not supported"
);
