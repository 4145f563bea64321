//! The 2- and 3-bit K-quants, Q2_K and Q3_K: super-blocks of 256 values with a scale per
//! 16 values.
//!
//! - Q2_K (84 B): `scales: [u8; 16]` (per 16 values a 4-bit scale, low nibble, and a 4-bit
//!   min, high nibble), `qs: [u8; 64]` 2-bit quants, f16 `d` and `dmin`.
//!   `value = (d · sc_j) · q − dmin · m_j`, `q` in 0..4.
//! - Q3_K (110 B): `hmask: [u8; 32]` each quant's third bit, `qs: [u8; 64]` its low 2 bits,
//!   twelve bytes of sixteen 6-bit scales, f16 `d`. `value = (d · (sc_j − 32)) · q`, `q` in
//!   −4..4 (the low bits minus 4 where the high bit is clear).
//!
//! Both lay their 2-bit quants out alike: value `128h + 32s + l` is bits `2s..2s + 2` of byte
//! `32h + l` (and Q3_K's high bit is bit `i / 32` of `hmask[i % 32]`).
//!
//! The quantizers are ggml's `quantize_row_q2_K_ref`/`quantize_row_q3_K_ref` (what
//! `llama-quantize` runs without an importance matrix), in the same f32 operation order; the
//! dequantizers are its `dequantize_row_q2_K`/`_q3_K`, operation for operation: the
//! specification.

use half::f16;

use super::kquants::{largest_magnitude, scale_min_pairs, scales_per_16, GROUP_MAX_EPS};
use super::nearest_int;
use super::QK_K;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockQ2K>() == 84 && std::mem::align_of::<BlockQ2K>() == 2);
const _: () = assert!(std::mem::size_of::<BlockQ3K>() == 110 && std::mem::align_of::<BlockQ3K>() == 2);

/// The 2-bit field of value `i` in the shared layout (see the module docs).
#[inline]
fn low2(qs: &[u8; QK_K / 4], i: usize) -> u8 {
    let (h, r) = (i / 128, i % 128);
    (qs[32 * h + r % 32] >> (2 * (r / 32))) & 3
}

/// Packs 256 levels below 4 into the shared layout.
fn pack2(l: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for (i, &v) in l.iter().enumerate() {
        let (h, r) = (i / 128, i % 128);
        qs[32 * h + r % 32] |= v << (2 * (r / 32));
    }
    qs
}

impl BlockQ2K {
    /// The 256 quants (0..4) in value order.
    pub fn quants(&self) -> [u8; QK_K] {
        std::array::from_fn(|i| low2(&self.qs, i))
    }

    /// Per 16 values: the scale `d · sc_j` and the offset `−dmin · m_j` (products of an f16
    /// and a 4-bit integer: exact in f32).
    pub fn scale_offset(&self, j: usize) -> (f32, f32) {
        let sc = self.scales[j];
        (
            self.d.to_f32() * (sc & 0xf) as f32,
            -(self.dmin.to_f32() * (sc >> 4) as f32),
        )
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let q = self.quants();
        for (j, (y, q)) in out.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let sc = self.scales[j];
            let dl = self.d.to_f32() * (sc & 0xf) as f32;
            let ml = self.dmin.to_f32() * (sc >> 4) as f32;
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as f32 - ml;
            }
        }
    }

    /// ggml's `quantize_row_q2_K_ref` on one super-block.
    pub fn quantize(x: &[f32; QK_K]) -> BlockQ2K {
        const Q4SCALE: f32 = 15.0;
        let mut l = [0u8; QK_K];
        let (scales, mins, max_scale, max_min) =
            scale_min_pairs::<16, { QK_K / 16 }>(x, &mut l, 3, (-0.5, 15, true), |xs| {
                std::array::from_fn(|i| xs[i].abs())
            });
        let mut packed = [0u8; QK_K / 16];
        let mut d = f16::ZERO;
        if max_scale > 0.0 {
            let iscale = Q4SCALE / max_scale;
            for (p, &s) in packed.iter_mut().zip(&scales) {
                // `y[i].scales[j] = l`: the int stored in a byte.
                *p = nearest_int(iscale * s) as u8;
            }
            d = f16::from_f32(max_scale / Q4SCALE);
        }
        let mut dmin = f16::ZERO;
        if max_min > 0.0 {
            let iscale = Q4SCALE / max_min;
            for (p, &m) in packed.iter_mut().zip(&mins) {
                *p |= (nearest_int(iscale * m) << 4) as u8;
            }
            dmin = f16::from_f32(max_min / Q4SCALE);
        }
        for ((&sc, xs), ls) in packed.iter().zip(x.chunks_exact(16)).zip(l.chunks_exact_mut(16)) {
            let dj = d.to_f32() * (sc & 0xf) as f32;
            if dj == 0.0 {
                continue;
            }
            let dm = dmin.to_f32() * (sc >> 4) as f32;
            for (li, &xi) in ls.iter_mut().zip(xs) {
                *li = nearest_int((xi + dm) / dj).clamp(0, 3) as u8;
            }
        }
        BlockQ2K {
            scales: packed,
            qs: pack2(&l),
            d,
            dmin,
        }
    }
}

/// ggml's `make_q3_quants` with `do_rmse` (weights `x²`): a symmetric grid `scale · L` with
/// `L` in `−nmax..nmax`, refined by up to five passes of per-value moves. Writes `L + nmax` to
/// `l`, returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let (max, amax) = largest_magnitude(x.iter().copied());
    if amax < GROUP_MAX_EPS {
        l[..x.len()].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (li, &xi) in l.iter_mut().zip(x) {
        let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *li = q as i8;
        let w = xi * xi;
        sumlx += w * xi * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (li, &xi) in l.iter_mut().zip(x) {
            let w = xi * xi;
            let old = *li as f32;
            let mut slx = sumlx - w * xi * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new = nearest_int(xi * sl2 / slx).clamp(-nmax, nmax - 1);
                if new != *li as i32 {
                    slx += w * xi * new as f32;
                    sl2 += w * new as f32 * new as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for li in l[..x.len()].iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

impl BlockQ3K {
    /// Scale `j`'s 6-bit field (0..64; the scale is this minus 32).
    pub fn scale6(&self, j: usize) -> i32 {
        let low = if j < 8 {
            self.scales[j] & 0xf
        } else {
            self.scales[j - 8] >> 4
        };
        let high = (self.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        (low | (high << 4)) as i32
    }

    /// The 16 scales `d · (sc_j − 32)` (an f16 times a 6-bit integer: exact in f32).
    pub fn scale(&self, j: usize) -> f32 {
        self.d.to_f32() * (self.scale6(j) - 32) as f32
    }

    /// The 256 quants (−4..4) in value order.
    pub fn quants(&self) -> [i8; QK_K] {
        std::array::from_fn(|i| {
            let high = (self.hmask[i % 32] >> (i / 32)) & 1;
            low2(&self.qs, i) as i8 - if high == 0 { 4 } else { 0 }
        })
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let q = self.quants();
        for (j, (y, q)) in out.chunks_exact_mut(16).zip(q.chunks_exact(16)).enumerate() {
            let dl = self.scale(j);
            for (y, &q) in y.iter_mut().zip(q) {
                *y = dl * q as f32;
            }
        }
    }

    /// ggml's `quantize_row_q3_K_ref` on one super-block.
    pub fn quantize(x: &[f32; QK_K]) -> BlockQ3K {
        let mut l = [0i8; QK_K];
        let (scales, max_scale) = scales_per_16(x, &mut l, |xs, ls| make_q3_quants(4, xs, ls));
        let mut block = BlockQ3K {
            hmask: [0; QK_K / 8],
            qs: [0; QK_K / 4],
            scales: [0; 12],
            d: f16::ZERO,
        };
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                // `int8_t l = nearest_int(...)`, capped, plus 32.
                let v = ((nearest_int(iscale * s) as i8).clamp(-32, 31) + 32) as u8;
                if j < 8 {
                    block.scales[j] = v & 0xf;
                } else {
                    block.scales[j - 8] |= (v & 0xf) << 4;
                }
                block.scales[j % 4 + 8] |= (v >> 4) << (2 * (j / 4));
            }
            block.d = f16::from_f32(1.0 / iscale);
        }
        for j in 0..QK_K / 16 {
            let dj = block.d.to_f32() * (block.scale6(j) - 32) as f32;
            if dj == 0.0 {
                continue;
            }
            for i in 16 * j..16 * (j + 1) {
                l[i] = (nearest_int(x[i] / dj).clamp(-4, 3) + 4) as i8;
            }
        }
        let mut low = [0u8; QK_K];
        for (i, (&li, lo)) in l.iter().zip(low.iter_mut()).enumerate() {
            let mut v = li as u8;
            if v > 3 {
                block.hmask[i % 32] |= 1 << (i / 32);
                v -= 4;
            }
            *lo = v;
        }
        block.qs = pack2(&low);
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kquants::tests::{rel_err, sample};

    #[test]
    fn round_trips_are_close_and_quants_agree_with_dequantization() {
        for seed in 0..20 {
            let x = sample(seed);
            let mut y = [0f32; QK_K];
            let b2 = BlockQ2K::quantize(&x);
            b2.dequantize(&mut y);
            assert!(rel_err(&x, &y) < 0.45, "q2_k {seed}: {}", rel_err(&x, &y));
            let q = b2.quants();
            for (i, &v) in y.iter().enumerate() {
                let (s, o) = b2.scale_offset(i / 16);
                assert_eq!(v, s * q[i] as f32 + o, "q2_k value {i}");
            }
            let b3 = BlockQ3K::quantize(&x);
            b3.dequantize(&mut y);
            assert!(rel_err(&x, &y) < 0.25, "q3_k {seed}: {}", rel_err(&x, &y));
            assert!(b3.quants().iter().all(|q| (-4..4).contains(q)));
        }
        let zero = BlockQ3K::quantize(&[0.0; QK_K]);
        assert_eq!((zero.d.to_f32(), zero.scales), (0.0, [0; 12]));
        assert_eq!(BlockQ2K::quantize(&[0.0; QK_K]).d.to_f32(), 0.0);
    }
}
