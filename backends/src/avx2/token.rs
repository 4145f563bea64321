//! The AVX2 tier's proof of its CPU features.

use crate::cpu::{CpuToken, Feature};

/// Proof that this CPU has AVX2, FMA and F16C. Only detection makes one.
#[derive(Clone, Copy, Debug)]
pub struct Avx2 {
    _private: (),
}

impl CpuToken for Avx2 {
    const TIER: &'static str = "avx2";
    const NEEDS: &'static [Feature] = &[Feature::Avx2, Feature::Fma, Feature::F16c];

    unsafe fn assume() -> Avx2 {
        Avx2 { _private: () }
    }
}
