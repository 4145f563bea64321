//! Kernels, lowering and the executor. The scalar table is the specification; SIMD tiers
//! (AVX2 on x86_64, later AVX-512 and NEON) start from it and override the slots they
//! accelerate, chosen at run time. All `cfg(target_arch)`, `target_feature` and SIMD `unsafe`
//! of the project live in this crate.
//!
//! Adding a backend: one new module (its table, built as `..scalar::TABLE` plus overrides, and
//! its CPU-feature token), a [`Backend`] variant, and its lines in [`Backend::table`] and
//! [`Backend::missing_features`].

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod composite;
pub mod exec;
pub mod fast;
pub mod kernels;
pub mod lower;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod rows;
pub mod scalar;
mod split;
pub mod team;
pub mod tiled;
pub mod weights;
pub mod wtypes;

use std::sync::OnceLock;

pub use exec::{Arena, Batch, ExecError, StepTimes};
pub use gg_ops::WeightView;
pub use kernels::{Activations, KernelTable, Par, SeqSpan};
pub use lower::{LowerError, OutputSlot, PackSpec, Program, Step};
pub use team::Team;
pub use weights::{ByteSource, Prepared, Weight, WeightBytes, WeightTable};

/// A kernel tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Scalar,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
    /// x86_64 with AVX-512F/BW/VL besides the AVX2 tier's features.
    Avx512,
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
    #[error("unknown backend {0:?}; known: scalar, avx2, avx512, neon")]
    Unknown(String),
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Neon => "neon",
        }
    }

    /// A backend by name.
    pub fn from_name(name: &str) -> Result<Backend, Unavailable> {
        Backend::all()
            .iter()
            .copied()
            .find(|b| b.name() == name)
            .ok_or_else(|| Unavailable::Unknown(name.to_string()))
    }

    /// The CPU features this backend needs and this CPU lacks (empty when it can run).
    pub fn missing_features(self) -> Result<Vec<&'static str>, Unavailable> {
        match self {
            Backend::Scalar => Ok(Vec::new()),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => Ok(avx2::missing_features()),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => Ok(avx512::missing_features()),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Avx512 => Err(Unavailable::OtherArch {
                backend: self.name(),
                arch: "x86_64",
                this: std::env::consts::ARCH,
            }),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => Ok(neon::missing_features()),
            #[cfg(not(target_arch = "aarch64"))]
            Backend::Neon => Err(Unavailable::OtherArch {
                backend: self.name(),
                arch: "aarch64",
                this: std::env::consts::ARCH,
            }),
        }
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        self.table().is_ok()
    }

    /// The backend's kernel table, or why this CPU cannot run it.
    pub fn table(self) -> Result<&'static KernelTable, Unavailable> {
        match self {
            Backend::Scalar => Ok(&scalar::KERNELS),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => match avx2::Avx2::detect() {
                Some(cpu) => Ok(avx2::table(cpu)),
                None => Err(Unavailable::MissingFeatures {
                    backend: "avx2",
                    missing: avx2::missing_features(),
                }),
            },
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => match avx512::Avx512::detect() {
                Some(cpu) => Ok(avx512::table(cpu)),
                None => Err(Unavailable::MissingFeatures {
                    backend: "avx512",
                    missing: avx512::missing_features(),
                }),
            },
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Avx512 => Err(self.missing_features().expect_err("not on this arch")),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon => match neon::Neon::detect() {
                Some(cpu) => Ok(neon::table(cpu)),
                None => Err(Unavailable::MissingFeatures {
                    backend: "neon",
                    missing: neon::missing_features(),
                }),
            },
            #[cfg(not(target_arch = "aarch64"))]
            Backend::Neon => Err(self.missing_features().expect_err("not on this arch")),
        }
    }

    /// Every backend, from the plainest to the fastest.
    pub fn all() -> &'static [Backend] {
        &[Backend::Scalar, Backend::Avx2, Backend::Avx512, Backend::Neon]
    }
}

/// How matmuls over quantized weights compute (chosen per model, applied at lowering).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// f32 activations times exactly dequantized weights: the scalar tier's answer, to
    /// summation order.
    Exact,
    /// Integer dot products over the weight blocks with activations quantized per block to
    /// 16 bits ([`fast`]); weight types without such kernels run their exact kernels.
    #[default]
    Fast,
    /// The fast scheme with activations quantized per block to 8 bits, as llama.cpp does
    /// ([`fast::int8`]): twice the products per instruction on AVX-512 VNNI, at 8-bit
    /// activations' accuracy. Kernels on `avx512` (with VNNI) and `scalar`; float weights run
    /// their fast kernels.
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

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What `auto` picks from, fastest first (measured: AVX-512's 8 × 2 tiles beat AVX2 by ~12 %
/// on 512-token texts and tie on short queries on the Xeon they were written on).
const AUTO_ORDER: &[Backend] = &[Backend::Avx512, Backend::Avx2, Backend::Neon, Backend::Scalar];

/// The fastest backend this CPU supports, detected once.
pub fn best_backend() -> Backend {
    static BEST: OnceLock<Backend> = OnceLock::new();
    *BEST.get_or_init(|| {
        AUTO_ORDER
            .iter()
            .copied()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Scalar)
    })
}

/// The backend `GEMMA_GRAPH_BACKEND` names (`auto` or unset: the fastest available), or why
/// it cannot be used.
pub fn backend_from_env() -> Result<Backend, Unavailable> {
    match std::env::var("GEMMA_GRAPH_BACKEND") {
        Ok(name) if !name.is_empty() && name != "auto" => {
            let b = Backend::from_name(&name)?;
            b.table()?;
            Ok(b)
        }
        _ => Ok(best_backend()),
    }
}

/// CPU features relevant to the backends, for `--verbose` and `dump`.
pub fn cpu_features() -> Vec<&'static str> {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($name:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($name) {
                    f.push($name);
                }
            )*};
        }
        probe!(
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avxvnni"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        f.push("neon");
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            f.push("dotprod");
        }
    }
    f
}
