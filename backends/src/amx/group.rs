//! Sixteen tokens against one panel (16 weight rows) on tiles: per 32-value block (16-value
//! half for the halves form), the tokens' activation bytes go in an A tile, the panel block's
//! quads in B, one `tdpb*d` (two for the fast precision's byte planes) sums the block's products
//! exactly in i32 for all 16 × 16 pairs, and the epilogue ([`Epilogue`]) applies the block's
//! scales in the f32 operations and order of the scalar specification
//! (`fast::scalar::panel_dots`, `fast::int8::panel_dots8`). The loop is generic over the tile
//! unit ([`TileUnit`]: the hardware, or the model tests run everywhere) and the epilogue.
//!
//! The tile work of the next step is issued before the epilogue of the current one reads its
//! stored sums (two sets of C tiles, two buffers): a tile store's bytes are not forwarded to the
//! vector loads that follow it, so reading them at once would wait for the store to finish.

use std::mem::MaybeUninit;

use super::epilogue::Epilogue;
use super::tile::{Config, TileUnit, K, T};
use crate::fast::pack::{extras, form_block_bytes, half_offsets, scales, PANEL};
use crate::fast::{qrow_words, QTile, QBLOCK, TOKEN_TILE};
use crate::wtypes::{has_offsets, is_halves};

pub use super::tile::GROUP;

/// The int8 kernel's tiles by the step's phase `s % 4` (C, A, B): a step's loads need not
/// wait for the previous step's product to have read its operands, and a C tile is zeroed
/// again only four steps after its last product, long after its sums were stored (the tile
/// unit runs in order: a `tilezero` waiting for a store of the same tile, which waits for that
/// tile's product, stalls everything behind it).
const PHASES: [(T, T, T); 4] = [
    (T::C0, T::A, T::B),
    (T::C1, T::A2, T::B2),
    (T::C2, T::A, T::B),
    (T::C3, T::A2, T::B2),
];

/// The fast kernel's tiles by the step's phase `s % 2` (C for the high bytes, C for the low,
/// B); the planes' A tiles are shared (the eight tiles are all taken).
const PLANES: [(T, T, T); 2] = [(T::C0, T::C1, T::B), (T::C2, T::C3, T::B2)];

/// Buffers for stored sums: a step's are written at stage s + STORE_LAG and read a stage later,
/// so with STORE_LAG ≤ 2 four buffers never have a store meet a read.
const BUFS: usize = 4;

/// The configuration a form's kernels use for `n` tokens (a static, so the hardware's
/// configuration is known by its address): K = 16 for the halves form, else 32;
/// `n` rows of A and C tiles (fewer than 16 tokens load and multiply only their rows, instead
/// of copying them into a zero-padded buffer at every step, which cost a short query 3×).
pub fn config(form: u8, n: usize) -> &'static Config {
    assert!((1..=GROUP).contains(&n), "1 to 16 tokens, not {n}");
    &CONFIGS[is_halves(form) as usize][n - 1]
}

/// Every configuration [`config`] hands out, made at compile time (building one per group
/// showed as 7 % of the kernel).
static CONFIGS: [[Config; GROUP]; 2] = {
    let mut c = [[Config::new(K::Block, 1); GROUP]; 2];
    let mut n = 1;
    while n <= GROUP {
        c[0][n - 1] = Config::new(K::Block, n as u8);
        c[1][n - 1] = Config::new(K::Half, n as u8);
        n += 1;
    }
    c
};

/// A C tile as stored: 16 token rows of the 16 weight rows' sums.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub struct Sums(pub [[i32; PANEL]; GROUP]);

/// Zero buffers for C tiles of `n` rows when `n` < 16 (stores write only the first `n` rows);
/// for 16 they stay uninitialized (every store writes them whole). The kernels keep them in
/// locals borrowed by their steps: built inside a struct and moved, they were copied (4–8 KB
/// per group and call; 9–22 % of the kernel).
#[inline(always)]
fn zero_partial(bufs: &mut [MaybeUninit<Sums>], n: usize) {
    if n < GROUP {
        for b in bufs {
            *b = MaybeUninit::zeroed();
        }
    }
}

/// The activation rows of `n` (≤ 16) tokens, from which A tiles of `n` rows load.
struct Rows {
    /// Token `t0`'s row; the next tokens' rows follow `stride` bytes apart.
    base: *const u8,
    stride: usize,
    n: usize,
}

impl Rows {
    fn new(tile: &QTile, t0: usize, n: usize) -> Rows {
        assert!(
            (1..=GROUP).contains(&n) && t0 + n <= tile.tokens,
            "tokens {t0}..+{n} of {}",
            tile.tokens
        );
        Rows {
            base: tile.row_words(t0).as_ptr() as *const u8,
            stride: qrow_words(tile.k) * 4,
            n,
        }
    }

    /// Where an A tile's `n` rows at byte `at` of each row are read from, and their stride.
    #[inline(always)]
    fn source(&self, at: usize) -> (*const u8, usize) {
        // SAFETY: `at` lies inside every row (the callers' offsets are inside `qrow_words(k)`
        // words, the tile's width after them too), and rows t0..t0 + n are inside the tile.
        (unsafe { self.base.add(at) }, self.stride)
    }

    /// Token `t`'s word `w`.
    #[inline(always)]
    fn word(&self, t: usize, w: usize) -> u32 {
        debug_assert!(t < self.n);
        // SAFETY: t < n tokens of the tile (the callers' loops), w inside the row.
        unsafe { (self.base.add(t * self.stride) as *const u32).add(w).read_unaligned() }
    }
}

/// Steps of a panel: every block, or both halves of every block (the halves form).
#[inline(always)]
fn steps(form: u8, nb: usize) -> usize {
    if is_halves(form) {
        2 * nb
    } else {
        nb
    }
}

/// A kernel's three parts of a step, on the tiles of phase `P = s % 4` (a constant, so the tile
/// instructions name their registers).
trait Steps {
    /// Stages between a step's product and the store of its sums (1 or 2): as many as the
    /// kernel's phases allow before its C tiles come round again.
    const STORE_LAG: usize;
    /// Issue step `s`'s tile product.
    fn product<const P: usize>(&mut self, s: usize);
    /// Store step `s`'s sums to its buffer.
    fn store<const P: usize>(&mut self, s: usize);
    /// Apply step `s`'s stored sums.
    fn epilogue(&mut self, s: usize);
}

/// Stage `i` (`P = i % 4`, `Q1 = (i - 1) % 4`, `Q2 = (i - 2) % 4`): step `i`'s product
/// issued, step `i - S::STORE_LAG`'s sums stored, step `i - S::STORE_LAG - 1`'s epilogue run
/// (a tile store's bytes are read a stage after the store, since they are not forwarded to
/// vector loads).
#[inline(always)]
fn stage<S: Steps, const P: usize, const Q1: usize, const Q2: usize>(st: &mut S, i: usize, count: usize) {
    let (store, read) = (S::STORE_LAG, S::STORE_LAG + 1);
    if i < count {
        st.product::<P>(i);
    }
    if (store..count + store).contains(&i) {
        if store == 1 {
            st.store::<Q1>(i - 1);
        } else {
            st.store::<Q2>(i - 2);
        }
    }
    if (read..count + read).contains(&i) {
        st.epilogue(i - read);
    }
}

/// Runs `count` steps through the tile unit and the epilogue, the stages in fours (a kernel
/// takes its tiles by the step's phase `s % 4`).
#[inline(always)]
fn pipeline<S: Steps>(st: &mut S, count: usize) {
    const { assert!(S::STORE_LAG == 1 || S::STORE_LAG == 2) };
    let mut i = 0;
    while i < count + S::STORE_LAG + 1 {
        stage::<S, 0, 3, 2>(st, i, count);
        stage::<S, 1, 0, 3>(st, i + 1, count);
        stage::<S, 2, 1, 0>(st, i + 2, count);
        stage::<S, 3, 2, 1>(st, i + 3, count);
        i += 4;
    }
}

/// Step `s`'s block and half (the halves form takes each block in two steps).
#[inline(always)]
fn block_of(form: u8, s: usize) -> (usize, usize) {
    if is_halves(form) {
        (s / 2, s % 2)
    } else {
        (s, 0)
    }
}

/// The offsets a step of a form with offsets adds after its sums, as the specifications do: the
/// block's (offset form), or the step's half's (halves with offsets).
#[inline(always)]
fn step_offsets<const FORM: u8>(blk: &[u8], half: usize) -> [f32; PANEL] {
    if is_halves(FORM) {
        half_offsets(blk, half)
    } else {
        extras(blk)
    }
}

/// The int8 precision's steps (see [`int8`]).
struct Int8Steps<'a, U, E, const FORM: u8> {
    u: &'a mut U,
    e: E,
    rows: Rows,
    panel: &'a [u8],
    /// Written by tile stores before any read ([`zero_partial`]).
    bufs: &'a mut [MaybeUninit<Sums>; BUFS],
    scales_w: usize,
    sums_w: usize,
}

impl<U: TileUnit, E: Epilogue, const FORM: u8> Steps for Int8Steps<'_, U, E, FORM> {
    /// Four C tiles: step s's sums are stored while steps s + 1 and s + 2 multiply.
    const STORE_LAG: usize = 2;

    #[inline(always)]
    fn product<const P: usize>(&mut self, s: usize) {
        let (b, half) = block_of(FORM, s);
        let bb = form_block_bytes(FORM);
        let (c, ta, tb) = PHASES[P];
        let (a, a_stride) = self.rows.source(b * 32 + half * 16);
        self.u.zero(c);
        // SAFETY: `source` vouches for the A rows; this step's quads (`width / 4` rows of 64
        // bytes) are inside the block.
        unsafe {
            self.u.load(ta, a, a_stride);
            self.u.load(tb, self.panel[b * bb + half * 256..].as_ptr(), 64);
        }
        self.u.dp::<true, true>(c, ta, tb);
    }

    #[inline(always)]
    fn store<const P: usize>(&mut self, s: usize) {
        let buf = self.bufs[s % BUFS].as_mut_ptr();
        // SAFETY: 16 rows of 64 bytes into the buffer.
        unsafe { self.u.store(PHASES[P].0, buf as *mut u8, 64) };
    }

    #[inline(always)]
    fn epilogue(&mut self, s: usize) {
        let (b, half) = block_of(FORM, s);
        let bb = form_block_bytes(FORM);
        let blk = &self.panel[b * bb..(b + 1) * bb];
        let (rows, scales_w, sums_w) = (&self.rows, self.scales_w, self.sums_w);
        let dx = |t: usize| f32::from_bits(rows.word(t, scales_w + b));
        let sum_x = |t: usize| {
            let (h0, h1) = (
                rows.word(t, sums_w + 2 * b) as i32,
                rows.word(t, sums_w + 2 * b + 1) as i32,
            );
            match (is_halves(FORM), half) {
                (true, 0) => h0,
                (true, _) => h1,
                _ => h0 + h1,
            }
        };
        let sc = if half == 0 { scales(blk) } else { extras(blk) };
        // SAFETY: step s's store (STORE_LAG stages ago) wrote all 16 rows of the buffer.
        let sums = unsafe { self.bufs[s % BUFS].assume_init_ref() };
        self.e.scaled(&sums.0, &sc, dx);
        if has_offsets(FORM) {
            self.e
                .offset(&step_offsets::<FORM>(blk, half), |t| sum_x(t) as f32 * dx(t));
        }
    }
}

/// The int8 precision: tokens `t0..t0 + n` of the tile (rows of `fast::int8`: i8 quants, then the
/// block scales, then each block's two half sums) against a signed quads panel of the form
/// `FORM`: per step the spec's integer sum `Σ q_w · x_q` by `tdpbssd` (the biased quads
/// `vpdpbusd` needs would cost a correction per token and step).
///
/// # Safety
/// `panel` holds `tile.k / 32` signed quads blocks of
/// the form.
#[inline(always)]
pub unsafe fn int8<U: TileUnit, E: Epilogue, const FORM: u8>(
    u: &mut U,
    tile: &QTile,
    t0: usize,
    n: usize,
    panel: &[u8],
    out: &mut [[f32; PANEL]; TOKEN_TILE],
) {
    let (k, nb) = (tile.k, tile.k / QBLOCK);
    assert!(panel.len() == nb * form_block_bytes(FORM), "a panel of {nb} blocks");
    let count = steps(FORM, nb);
    u.configure(config(FORM, n));
    let mut bufs = [const { MaybeUninit::uninit() }; BUFS];
    zero_partial(&mut bufs, n);
    let mut st = Int8Steps::<U, E, FORM> {
        u,
        e: E::start(n),
        rows: Rows::new(tile, t0, n),
        panel,
        bufs: &mut bufs,
        scales_w: k / 4,
        sums_w: k / 4 + nb,
    };
    pipeline(&mut st, count);
    st.e.finish(&mut out[t0..t0 + n]);
}

/// The fast precision's steps (see [`fast`]).
struct FastSteps<'a, U, E, const FORM: u8> {
    u: &'a mut U,
    e: E,
    rows: Rows,
    panel: &'a [u8],
    /// Per buffer: the high planes' sums, the low planes'.
    bufs: &'a mut [[MaybeUninit<Sums>; 2]; BUFS],
    k: usize,
    scales_w: usize,
    sums_w: usize,
}

impl<U: TileUnit, E: Epilogue, const FORM: u8> Steps for FastSteps<'_, U, E, FORM> {
    /// Two pairs of C tiles: stored while the next step multiplies.
    const STORE_LAG: usize = 1;

    #[inline(always)]
    fn product<const P: usize>(&mut self, s: usize) {
        let (b, half) = block_of(FORM, s);
        let bb = form_block_bytes(FORM);
        let (c_hi, c_lo, tb) = PLANES[P % 2];
        let at = b * 32 + half * 16;
        let (a_hi, hi_stride) = self.rows.source(at);
        let (a_lo, lo_stride) = self.rows.source(self.k + at);
        self.u.zero(c_hi);
        self.u.zero(c_lo);
        // SAFETY: `source` vouches for the A rows; this step's quads are inside the block.
        unsafe {
            self.u.load(T::A, a_hi, hi_stride);
            self.u.load(T::A2, a_lo, lo_stride);
            self.u.load(tb, self.panel[b * bb + half * 256..].as_ptr(), 64);
        }
        self.u.dp::<true, true>(c_hi, T::A, tb);
        self.u.dp::<false, true>(c_lo, T::A2, tb);
    }

    #[inline(always)]
    fn store<const P: usize>(&mut self, s: usize) {
        let (c_hi, c_lo, _) = PLANES[P % 2];
        let [hi, lo] = &mut self.bufs[s % BUFS];
        let (hi, lo) = (hi.as_mut_ptr() as *mut u8, lo.as_mut_ptr() as *mut u8);
        // SAFETY: 16 rows of 64 bytes into each buffer.
        unsafe {
            self.u.store(c_hi, hi, 64);
            self.u.store(c_lo, lo, 64);
        }
    }

    #[inline(always)]
    fn epilogue(&mut self, s: usize) {
        let (b, half) = block_of(FORM, s);
        let bb = form_block_bytes(FORM);
        let blk = &self.panel[b * bb..(b + 1) * bb];
        let (rows, scales_w, sums_w) = (&self.rows, self.scales_w, self.sums_w);
        let dx = |t: usize| f32::from_bits(rows.word(t, scales_w + b));
        let sc = if half == 0 { scales(blk) } else { extras(blk) };
        let [hi, lo] = &self.bufs[s % BUFS];
        // SAFETY: step s's stores wrote all 16 rows of both buffers.
        let (hi, lo) = unsafe { (hi.assume_init_ref(), lo.assume_init_ref()) };
        self.e.scaled_planes(&hi.0, &lo.0, &sc, dx);
        if has_offsets(FORM) {
            // The fast precision's rows hold the blocks' sums, then the first halves', then the
            // second halves'.
            let set = if is_halves(FORM) { 1 + half } else { 0 };
            let at = sums_w + self.k / QBLOCK * set + b;
            self.e
                .offset(&step_offsets::<FORM>(blk, half), |t| f32::from_bits(rows.word(t, at)));
        }
    }
}

/// The fast precision: tokens `t0..t0 + n` of the tile (rows in byte planes,
/// [`super::fast::to_planes`]: each 16-bit quant `x = 256 · hi + lo`, the `hi` bytes then the
/// `lo` bytes, then the block scales and sums as the fast precision stores them) against a
/// signed quads panel of the form `FORM`: per step `Σ w · x = 256 · Σ w · hi + Σ w · lo`, the two
/// sums by `tdpbssd` and `tdpbusd`, exact in i32.
///
/// # Safety
/// `panel` holds `tile.k / 32` signed quads blocks.
#[inline(always)]
pub unsafe fn fast<U: TileUnit, E: Epilogue, const FORM: u8>(
    u: &mut U,
    tile: &QTile,
    t0: usize,
    n: usize,
    panel: &[u8],
    out: &mut [[f32; PANEL]; TOKEN_TILE],
) {
    let (k, nb) = (tile.k, tile.k / QBLOCK);
    assert!(panel.len() == nb * form_block_bytes(FORM), "a panel of {nb} blocks");
    let count = steps(FORM, nb);
    u.configure(config(FORM, n));
    let mut bufs = [[const { MaybeUninit::uninit() }; 2]; BUFS];
    zero_partial(bufs.as_flattened_mut(), n);
    let mut st = FastSteps::<U, E, FORM> {
        u,
        e: E::start(n),
        rows: Rows::new(tile, t0, n),
        panel,
        bufs: &mut bufs,
        k,
        scales_w: k / 2,
        sums_w: k / 2 + nb,
    };
    pipeline(&mut st, count);
    st.e.finish(&mut out[t0..t0 + n]);
}

/// Every token of the tile in groups of 16 (the last one shorter) through the fast (`INT8 =
/// false`) or int8 kernel on `u`, with the epilogue `E`.
///
/// # Safety
/// As [`fast`] or [`int8`]: rows and panel laid out for that kernel.
#[inline(always)]
pub unsafe fn groups<U: TileUnit, E: Epilogue, const FORM: u8, const INT8: bool>(
    u: &mut U,
    tile: &QTile,
    panel: &[u8],
    out: &mut [[f32; PANEL]; TOKEN_TILE],
) {
    let mut t = 0;
    while t < tile.tokens {
        let n = (tile.tokens - t).min(GROUP);
        // SAFETY: the caller's contract.
        unsafe {
            if INT8 {
                int8::<U, E, FORM>(u, tile, t, n, panel, out)
            } else {
                fast::<U, E, FORM>(u, tile, t, n, panel, out)
            }
        }
        t += n;
    }
}
