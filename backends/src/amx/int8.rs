//! The int8 precision on AMX tiles: the int8 precision's rows as they are (the AVX-512
//! quantizer, `fast::int8`'s layout), the weights in signed quads, each block's products summed
//! by `tdpbssd` into a 16 × 16 tile, then the specification's f32 epilogue.

use super::epilogue;
use super::group;
use super::tile::{Hw, Model};
use super::token::Amx;
use crate::avx512::int8::Avx512Int8;
use crate::cpu::CpuToken;
use crate::fast::int8::Int8Tier;
use crate::fast::pack::{Layout, PANEL};
use crate::fast::{QTile, TOKEN_TILE};

pub struct AmxInt8;

impl Int8Tier for AmxInt8 {
    type Rows = crate::avx2::rows::Avx2RowOps;
    /// Two tile groups: their rows (34 KB at k = 768) mostly stay in L1 across the panels,
    /// where a 64-token tile's 67 KB came from L2 for every panel and the tile loads of them
    /// stalled the in-order tile unit (one thread, 512 × 768 × 1,152 Q8_0: int8 215 → 249
    /// GMAC/s; one group per tile was slower again, 191, by the per-call costs).
    const TOKENS: usize = 2 * super::group::GROUP;
    /// `tdpbssd` takes signed weights.
    const LAYOUT: Layout = Layout::QuadsSigned;

    fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32], sums: &mut [i32]) {
        Avx512Int8::quantize_row(x, q, d, sums)
    }

    fn dots<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
        let amx = Amx::get();
        // SAFETY: the token proves AMX and AVX-512; int8 rows and quads panels of the form.
        unsafe { dots_hw::<FORM>(amx, tile, panel, out) }
    }

    fn geglu(g: &[f32], u: &[f32], h: &mut [f32]) {
        Avx512Int8::geglu(g, u, h)
    }
}

/// The tile's tokens in groups of 16 on the hardware, the AVX-512 epilogue.
///
/// # Safety
/// The token proves AMX and AVX-512; int8 rows, the panel in signed quads of the form.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn dots_hw<const FORM: u8>(amx: Amx, tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
    // SAFETY: the caller's contract.
    unsafe { group::groups::<Hw, epilogue::Avx512, FORM, true>(&mut Hw::new(amx), tile, panel, out) }
}

#[inline(always)]
fn dots_model_with<E: epilogue::Epilogue, const FORM: u8>(
    tile: &QTile,
    panel: &[u8],
    out: &mut [[f32; PANEL]; TOKEN_TILE],
) {
    // SAFETY: callers quantize and pack with this precision's functions for this tier.
    unsafe { group::groups::<Model, E, FORM, true>(&mut Model::default(), tile, panel, out) }
}

/// The loop on the software model of the tiles with the scalar epilogue (any CPU).
pub fn dots_model<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
    dots_model_with::<epilogue::Scalar, FORM>(tile, panel, out)
}

/// The loop on the model with the AVX-512 epilogue.
///
/// # Safety
/// The CPU must have AVX-512F/BW/VL.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn dots_model_avx512<const FORM: u8>(tile: &QTile, panel: &[u8], out: &mut [[f32; PANEL]; TOKEN_TILE]) {
    dots_model_with::<epilogue::Avx512, FORM>(tile, panel, out)
}
