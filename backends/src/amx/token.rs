//! The AMX tier's proof of its CPU features and of the operating system's grant.

use crate::avx512::Avx512;
use crate::cpu::{CpuToken, Feature};

/// Proof that this CPU has AMX-TILE and AMX-INT8 beside the AVX-512 tier's features (its
/// epilogues and row-wise ops are AVX-512's), and that Linux granted this process the tile
/// state. Only detection makes one.
#[derive(Clone, Copy, Debug)]
pub struct Amx {
    _private: (),
}

impl CpuToken for Amx {
    const TIER: &'static str = "amx";
    const NEEDS: &'static [Feature] = &[
        Feature::AmxTile,
        Feature::AmxInt8,
        Feature::AmxPermission,
        Feature::Avx512f,
        Feature::Avx512bw,
        Feature::Avx512vl,
        Feature::Avx512vnni,
        Feature::Avx2,
        Feature::Fma,
        Feature::F16c,
    ];

    unsafe fn assume() -> Amx {
        Amx { _private: () }
    }
}

impl Amx {
    /// The AVX-512 token this one implies.
    pub fn avx512(self) -> Avx512 {
        // SAFETY: every feature the AVX-512 tier needs is one of ours, checked when `self` was made.
        unsafe { Avx512::assume() }
    }
}
