//! CPU features, detected once per process into a bit set, and the tokens that prove them.
//!
//! Each SIMD tier has a token type (a zero-sized value implementing [`CpuToken`]) that only
//! [`CpuToken::detect`] makes, after checking every feature the tier needs; safe kernel entry
//! points take or fetch the token before they enter `#[target_feature]` code. Tiers state their
//! features as a list and share the detection here: no tier writes its own.

use std::sync::OnceLock;

/// A CPU feature a tier or a kernel variant may need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    Avx2,
    Fma,
    F16c,
    Avx512f,
    Avx512bw,
    Avx512vl,
    Avx512vnni,
    /// AVX-VNNI: `vpdpwssd`/`vpdpbusd` on 256-bit registers (Intel client CPUs since Alder Lake).
    AvxVnni,
    AmxTile,
    AmxInt8,
    AmxBf16,
    /// The operating system granted this process the AMX tile state (Linux: `arch_prctl`).
    AmxPermission,
    Neon,
    /// aarch64 `sdot`/`udot`.
    Dotprod,
    /// aarch64 `smmla`/`usdot`.
    I8mm,
}

impl Feature {
    /// Every feature, in bit order.
    pub const ALL: [Feature; 15] = [
        Feature::Avx2,
        Feature::Fma,
        Feature::F16c,
        Feature::Avx512f,
        Feature::Avx512bw,
        Feature::Avx512vl,
        Feature::Avx512vnni,
        Feature::AvxVnni,
        Feature::AmxTile,
        Feature::AmxInt8,
        Feature::AmxBf16,
        Feature::AmxPermission,
        Feature::Neon,
        Feature::Dotprod,
        Feature::I8mm,
    ];

    /// The name `/proc/cpuinfo`-style tools and our messages use.
    pub const fn name(self) -> &'static str {
        match self {
            Feature::Avx2 => "avx2",
            Feature::Fma => "fma",
            Feature::F16c => "f16c",
            Feature::Avx512f => "avx512f",
            Feature::Avx512bw => "avx512bw",
            Feature::Avx512vl => "avx512vl",
            Feature::Avx512vnni => "avx512vnni",
            Feature::AvxVnni => "avxvnni",
            Feature::AmxTile => "amx-tile",
            Feature::AmxInt8 => "amx-int8",
            Feature::AmxBf16 => "amx-bf16",
            Feature::AmxPermission => "the AMX tile state (refused by the operating system)",
            Feature::Neon => "neon",
            Feature::Dotprod => "dotprod",
            Feature::I8mm => "i8mm",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The bits of `features`.
pub const fn mask(features: &[Feature]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < features.len() {
        m |= features[i].bit();
        i += 1;
    }
    m
}

/// Whether the CPU (and, for AMX, the operating system) offers `f`, asked once.
fn probe(f: Feature) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        match f {
            Feature::Avx2 => has!("avx2"),
            Feature::Fma => has!("fma"),
            Feature::F16c => has!("f16c"),
            Feature::Avx512f => has!("avx512f"),
            Feature::Avx512bw => has!("avx512bw"),
            Feature::Avx512vl => has!("avx512vl"),
            Feature::Avx512vnni => has!("avx512vnni"),
            Feature::AvxVnni => has!("avxvnni"),
            // std's detection of the AMX features is unstable: CPUID leaf 7, EDX bits 24/25/22.
            Feature::AmxTile => cpuid7_edx() & (1 << 24) != 0,
            Feature::AmxInt8 => cpuid7_edx() & (1 << 25) != 0,
            Feature::AmxBf16 => cpuid7_edx() & (1 << 22) != 0,
            Feature::AmxPermission => cpuid7_edx() & (1 << 24) != 0 && crate::os::request_amx_tiles(),
            Feature::Neon | Feature::Dotprod | Feature::I8mm => false,
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        use std::arch::is_aarch64_feature_detected as has;
        match f {
            Feature::Neon => has!("neon"),
            Feature::Dotprod => has!("dotprod"),
            Feature::I8mm => has!("i8mm"),
            _ => false,
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = f;
        false
    }
}

/// CPUID leaf 7 (sub-leaf 0), register EDX.
#[cfg(target_arch = "x86_64")]
fn cpuid7_edx() -> u32 {
    // Leaf 0 says whether leaf 7 exists.
    if std::arch::x86_64::__cpuid(0).eax < 7 {
        return 0;
    }
    std::arch::x86_64::__cpuid_count(7, 0).edx
}

/// The features of this CPU, as bits (probed on first use).
pub fn detected() -> u32 {
    static BITS: OnceLock<u32> = OnceLock::new();
    *BITS.get_or_init(|| Feature::ALL.iter().filter(|&&f| probe(f)).fold(0, |m, f| m | f.bit()))
}

/// Whether this CPU has `f`.
pub fn has(f: Feature) -> bool {
    detected() & f.bit() != 0
}

/// The names of the features of `needs` this CPU lacks (empty when it has them all).
pub fn missing(needs: &[Feature]) -> Vec<&'static str> {
    needs.iter().filter(|&&f| !has(f)).map(|f| f.name()).collect()
}

/// The features this CPU has, by name (for `--verbose` and `dump`).
pub fn names() -> Vec<&'static str> {
    Feature::ALL
        .iter()
        .filter(|&&f| f != Feature::AmxPermission && has(f))
        .map(|f| f.name())
        .collect()
}

/// Proof that the CPU has the features a tier's kernels need: a value exists only where
/// [`CpuToken::detect`] found them all.
pub trait CpuToken: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// The tier, for messages.
    const TIER: &'static str;
    /// What its kernels need.
    const NEEDS: &'static [Feature];

    /// The token.
    ///
    /// # Safety
    /// Every feature of `NEEDS` must be present: kernels trust the token.
    unsafe fn assume() -> Self;

    /// The token, if this CPU has every feature of `NEEDS`.
    #[inline]
    fn detect() -> Option<Self> {
        let m = mask(Self::NEEDS);
        // SAFETY: every feature of NEEDS was detected.
        (detected() & m == m).then(|| unsafe { Self::assume() })
    }

    /// The token inside kernels reached through a table, which is handed out only with one.
    #[inline]
    fn get() -> Self {
        match Self::detect() {
            Some(t) => t,
            None => panic!(
                "the {} kernels ran on a CPU without {}",
                Self::TIER,
                missing(Self::NEEDS).join(", ")
            ),
        }
    }
}
