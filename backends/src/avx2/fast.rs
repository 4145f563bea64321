//! The fast kernels on AVX2: 16-bit activation pairs broadcast against the panel's 16 rows in
//! two 8-lane halves, `vpmaddwd` + `vpaddd` per pair, or one `vpdpwssd` where the CPU has
//! AVX-VNNI (Intel's client CPUs since Alder Lake: VNNI on 256-bit registers, no AVX-512), up to
//! four tokens per register tile.

use std::arch::x86_64::*;

use super::simd::{geglu, prefetch_at};
use super::token::Avx2;
use crate::cpu::CpuToken;
use crate::fast::pack::{form_block_bytes, scales_at, EXTRA_AT, HALF_OFFSETS_AT, PANEL};
use crate::fast::{block_scales, FastTier, QTile, QBLOCK, QMAX, TOKEN_TILE};
use crate::wtypes::{is_halves, HALVES_OFFSET, OFFSET, WIDE};

pub struct Avx2Fast;

/// Whether this CPU has AVX-VNNI.
pub fn has_avx_vnni() -> bool {
    crate::cpu::has(crate::cpu::Feature::AvxVnni)
}

/// The same kernels held to `vpmaddwd` + `vpaddd` whatever the CPU has, so the path CPUs
/// without AVX-VNNI take is tested (and measured) on CPUs with it.
pub struct Avx2MaddFast;

impl FastTier for Avx2MaddFast {
    type Rows = super::rows::Avx2RowOps;

    fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
        Avx2Fast::quantize(x, q)
    }

    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
        Avx2Fast::quantize_row(x, q, d)
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        dots::<FORM>(tile, panel, out, false)
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        Avx2Fast::geglu(g, u, h)
    }
}

/// Every token of the tile against one panel of the form `FORM`, with AVX-VNNI or without.
fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE], vnni: bool) {
    let _ = Avx2::get();
    assert!(panel.len() == tile.k / QBLOCK * form_block_bytes(FORM));
    assert!(!vnni || has_avx_vnni(), "AVX-VNNI kernels on a CPU without AVX-VNNI");
    let mut t = 0;
    while t < tile.tokens {
        let n = (tile.tokens - t).min(4);
        macro_rules! run {
            ($($n:literal)*) => {
                match (n, vnni) {
                    $(
                        // SAFETY: the token proves AVX2 (and `has_avx_vnni` AVX-VNNI); the panel
                        // has one block per block of k (asserted) and tokens t..t + n are in the
                        // tile.
                        ($n, true) => unsafe { tokens_vnni::<$n, FORM>(tile, t, panel, out) },
                        // SAFETY: as above, without AVX-VNNI.
                        ($n, false) => unsafe { tokens_madd::<$n, FORM>(tile, t, panel, out) },
                    )*
                    _ => unreachable!("1 ..= 4 tokens"),
                }
            };
        }
        run!(1 2 3 4);
        t += n;
    }
}

impl FastTier for Avx2Fast {
    type Rows = super::rows::Avx2RowOps;

    fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
        let _ = Avx2::get();
        assert!(x.len() == QBLOCK && q.len() == QBLOCK);
        // SAFETY: the token proves AVX2; both slices hold one block.
        unsafe { quantize(x, q) }
    }

    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
        let _ = Avx2::get();
        // SAFETY: the token proves AVX2; `quantize_blocks` hands over one block at a time.
        crate::fast::quantize_blocks(x, q, d, |xb, qb| unsafe { quantize(xb, qb) })
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        dots::<FORM>(tile, panel, out, has_avx_vnni())
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        let _ = Avx2::get();
        // SAFETY: the token proves AVX2 and FMA.
        unsafe { geglu(g, u, h) }
    }
}

/// [`crate::fast::quantize_block`] in 8-lane vectors.
///
/// # Safety
/// AVX2 must be available; `x` and `q` hold 32 values.
#[target_feature(enable = "avx2,fma")]
unsafe fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
    // SAFETY: 4 × 8 values inside x (the caller's contract).
    let v: [__m256; 4] = std::array::from_fn(|i| unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) });
    let sign = _mm256_set1_ps(-0.0);
    let abs = v.map(|a| _mm256_andnot_ps(sign, a));
    let inf = _mm256_set1_ps(f32::INFINITY);
    let bad = abs
        .iter()
        .fold(0, |m, &a| m | _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf)));
    if bad != 0 {
        q.fill(0);
        return f32::NAN;
    }
    let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let (d, id) = block_scales(amax);
    let idv = _mm256_set1_ps(id);
    let (lo, hi) = (_mm256_set1_epi32(-(QMAX as i32)), _mm256_set1_epi32(QMAX as i32));
    let i: [__m256i; 4] =
        v.map(|a| _mm256_min_epi32(hi, _mm256_max_epi32(lo, _mm256_cvtps_epi32(_mm256_mul_ps(a, idv)))));
    // packs interleaves 128-bit lanes: (0,1) → [i0.lo, i1.lo, i0.hi, i1.hi]; permute back.
    let p01 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(i[0], i[1]));
    let p23 = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(i[2], i[3]));
    // SAFETY: 2 × 16 values inside q.
    unsafe {
        _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, p01);
        _mm256_storeu_si256(q.as_mut_ptr().add(16) as *mut __m256i, p23);
    }
    d
}

/// The register tile: tokens `t0..t0 + N` against one panel of the form `FORM`, the pair
/// multiply-accumulate written once per instruction set. The f32 operations are
/// [`crate::fast::scalar::panel_dots`]'s, in its order, 8 rows at a time.
macro_rules! tokens_kernel {
    ($name:ident, $features:literal, |$acc:ident, $w:ident, $x:ident| $mac:expr) => {
        /// Tokens `t0..t0 + N` of the tile against one panel of the form `FORM`.
        ///
        /// # Safety
        /// The features must be available; `panel` holds `tile.k / 32` panel blocks of the form and
        /// `t0 + N ≤ tile.tokens`.
        #[target_feature(enable = $features)]
        #[allow(clippy::needless_range_loop)] // register tiles indexed in lock step
        unsafe fn $name<const N: usize, const FORM: u8>(
            tile: &QTile,
            t0: usize,
            panel: &[u8],
            out: &mut [[f32; PANEL]; TOKEN_TILE],
        ) {
            let nb = tile.k / QBLOCK;
            // The halves form sums (and scales) pairs 0..8 and 8..16 apart.
            let (steps, pairs) = if is_halves(FORM) {
                (2, QBLOCK / 4)
            } else {
                (1, QBLOCK / 2)
            };
            let mut acc_f = [[_mm256_setzero_ps(); 2]; N];
            let base = panel.as_ptr();
            for b in 0..nb {
                // SAFETY: block b < nb is inside the panel (the caller's contract).
                let blk = unsafe { base.add(b * form_block_bytes(FORM)) };
                // The next panel's block b, on its way from memory while this one computes (only the
                // first register tile asks; the next tiles find it in flight). Short passes wait on
                // the weights' memory: on a 16-token query this took a quarter off the matmuls.
                if t0 == 0 {
                    prefetch_at(blk.wrapping_add(panel.len()), form_block_bytes(FORM));
                }
                // The tile's pairs of this block, per token.
                let xp: [*const i32; N] = std::array::from_fn(|t| tile.block_pairs(b, t0 + t));
                for step in 0..steps {
                    let mut acc_i = [[_mm256_setzero_si256(); 2]; N];
                    for i in step * pairs..(step + 1) * pairs {
                        // SAFETY: pair i's 32 bytes (64 in the wide form) inside the block.
                        let (w0, w1) = unsafe {
                            if FORM == WIDE {
                                (
                                    _mm256_loadu_si256(blk.add(64 * i) as *const __m256i),
                                    _mm256_loadu_si256(blk.add(64 * i + 32) as *const __m256i),
                                )
                            } else {
                                (
                                    _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(32 * i) as *const __m128i)),
                                    _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(32 * i + 16) as *const __m128i)),
                                )
                            }
                        };
                        for t in 0..N {
                            // SAFETY: pair i < 16 of token t0 + t's block b, inside the tile.
                            let x = _mm256_set1_epi32(unsafe { *xp[t].add(i) });
                            for (h, w) in [w0, w1].into_iter().enumerate() {
                                let ($acc, $w, $x) = (acc_i[t][h], w, x);
                                acc_i[t][h] = $mac;
                            }
                        }
                    }
                    // SAFETY: the 16 scales of this step inside the block.
                    let sc = unsafe {
                        let at = blk.add(if step == 0 { scales_at(FORM) } else { EXTRA_AT }) as *const f32;
                        [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))]
                    };
                    for t in 0..N {
                        let dx = _mm256_set1_ps(tile.scale(t0 + t, b));
                        for h in 0..2 {
                            let s = _mm256_mul_ps(sc[h], dx);
                            acc_f[t][h] = _mm256_add_ps(acc_f[t][h], _mm256_mul_ps(_mm256_cvtepi32_ps(acc_i[t][h]), s));
                        }
                    }
                    if FORM == HALVES_OFFSET {
                        // SAFETY: this half's 16 offsets inside the block.
                        let off = unsafe {
                            let at = blk.add(HALF_OFFSETS_AT[step]) as *const f32;
                            [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))]
                        };
                        for t in 0..N {
                            let sx = _mm256_set1_ps(tile.half_sum(t0 + t, b, step));
                            for h in 0..2 {
                                acc_f[t][h] = _mm256_add_ps(acc_f[t][h], _mm256_mul_ps(off[h], sx));
                            }
                        }
                    }
                }
                if FORM == OFFSET {
                    // SAFETY: the 16 offsets inside the block.
                    let off = unsafe {
                        let at = blk.add(EXTRA_AT) as *const f32;
                        [_mm256_loadu_ps(at), _mm256_loadu_ps(at.add(8))]
                    };
                    for t in 0..N {
                        let sx = _mm256_set1_ps(tile.sum(t0 + t, b));
                        for h in 0..2 {
                            acc_f[t][h] = _mm256_add_ps(acc_f[t][h], _mm256_mul_ps(off[h], sx));
                        }
                    }
                }
            }
            for t in 0..N {
                // SAFETY: 2 × 8 floats into a row of 16.
                unsafe {
                    _mm256_storeu_ps(out[t0 + t].as_mut_ptr(), acc_f[t][0]);
                    _mm256_storeu_ps(out[t0 + t].as_mut_ptr().add(8), acc_f[t][1]);
                }
            }
        }
    };
}

tokens_kernel!(tokens_madd, "avx2,fma", |acc, w, x| _mm256_add_epi32(
    acc,
    _mm256_madd_epi16(w, x)
));
tokens_kernel!(tokens_vnni, "avx2,fma,avxvnni", |acc, w, x| _mm256_dpwssd_avx_epi32(
    acc, w, x
));
