//! The AVX-512 tier (x86_64 with AVX-512F/BW/VL beside AVX2, FMA and F16C). It starts from
//! the AVX2 table and overrides the matmul register tiles (8 tokens × 2 rows of 16-lane FMA);
//! the row decoders,
//! the GeGLU epilogue, attention and the row-wise ops are the AVX2 tier's.
//!
//! As for AVX2, nothing here runs without the feature check: the table is handed out only for
//! an [`Avx512`] token, which [`Avx512::detect`] makes only on a CPU with every feature.

pub mod attention;
pub mod fast;
pub mod int8;

use std::arch::x86_64::*;
use std::sync::OnceLock;

use crate::avx2::matmul as mm;
use crate::avx2::{self, Avx2};
use crate::kernels::{Activations, KernelTable};
use crate::tiled::Tiles;
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

    /// The AVX2 token this one implies.
    pub fn avx2(self) -> Avx2 {
        self._avx2
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

/// 16-lane FMA tiles of 8 tokens × 2 weight rows: 16 of the 32 registers accumulate, so each
/// activation load feeds two FMAs and each weight load eight (the AVX2 tiles are load-bound).
/// Measured against 8 × 3 (24 accumulators): that one was no faster here (register pressure).
pub struct Avx512Tiles;

/// Tokens per register tile.
const TILE_TOKENS: usize = 8;

impl Tiles for Avx512Tiles {
    type Cpu = Avx512;
    const ROWS: usize = 2;
    fn cpu() -> Avx512 {
        Avx512::detect().expect("the AVX-512 table is only reachable on a CPU with AVX-512")
    }
    fn dots(
        _: Avx512,
        x: &Activations<'_>,
        t0: usize,
        t1: usize,
        rows: &[&[f32]],
        mut put: impl FnMut(usize, usize, f32),
    ) {
        let mut t = t0;
        while t + TILE_TOKENS <= t1 {
            let xs: [&[f32]; TILE_TOKENS] = std::array::from_fn(|i| x.row(t + i));
            if let [a, b] = rows {
                // SAFETY: the token proves AVX-512F and FMA; rows have the weights' length.
                let d = unsafe { tile::<2>(xs, [a, b]) };
                emit(t, &d, &mut put);
            } else {
                // SAFETY: as above.
                let d = unsafe { tile::<1>(xs, [rows[0]]) };
                emit(t, &d, &mut put);
            }
            t += TILE_TOKENS;
        }
        for t in t..t1 {
            let xt = x.row(t);
            for (r, row) in rows.iter().enumerate() {
                // SAFETY: as above.
                put(t, r, unsafe { dot(xt, row) });
            }
        }
    }
    fn geglu(cpu: Avx512, g: &[f32], u: &[f32], h: &mut [f32]) {
        mm::Avx2Tiles::geglu(cpu.avx2(), g, u, h)
    }
    fn prefetch(bytes: &[u8]) {
        mm::Avx2Tiles::prefetch(bytes)
    }
}

fn emit<const M: usize>(t: usize, d: &[[f32; M]; TILE_TOKENS], put: &mut impl FnMut(usize, usize, f32)) {
    for (i, row) in d.iter().enumerate() {
        for (r, &v) in row.iter().enumerate() {
            put(t + i, r, v);
        }
    }
}

/// The mask of the `left` (< 16) lanes a row's tail fills.
#[inline]
fn tail_mask(left: usize) -> __mmask16 {
    ((1u32 << left) - 1) as __mmask16
}

/// `[x_t · w_r]` for eight tokens and `M` rows: 16 lanes, the tail through masked loads
/// (zeros past the end), lanes reduced by `_mm512_reduce_add_ps` — the same sums [`dot`]
/// gives.
///
/// # Safety
/// AVX-512F and FMA must be available; every slice has `w[0]`'s length.
#[inline]
#[target_feature(enable = "avx512f,fma")]
fn tile<const M: usize>(x: [&[f32]; TILE_TOKENS], w: [&[f32]; M]) -> [[f32; M]; TILE_TOKENS] {
    let k = w[0].len();
    let k16 = k / 16 * 16;
    let xp = x.map(|r| r.as_ptr());
    let wp = w.map(|r| r.as_ptr());
    let mut acc = [[_mm512_setzero_ps(); M]; TILE_TOKENS];
    let mut wv = [_mm512_setzero_ps(); M];
    let mut i = 0;
    while i < k16 {
        for r in 0..M {
            // SAFETY: i + 16 <= k16 <= every row's length.
            wv[r] = unsafe { _mm512_loadu_ps(wp[r].add(i)) };
        }
        for t in 0..TILE_TOKENS {
            // SAFETY: as above.
            let xv = unsafe { _mm512_loadu_ps(xp[t].add(i)) };
            for r in 0..M {
                acc[t][r] = _mm512_fmadd_ps(xv, wv[r], acc[t][r]);
            }
        }
        i += 16;
    }
    if k16 < k {
        let m = tail_mask(k - k16);
        for r in 0..M {
            // SAFETY: masked-off lanes are not read; the others are inside the row.
            wv[r] = unsafe { _mm512_maskz_loadu_ps(m, wp[r].add(k16)) };
        }
        for t in 0..TILE_TOKENS {
            // SAFETY: as above.
            let xv = unsafe { _mm512_maskz_loadu_ps(m, xp[t].add(k16)) };
            for r in 0..M {
                acc[t][r] = _mm512_fmadd_ps(xv, wv[r], acc[t][r]);
            }
        }
    }
    let mut out = [[0f32; M]; TILE_TOKENS];
    for t in 0..TILE_TOKENS {
        for r in 0..M {
            out[t][r] = _mm512_reduce_add_ps(acc[t][r]);
        }
    }
    out
}

/// `Σ a[i]·b[i]` as one lane of [`tile`] computes it.
///
/// # Safety
/// AVX-512F and FMA must be available; `a.len() == b.len()`.
#[inline]
#[target_feature(enable = "avx512f,fma")]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let k = b.len();
    let k16 = k / 16 * 16;
    let mut acc = _mm512_setzero_ps();
    let mut i = 0;
    while i < k16 {
        // SAFETY: i + 16 <= k16 <= both lengths.
        let (x, y) = unsafe { (_mm512_loadu_ps(a.as_ptr().add(i)), _mm512_loadu_ps(b.as_ptr().add(i))) };
        acc = _mm512_fmadd_ps(x, y, acc);
        i += 16;
    }
    if k16 < k {
        let m = tail_mask(k - k16);
        // SAFETY: masked-off lanes are not read; the others are inside both slices.
        let (x, y) = unsafe {
            (
                _mm512_maskz_loadu_ps(m, a.as_ptr().add(k16)),
                _mm512_maskz_loadu_ps(m, b.as_ptr().add(k16)),
            )
        };
        acc = _mm512_fmadd_ps(x, y, acc);
    }
    _mm512_reduce_add_ps(acc)
}

static KERNELS: KernelTable = KernelTable {
    backend: Backend::Avx512,
    weight_kernels: crate::tiled::weight_kernel_list!(
        Avx512Tiles,
        "avx512",
        f16: mm::F16Rows,
        bf16: mm::Bf16Rows,
        q8_0: mm::Q8Rows
    ),
    fast_kernels: crate::fast::fast_kernel_list!(fast::Avx512Fast, "avx512"),
    int8: Some(&int8::INT8),
    attention: attention_kernel,
    ..avx2::TABLE
};

fn attention_kernel(args: crate::kernels::AttentionArgs<'_>, par: crate::kernels::Par) {
    let cpu = Avx512::detect().expect("the AVX-512 table is only reachable on a CPU with AVX-512");
    crate::scalar::attention::attention_with(attention::Avx512Ops::new(cpu), args, par)
}
