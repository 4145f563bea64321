//! The names users pick kernels by: a tier ([`Backend`]) and a precision ([`Precision`]).
//! What each tier needs and runs is in [`crate::tiers`].

/// A kernel tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Scalar,
    /// x86_64 with AVX2, FMA and F16C (AVX-VNNI used where present).
    Avx2,
    /// x86_64 with AVX-512F/BW/VL besides the AVX2 tier's features.
    Avx512,
    /// x86_64 with AMX-TILE/INT8 (and the tile state granted) besides AVX-512 with VNNI.
    Amx,
    /// aarch64 (Advanced SIMD).
    Neon,
}

/// Why a backend cannot run here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("the {backend} backend needs CPU features this CPU lacks: {}", missing.join(", "))]
    MissingFeatures {
        backend: &'static str,
        missing: Vec<&'static str>,
    },
    #[error("the {backend} backend exists only on {arch} CPUs, this is {this}")]
    OtherArch {
        backend: &'static str,
        arch: &'static str,
        this: &'static str,
    },
    #[error("unknown backend {name:?}; known: {}", Backend::ALL.map(Backend::name).join(", "), name = .0)]
    Unknown(String),
}

impl Backend {
    /// Every backend, from the plainest to the fastest.
    pub const ALL: [Backend; 5] = [
        Backend::Scalar,
        Backend::Avx2,
        Backend::Avx512,
        Backend::Amx,
        Backend::Neon,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Amx => "amx",
            Backend::Neon => "neon",
        }
    }

    /// The architecture the tier's kernels are written for (`None`: every one).
    pub const fn arch(self) -> Option<&'static str> {
        match self {
            Backend::Scalar => None,
            Backend::Avx2 | Backend::Avx512 | Backend::Amx => Some("x86_64"),
            Backend::Neon => Some("aarch64"),
        }
    }

    /// A backend by name.
    pub fn from_name(name: &str) -> Result<Backend, Unavailable> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| Unavailable::Unknown(name.to_string()))
    }

    /// Every backend, from the plainest to the fastest.
    pub fn all() -> &'static [Backend] {
        &Backend::ALL
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How matmuls over quantized weights compute (chosen per model, applied at lowering).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 activations times exactly dequantized weights: the scalar tier's answer, to
    /// summation order.
    Exact,
    /// Integer dot products over the weight blocks with activations quantized per block to
    /// 16 bits ([`crate::fast`]); weight types without such kernels run their exact kernels.
    #[default]
    Fast,
    /// The fast scheme with activations quantized per block to 8 bits, as llama.cpp does
    /// ([`crate::fast::int8`]): twice the products per instruction on VNNI, at 8-bit
    /// activations' accuracy. Float weights run their fast kernels.
    Int8,
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Exact => "exact",
            Precision::Fast => "fast",
            Precision::Int8 => "int8",
        }
    }

    pub fn all() -> &'static [Precision] {
        &[Precision::Exact, Precision::Fast, Precision::Int8]
    }

    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::all().iter().copied().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
