//! Everything that can be wrong with a GGUF file, each with where it was found.

use std::path::PathBuf;

/// A GGUF file could not be read or does not hold what was asked of it.
///
/// Byte offsets are absolute positions in the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("cannot open {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    InFile { path: PathBuf, source: Box<GgufError> },
    #[error("file ends at byte {file_len} while reading {what} at offset {offset} ({needed} bytes needed)")]
    Truncated {
        what: String,
        offset: u64,
        needed: u64,
        file_len: u64,
    },
    #[error("not a GGUF file: magic bytes are {found:02x?}, expected \"GGUF\"")]
    BadMagic { found: [u8; 4] },
    #[error("unsupported GGUF version {version} (supported: 2, 3)")]
    UnsupportedVersion { version: u32 },
    #[error("big-endian GGUF files are not supported (version field reads {version:#x})")]
    BigEndian { version: u32 },
    #[error("{what} count {count} at offset {offset} cannot fit in the {remaining} bytes left in the file")]
    CountTooLarge {
        what: &'static str,
        count: u64,
        offset: u64,
        remaining: u64,
    },
    #[error("{what} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { what: String, offset: u64 },
    #[error("metadata key {key:?} at offset {offset}: unknown value type {code}")]
    UnknownValueType { key: String, offset: u64, code: u32 },
    #[error("metadata key {key:?} at offset {offset}: arrays nested deeper than {max}")]
    NestingTooDeep { key: String, offset: u64, max: usize },
    #[error("metadata key {key:?} at offset {offset} is a duplicate")]
    DuplicateKey { key: String, offset: u64 },
    #[error("general.alignment = {value} is not a power of two between 1 and 2^30")]
    BadAlignment { value: u64 },
    #[error("metadata key {key:?} has type {found}, expected {expected}")]
    WrongKeyType {
        key: String,
        expected: &'static str,
        found: String,
    },
    #[error("metadata key {key:?} is missing")]
    MissingKey { key: String },
    #[error("metadata key {key:?}: value {value} is out of range for {expected}")]
    ValueOutOfRange {
        key: String,
        value: String,
        expected: &'static str,
    },
    #[error("tensor {tensor:?} at offset {offset}: {n_dims} dimensions (at most 4 allowed)")]
    TooManyDims { tensor: String, offset: u64, n_dims: u32 },
    #[error("tensor {tensor:?} at offset {offset}: unknown tensor type {code}")]
    UnknownTensorType { tensor: String, offset: u64, code: u32 },
    #[error("tensor {tensor:?}: dims {dims:?} overflow when multiplied out")]
    DimsOverflow { tensor: String, dims: Vec<u64> },
    #[error("tensor {tensor:?}: innermost dim {dim0} is not a multiple of the {ty} block length {block}")]
    BlockMisfit {
        tensor: String,
        ty: String,
        dim0: u64,
        block: usize,
    },
    #[error("tensor {tensor:?}: data offset {offset} is not a multiple of the alignment {alignment}")]
    MisalignedTensor {
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error("tensor {tensor:?}: data [{start}, {end}) runs past the end of the data section ({data_len} bytes)")]
    TensorPastEnd {
        tensor: String,
        start: u64,
        end: u64,
        data_len: u64,
    },
    #[error("tensors {first:?} and {second:?} overlap in the data section (at data offset {offset})")]
    OverlappingTensors { first: String, second: String, offset: u64 },
    #[error("tensor name {tensor:?} at offset {offset} is a duplicate")]
    DuplicateTensor { tensor: String, offset: u64 },
    #[error("tensor {index} at offset {offset} has the name {name:?}, which is refused: {why}")]
    BadTensorName {
        index: usize,
        offset: u64,
        name: String,
        why: &'static str,
    },
    #[error("tensor {name:?} is missing")]
    MissingTensor { name: String },
    #[error(
        "tensor {tensor:?} has type {ty}, which this runtime cannot use (supported: {})",
        super::types::supported_weight_types()
    )]
    UnsupportedTensorType { tensor: String, ty: String },
    #[error("tensor {tensor:?} has type {found}, expected {expected}")]
    WrongTensorType {
        tensor: String,
        expected: &'static str,
        found: String,
    },
    #[error("tensor {tensor:?}: data is not aligned to {align} bytes in memory for a typed view")]
    UnalignedView { tensor: String, align: usize },
    #[error("tensor {tensor:?}: {what}")]
    BadTensorData { tensor: String, what: String },
}

impl GgufError {
    /// Attach the file path to an error found inside a file.
    pub fn in_file(self, path: impl Into<PathBuf>) -> GgufError {
        match self {
            e @ (GgufError::Io { .. } | GgufError::InFile { .. }) => e,
            e => GgufError::InFile {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }

    /// The error with any file-path wrapper removed (what tests match on).
    pub fn root(&self) -> &GgufError {
        match self {
            GgufError::InFile { source, .. } => source.root(),
            e => e,
        }
    }
}
