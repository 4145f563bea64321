//! The fast precision on AMX tiles. Activations are quantized by the AVX-512 quantizer (the
//! specification's quants and scales, bit for bit) and written in byte planes
//! (`x = 256 · hi + lo`, `lo` unsigned: [`write_planes`]); the weights of every quantized type are
//! packed in signed quads ([`Layout::QuadsSigned`]); each block's exact integer sum is
//! `256 · Σ w · hi + Σ w · lo` from two tile products, then the specification's f32 epilogue.
//! Float weights (the wide form: 12-bit quants, two bytes each) keep the AVX-512 kernels, whose
//! results are the same.

use super::epilogue;
use super::group;
use super::tile::{Hw, Model};
use super::token::Amx;
use crate::avx512::fast::Avx512Fast;
use crate::cpu::CpuToken;
use crate::fast::pack::{self, Layout, PackedQ8, PANEL};
use crate::fast::{FastTier, QTile, TOKEN_TILE};
use crate::wtypes::{PanelForm, WeightType, WIDE};

pub struct AmxFast;

impl FastTier for AmxFast {
    type Rows = crate::avx2::rows::Avx2RowOps;
    /// Two tile groups: their rows (34 KB at k = 768) mostly stay in L1 across the panels,
    /// where a 64-token tile's 67 KB came from L2 for every panel and the tile loads of them
    /// stalled the in-order tile unit (one thread, 512 × 768 × 1,152 Q8_0: int8 215 → 249
    /// GMAC/s; one group per tile was slower again, 191, by the per-call costs).
    const TOKENS: usize = 2 * super::group::GROUP;

    fn quantize(x: &[f32], q: &mut [i16]) -> f32 {
        Avx512Fast::quantize(x, q)
    }

    fn quantize_row(x: &[f32], q: &mut [i16], d: &mut [f32]) {
        Avx512Fast::quantize_row(x, q, d)
    }

    fn layout(form: PanelForm) -> Layout {
        if form == PanelForm::Wide {
            Layout::Pairs
        } else {
            Layout::QuadsSigned
        }
    }

    fn pack<W: WeightType>(w: gg_ops::WeightView<'_>, groups: usize) -> Result<PackedQ8, String> {
        match W::PANEL_FORM {
            Some(PanelForm::Wide) => pack::pack::<W>(w, groups),
            _ => pack::pack_quads_signed::<W>(w, groups),
        }
    }

    fn write_row(src: &[f32], out: &mut [u32], with_sums: bool, form: PanelForm) {
        if form == PanelForm::Wide {
            return crate::fast::drive::write_pairs::<Avx512Fast>(src, out, with_sums);
        }
        crate::fast::drive::write_pairs::<Avx512Fast>(src, out, with_sums);
        to_planes(out, src.len());
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        if FORM == WIDE {
            return Avx512Fast::dots::<FORM>(tile, panel, out);
        }
        let amx = Amx::get();
        // SAFETY: the token proves AMX and AVX-512; rows in planes (`write_row`), the panel in
        // signed quads of the form (`pack`).
        unsafe { dots_hw::<FORM>(amx, tile, panel, out) }
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        Avx512Fast::geglu(g, u, h)
    }
}

/// A row's 16-bit quants, written in pairs (`write_pairs`), rewritten in place as two byte
/// planes: bytes `0..k` the high bytes (signed), `k..2k` the low bytes (unsigned), so
/// `x = 256 · hi + lo`. The scales and sums after them stay.
pub fn to_planes(out: &mut [u32], k: usize) {
    let mut q = [0i16; crate::fast::MAX_K];
    q[..k].copy_from_slice(bytemuck::cast_slice(&out[..k / 2]));
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut out[..k / 2]);
    for (c, &x) in q[..k].iter().enumerate() {
        bytes[c] = (x >> 8) as u8;
        bytes[k + c] = x as u8;
    }
}

/// The tile's tokens in groups of 16 on the hardware, the AVX-512 epilogue.
///
/// # Safety
/// The token proves AMX and AVX-512; rows in planes, the panel in signed quads of the form.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dots_hw<const FORM: u8>(amx: Amx, tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
    // SAFETY: the caller's contract.
    unsafe { group::groups::<Hw, epilogue::Avx512, FORM, false>(&mut Hw::new(amx), tile, panel, out) }
}

/// The same loop on the software model of the tiles, with the epilogue `E`: what tests run on
/// CPUs without AMX (with [`epilogue::Scalar`] anywhere, with [`epilogue::Avx512`] inside
/// [`dots_model_avx512`]).
#[inline(always)]
fn dots_model_with<E: epilogue::Epilogue, const FORM: u8>(
    tile: &QTile,
    panel: &[u8],
    out: &mut [[f32; PANEL]; TOKEN_TILE],
) {
    // SAFETY: callers quantize and pack with this precision's functions for this tier.
    unsafe { group::groups::<Model, E, FORM, false>(&mut Model::default(), tile, panel, out) }
}

/// [`dots_model_with`] and the scalar epilogue: the loop, the layout and the packing on any CPU.
pub fn dots_model<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
    dots_model_with::<epilogue::Scalar, FORM>(tile, panel, out)
}

/// [`dots_model_with`] and the AVX-512 epilogue.
///
/// # Safety
/// The CPU must have AVX-512F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn dots_model_avx512<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
    dots_model_with::<epilogue::Avx512, FORM>(tile, panel, out)
}
