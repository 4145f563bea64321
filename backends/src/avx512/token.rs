//! The AVX-512 tier's proof of its CPU features.

use crate::avx2::Avx2;
use crate::cpu::{CpuToken, Feature};

/// Proof that this CPU has AVX-512F/BW/VL and what the AVX2 tier needs.
#[derive(Clone, Copy, Debug)]
pub struct Avx512 {
    _private: (),
}

impl CpuToken for Avx512 {
    const TIER: &'static str = "avx512";
    const NEEDS: &'static [Feature] = &[
        Feature::Avx512f,
        Feature::Avx512bw,
        Feature::Avx512vl,
        Feature::Avx2,
        Feature::Fma,
        Feature::F16c,
    ];

    unsafe fn assume() -> Avx512 {
        Avx512 { _private: () }
    }
}

impl Avx512 {
    /// The AVX2 token this one implies.
    pub fn avx2(self) -> Avx2 {
        // SAFETY: every feature the AVX2 tier needs is one of ours, checked when `self` was made.
        unsafe { Avx2::assume() }
    }
}
