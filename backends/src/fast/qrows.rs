//! Activations quantized for the fast kernels: the block quantization that is the
//! specification (16-bit quants per block of 32), and the rows and tiles the kernels read.

use crate::wtypes::SUB_BLOCK;

/// Elements per quantization block (Q8_0's).
pub const QBLOCK: usize = SUB_BLOCK;
/// Largest 16-bit activation magnitude.
pub const QMAX: f32 = 32767.0;
/// Tokens a driver hands a tier's panel dots at once: every one of them meets a panel while
/// it is in L1. A short query is one tile, so each weight byte comes from memory once per
/// pass (with 16, a 17-token text streamed every weight twice).
pub const TOKEN_TILE: usize = 64;
/// Longest row the fast kernels take.
pub const MAX_K: usize = 4096;

/// The quantization of one block, the specification: `d = amax / 32767`, `q = round(x / d)`
/// computed as `x · (32767 / amax)` rounded half to even (what `cvtps2dq` does), clamped.
/// Returns `d`; a block holding a NaN or an infinity gets `d = NaN` (and zero quants), so the
/// outputs it feeds are NaN, as with f32 arithmetic, never a finite wrong value.
#[inline]
pub fn quantize_block(x: &[f32], q: &mut [i16]) -> f32 {
    debug_assert!(x.len() == QBLOCK && q.len() == QBLOCK);
    let Some(amax) = finite_amax(x) else {
        q.fill(0);
        return f32::NAN;
    };
    let (d, id) = block_scales(amax);
    for (o, &v) in q.iter_mut().zip(x) {
        *o = round_clamp(v * id);
    }
    d
}

/// A block's largest magnitude, or `None` when it holds a NaN or an infinity (the block's
/// scale is then NaN, in both integer precisions).
#[inline]
pub fn finite_amax(x: &[f32]) -> Option<f32> {
    if x.iter().any(|v| !v.is_finite()) {
        return None;
    }
    Some(x.iter().fold(0f32, |m, v| m.max(v.abs())))
}

/// `(d, 1/d)` for a block's largest magnitude (zeros for an all-zero block); every tier
/// computes them with this function.
#[inline]
pub fn block_scales(amax: f32) -> (f32, f32) {
    block_scales_for(amax, QMAX)
}

/// `(d, 1/d)` for quants of at most `qmax` (`d = amax / qmax`), zeros for an all-zero block:
/// the rule of both integer precisions.
#[inline]
pub fn block_scales_for(amax: f32, qmax: f32) -> (f32, f32) {
    if amax == 0.0 {
        (0.0, 0.0)
    } else {
        (amax / qmax, qmax / amax)
    }
}

#[inline]
fn round_clamp(v: f32) -> i16 {
    v.round_ties_even().clamp(-QMAX, QMAX) as i16
}

/// 32-bit words one quantized row of `k` values takes in [`QRows`].
pub const fn qrow_words(k: usize) -> usize {
    k / 2 + 4 * (k / QBLOCK)
}

/// Activations quantized for the fast kernels, one row per token, each row [`qrow_words`]
/// 32-bit words: the `k` 16-bit quants (values `2p` and `2p + 1` in word `p`, low half first —
/// the pair a `vpdpwssd`/`madd` broadcasts), then the `k / 32` block scales `d` (f32), then the
/// `k / 32` block sums `Σx = (Σq as f32) · d`, then the first halves' sums `Σx_0` and the second
/// halves' `Σx_1` (16 values each, likewise; all three written only for the forms with offsets,
/// which alone read them). Block `b` of a token is one 64-byte run of its row, so a register tile
/// of tokens reads one cache line per token and block.
#[derive(Clone, Copy)]
pub struct QRows<'a> {
    words: &'a [u32],
    k: usize,
    rows: usize,
    with_sums: bool,
}

impl<'a> QRows<'a> {
    /// `rows` quantized rows of `k` values at the start of `words`.
    pub fn new(words: &'a [u32], k: usize, rows: usize, with_sums: bool) -> QRows<'a> {
        assert!(
            k <= MAX_K && k.is_multiple_of(QBLOCK) && words.len() >= rows * qrow_words(k),
            "{rows} quantized rows of {k} values in {} words",
            words.len()
        );
        QRows {
            words,
            k,
            rows,
            with_sums,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn k(&self) -> usize {
        self.k
    }

    /// Whether the rows carry block sums (for the offset form).
    pub fn with_sums(&self) -> bool {
        self.with_sums
    }

    /// Tokens `t0..t1` (at most [`TOKEN_TILE`]) as a tile for a tier's panel dots.
    pub fn tile(&self, t0: usize, t1: usize) -> QTile<'a> {
        assert!(t0 < t1 && t1 <= self.rows && t1 - t0 <= TOKEN_TILE);
        let w = qrow_words(self.k);
        QTile {
            words: &self.words[t0 * w..t1 * w],
            with_sums: self.with_sums,
            k: self.k,
            tokens: t1 - t0,
        }
    }
}

/// Up to [`TOKEN_TILE`] consecutive rows of a [`QRows`]: what a tier's panel dots take.
pub struct QTile<'a> {
    words: &'a [u32],
    with_sums: bool,
    pub k: usize,
    pub tokens: usize,
}

impl QTile<'_> {
    /// Token `t`'s [`qrow_words`] words (for another precision's reading of them).
    #[inline]
    pub fn row_words(&self, t: usize) -> &[u32] {
        assert!(t < self.tokens, "token {t} outside the tile");
        let w = qrow_words(self.k);
        &self.words[t * w..(t + 1) * w]
    }

    /// Token `t`'s values `2p` and `2p + 1`.
    #[inline]
    pub fn pair(&self, t: usize, p: usize) -> (i16, i16) {
        assert!(t < self.tokens && p < self.k / 2, "pair ({t}, {p}) outside the tile");
        let v = self.words[t * qrow_words(self.k) + p];
        (v as i16, (v >> 16) as i16)
    }

    /// Token `t`'s scale of block `b`.
    #[inline]
    pub fn scale(&self, t: usize, b: usize) -> f32 {
        assert!(
            t < self.tokens && b < self.k / QBLOCK,
            "scale ({t}, {b}) outside the tile"
        );
        f32::from_bits(self.words[t * qrow_words(self.k) + self.k / 2 + b])
    }

    /// Token `t`'s quantized sum of block `b`: `(Σ q as f32) · d`, the sum of the values the
    /// quants stand for (the integer sum is exact; one rounding).
    #[inline]
    pub fn sum(&self, t: usize, b: usize) -> f32 {
        self.sum_word(t, b, 0)
    }

    /// The same over half `h` (values `16h..16h + 16`) of block `b`.
    #[inline]
    pub fn half_sum(&self, t: usize, b: usize, h: usize) -> f32 {
        assert!(h < 2, "half {h} of a block");
        self.sum_word(t, b, 1 + h)
    }

    /// Word `b` of sum set `set` (0 the blocks', 1 and 2 the halves').
    #[inline]
    fn sum_word(&self, t: usize, b: usize, set: usize) -> f32 {
        let nb = self.k / QBLOCK;
        assert!(
            self.with_sums && t < self.tokens && b < nb,
            "sum ({t}, {b}) outside the tile, or a tile without sums"
        );
        f32::from_bits(self.words[t * qrow_words(self.k) + self.k / 2 + nb * (1 + set) + b])
    }

    /// Token `t`'s 16 pairs of block `b`, for a tier's register tile (pair `i` at offset `i`).
    #[inline]
    pub fn block_pairs(&self, b: usize, t: usize) -> *const i32 {
        assert!(
            t < self.tokens && b < self.k / QBLOCK,
            "block ({t}, {b}) outside the tile"
        );
        self.words[t * qrow_words(self.k) + b * QBLOCK / 2..].as_ptr() as *const i32
    }
}

/// [`quantize_block`] over a row: `q` gets `x.len()` values, `d` one scale per block.
pub fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
    quantize_blocks(x, q, d, quantize_block)
}

/// A row, block by block, with a tier's block quantizer (each call gets exactly one block of
/// [`QBLOCK`] values and its quants).
pub fn quantize_blocks<Q>(x: &[f32], q: &mut [Q], d: &mut [f32], mut block: impl FnMut(&[f32], &mut [Q]) -> f32) {
    assert!(
        x.len() == q.len() && d.len() * QBLOCK == x.len(),
        "a row of whole blocks"
    );
    for ((xb, qb), db) in x.chunks_exact(QBLOCK).zip(q.chunks_exact_mut(QBLOCK)).zip(d.iter_mut()) {
        *db = block(xb, qb);
    }
}
