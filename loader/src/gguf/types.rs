//! Type codes of the GGUF format: metadata value types and ggml tensor types.

use gg_ops::DType;

/// Type code of a metadata value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    pub fn from_code(code: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match code {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    pub fn code(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Encoded size of a fixed-size value; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// Smallest number of bytes one value of this type can occupy in a file.
    pub fn min_encoded_size(self) -> usize {
        match self {
            ValueType::String => 8,    // u64 length
            ValueType::Array => 4 + 8, // element type + u64 count
            t => t.fixed_size().unwrap_or(1),
        }
    }

    /// The name gguf-py uses (`UINT32`, `FLOAT32`, `STRING`, ...).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }
}

/// A ggml tensor type as stored in a GGUF tensor directory.
///
/// Every type llama.cpp defines is known here so that `inspect` can list any file; only the
/// ones with [`GgmlType::to_dtype`] can be computed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// (code, name, block length, block bytes) of every ggml type.
const GGML_TYPES: &[(u32, &str, usize, usize)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const BF16: GgmlType = GgmlType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, usize, usize)> {
        GGML_TYPES.iter().find(|e| e.0 == self.0)
    }

    /// Whether llama.cpp defines this type code.
    pub fn is_known(self) -> bool {
        self.entry().is_some()
    }

    pub fn name(self) -> &'static str {
        self.entry().map_or("UNKNOWN", |e| e.1)
    }

    /// (elements per block, bytes per block) for a known type.
    pub fn block(self) -> Option<(usize, usize)> {
        self.entry().map(|e| (e.2, e.3))
    }

    /// The weight dtype of a tensor of this type, for types this runtime can use directly
    /// (integer tensors are never weights).
    pub fn to_dtype(self) -> Option<DType> {
        DTYPE_CODES
            .iter()
            .find(|e| e.0 == self.0)
            .map(|e| e.1)
            .filter(|d| d.is_weight_type())
    }

    pub fn from_dtype(d: DType) -> Option<GgmlType> {
        DTYPE_CODES.iter().find(|e| e.1 == d).map(|e| GgmlType(e.0))
    }
}

/// The names of the tensor types weights may have (`F32, F16, …`), for messages.
pub fn supported_weight_types() -> String {
    let names: Vec<&str> = DTYPE_CODES
        .iter()
        .filter(|e| e.1.is_weight_type())
        .map(|e| GgmlType(e.0).name())
        .collect();
    names.join(", ")
}

/// The ggml type code of every `DType` (weight types and the integer activation types).
const DTYPE_CODES: &[(u32, DType)] = &[
    (0, DType::F32),
    (1, DType::F16),
    (2, DType::Q4_0),
    (3, DType::Q4_1),
    (6, DType::Q5_0),
    (7, DType::Q5_1),
    (8, DType::Q8_0),
    (10, DType::Q2K),
    (11, DType::Q3K),
    (12, DType::Q4K),
    (13, DType::Q5K),
    (14, DType::Q6K),
    (20, DType::IQ4NL),
    (21, DType::IQ3S),
    (23, DType::IQ4XS),
    (24, DType::I8),
    (25, DType::I16),
    (26, DType::I32),
    (30, DType::BF16),
];

impl std::fmt::Display for GgmlType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_known() {
            f.write_str(self.name())
        } else {
            write!(f, "type#{}", self.0)
        }
    }
}
