//! What the converter's parts share: the output types, the errors, reading JSON, the dense
//! modules of a checkpoint.

use std::path::{Path, PathBuf};

use serde_json::Value as Json;

/// Element type of the converted 2-D weights (1-D tensors always stay F32): llama.cpp's file
/// types. The K and IQ4 types are llama.cpp's mixes (`Q4_K_M` holds Q4_K, Q6_K, Q5_0 and Q8_0
/// tensors, `IQ4_XS` IQ4_XS, IQ4_NL, Q5_1 and Q6_K, `Q2_K` Q2_K, Q3_K, Q4_0 and Q6_K; see
/// `quantize::tensor_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q2K,
    Q3KS,
    Q3KM,
    Q4KM,
    Q5KM,
    Q6K,
    IQ4NL,
    IQ4XS,
    IQ3S,
    IQ3M,
}

/// (type, its `--type` name, llama.cpp's `general.file_type`).
const OUT_TYPES: &[(OutType, &str, u32)] = &[
    (OutType::F32, "f32", 0),
    (OutType::F16, "f16", 1),
    (OutType::BF16, "bf16", 32),
    (OutType::Q8_0, "q8_0", 7),
    (OutType::Q4_0, "q4_0", 2),
    (OutType::Q4_1, "q4_1", 3),
    (OutType::Q5_0, "q5_0", 8),
    (OutType::Q5_1, "q5_1", 9),
    (OutType::Q2K, "q2_k", 10),
    (OutType::Q3KS, "q3_k_s", 11),
    (OutType::Q3KM, "q3_k_m", 12),
    (OutType::Q4KM, "q4_k_m", 15),
    (OutType::Q5KM, "q5_k_m", 17),
    (OutType::Q6K, "q6_k", 18),
    (OutType::IQ4NL, "iq4_nl", 25),
    (OutType::IQ4XS, "iq4_xs", 30),
    (OutType::IQ3S, "iq3_s", 26),
    (OutType::IQ3M, "iq3_m", 27),
];

impl OutType {
    /// Every output type, in `--type` order.
    pub fn all() -> impl Iterator<Item = OutType> {
        OUT_TYPES.iter().map(|e| e.0)
    }

    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_*).
    pub fn file_type(self) -> u32 {
        OUT_TYPES.iter().find(|e| e.0 == self).map_or(0, |e| e.2)
    }

    /// The output type a `general.file_type` names, if the converter writes it.
    pub fn from_file_type(code: u32) -> Option<OutType> {
        OUT_TYPES.iter().find(|e| e.2 == code).map(|e| e.0)
    }

    /// The `--type` name (`q4_k_m`).
    pub fn name(self) -> &'static str {
        OUT_TYPES.iter().find(|e| e.0 == self).map_or("?", |e| e.1)
    }
}

impl std::str::FromStr for OutType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        OUT_TYPES.iter().find(|e| e.1 == lower).map(|e| e.0).ok_or_else(|| {
            let names: Vec<&str> = OUT_TYPES.iter().map(|e| e.1).collect();
            format!("unknown output type {s:?} (expected one of {})", names.join(", "))
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: invalid JSON: {source}")]
    Json { path: PathBuf, source: serde_json::Error },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("{path}: safetensors: {source}")]
    Safetensors {
        path: PathBuf,
        source: safetensors::SafeTensorError,
    },
    #[error("protobuf at offset {offset}: {what}")]
    Protobuf { offset: usize, what: String },
    #[error("{path}: {source}")]
    InFile { path: PathBuf, source: Box<ConvertError> },
}

impl ConvertError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ConvertError {
        ConvertError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn invalid(path: &Path, what: impl Into<String>) -> ConvertError {
        ConvertError::Invalid {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    pub(crate) fn in_file(self, path: &Path) -> ConvertError {
        ConvertError::InFile {
            path: path.to_path_buf(),
            source: Box::new(self),
        }
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Json, ConvertError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConvertError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| ConvertError::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) struct DenseModule {
    /// `dense_2` for `2_Dense`, `dense_3` otherwise (llama.cpp's naming).
    pub prefix: &'static str,
    pub path: PathBuf,
    pub in_features: u32,
    pub out_features: u32,
}
