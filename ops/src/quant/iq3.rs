//! IQ3_S: super-blocks of 256 values (110 bytes) whose quants are points of a fixed grid of
//! 512 four-value vectors (each value odd, 1..=15) with a sign per value.
//!
//! Layout: f16 `d`; `qs: [u8; 64]` and `qh: [u8; 8]` the 9-bit grid index of each group of 4
//! values (low 8 bits in `qs`, the ninth in `qh`); `signs: [u8; 32]` one bit per value;
//! `scales: [u8; 4]` a 4-bit scale `s` per 32 values (low nibble for the even one).
//! Value = `(d · (1 + 2s)) · grid[j] · ±1` — `d · (1 + 2s)` is an f16 times an odd integer
//! below 32 and the grid value below 16, so every product is exact in f32.
//!
//! The dequantizer is llama.cpp's `dequantize_row_iq3_s` (the specification). The quantizer is
//! its `quantize_row_iq3_s_impl` without an importance matrix (what `llama-quantize` runs for
//! IQ3_S/IQ3_M files), with the neighbour lists of `iq3xs_init_impl`, ported statement for
//! statement so the bytes are llama.cpp's.

use std::sync::OnceLock;

use half::f16;

use super::nearest_int;
use super::QK_K;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockIq3S {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub signs: [u8; QK_K / 8],
    pub scales: [u8; QK_K / 64],
}

const _: () = assert!(std::mem::size_of::<BlockIq3S>() == 110 && std::mem::align_of::<BlockIq3S>() == 2);

impl BlockIq3S {
    /// Sub-block `ib` (values `32·ib .. 32·ib + 32`): its scale `d · (1 + 2s)` and the 32
    /// signed grid values (±1..=15); value `c` = `scale · q_c`, exactly as [`Self::dequantize`].
    pub fn sub_block(&self, ib: usize) -> (f32, [i8; 32]) {
        let s = (self.scales[ib / 2] >> (4 * (ib % 2))) & 0xf;
        let dl = self.d.to_f32() * (1 + 2 * s as i32) as f32;
        let (qs, qh, signs) = (&self.qs[8 * ib..], self.qh[ib] as usize, &self.signs[4 * ib..]);
        let q = std::array::from_fn(|c| {
            let (l, half, j) = (c / 8, (c / 4) % 2, c % 4);
            // The ninth index bit of group `2l + half` is bit `2l + half` of `qh`.
            let index = qs[2 * l + half] as usize | (((qh >> (2 * l + half)) & 1) << 8);
            let v = grid_values(index)[j] as i8;
            if signs[l] & (1 << (4 * half + j)) != 0 {
                -v
            } else {
                v
            }
        });
        (dl, q)
    }

    pub fn dequantize(&self, out: &mut [f32]) {
        for (ib, y) in out.chunks_exact_mut(32).enumerate() {
            let (dl, q) = self.sub_block(ib);
            for (y, &q) in y.iter_mut().zip(&q) {
                // ggml: `db * grid[j] * (sign ? -1.f : 1.f)`.
                *y = (dl * q.unsigned_abs() as f32) * if q < 0 { -1.0 } else { 1.0 };
            }
        }
    }
}

/// Values per IQ3_S scale (and per sign/grid group of a sub-block).
const BLOCK: usize = 32;
/// Grid levels per value: `2l + 1`, `l` in 0..8.
const K_MAX_Q: i32 = 8;

/// `iq3xs_init_impl(512)`'s tables: for every 12-bit point (three bits per value, four values)
/// its grid index, or for points off the grid the grid indices nearest to it.
struct Neighbours {
    /// Point → grid index, or `-(offset + 1)` into `lists` for points off the grid.
    map: Vec<i32>,
    /// Per point off the grid: the count, then the indices of the grid points at the three
    /// smallest distances, by (distance, index).
    lists: Vec<u16>,
}

/// A grid entry's four values (1..=15, odd).
fn grid_values(index: usize) -> [i32; 4] {
    IQ3S_GRID[index].to_le_bytes().map(|b| b as i32)
}

fn neighbours() -> &'static Neighbours {
    static TABLES: OnceLock<Neighbours> = OnceLock::new();
    TABLES.get_or_init(|| {
        const POINTS: usize = 4096;
        const NWANT: usize = 3;
        let mut map = vec![-1i32; POINTS];
        for (i, _) in IQ3S_GRID.iter().enumerate() {
            let g = grid_values(i);
            let point = (0..4).fold(0usize, |acc, k| acc | ((((g[k] - 1) / 2) as usize) << (3 * k)));
            map[point] = i as i32;
        }
        let mut lists = Vec::new();
        let mut dist: Vec<(i32, usize)> = Vec::with_capacity(IQ3S_GRID.len());
        for (point, slot) in map.iter_mut().enumerate() {
            if *slot >= 0 {
                continue;
            }
            let pos: [i32; 4] = std::array::from_fn(|k| 2 * ((point >> (3 * k)) & 7) as i32 + 1);
            dist.clear();
            dist.extend((0..IQ3S_GRID.len()).map(|j| {
                let g = grid_values(j);
                ((0..4).map(|k| (g[k] - pos[k]) * (g[k] - pos[k])).sum(), j)
            }));
            // ggml's `qsort` with `iq3_compare_func`: a total order on (distance, index).
            dist.sort_unstable();
            *slot = -(lists.len() as i32 + 1);
            let start = lists.len();
            lists.push(0);
            let (mut d2, mut nhave) = (dist[0].0, 1);
            for &(d, j) in &dist {
                if d > d2 {
                    if nhave == NWANT {
                        break;
                    }
                    d2 = d;
                    nhave += 1;
                }
                lists.push(j as u16);
            }
            lists[start] = (lists.len() - start - 1) as u16;
        }
        Neighbours { map, lists }
    })
}

/// ggml's `iq3_find_best_neighbour`: among the listed grid points, the one nearest `x` under
/// `w` at `scale` (the first of equals); its levels into `l`, its index returned.
fn best_neighbour(list: &[u16], x: &[f32], w: &[f32], scale: f32, l: &mut [i8]) -> usize {
    let n = list[0] as usize;
    let (mut best_d2, mut best) = (f32::MAX, usize::MAX);
    for &j in &list[1..=n] {
        let g = grid_values(j as usize);
        let mut d2 = 0.0f32;
        for i in 0..4 {
            let diff = scale * g[i] as f32 - x[i];
            d2 += w[i] * diff * diff;
        }
        if d2 < best_d2 {
            best_d2 = d2;
            best = j as usize;
        }
    }
    let g = grid_values(best);
    for i in 0..4 {
        l[i] = ((g[i] - 1) / 2) as i8;
    }
    best
}

/// The grid index of the point with levels `l` (four values), if it is on the grid, else
/// its neighbour list.
fn lookup(t: &Neighbours, l: impl Fn(usize) -> i32) -> Result<usize, &[u16]> {
    let point = (0..4).fold(0usize, |acc, i| acc | ((l(i) as usize) << (3 * i)));
    let m = t.map[point];
    if m >= 0 {
        Ok(m as usize)
    } else {
        Err(&t.lists[(-m - 1) as usize..])
    }
}

impl BlockIq3S {
    /// ggml's `quantize_row_iq3_s_impl(32, …)` without importance weights, on one super-block.
    pub fn quantize(x: &[f32; QK_K]) -> BlockIq3S {
        let t = neighbours();
        let mut y: BlockIq3S = bytemuck::Zeroable::zeroed();
        let mut scales = [0f32; QK_K / BLOCK];
        let mut max_scale = 0.0f32;
        // ggml advances its quant and sign cursors only past sub-blocks that are not all zero.
        let (mut qs_at, mut signs_at) = (0usize, 0usize);
        for ib in 0..QK_K / BLOCK {
            let xb = &x[BLOCK * ib..BLOCK * (ib + 1)];
            let weight: [f32; BLOCK] = std::array::from_fn(|i| xb[i] * xb[i]);
            let waux: [f32; BLOCK] = std::array::from_fn(|i| weight[i].sqrt());
            let mut xval = [0f32; BLOCK];
            let mut block_signs = [0u8; BLOCK / 8];
            for (k, s) in block_signs.iter_mut().enumerate() {
                for i in 0..8 {
                    let v = xb[8 * k + i];
                    if v >= 0.0 {
                        xval[8 * k + i] = v;
                    } else {
                        xval[8 * k + i] = -v;
                        *s |= 1 << i;
                    }
                }
            }
            let mut max = xval[0];
            for &v in &xval[1..] {
                max = if max > v { max } else { v };
            }
            let mut l = [0i8; BLOCK];
            if max == 0.0 {
                scales[ib] = 0.0;
                continue;
            }
            let mut best = 0.0f32;
            let mut scale = max / (2 * K_MAX_Q - 1) as f32;
            let mut on_grid = [false; BLOCK / 4];
            let mut laux = [0i8; BLOCK];
            let mut on_grid_aux = [false; BLOCK / 4];
            let sums = |lv: &[i8; BLOCK]| {
                let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
                for i in 0..BLOCK {
                    let (w, q) = (weight[i], (2 * lv[i] as i32 + 1) as f32);
                    sumqx += w * xval[i] * q;
                    sumq2 += w * q * q;
                }
                (sumqx, sumq2)
            };
            for is in -9..=9 {
                let id = ((2 * K_MAX_Q - 1) as f32 + is as f32 * 0.2) / max;
                let this_scale = 1.0 / id;
                for k in 0..BLOCK / 4 {
                    for i in 0..4 {
                        let v = nearest_int(0.5 * (id * xval[4 * k + i] - 1.0));
                        laux[4 * k + i] = v.clamp(0, K_MAX_Q - 1) as i8;
                    }
                    on_grid_aux[k] = true;
                    if let Err(list) = lookup(t, |i| laux[4 * k + i] as i32) {
                        on_grid_aux[k] = false;
                        let r = 4 * k..4 * k + 4;
                        best_neighbour(list, &xval[r.clone()], &waux[r.clone()], this_scale, &mut laux[r]);
                    }
                }
                let (sumqx, sumq2) = sums(&laux);
                if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                    scale = sumqx / sumq2;
                    best = scale * sumqx;
                    l = laux;
                    on_grid = on_grid_aux;
                }
            }
            if on_grid.iter().any(|&g| !g) && scale > 0.0 {
                let id = 1.0 / scale;
                for k in 0..BLOCK / 4 {
                    let levels: [i32; 4] =
                        std::array::from_fn(|i| nearest_int(0.5 * (id * xval[4 * k + i] - 1.0)).clamp(0, K_MAX_Q - 1));
                    let r = 4 * k..4 * k + 4;
                    let index = match lookup(t, |i| levels[i]) {
                        Ok(index) => index,
                        Err(list) => best_neighbour(list, &xval[r.clone()], &waux[r.clone()], scale, &mut l[r.clone()]),
                    };
                    let g = grid_values(index);
                    for i in 0..4 {
                        l[4 * k + i] = ((g[i] - 1) / 2) as i8;
                    }
                }
                let (sumqx, sumq2) = sums(&l);
                if sumq2 > 0.0 {
                    scale = sumqx / sumq2;
                }
            }
            if scale < 0.0 {
                scale = -scale;
                for s in &mut block_signs {
                    *s = !*s;
                }
            }
            for k in 0..BLOCK / 4 {
                let index = lookup(t, |i| l[4 * k + i] as i32).expect("IQ3_S levels on the grid");
                y.qs[qs_at + k] = (index & 255) as u8;
                y.qh[(ib * BLOCK / 4 + k) / 8] |= ((index >> 8) << ((ib * BLOCK / 4 + k) % 8)) as u8;
            }
            qs_at += BLOCK / 4;
            y.signs[signs_at..signs_at + BLOCK / 8].copy_from_slice(&block_signs);
            signs_at += BLOCK / 8;
            scales[ib] = scale;
            max_scale = if max_scale > scale { max_scale } else { scale };
        }
        if max_scale == 0.0 {
            return y;
        }
        let d = max_scale / 31.0;
        y.d = f16::from_f32(d * 1.033);
        let id = 1.0 / d;
        for ib in (0..QK_K / BLOCK).step_by(2) {
            let l1 = nearest_int(0.5 * (id * scales[ib] - 1.0)).clamp(0, 15);
            let l2 = nearest_int(0.5 * (id * scales[ib + 1] - 1.0)).clamp(0, 15);
            y.scales[ib / 2] = (l1 | (l2 << 4)) as u8;
        }
        y
    }
}

/// ggml's `iq3s_grid`: 512 vectors of four odd values 1..=15, one per byte (value `j` in byte
/// `j`).
pub static IQ3S_GRID: [u32; 512] = [
    0x01010101, 0x01010103, 0x01010105, 0x0101010b, 0x0101010f, 0x01010301, 0x01010303, 0x01010305, 0x01010309,
    0x0101030d, 0x01010501, 0x01010503, 0x0101050b, 0x01010707, 0x01010901, 0x01010905, 0x0101090b, 0x0101090f,
    0x01010b03, 0x01010b07, 0x01010d01, 0x01010d05, 0x01010f03, 0x01010f09, 0x01010f0f, 0x01030101, 0x01030103,
    0x01030105, 0x01030109, 0x01030301, 0x01030303, 0x0103030b, 0x01030501, 0x01030507, 0x0103050f, 0x01030703,
    0x0103070b, 0x01030909, 0x01030d03, 0x01030d0b, 0x01030f05, 0x01050101, 0x01050103, 0x0105010b, 0x0105010f,
    0x01050301, 0x01050307, 0x0105030d, 0x01050503, 0x0105050b, 0x01050701, 0x01050709, 0x01050905, 0x0105090b,
    0x0105090f, 0x01050b03, 0x01050b07, 0x01050f01, 0x01050f07, 0x01070107, 0x01070303, 0x0107030b, 0x01070501,
    0x01070505, 0x01070703, 0x01070707, 0x0107070d, 0x01070909, 0x01070b01, 0x01070b05, 0x01070d0f, 0x01070f03,
    0x01070f0b, 0x01090101, 0x01090307, 0x0109030f, 0x01090503, 0x01090509, 0x01090705, 0x01090901, 0x01090907,
    0x01090b03, 0x01090f01, 0x010b0105, 0x010b0109, 0x010b0501, 0x010b0505, 0x010b050d, 0x010b0707, 0x010b0903,
    0x010b090b, 0x010b090f, 0x010b0d0d, 0x010b0f07, 0x010d010d, 0x010d0303, 0x010d0307, 0x010d0703, 0x010d0b05,
    0x010d0f03, 0x010f0101, 0x010f0105, 0x010f0109, 0x010f0501, 0x010f0505, 0x010f050d, 0x010f0707, 0x010f0b01,
    0x010f0b09, 0x03010101, 0x03010103, 0x03010105, 0x03010109, 0x03010301, 0x03010303, 0x03010307, 0x0301030b,
    0x0301030f, 0x03010501, 0x03010505, 0x03010703, 0x03010709, 0x0301070d, 0x03010b09, 0x03010b0d, 0x03010d03,
    0x03010f05, 0x03030101, 0x03030103, 0x03030107, 0x0303010d, 0x03030301, 0x03030309, 0x03030503, 0x03030701,
    0x03030707, 0x03030903, 0x03030b01, 0x03030b05, 0x03030f01, 0x03030f0d, 0x03050101, 0x03050305, 0x0305030b,
    0x0305030f, 0x03050501, 0x03050509, 0x03050705, 0x03050901, 0x03050907, 0x03050b0b, 0x03050d01, 0x03050f05,
    0x03070103, 0x03070109, 0x0307010f, 0x03070301, 0x03070307, 0x03070503, 0x0307050f, 0x03070701, 0x03070709,
    0x03070903, 0x03070d05, 0x03070f01, 0x03090107, 0x0309010b, 0x03090305, 0x03090309, 0x03090703, 0x03090707,
    0x03090905, 0x0309090d, 0x03090b01, 0x03090b09, 0x030b0103, 0x030b0301, 0x030b0307, 0x030b0503, 0x030b0701,
    0x030b0705, 0x030b0b03, 0x030d0501, 0x030d0509, 0x030d050f, 0x030d0909, 0x030d090d, 0x030f0103, 0x030f0107,
    0x030f0301, 0x030f0305, 0x030f0503, 0x030f070b, 0x030f0903, 0x030f0d05, 0x030f0f01, 0x05010101, 0x05010103,
    0x05010107, 0x0501010b, 0x0501010f, 0x05010301, 0x05010305, 0x05010309, 0x0501030d, 0x05010503, 0x05010507,
    0x0501050f, 0x05010701, 0x05010705, 0x05010903, 0x05010907, 0x0501090b, 0x05010b01, 0x05010b05, 0x05010d0f,
    0x05010f01, 0x05010f07, 0x05010f0b, 0x05030101, 0x05030105, 0x05030301, 0x05030307, 0x0503030f, 0x05030505,
    0x0503050b, 0x05030703, 0x05030709, 0x05030905, 0x05030b03, 0x05050103, 0x05050109, 0x0505010f, 0x05050503,
    0x05050507, 0x05050701, 0x0505070f, 0x05050903, 0x05050b07, 0x05050b0f, 0x05050f03, 0x05050f09, 0x05070101,
    0x05070105, 0x0507010b, 0x05070303, 0x05070505, 0x05070509, 0x05070703, 0x05070707, 0x05070905, 0x05070b01,
    0x05070d0d, 0x05090103, 0x0509010f, 0x05090501, 0x05090507, 0x05090705, 0x0509070b, 0x05090903, 0x05090f05,
    0x05090f0b, 0x050b0109, 0x050b0303, 0x050b0505, 0x050b070f, 0x050b0901, 0x050b0b07, 0x050b0f01, 0x050d0101,
    0x050d0105, 0x050d010f, 0x050d0503, 0x050d0b0b, 0x050d0d03, 0x050f010b, 0x050f0303, 0x050f050d, 0x050f0701,
    0x050f0907, 0x050f0b01, 0x07010105, 0x07010303, 0x07010307, 0x0701030b, 0x0701030f, 0x07010505, 0x07010703,
    0x07010707, 0x0701070b, 0x07010905, 0x07010909, 0x0701090f, 0x07010b03, 0x07010d07, 0x07010f03, 0x07030103,
    0x07030107, 0x0703010b, 0x07030309, 0x07030503, 0x07030507, 0x07030901, 0x07030d01, 0x07030f05, 0x07030f0d,
    0x07050101, 0x07050305, 0x07050501, 0x07050705, 0x07050709, 0x07050b01, 0x07070103, 0x07070301, 0x07070309,
    0x07070503, 0x07070507, 0x0707050f, 0x07070701, 0x07070903, 0x07070907, 0x0707090f, 0x07070b0b, 0x07070f07,
    0x07090107, 0x07090303, 0x0709030d, 0x07090505, 0x07090703, 0x07090b05, 0x07090d01, 0x07090d09, 0x070b0103,
    0x070b0301, 0x070b0305, 0x070b050b, 0x070b0705, 0x070b0909, 0x070b0b0d, 0x070b0f07, 0x070d030d, 0x070d0903,
    0x070f0103, 0x070f0107, 0x070f0501, 0x070f0505, 0x070f070b, 0x09010101, 0x09010109, 0x09010305, 0x09010501,
    0x09010509, 0x0901050f, 0x09010705, 0x09010903, 0x09010b01, 0x09010f01, 0x09030105, 0x0903010f, 0x09030303,
    0x09030307, 0x09030505, 0x09030701, 0x0903070b, 0x09030907, 0x09030b03, 0x09030b0b, 0x09050103, 0x09050107,
    0x09050301, 0x0905030b, 0x09050503, 0x09050707, 0x09050901, 0x09050b0f, 0x09050d05, 0x09050f01, 0x09070109,
    0x09070303, 0x09070307, 0x09070501, 0x09070505, 0x09070703, 0x0907070b, 0x09090101, 0x09090105, 0x09090509,
    0x0909070f, 0x09090901, 0x09090f03, 0x090b010b, 0x090b010f, 0x090b0503, 0x090b0d05, 0x090d0307, 0x090d0709,
    0x090d0d01, 0x090f0301, 0x090f030b, 0x090f0701, 0x090f0907, 0x090f0b03, 0x0b010105, 0x0b010301, 0x0b010309,
    0x0b010505, 0x0b010901, 0x0b010909, 0x0b01090f, 0x0b010b05, 0x0b010d0d, 0x0b010f09, 0x0b030103, 0x0b030107,
    0x0b03010b, 0x0b030305, 0x0b030503, 0x0b030705, 0x0b030f05, 0x0b050101, 0x0b050303, 0x0b050507, 0x0b050701,
    0x0b05070d, 0x0b050b07, 0x0b070105, 0x0b07010f, 0x0b070301, 0x0b07050f, 0x0b070909, 0x0b070b03, 0x0b070d0b,
    0x0b070f07, 0x0b090103, 0x0b090109, 0x0b090501, 0x0b090705, 0x0b09090d, 0x0b0b0305, 0x0b0b050d, 0x0b0b0b03,
    0x0b0b0b07, 0x0b0d0905, 0x0b0f0105, 0x0b0f0109, 0x0b0f0505, 0x0d010303, 0x0d010307, 0x0d01030b, 0x0d010703,
    0x0d010707, 0x0d010d01, 0x0d030101, 0x0d030501, 0x0d03050f, 0x0d030d09, 0x0d050305, 0x0d050709, 0x0d050905,
    0x0d050b0b, 0x0d050d05, 0x0d050f01, 0x0d070101, 0x0d070309, 0x0d070503, 0x0d070901, 0x0d09050b, 0x0d090907,
    0x0d090d05, 0x0d0b0101, 0x0d0b0107, 0x0d0b0709, 0x0d0b0d01, 0x0d0d010b, 0x0d0d0901, 0x0d0f0303, 0x0d0f0307,
    0x0f010101, 0x0f010109, 0x0f01010f, 0x0f010501, 0x0f010505, 0x0f01070d, 0x0f010901, 0x0f010b09, 0x0f010d05,
    0x0f030105, 0x0f030303, 0x0f030509, 0x0f030907, 0x0f03090b, 0x0f050103, 0x0f050109, 0x0f050301, 0x0f05030d,
    0x0f050503, 0x0f050701, 0x0f050b03, 0x0f070105, 0x0f070705, 0x0f07070b, 0x0f070b07, 0x0f090103, 0x0f09010b,
    0x0f090307, 0x0f090501, 0x0f090b01, 0x0f0b0505, 0x0f0b0905, 0x0f0d0105, 0x0f0d0703, 0x0f0f0101,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_holds_odd_values_and_sub_blocks_decode_signs_and_ninth_bits() {
        assert!(IQ3S_GRID
            .iter()
            .all(|g| g.to_le_bytes().iter().all(|&v| v % 2 == 1 && v <= 15)));
        let mut b: BlockIq3S = bytemuck::Zeroable::zeroed();
        b.d = f16::from_f32(0.5);
        b.scales[0] = 0x31; // sub-block 0: s = 1 (scale 1.5); sub-block 1: s = 3 (3.5)
        b.qs[0] = 4; // group 0: grid[4] = 0x0101010f
        b.qh[0] = 0b10; // group 1 takes the ninth bit: grid[256 + 0]
        b.signs[0] = 0b0000_0001; // value 0 negative
        let (dl, q) = b.sub_block(0);
        assert_eq!(dl, 1.5);
        assert_eq!(&q[..4], &[-15, 1, 1, 1]);
        let g = IQ3S_GRID[256].to_le_bytes();
        assert_eq!(&q[4..8], &[g[0] as i8, g[1] as i8, g[2] as i8, g[3] as i8]);
        assert_eq!(b.sub_block(1).0, 3.5);
        let mut y = [0f32; QK_K];
        b.dequantize(&mut y);
        assert_eq!(y[0], -22.5);
    }
}
