//! The exact precision's matmul drivers, shared by the SIMD tiers: threads take chunks of
//! weight rows; each row is decoded to f32 (exactly as the type's specification does) once
//! per tile of tokens by a [`RowDecoder`], then the tier's register tiles ([`Tiles`]) run FMA
//! over the decoded rows and every token of the tile. One algorithm for every weight type and
//! tier: a type enters as its row decoder, a tier as its tiles.

use std::marker::PhantomData;

use gg_ops::WeightView;

use crate::cpu::CpuToken;
use crate::kernels::{Activations, Par, RowFn};
use crate::scalar::matmul::{K_SEGMENT, TOKEN_TILE};
use crate::split::{for_row_chunks, OutPtr};
use crate::table::ExactKernels;
use crate::wtypes::WeightType;

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

/// A row decoder as the drivers take it: its kernel and its tile of tokens.
#[derive(Clone, Copy)]
pub struct Decoder {
    pub decode: RowFn,
    pub token_tile: usize,
}

impl Decoder {
    pub const fn of<R: RowDecoder>() -> Decoder {
        assert!(R::TOKEN_TILE <= MAX_TOKEN_TILE);
        Decoder {
            decode: R::decode,
            token_tile: R::TOKEN_TILE,
        }
    }

    /// The type's specification (for types no tier decodes faster).
    pub const fn spec<W: WeightType>() -> Decoder {
        Decoder::of::<Spec<W>>()
    }
}

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

/// The register tiles a tier runs over decoded weight rows, its row decoders and its GeGLU
/// epilogue.
pub trait Tiles: Send + Sync + 'static {
    /// Proof of the CPU features the kernel needs.
    type Cpu: CpuToken;
    /// Weight rows [`Tiles::dots`] takes at once (2 ..= [`MAX_TILE_ROWS`]).
    const ROWS: usize;
    /// How the tier decodes rows of `W`: its own decoder where it has one (a `match` on
    /// `W::DTYPE`), else the type's specification.
    fn decoder<W: WeightType>() -> Decoder {
        Decoder::spec::<W>()
    }
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

fn check_k(k: usize) {
    // Lowering refuses longer rows at load; this guards the stack buffers all the same.
    assert!(k <= MAX_K, "the tiled matmuls take k up to {MAX_K}, got {k}");
}

/// The exact kernels of a tier with register tiles `T`: the drivers below over each type's
/// decoder ([`Tiles::decoder`]).
pub struct Tiled<T>(PhantomData<T>);

impl<T: Tiles> ExactKernels for Tiled<T> {
    const MAX_K: usize = MAX_K;

    fn matmul<W: WeightType>(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], n: usize, par: Par) {
        matmul_with::<T>(T::decoder::<W>(), x, w, out, n, par)
    }

    fn matmul_geglu<W: WeightType>(x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], f: usize, par: Par) {
        matmul_geglu_with::<T>(T::decoder::<W>(), x, w, out, f, par)
    }

    fn dequantize_row<W: WeightType>(w: WeightView<'_>, j: usize, k0: usize, out: &mut [f32]) {
        (T::decoder::<W>().decode)(w, j, k0, out)
    }
}

/// The matmul driver: threads take chunks of weight rows, rows are decoded by `dec` once per
/// token tile, `T` runs the register tiles.
pub fn matmul_with<T: Tiles>(dec: Decoder, x: Activations<'_>, w: WeightView<'_>, out: &mut [f32], n: usize, par: Par) {
    let tiles = T::Cpu::get();
    let (rows, k) = (x.rows, x.k);
    check_k(k);
    assert!(out.len() >= rows * n, "matmul output too short");
    let ptr = OutPtr::new(out);
    let work = |j0: usize, j1: usize| {
        let mut bufs = [[0f32; K_SEGMENT]; MAX_TILE_ROWS];
        for t0 in (0..rows).step_by(dec.token_tile) {
            let t1 = (t0 + dec.token_tile).min(rows);
            let mut j = j0;
            while j < j1 {
                let m = T::ROWS.min(j1 - j);
                for (r, buf) in bufs.iter_mut().take(m).enumerate() {
                    (dec.decode)(w, j + r, 0, &mut buf[..k]);
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
pub fn matmul_geglu_with<T: Tiles>(
    dec: Decoder,
    x: Activations<'_>,
    w: WeightView<'_>,
    out: &mut [f32],
    f: usize,
    par: Par,
) {
    let tiles = T::Cpu::get();
    let (rows, k) = (x.rows, x.k);
    check_k(k);
    assert!(out.len() >= rows * f, "matmul_geglu output too short");
    let ptr = OutPtr::new(out);
    let work = |j0: usize, j1: usize| {
        let mut gate = [0f32; K_SEGMENT];
        let mut up = [0f32; K_SEGMENT];
        // Gate and up dots of one column over the token tile, then the epilogue.
        let (mut gs, mut us, mut hs) = ([0f32; MAX_TOKEN_TILE], [0f32; MAX_TOKEN_TILE], [0f32; MAX_TOKEN_TILE]);
        for t0 in (0..rows).step_by(dec.token_tile) {
            let t1 = (t0 + dec.token_tile).min(rows);
            for j in j0..j1 {
                (dec.decode)(w, j, 0, &mut gate[..k]);
                (dec.decode)(w, f + j, 0, &mut up[..k]);
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
