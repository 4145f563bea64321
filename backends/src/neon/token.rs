//! The NEON tier's proof of its CPU features.

use crate::cpu::{CpuToken, Feature};

/// Proof that this CPU has NEON (every aarch64 CPU does; the token keeps the tiers alike).
#[derive(Clone, Copy, Debug)]
pub struct Neon {
    _private: (),
}

impl CpuToken for Neon {
    const TIER: &'static str = "neon";
    const NEEDS: &'static [Feature] = &[Feature::Neon];

    unsafe fn assume() -> Neon {
        Neon { _private: () }
    }
}
