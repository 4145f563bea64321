//! The exact precision's matmul drivers, shared by the SIMD tiers: threads take chunks of
//! weight rows; each row is decoded to f32 (exactly as the type's specification does) once
//! per tile of tokens by a [`RowDecoder`], then the tier's register tiles ([`Tiles`]) run FMA
//! over the decoded rows and every token of the tile. One algorithm for every weight type and
//! tier: a type enters as its row decoder, a tier as its tiles.

use std::marker::PhantomData;

use gg_ops::WeightView;

use crate::kernels::{Activations, Par};
use crate::scalar::matmul::{K_SEGMENT, TOKEN_TILE};
use crate::split::{for_row_chunks, OutPtr};
use crate::wtypes::{WeightKernels, WeightType};

/// Longest row the kernels take: decoded rows live in `K_SEGMENT`-long stack buffers, as in
/// the scalar kernels.
pub use crate::scalar::matmul::MAX_K;

/// How a tier decodes elements `k0..k0 + out.len()` of weight row `j` to f32: exactly the
/// type's specification, faster where the tier can.
pub trait RowDecoder: Send + Sync + 'static {
    /// Tokens per tile: a weight row is decoded once per tile. Decoders slower than the
    /// dots (the scalar specification of the packed types) take bigger tiles, paying with
    /// activation tiles that leave L2 sooner. Results do not depend on it.
    const TOKEN_TILE: usize = TOKEN_TILE;
    fn decode(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]);
}

/// The largest [`RowDecoder::TOKEN_TILE`].
const MAX_TOKEN_TILE: usize = 4 * TOKEN_TILE;

/// The type's specification as the decoder (for types with no conversion of a tier's own).
pub struct Spec<W>(PhantomData<W>);

impl<W: WeightType> RowDecoder for Spec<W> {
    // The scalar decode of a 4- or 5-bit block costs about as much as the 64-token dots it
    // feeds; four times the tokens per decode.
    const TOKEN_TILE: usize = MAX_TOKEN_TILE;
    fn decode(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        crate::wtypes::dequantize_row::<W>(w, j, k0, out);
    }
}

/// Most weight rows a register-tile kernel takes at once.
pub const MAX_TILE_ROWS: usize = 4;

/// The register tiles a tier runs over decoded weight rows, and its GeGLU epilogue.
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
    /// `h = gelu_tanh(g) ⊙ u`.
    fn geglu(cpu: Self::Cpu, g: &[f32], u: &[f32], h: &mut [f32]);
    /// Ask the cache for weight bytes about to be decoded (a hint; by default nothing). A pass
    /// over few tokens waits on the weights' memory in the decode, and during the register
    /// tiles nothing is loaded from memory: a prefetch of the next rows issued before the
    /// tiles keeps the memory busy meanwhile.
    fn prefetch(_bytes: &[u8]) {}
}

/// Weight rows `j0..j1`'s bytes, for [`Tiles::prefetch`].
fn rows_bytes<'a>(w: WeightView<'a>, j0: usize, j1: usize) -> &'a [u8] {
    let rb = w.row_bytes();
    &w.bytes()[j0.min(w.rows()) * rb..j1.min(w.rows()) * rb]
}

/// The decoder as a plain kernel slot (embedding gathers use it).
pub fn dequantize_row<R: RowDecoder>(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
    R::decode(w, j, k0, out)
}

fn check_k(k: usize) {
    // Lowering refuses longer rows at load; this guards the stack buffers all the same.
    assert!(k <= MAX_K, "the tiled matmuls take k up to {MAX_K}, got {k}");
}

/// The kernels of one weight type (decoded by `R`) with register tiles `T`: a tier's entry in
/// its `weight_kernels` list.
pub const fn weight_kernels<R: RowDecoder, T: Tiles>(name: &'static str) -> WeightKernels {
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
pub fn matmul_with<R: RowDecoder, T: Tiles>(
    x: Activations<'_>,
    w: WeightView<'_>,
    out: &mut [f32],
    n: usize,
    par: Par,
) {
    let tiles = T::cpu();
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
                    R::decode(w, j + r, 0, &mut buf[..k]);
                }
                let mut views: [&[f32]; MAX_TILE_ROWS] = [&[]; MAX_TILE_ROWS];
                for (v, buf) in views.iter_mut().zip(&bufs).take(m) {
                    *v = &buf[..k];
                }
                T::prefetch(rows_bytes(w, j + m, (j + 2 * m).min(j1)));
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
pub fn matmul_geglu_with<R: RowDecoder, T: Tiles>(
    x: Activations<'_>,
    w: WeightView<'_>,
    out: &mut [f32],
    f: usize,
    par: Par,
) {
    let tiles = T::cpu();
    let (rows, k) = (x.rows, x.k);
    check_k(k);
    assert!(out.len() >= rows * f, "matmul_geglu output too short");
    let ptr = OutPtr::new(out);
    let work = |j0: usize, j1: usize| {
        let mut gate = [0f32; K_SEGMENT];
        let mut up = [0f32; K_SEGMENT];
        // Gate and up dots of one column over the token tile, then the epilogue.
        let (mut gs, mut us, mut hs) = ([0f32; MAX_TOKEN_TILE], [0f32; MAX_TOKEN_TILE], [0f32; MAX_TOKEN_TILE]);
        for t0 in (0..rows).step_by(R::TOKEN_TILE) {
            let t1 = (t0 + R::TOKEN_TILE).min(rows);
            for j in j0..j1 {
                R::decode(w, j, 0, &mut gate[..k]);
                R::decode(w, f + j, 0, &mut up[..k]);
                if j + 1 < j1 {
                    T::prefetch(rows_bytes(w, j + 1, j + 2));
                    T::prefetch(rows_bytes(w, f + j + 1, f + j + 2));
                }
                T::dots(tiles, &x, t0, t1, &[&gate[..k], &up[..k]], |t, r, v| {
                    if r == 0 {
                        gs[t - t0] = v;
                    } else {
                        us[t - t0] = v;
                    }
                });
                let n = t1 - t0;
                T::geglu(tiles, &gs[..n], &us[..n], &mut hs[..n]);
                for (i, &h) in hs[..n].iter().enumerate() {
                    // SAFETY: column j of rows t0 + i < rows belongs to this chunk.
                    unsafe { *ptr.get().add((t0 + i) * f + j) = h };
                }
            }
        }
    };
    for_row_chunks(f, par, work);
}

/// A tier's `weight_kernels` list: every weight type, each entry named `<prefix>.<type>`, with
/// the tier's tiles; F32, F16, BF16 and Q8_0 rows through the decoders given, the packed types
/// through their specification ([`Spec`]).
macro_rules! weight_kernel_list {
    ($tiles:ty, $prefix:literal, f16: $f16:ty, bf16: $bf16:ty, q8_0: $q8:ty) => {
        &[
            $crate::tiled::weight_kernel_list!(@entry $tiles, $prefix, F32, "f32", $crate::tiled::Spec<$crate::wtypes::F32>),
            $crate::tiled::weight_kernel_list!(@entry $tiles, $prefix, F16, "f16", $f16),
            $crate::tiled::weight_kernel_list!(@entry $tiles, $prefix, BF16, "bf16", $bf16),
            $crate::tiled::weight_kernel_list!(@entry $tiles, $prefix, Q8_0, "q8_0", $q8),
            $crate::tiled::weight_kernel_list!(@spec $tiles, $prefix, Q4_0, "q4_0"),
            $crate::tiled::weight_kernel_list!(@spec $tiles, $prefix, Q4_1, "q4_1"),
            $crate::tiled::weight_kernel_list!(@spec $tiles, $prefix, Q5_0, "q5_0"),
            $crate::tiled::weight_kernel_list!(@spec $tiles, $prefix, Q5_1, "q5_1"),
            $crate::tiled::weight_kernel_list!(@spec $tiles, $prefix, Q4K, "q4_k"),
            $crate::tiled::weight_kernel_list!(@spec $tiles, $prefix, Q5K, "q5_k"),
            $crate::tiled::weight_kernel_list!(@spec $tiles, $prefix, Q6K, "q6_k"),
        ]
    };
    (@spec $tiles:ty, $prefix:literal, $ty:ident, $name:literal) => {
        $crate::tiled::weight_kernel_list!(@entry $tiles, $prefix, $ty, $name, $crate::tiled::Spec<$crate::wtypes::$ty>)
    };
    (@entry $tiles:ty, $prefix:literal, $ty:ident, $name:literal, $rows:ty) => {
        (
            gg_ops::DType::$ty,
            $crate::tiled::weight_kernels::<$rows, $tiles>(concat!($prefix, ".", $name)),
        )
    };
}
pub(crate) use weight_kernel_list;
