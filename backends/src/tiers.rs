//! The tiers this build has, listed once, fastest first: what `auto` tries in order, and how a
//! [`Backend`] name finds its table. A tier enters as one line here (its module implements
//! [`Tier`]); its CPU features, detection and table come from that implementation.

use crate::backend::{Backend, Unavailable};
use crate::cpu::{self, CpuToken, Feature};
use crate::table::{KernelTable, Tier};

/// What the list knows of a tier.
struct Entry {
    backend: Backend,
    needs: &'static [Feature],
    /// The table, if this CPU has the tier's features.
    table: fn() -> Option<&'static KernelTable>,
}

const fn entry<T: Tier>() -> Entry {
    Entry {
        backend: T::BACKEND,
        needs: <T::Token as CpuToken>::NEEDS,
        table: table_of::<T>,
    }
}

fn table_of<T: Tier>() -> Option<&'static KernelTable> {
    T::Token::detect().map(|_| T::table())
}

/// Fastest first (measured: AVX-512's 8 × 2 tiles beat AVX2 by ~12 % on 512-token texts and tie
/// on short queries on the Xeon they were written on; AMX: docs/performance.md).
const TIERS: &[Entry] = &[
    #[cfg(target_arch = "x86_64")]
    entry::<crate::amx::AmxTier>(),
    #[cfg(target_arch = "x86_64")]
    entry::<crate::avx512::Avx512Tier>(),
    #[cfg(target_arch = "x86_64")]
    entry::<crate::avx2::Avx2Tier>(),
    #[cfg(target_arch = "aarch64")]
    entry::<crate::neon::NeonTier>(),
    entry::<crate::scalar::ScalarTier>(),
];

fn find(backend: Backend) -> Result<&'static Entry, Unavailable> {
    TIERS
        .iter()
        .find(|e| e.backend == backend)
        .ok_or(Unavailable::OtherArch {
            backend: backend.name(),
            arch: backend.arch().unwrap_or("every"),
            this: std::env::consts::ARCH,
        })
}

impl Backend {
    /// The CPU features this backend needs and this CPU lacks (empty when it can run).
    pub fn missing_features(self) -> Result<Vec<&'static str>, Unavailable> {
        Ok(cpu::missing(find(self)?.needs))
    }

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        self.table().is_ok()
    }

    /// The backend's kernel table, or why this CPU cannot run it.
    pub fn table(self) -> Result<&'static KernelTable, Unavailable> {
        let e = find(self)?;
        (e.table)().ok_or_else(|| Unavailable::MissingFeatures {
            backend: self.name(),
            missing: cpu::missing(e.needs),
        })
    }
}

/// The fastest backend this CPU supports.
pub fn best_backend() -> Backend {
    TIERS
        .iter()
        .find(|e| (e.table)().is_some())
        .map_or(Backend::Scalar, |e| e.backend)
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
    cpu::names()
}
