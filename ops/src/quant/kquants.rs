//! The K-quants Q4_K, Q5_K and Q6_K: super-blocks of 256 values.
//!
//! Quantizers are ggml's `quantize_row_q{4,5,6}_K_ref` (what `llama-quantize` runs without an
//! importance matrix) with their searches `make_qkx2_quants` and `make_qx_quants`, written in
//! the same f32 operation order (ggml-base is built without FMA contraction), so the bytes are
//! llama.cpp's. Dequantizers are ggml's `dequantize_row_q*_K`: the specification.
//!
//! - Q4_K (144 B): `d, dmin: f16`, 12 bytes of eight 6-bit (scale, min) pairs, 128 bytes of
//!   nibbles. Sub-block `j` (32 values): `value = d·sc_j · q − dmin·m_j`, `q` in 0..16.
//! - Q5_K (176 B): as Q4_K plus `qh: [u8; 32]` holding each value's 5th bit; `q` in 0..32.
//! - Q6_K (210 B): `ql: [u8; 128]` low nibbles, `qh: [u8; 64]` high 2 bits, sixteen `i8`
//!   scales (one per 16 values), `d: f16`. `value = d · sc_j · (q − 32)`, `q` in 0..64.

use half::f16;

use super::nearest_int;

/// Values per K-quant super-block.
pub const QK_K: usize = 256;
const SUB: usize = 32;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144 && std::mem::align_of::<BlockQ4K>() == 2);
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176 && std::mem::align_of::<BlockQ5K>() == 2);
const _: () = assert!(std::mem::size_of::<BlockQ6K>() == 210 && std::mem::align_of::<BlockQ6K>() == 2);

/// ggml's `GROUP_MAX_EPS`: below this a group counts as all zero.
pub(super) const GROUP_MAX_EPS: f32 = 1e-15;

/// Sub-block `j`'s 6-bit (scale, min) from the 12 packed bytes (ggml's `get_scale_min_k4`).
#[inline]
pub fn scale_min_k4(j: usize, q: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// ggml's `make_qkx2_quants`: an asymmetric grid `scale · L − min` for `x` under `weights`,
/// searched over `nstep + 1` candidate scales, the error squared (`use_mad = false`: Q4_K,
/// Q5_K) or absolute (`true`: Q2_K). Writes the levels to `l`, returns `(scale, −min)`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let err = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l[..n].fill(0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let diff = scale * q as f32 + min - x[i];
        best_error += weights[i] * err(diff);
    }
    let mut aux = [0u8; SUB];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = q as u8;
            let w = weights[i];
            let qf = q as f32;
            sum_l += w * qf;
            sum_l2 += w * qf * qf;
            sum_xl += w * qf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * err(diff);
            }
            if cur_error < best_error {
                l[..n].copy_from_slice(&aux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// The value of largest magnitude (the first of equals, as ggml's `if (ax > amax)` scans) and
/// that magnitude.
pub(super) fn largest_magnitude(x: impl IntoIterator<Item = f32>) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// Per 16 values of `x`, `search`'s scale (its levels into `l`), and the scale of largest
/// magnitude: how Q3_K and Q6_K find their super-block scale.
pub(super) fn scales_per_16(
    x: &[f32; QK_K],
    l: &mut [i8; QK_K],
    search: impl Fn(&[f32], &mut [i8]) -> f32,
) -> ([f32; QK_K / 16], f32) {
    let mut scales = [0f32; QK_K / 16];
    for ((s, xs), ls) in scales.iter_mut().zip(x.chunks_exact(16)).zip(l.chunks_exact_mut(16)) {
        *s = search(xs, ls);
    }
    (scales, largest_magnitude(scales).0)
}

/// ggml's `make_qx_quants` with `rmse_type = 1` and no importance weights (weights `x²`): a
/// symmetric grid `scale · (L − nmax)`, 19 candidate scales around `−nmax / max`. Writes the
/// levels (`0..2·nmax`) to `l`, returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let n = x.len();
    let (max, amax) = largest_magnitude(x.iter().copied());
    if amax < GROUP_MAX_EPS {
        l[..n].fill(0);
        return 0.0;
    }
    let sums = |iscale: f32, l: Option<&mut [i8]>| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        let mut l = l;
        for i in 0..n {
            let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
            if let Some(l) = l.as_deref_mut() {
                l[i] = (q + nmax) as i8;
            }
            let w = x[i] * x[i];
            let qf = q as f32;
            sumlx += w * x[i] * qf;
            suml2 += w * qf * qf;
        }
        (sumlx, suml2)
    };
    let iscale = -(nmax as f32) / max;
    let (sumlx, suml2) = sums(iscale, Some(&mut *l));
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        let iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale, None);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            sums(iscale, Some(&mut *l));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Per sub-block of `N` values (`S = 256 / N` of them) the (scale, −min) pair of
/// `make_qkx2_quants` under the weights `weights(xs)` gives it (levels into `l`), and the largest
/// scale and min (from 0): how Q2_K, Q4_K and Q5_K find their super-block scales.
pub(super) fn scale_min_pairs<const N: usize, const S: usize>(
    x: &[f32; QK_K],
    l: &mut [u8; QK_K],
    nmax: i32,
    (rmin, nstep, use_mad): (f32, i32, bool),
    weights: impl Fn(&[f32]) -> [f32; N],
) -> ([f32; S], [f32; S], f32, f32) {
    let (mut scales, mut mins) = ([0f32; S], [0f32; S]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for (j, (xs, ls)) in x.chunks_exact(N).zip(l.chunks_exact_mut(N)).enumerate() {
        let (scale, min) = make_qkx2_quants(nmax, xs, &weights(xs), ls, rmin, 0.1, nstep, use_mad);
        scales[j] = scale;
        mins[j] = min;
        if scale > max_scale {
            max_scale = scale;
        }
        if min > max_min {
            max_min = min;
        }
    }
    (scales, mins, max_scale, max_min)
}

/// The Q4_K/Q5_K super-block scales: per 32-value sub-block a (scale, min) pair from
/// `make_qkx2_quants` (weights `rms(x) + |x_i|`), both sets quantized to 6 bits against their
/// maxima. Returns `(d, dmin, packed scales)`, leaving the search's levels in `l`.
fn k_scales(x: &[f32; QK_K], nmax: i32, rmin: f32, nstep: i32, l: &mut [u8; QK_K]) -> (f16, f16, [u8; 12]) {
    let (scales, mins, max_scale, max_min) =
        scale_min_pairs::<SUB, { QK_K / SUB }>(x, l, nmax, (rmin, nstep, false), |xs| {
            let mut sum_x2 = 0.0f32;
            for &v in xs {
                sum_x2 += v * v;
            }
            let av_x = (sum_x2 / SUB as f32).sqrt();
            std::array::from_fn(|i| av_x + xs[i].abs())
        });
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..QK_K / SUB {
        // `uint8_t ls = nearest_int(...)`: the int is truncated to a byte, then capped.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    (f16::from_f32(max_scale / 63.0), f16::from_f32(max_min / 63.0), packed)
}

/// Requantize each sub-block against its stored 6-bit scale and min (ggml's second pass).
/// Sub-blocks whose scale is zero keep the search's levels.
fn k_levels(x: &[f32; QK_K], d: f16, dmin: f16, scales: &[u8; 12], nmax: i32, l: &mut [u8; QK_K]) {
    for j in 0..QK_K / SUB {
        let (sc, m) = scale_min_k4(j, scales);
        let dj = d.to_f32() * sc as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.to_f32() * m as f32;
        for i in 0..SUB {
            l[SUB * j + i] = nearest_int((x[SUB * j + i] + dm) / dj).clamp(0, nmax) as u8;
        }
    }
}

impl BlockQ4K {
    /// ggml's `quantize_row_q4_K_ref` on one super-block.
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let mut l = [0u8; QK_K];
        let (d, dmin, scales) = k_scales(x, 15, -1.0, 20, &mut l);
        k_levels(x, d, dmin, &scales, 15, &mut l);
        let mut qs = [0u8; QK_K / 2];
        for (chunk, q) in l.chunks_exact(64).zip(qs.chunks_exact_mut(32)) {
            for i in 0..32 {
                q[i] = chunk[i] | (chunk[i + 32] << 4);
            }
        }
        BlockQ4K { d, dmin, scales, qs }
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        for (c, (q, y)) in self.qs.chunks_exact(32).zip(out.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * c, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &self.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            for i in 0..32 {
                y[i] = d1 * (q[i] & 0x0f) as f32 - m1;
                y[i + 32] = d2 * (q[i] >> 4) as f32 - m2;
            }
        }
    }
}

impl BlockQ5K {
    /// ggml's `quantize_row_q5_K_ref` on one super-block.
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let mut l = [0u8; QK_K];
        let (d, dmin, scales) = k_scales(x, 31, -0.5, 15, &mut l);
        k_levels(x, d, dmin, &scales, 31, &mut l);
        let mut qh = [0u8; QK_K / 8];
        let mut qs = [0u8; QK_K / 2];
        for (c, (chunk, q)) in l.chunks_exact(64).zip(qs.chunks_exact_mut(32)).enumerate() {
            let (m1, m2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for i in 0..32 {
                let (mut l1, mut l2) = (chunk[i], chunk[i + 32]);
                if l1 > 15 {
                    l1 -= 16;
                    qh[i] |= m1;
                }
                if l2 > 15 {
                    l2 -= 16;
                    qh[i] |= m2;
                }
                q[i] = l1 | (l2 << 4);
            }
        }
        BlockQ5K {
            d,
            dmin,
            scales,
            qh,
            qs,
        }
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let (d, min) = (self.d.to_f32(), self.dmin.to_f32());
        for (c, (q, y)) in self.qs.chunks_exact(32).zip(out.chunks_exact_mut(64)).enumerate() {
            let (sc1, m1) = scale_min_k4(2 * c, &self.scales);
            let (sc2, m2) = scale_min_k4(2 * c + 1, &self.scales);
            let (d1, m1) = (d * sc1 as f32, min * m1 as f32);
            let (d2, m2) = (d * sc2 as f32, min * m2 as f32);
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            for i in 0..32 {
                let h1 = if self.qh[i] & u1 != 0 { 16 } else { 0 };
                let h2 = if self.qh[i] & u2 != 0 { 16 } else { 0 };
                y[i] = d1 * ((q[i] & 0x0f) + h1) as f32 - m1;
                y[i + 32] = d2 * ((q[i] >> 4) + h2) as f32 - m2;
            }
        }
    }
}

impl BlockQ4K {
    /// The 256 quants (0..16) in value order: value `i` of sub-block `j = i / 32` is
    /// `d·sc_j · q_i − dmin·m_j` ([`scale_min_k4`]).
    pub fn quants(&self) -> [u8; QK_K] {
        std::array::from_fn(|i| {
            let b = self.qs[32 * (i / 64) + i % 32];
            if i % 64 < 32 {
                b & 0x0f
            } else {
                b >> 4
            }
        })
    }
}

impl BlockQ5K {
    /// The 256 quants (0..32) in value order: value `i` of sub-block `j = i / 32` is
    /// `d·sc_j · q_i − dmin·m_j` ([`scale_min_k4`]).
    pub fn quants(&self) -> [u8; QK_K] {
        std::array::from_fn(|i| {
            let (c, l) = (i / 64, i % 64);
            let b = self.qs[32 * c + l % 32];
            let (nib, bit) = if l < 32 { (b & 0x0f, 2 * c) } else { (b >> 4, 2 * c + 1) };
            nib | (((self.qh[l % 32] >> bit) & 1) << 4)
        })
    }
}

impl BlockQ6K {
    /// The 256 signed quants (−32..32) in value order: value `i` is `d · sc_{i/16} · q_i`.
    pub fn quants(&self) -> [i8; QK_K] {
        std::array::from_fn(|i| {
            let (h, r) = (i / 128, i % 128);
            let (quarter, l) = (r / 32, r % 32);
            let (ql, qh) = (&self.ql[64 * h..], &self.qh[32 * h..]);
            let low = match quarter {
                0 => ql[l] & 0x0f,
                1 => ql[l + 32] & 0x0f,
                2 => ql[l] >> 4,
                _ => ql[l + 32] >> 4,
            };
            let high = (qh[l] >> (2 * quarter)) & 3;
            (low | (high << 4)) as i8 - 32
        })
    }
}

impl BlockQ6K {
    /// ggml's `quantize_row_q6_K_ref` on one super-block.
    pub fn quantize(x: &[f32; QK_K]) -> Self {
        let mut l = [0i8; QK_K];
        let (scales, max_scale) = scales_per_16(x, &mut l, |xs, ls| make_qx_quants(32, xs, ls));
        if max_scale.abs() < GROUP_MAX_EPS {
            return bytemuck::Zeroable::zeroed();
        }
        let iscale = -128.0 / max_scale;
        let d = f16::from_f32(1.0 / iscale);
        // `MIN(127, nearest_int(...))` stored in an int8_t.
        let sc: [i8; QK_K / 16] = std::array::from_fn(|ib| nearest_int(iscale * scales[ib]).min(127) as i8);
        for (j, &s) in sc.iter().enumerate() {
            let dj = d.to_f32() * s as f32;
            if dj == 0.0 {
                continue;
            }
            for i in 0..16 {
                l[16 * j + i] = (nearest_int(x[16 * j + i] / dj).clamp(-32, 31) + 32) as i8;
            }
        }
        let mut ql = [0u8; QK_K / 2];
        let mut qh = [0u8; QK_K / 4];
        for h in 0..2 {
            let (l, ql, qh) = (&l[128 * h..], &mut ql[64 * h..], &mut qh[32 * h..]);
            for i in 0..32 {
                let q = [l[i] as u8, l[i + 32] as u8, l[i + 64] as u8, l[i + 96] as u8];
                ql[i] = (q[0] & 0x0f) | ((q[2] & 0x0f) << 4);
                ql[i + 32] = (q[1] & 0x0f) | ((q[3] & 0x0f) << 4);
                qh[i] = (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
            }
        }
        BlockQ6K { ql, qh, scales: sc, d }
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        let d = self.d.to_f32();
        for h in 0..2 {
            let (ql, qh, sc) = (&self.ql[64 * h..], &self.qh[32 * h..], &self.scales[8 * h..]);
            let y = &mut out[128 * h..128 * (h + 1)];
            for i in 0..32 {
                let is = i / 16;
                let q1 = ((ql[i] & 0x0f) | ((qh[i] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[i + 32] & 0x0f) | (((qh[i] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[i] >> 4) | (((qh[i] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[i + 32] >> 4) | (((qh[i] >> 6) & 3) << 4)) as i32 - 32;
                y[i] = d * sc[is] as f32 * q1 as f32;
                y[i + 32] = d * sc[is + 2] as f32 * q2 as f32;
                y[i + 64] = d * sc[is + 4] as f32 * q3 as f32;
                y[i + 96] = d * sc[is + 6] as f32 * q4 as f32;
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// 256 test values, sub-blocks of different spread as in real weights (shared with
    /// `lowbit`'s tests).
    pub(in crate::quant) fn sample(seed: u32) -> [f32; QK_K] {
        let mut s = seed.wrapping_mul(2_654_435_761);
        std::array::from_fn(|i| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let v = ((s >> 8) as f32 / (1 << 24) as f32 - 0.5) * 0.1;
            // Sub-blocks of different spread, as in real weights.
            v * (1.0 + (i / 32) as f32)
        })
    }

    pub(in crate::quant) fn rel_err(x: &[f32; QK_K], y: &[f32]) -> f32 {
        let num: f32 = x.iter().zip(y).map(|(a, b)| (a - b) * (a - b)).sum();
        let den: f32 = x.iter().map(|a| a * a).sum();
        (num / den).sqrt()
    }

    #[test]
    fn round_trips_are_as_close_as_the_bit_width_allows() {
        for seed in 0..20 {
            let x = sample(seed);
            let mut y = [0f32; QK_K];
            BlockQ4K::quantize(&x).dequantize(&mut y);
            assert!(rel_err(&x, &y) < 0.12, "q4_k {seed}: {}", rel_err(&x, &y));
            BlockQ5K::quantize(&x).dequantize(&mut y);
            assert!(rel_err(&x, &y) < 0.06, "q5_k {seed}: {}", rel_err(&x, &y));
            BlockQ6K::quantize(&x).dequantize(&mut y);
            assert!(rel_err(&x, &y) < 0.03, "q6_k {seed}: {}", rel_err(&x, &y));
        }
    }

    #[test]
    fn quants_reproduce_the_dequantization() {
        for seed in 0..10 {
            let x = sample(seed);
            let mut y = [0f32; QK_K];
            let b = BlockQ4K::quantize(&x);
            b.dequantize(&mut y);
            let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
            for (i, &q) in b.quants().iter().enumerate() {
                let (sc, m) = scale_min_k4(i / 32, &b.scales);
                assert!(q < 16);
                assert_eq!(
                    (d * sc as f32 * q as f32 - min * m as f32).to_bits(),
                    y[i].to_bits(),
                    "q4_k {i}"
                );
            }
            let b = BlockQ5K::quantize(&x);
            b.dequantize(&mut y);
            let (d, min) = (b.d.to_f32(), b.dmin.to_f32());
            for (i, &q) in b.quants().iter().enumerate() {
                let (sc, m) = scale_min_k4(i / 32, &b.scales);
                assert!(q < 32);
                assert_eq!(
                    (d * sc as f32 * q as f32 - min * m as f32).to_bits(),
                    y[i].to_bits(),
                    "q5_k {i}"
                );
            }
            let b = BlockQ6K::quantize(&x);
            b.dequantize(&mut y);
            for (i, &q) in b.quants().iter().enumerate() {
                assert!((-32..32).contains(&q));
                let want = b.d.to_f32() * b.scales[i / 16] as f32 * q as f32;
                assert_eq!(want.to_bits(), y[i].to_bits(), "q6_k {i}");
            }
        }
    }

    #[test]
    fn scale_min_packing_round_trips() {
        let x = sample(7);
        let b = BlockQ4K::quantize(&x);
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, &b.scales);
            assert!(sc < 64 && m < 64);
        }
        let zero = BlockQ6K::quantize(&[0.0; QK_K]);
        assert_eq!(zero, bytemuck::Zeroable::zeroed());
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        assert_eq!(nearest_int(1000.6), 1001);
    }
}
