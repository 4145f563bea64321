//! The AVX-512 tier (x86_64 with AVX-512F/BW/VL beside AVX2, FMA and F16C). It starts from
//! the AVX2 table and overrides the matmul register tiles with 16-lane FMA; the row decoders,
//! the GeGLU epilogue, attention and the row-wise ops are the AVX2 tier's.
//!
//! As for AVX2, nothing here runs without the feature check: the table is handed out only for
//! an [`Avx512`] token, which [`Avx512::detect`] makes only on a CPU with every feature.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use gg_ops::DType;

use crate::avx2::matmul::{self as mm, Avx2Rows, Tiles};
use crate::avx2::{self, Avx2};
use crate::kernels::{Activations, KernelTable};
use crate::wtypes::{Bf16, WeightKernels, F32};
use crate::Backend;

/// Proof that this CPU has AVX-512F/BW/VL and what the AVX2 tier needs.
#[derive(Clone, Copy, Debug)]
pub struct Avx512 {
    _avx2: Avx2,
}

impl Avx512 {
    /// The CPU features the tier needs, by name.
    pub const FEATURES: &'static [&'static str] = &["avx512f", "avx512bw", "avx512vl", "avx2", "fma", "f16c"];

    /// The token, if this CPU has every feature (detected once).
    pub fn detect() -> Option<Avx512> {
        static HAS: OnceLock<bool> = OnceLock::new();
        let has = *HAS.get_or_init(|| missing_features().is_empty());
        if !has {
            return None;
        }
        Avx2::detect().map(|a| Avx512 { _avx2: a })
    }
}

/// Which of the tier's features this CPU lacks.
pub fn missing_features() -> Vec<&'static str> {
    let has = |f: &str| match f {
        "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
        "avx512bw" => std::arch::is_x86_feature_detected!("avx512bw"),
        "avx512vl" => std::arch::is_x86_feature_detected!("avx512vl"),
        _ => avx2::missing_features().iter().all(|m| *m != f),
    };
    Avx512::FEATURES.iter().copied().filter(|f| !has(f)).collect()
}

/// The tier's table, for a CPU that has it.
pub fn table(_: Avx512) -> &'static KernelTable {
    &KERNELS
}

/// 16-lane FMA tiles of 4 tokens × 2 weight rows.
pub struct Avx512Tiles;

impl Tiles for Avx512Tiles {
    type Cpu = Avx512;
    fn cpu() -> Avx512 {
        Avx512::detect().expect("the AVX-512 table is only reachable on a CPU with AVX-512")
    }
    fn dots(
        _: Avx512,
        x: &Activations<'_>,
        t0: usize,
        t1: usize,
        a: &[f32],
        b: Option<&[f32]>,
        mut put: impl FnMut(usize, f32, f32),
    ) {
        let mut t = t0;
        if let Some(b) = b {
            while t + 4 <= t1 {
                // SAFETY: the token proves AVX-512F and FMA; rows have the weights' length.
                let d = unsafe { tile_4x2([x.row(t), x.row(t + 1), x.row(t + 2), x.row(t + 3)], a, b) };
                for (i, [p, q]) in d.into_iter().enumerate() {
                    put(t + i, p, q);
                }
                t += 4;
            }
        }
        for t in t..t1 {
            let xt = x.row(t);
            // SAFETY: as above.
            let (p, q) = unsafe { (dot(xt, a), b.map_or(0.0, |b| dot(xt, b))) };
            put(t, p, q);
        }
    }
}

/// Lanes `i..i + 16` of `v`, zero past its end (a masked load never touches those bytes).
#[inline]
#[target_feature(enable = "avx512f")]
fn load16(v: &[f32], i: usize) -> __m512 {
    let left = v.len() - i;
    if left >= 16 {
        // SAFETY: 16 values from i are inside v.
        unsafe { _mm512_loadu_ps(v.as_ptr().add(i)) }
    } else {
        let mask: __mmask16 = (1u32 << left) as u16 - 1;
        // SAFETY: masked-off lanes are not read; the first `left` are inside v.
        unsafe { _mm512_maskz_loadu_ps(mask, v.as_ptr().add(i)) }
    }
}

/// `[x_t · w_r]` for four tokens and two rows: 16 lanes, the tail zero-padded through the same
/// code, lanes reduced by `_mm512_reduce_add_ps` — the same sums [`dot`] gives.
///
/// # Safety
/// AVX-512F and FMA must be available; every slice has `w0`'s length.
#[inline]
#[target_feature(enable = "avx512f,fma")]
fn tile_4x2(x: [&[f32]; 4], w0: &[f32], w1: &[f32]) -> [[f32; 2]; 4] {
    let k = w0.len();
    let mut acc = [[_mm512_setzero_ps(); 2]; 4];
    let mut i = 0;
    while i < k {
        let (a, b) = (load16(w0, i), load16(w1, i));
        for t in 0..4 {
            let xv = load16(x[t], i);
            acc[t][0] = _mm512_fmadd_ps(xv, a, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(xv, b, acc[t][1]);
        }
        i += 16;
    }
    acc.map(|[p, q]| [_mm512_reduce_add_ps(p), _mm512_reduce_add_ps(q)])
}

/// `Σ a[i]·b[i]` as one lane of [`tile_4x2`] computes it.
///
/// # Safety
/// AVX-512F and FMA must be available; `a.len() == b.len()`.
#[inline]
#[target_feature(enable = "avx512f,fma")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < b.len() {
        acc = _mm512_fmadd_ps(load16(a, i), load16(b, i), acc);
        i += 16;
    }
    _mm512_reduce_add_ps(acc)
}

const fn kernels<R: Avx2Rows>(name: &'static str) -> WeightKernels {
    WeightKernels {
        name,
        matmul: mm::matmul_with::<R, Avx512Tiles>,
        matmul_geglu: mm::matmul_geglu_with::<R, Avx512Tiles>,
        dequantize_row: mm::dequantize_row::<R>,
        max_k: mm::MAX_K,
    }
}

static KERNELS: KernelTable = KernelTable {
    backend: Backend::Avx512,
    weight_kernels: &[
        (DType::F32, kernels::<mm::Spec<F32>>("avx512.f32")),
        (DType::F16, kernels::<mm::F16Rows>("avx512.f16")),
        (DType::BF16, kernels::<mm::Spec<Bf16>>("avx512.bf16")),
        (DType::Q8_0, kernels::<mm::Q8Rows>("avx512.q8_0")),
    ],
    ..avx2::TABLE
};
