//! Kernels and the executor. The scalar table is the specification; SIMD tables (AVX2 on
//! x86_64, NEON on aarch64) are chosen at run time. All `cfg(target_arch)`, `target_feature`
//! and SIMD `unsafe` of the project live in this crate.

#[cfg(target_arch = "x86_64")]
pub mod avx2;
pub mod exec;
pub mod kernels;
pub mod scalar;
mod split;
pub mod weights;

use std::sync::OnceLock;

pub use exec::{Arena, Batch, ExecError, OutputSlot, Program};
pub use kernels::{Activations, KernelTable, Par, SeqSpan};
pub use weights::{ByteSource, Weight, WeightBytes, WeightTable, WeightView};

/// A kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    Scalar,
    /// x86_64 with AVX2, FMA and F16C.
    Avx2,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
        }
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        static AVX2: OnceLock<bool> = OnceLock::new();
        match self {
            Backend::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => *AVX2.get_or_init(avx2::is_available),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 => false,
        }
    }

    /// The backend's kernel table.
    ///
    /// # Panics
    /// If this CPU cannot run the backend (check [`Backend::is_available`]): handing out a
    /// SIMD table on a CPU without its instructions would be undefined behaviour.
    pub fn kernels(self) -> &'static KernelTable {
        assert!(self.is_available(), "the {self} backend is not available on this CPU");
        match self {
            Backend::Scalar => &scalar::KERNELS,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => &avx2::KERNELS,
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 => unreachable!("not available off x86_64"),
        }
    }

    /// Every backend, in order of preference from last to first.
    pub fn all() -> &'static [Backend] {
        &[Backend::Scalar, Backend::Avx2]
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The best backend this CPU supports, detected once. `GEMMA_GRAPH_BACKEND` (a backend name)
/// overrides it when that backend is available.
pub fn best_backend() -> Backend {
    static BEST: OnceLock<Backend> = OnceLock::new();
    *BEST.get_or_init(|| {
        if let Ok(name) = std::env::var("GEMMA_GRAPH_BACKEND") {
            if let Some(b) = Backend::all().iter().find(|b| b.name() == name && b.is_available()) {
                return *b;
            }
        }
        Backend::all()
            .iter()
            .rev()
            .copied()
            .find(|b| b.is_available())
            .unwrap_or(Backend::Scalar)
    })
}

/// CPU features relevant to the backends, for `--verbose` and `dump`.
pub fn cpu_features() -> Vec<&'static str> {
    let mut f = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            f.push("avx2");
        }
        if std::arch::is_x86_feature_detected!("fma") {
            f.push("fma");
        }
        if std::arch::is_x86_feature_detected!("f16c") {
            f.push("f16c");
        }
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
