//! AVX2/FMA matmul with f32 activations: weight rows are decoded to f32 (exactly as the
//! type's specification does) once per tile of tokens, then a 4-token × 2-row register tile
//! runs FMA over them, 8 lanes summed in the scalar kernel's order. One algorithm for every
//! weight type: the type enters as its row decoder ([`Avx2Rows`]).

use std::arch::x86_64::*;
use std::marker::PhantomData;

use gg_ops::{BlockQ8_0, WeightView, QK8_0};
use half::f16;

use super::simd::{bf16_to_f32, dequant_q8_0, dot, f16_to_f32, geglu, hsum, prefetch};
use super::{cpu, Avx2};
use crate::kernels::{Activations, Par};
use crate::scalar::matmul::{K_SEGMENT, TOKEN_TILE};
use crate::split::{for_row_chunks, OutPtr};
use crate::wtypes::{WeightKernels, WeightType};

/// Longest row the kernels take: decoded rows live in `K_SEGMENT`-long stack buffers, as in
/// the scalar kernels.
pub use crate::scalar::matmul::MAX_K;

/// How the AVX2 kernels decode elements `k0..k0 + out.len()` of weight row `j` to f32:
/// exactly the type's specification, faster where the tier can.
pub trait Avx2Rows: Send + Sync + 'static {
    /// Tokens per tile: a weight row is decoded once per tile. Decoders slower than the
    /// dots (the scalar specification of the packed types) take bigger tiles, paying with
    /// activation tiles that leave L2 sooner. Results do not depend on it.
    const TOKEN_TILE: usize = TOKEN_TILE;
    fn decode(cpu: Avx2, w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]);
}

/// Ask for weight rows `j0..j1`'s bytes ahead of their decode. The decode is where a matmul
/// over few tokens waits on memory (the weights do not fit in cache; `perf` put ~27 % of an F16
/// query's time there), and during the register tiles nothing is loaded from memory: a
/// prefetch of the next rows issued before the tiles keeps the memory busy meanwhile.
#[inline]
fn prefetch_rows(w: WeightView<'_>, j0: usize, j1: usize) {
    let rb = w.row_bytes();
    prefetch(&w.bytes()[j0.min(w.rows()) * rb..j1.min(w.rows()) * rb]);
}

/// The largest [`Avx2Rows::TOKEN_TILE`].
const MAX_TOKEN_TILE: usize = 4 * TOKEN_TILE;

/// The type's specification as the decoder (for types with no AVX2 conversion of their own).
pub struct Spec<W>(PhantomData<W>);

impl<W: WeightType> Avx2Rows for Spec<W> {
    // The scalar decode of a 4- or 5-bit block costs about as much as the 64-token dots it
    // feeds; four times the tokens per decode.
    const TOKEN_TILE: usize = MAX_TOKEN_TILE;
    fn decode(_: Avx2, w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        crate::wtypes::dequantize_row::<W>(w, j, k0, out);
    }
}

/// Q8_0 blocks: `d · q` in 8-lane vectors.
pub struct Q8Rows;

impl Avx2Rows for Q8Rows {
    fn decode(_: Avx2, w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let per_row = w.cols() / QK8_0;
        let first = j * per_row + k0 / QK8_0;
        let blocks = &w.cast::<BlockQ8_0>()[first..first + out.len() / QK8_0];
        // SAFETY: the token proves AVX2, FMA and F16C.
        unsafe { dequant_q8_0(blocks, out) }
    }
}

/// F16 halves converted with F16C.
pub struct F16Rows;

impl Avx2Rows for F16Rows {
    fn decode(_: Avx2, w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let start = j * w.cols() + k0;
        let halves = &w.cast::<f16>()[start..start + out.len()];
        // SAFETY: the token proves AVX2, FMA and F16C.
        unsafe { f16_to_f32(halves, out) }
    }
}

/// BF16 halves widened to f32 (a 16-bit shift: exact).
pub struct Bf16Rows;

impl Avx2Rows for Bf16Rows {
    fn decode(_: Avx2, w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        let start = j * w.cols() + k0;
        let halves = &w.cast::<half::bf16>()[start..start + out.len()];
        // SAFETY: the token proves AVX2.
        unsafe { bf16_to_f32(halves, out) }
    }
}

/// The tier's row decoder as a plain kernel slot (embedding gathers use it).
pub fn dequantize_row<R: Avx2Rows>(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
    R::decode(cpu(), w, j, k0, out)
}

/// `[x_t · w_r]` for `N` (1 ..= 4) tokens and two weight rows: `2N` independent FMA chains,
/// each summed as [`dot`] sums one (8 lanes along `k`, then the lanes, then the tail).
///
/// # Safety
/// AVX2 and FMA must be available; every slice has the same length.
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // register tiles indexed in lock step
fn tile_nx2<const N: usize>(x: [&[f32]; N], w0: &[f32], w1: &[f32]) -> [[f32; 2]; N] {
    let k = w0.len();
    let k8 = k / 8 * 8;
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    let mut i = 0;
    while i < k8 {
        // SAFETY: i + 8 <= k8 <= every slice's length.
        let (a, b) = unsafe { (_mm256_loadu_ps(w0.as_ptr().add(i)), _mm256_loadu_ps(w1.as_ptr().add(i))) };
        for t in 0..N {
            // SAFETY: as above.
            let xv = unsafe { _mm256_loadu_ps(x[t].as_ptr().add(i)) };
            acc[t][0] = _mm256_fmadd_ps(xv, a, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(xv, b, acc[t][1]);
        }
        i += 8;
    }
    let mut out = [[0f32; 2]; N];
    for t in 0..N {
        let (mut t0, mut t1) = (0f32, 0f32);
        for j in k8..k {
            t0 += x[t][j] * w0[j];
            t1 += x[t][j] * w1[j];
        }
        out[t] = [hsum(acc[t][0]) + t0, hsum(acc[t][1]) + t1];
    }
    out
}

/// Most weight rows a register-tile kernel takes at once.
pub const MAX_TILE_ROWS: usize = 4;

/// The register-tile kernel a matmul driver runs over decoded weight rows: what a wider tier
/// (AVX-512) replaces while keeping the driver, the decoders and the epilogue.
pub trait Tiles: Send + Sync + 'static {
    /// Proof of the CPU features the kernel needs.
    type Cpu: Copy + Send + Sync;
    /// Weight rows [`Tiles::dots`] takes at once (2 ..= [`MAX_TILE_ROWS`]).
    const ROWS: usize;
    /// The proof; only called from tables handed out after detection.
    fn cpu() -> Self::Cpu;
    /// `put(t, r, x_t · rows[r])` for tokens `t0..t1` and each of the 1 ..= `ROWS` rows. A sum
    /// must not depend on `t0`, `t1` or the other rows (a value never depends on its batch
    /// position).
    fn dots(
        cpu: Self::Cpu,
        x: &Activations<'_>,
        t0: usize,
        t1: usize,
        rows: &[&[f32]],
        put: impl FnMut(usize, usize, f32),
    );
}

/// 8-lane FMA tiles of 4 tokens × 2 rows.
pub struct Avx2Tiles;

impl Tiles for Avx2Tiles {
    type Cpu = Avx2;
    const ROWS: usize = 2;
    fn cpu() -> Avx2 {
        cpu()
    }
    fn dots(
        _: Avx2,
        x: &Activations<'_>,
        t0: usize,
        t1: usize,
        rows: &[&[f32]],
        mut put: impl FnMut(usize, usize, f32),
    ) {
        let b = rows.get(1).copied();
        // SAFETY: the token proves AVX2 and FMA.
        unsafe {
            tile_dots(x, t0, t1, rows[0], b, |t, p, q| {
                put(t, 0, p);
                if b.is_some() {
                    put(t, 1, q);
                }
            })
        }
    }
}

/// Dots of the token tile `t0..t1` with weight rows `a` and `b` (when given).
///
/// # Safety
/// AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
fn tile_dots(
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
            let d = tile_nx2([x.row(t), x.row(t + 1), x.row(t + 2), x.row(t + 3)], a, b);
            for (i, [p, q]) in d.into_iter().enumerate() {
                put(t + i, p, q);
            }
            t += 4;
        }
        // The last 1-3 tokens in one tile too: one `dot` at a time would run a single FMA
        // chain, bound by its latency (a short query is mostly such tails).
        match t1 - t {
            3 => {
                for (i, [p, q]) in tile_nx2([x.row(t), x.row(t + 1), x.row(t + 2)], a, b)
                    .into_iter()
                    .enumerate()
                {
                    put(t + i, p, q);
                }
            }
            2 => {
                for (i, [p, q]) in tile_nx2([x.row(t), x.row(t + 1)], a, b).into_iter().enumerate() {
                    put(t + i, p, q);
                }
            }
            1 => {
                let [[p, q]] = tile_nx2([x.row(t)], a, b);
                put(t, p, q);
            }
            _ => {}
        }
        return;
    }
    for t in t..t1 {
        let xt = x.row(t);
        put(t, dot(xt, a), b.map_or(0.0, |b| dot(xt, b)));
    }
}

fn check_k(k: usize) {
    // Lowering refuses longer rows at load; this guards the stack buffers all the same.
    assert!(k <= MAX_K, "the AVX2 matmul supports k up to {MAX_K}, got {k}");
}

/// The kernels of one weight type (decoded by `R`) with register tiles `T`: a tier's entry in
/// its `weight_kernels` list.
pub const fn weight_kernels<R: Avx2Rows, T: Tiles>(name: &'static str) -> WeightKernels {
    WeightKernels {
        name,
        matmul: matmul_with::<R, T>,
        matmul_geglu: matmul_geglu_with::<R, T>,
        dequantize_row: dequantize_row::<R>,
        max_k: MAX_K,
    }
}

/// The matmul driver: threads take chunks of weight rows, rows are decoded by `R` once per
/// token tile, `T` runs the register tiles.
pub fn matmul_with<R: Avx2Rows, T: Tiles>(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], n: usize, par: Par) {
    let (cpu, tiles) = (cpu(), T::cpu());
    let (rows, k) = (x.rows, x.k);
    check_k(k);
    assert!(out.len() >= rows * n, "matmul output too short");
    let ptr = OutPtr::new(out);
    let work = |j0: usize, j1: usize| {
        let mut bufs = [[0f32; K_SEGMENT]; MAX_TILE_ROWS];
        for t0 in (0..rows).step_by(R::TOKEN_TILE) {
            let t1 = (t0 + R::TOKEN_TILE).min(rows);
            let mut j = j0;
            while j < j1 {
                let m = T::ROWS.min(j1 - j);
                for (r, buf) in bufs.iter_mut().take(m).enumerate() {
                    R::decode(cpu, w, j + r, 0, &mut buf[..k]);
                }
                let mut views: [&[f32]; MAX_TILE_ROWS] = [&[]; MAX_TILE_ROWS];
                for (v, buf) in views.iter_mut().zip(&bufs).take(m) {
                    *v = &buf[..k];
                }
                prefetch_rows(w, j + m, (j + 2 * m).min(j1));
                T::dots(tiles, &x, t0, t1, &views[..m], |t, r, v| {
                    // SAFETY: t < rows and j + r < j1 <= n: inside `out`; columns j..j + m
                    // belong to this chunk.
                    unsafe { *ptr.get().add(t * n + j + r) = v };
                });
                j += m;
            }
        }
    };
    for_row_chunks(n, par, work);
}

/// The GeGLU driver, as [`matmul_with`] with the gate/up epilogue.
pub fn matmul_geglu_with<R: Avx2Rows, T: Tiles>(
    x: Activations<'_>,
    w: WeightView<'_>,
    out: &mut [f32],
    f: usize,
    par: Par,
) {
    let (cpu, tiles) = (cpu(), T::cpu());
    let (rows, k) = (x.rows, x.k);
    check_k(k);
    assert!(out.len() >= rows * f, "matmul_geglu output too short");
    let ptr = OutPtr::new(out);
    let work = |j0: usize, j1: usize| {
        let mut gate = [0f32; K_SEGMENT];
        let mut up = [0f32; K_SEGMENT];
        // Gate and up dots of one column over the token tile, then the epilogue 8 at a time.
        let (mut gs, mut us, mut hs) = ([0f32; MAX_TOKEN_TILE], [0f32; MAX_TOKEN_TILE], [0f32; MAX_TOKEN_TILE]);
        for t0 in (0..rows).step_by(R::TOKEN_TILE) {
            let t1 = (t0 + R::TOKEN_TILE).min(rows);
            for j in j0..j1 {
                R::decode(cpu, w, j, 0, &mut gate[..k]);
                R::decode(cpu, w, f + j, 0, &mut up[..k]);
                if j + 1 < j1 {
                    prefetch_rows(w, j + 1, j + 2);
                    prefetch_rows(w, f + j + 1, f + j + 2);
                }
                T::dots(tiles, &x, t0, t1, &[&gate[..k], &up[..k]], |t, r, v| {
                    if r == 0 {
                        gs[t - t0] = v;
                    } else {
                        us[t - t0] = v;
                    }
                });
                let n = t1 - t0;
                // SAFETY: `cpu` proves AVX2 and FMA; column j of rows t < rows belongs to
                // this chunk.
                unsafe {
                    geglu(&gs[..n], &us[..n], &mut hs[..n]);
                    for (i, &h) in hs[..n].iter().enumerate() {
                        *ptr.get().add((t0 + i) * f + j) = h;
                    }
                }
            }
        }
    };
    for_row_chunks(f, par, work);
}
