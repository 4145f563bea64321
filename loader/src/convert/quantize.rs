//! Which type each tensor is written in, and its bytes in that type: llama.cpp's choices
//! (`llama_tensor_get_type` for the K-quant mixes, `tensor_type_fallback` for rows that are not
//! whole blocks) and its reference quantizers, so each output type equals what
//! `llama-quantize` writes from the F32 file.

use gg_ops::quant::quantize_row_q8_0;
use gg_ops::{
    BlockIq4Nl, BlockIq4Xs, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QK4_0,
    QK_K,
};
use half::{bf16, f16};
use rayon::prelude::*;

use super::OutType;
use crate::gguf::GgmlType;

const Q4_0: GgmlType = GgmlType(2);
const Q4_1: GgmlType = GgmlType(3);
const Q5_0: GgmlType = GgmlType(6);
const Q5_1: GgmlType = GgmlType(7);
const Q4_K: GgmlType = GgmlType(12);
const Q5_K: GgmlType = GgmlType(13);
const Q6_K: GgmlType = GgmlType(14);
const IQ4_NL: GgmlType = GgmlType(20);
const IQ4_XS: GgmlType = GgmlType(23);

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third in
/// between get more bits in the `_M` mixes.
fn use_more_bits(layer: usize, n_layers: usize) -> bool {
    layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer as i64 - (n_layers / 8) as i64) % 3 == 2
}

/// `blk.N.…` → N.
fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// The type a tensor of `shape` (outermost first) named `name` is written in, for output type
/// `ty` in a model of `n_layers` layers.
///
/// 1-D tensors stay F32. F16, BF16 and the 32-value types put every 2-D weight in that type
/// (as `llama-quantize --pure` does for the legacy types). The K mixes follow llama.cpp's rules
/// for a model with tied embeddings and no output matrix: `token_embd` is quantized as the
/// output would be (Q6_K); in `Q4_K_M`/`Q5_K_M`, `attn_v` and `ffn_down` of the layers
/// [`use_more_bits`] picks get Q6_K. In `IQ4_NL`/`IQ4_XS` (no importance matrix) `token_embd`
/// is Q6_K and `ffn_down` of the first eighth of the layers Q5_K. Then rows that are not whole
/// blocks fall back: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, IQ4_XS → IQ4_NL, and a 32-value
/// type that still does not fit → F16.
pub(crate) fn tensor_type(ty: OutType, name: &str, shape: &[usize], n_layers: usize) -> GgmlType {
    if shape.len() < 2 || ty == OutType::F32 {
        return GgmlType::F32;
    }
    let cols = *shape.last().expect("2-D");
    let base = match ty {
        OutType::F32 => GgmlType::F32,
        OutType::F16 => return GgmlType::F16,
        OutType::BF16 => return GgmlType::BF16,
        OutType::Q8_0 => GgmlType::Q8_0,
        OutType::Q4_0 => Q4_0,
        OutType::Q4_1 => Q4_1,
        OutType::Q5_0 => Q5_0,
        OutType::Q5_1 => Q5_1,
        OutType::Q4KM => Q4_K,
        OutType::Q5KM => Q5_K,
        OutType::Q6K => Q6_K,
        OutType::IQ4NL => IQ4_NL,
        OutType::IQ4XS => IQ4_XS,
    };
    let mut chosen = base;
    if matches!(ty, OutType::IQ4NL | OutType::IQ4XS) {
        if name == "token_embd.weight" {
            chosen = if cols.is_multiple_of(QK_K) {
                Q6_K
            } else {
                GgmlType::Q8_0
            };
        } else if name.ends_with("ffn_down.weight") && layer_of(name).is_some_and(|l| l < n_layers / 8) {
            chosen = Q5_K;
        }
    }
    if matches!(ty, OutType::Q4KM | OutType::Q5KM | OutType::Q6K) {
        let more_bits = || layer_of(name).is_some_and(|l| use_more_bits(l, n_layers));
        if name == "token_embd.weight" {
            chosen = if cols.is_multiple_of(QK_K) {
                Q6_K
            } else {
                GgmlType::Q8_0
            };
        } else if ty != OutType::Q6K
            && (name.ends_with("attn_v.weight") || name.ends_with("ffn_down.weight"))
            && more_bits()
        {
            chosen = Q6_K;
        }
    }
    let block_len = chosen.block().map_or(1, |(n, _)| n);
    if cols.is_multiple_of(block_len) {
        return chosen;
    }
    let fallback = match chosen {
        Q4_K => Q5_0,
        Q5_K => Q5_1,
        Q6_K => GgmlType::Q8_0,
        IQ4_XS => IQ4_NL,
        other => other,
    };
    if cols.is_multiple_of(QK4_0) && fallback != chosen {
        fallback
    } else {
        GgmlType::F16
    }
}

/// Blocks of `B` from a row of values, one block at a time.
fn blocks<B: bytemuck::Pod + Send, const N: usize>(values: &[f32], quantize: fn(&[f32; N]) -> B) -> Vec<u8> {
    let blocks: Vec<B> = values
        .par_chunks_exact(N)
        .with_min_len(64)
        .map(|c| quantize(c.try_into().expect("a whole block")))
        .collect();
    bytemuck::cast_slice(&blocks).to_vec()
}

/// `values` (rows of `cols`, whole blocks) in type `ty`, as the file stores them.
pub(crate) fn encode(values: &[f32], ty: GgmlType) -> Vec<u8> {
    match ty {
        GgmlType::F32 => values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        GgmlType::F16 => values.iter().flat_map(|&x| f16::from_f32(x).to_le_bytes()).collect(),
        GgmlType::BF16 => values.iter().flat_map(|&x| bf16_round(x).to_le_bytes()).collect(),
        GgmlType::Q8_0 => {
            let mut out = vec![BlockQ8_0::quantize(&[0.0; 32]); values.len() / 32];
            quantize_row_q8_0(values, &mut out);
            bytemuck::cast_slice(&out).to_vec()
        }
        Q4_0 => blocks::<BlockQ4_0, 32>(values, BlockQ4_0::quantize),
        Q4_1 => blocks::<BlockQ4_1, 32>(values, BlockQ4_1::quantize),
        Q5_0 => blocks::<BlockQ5_0, 32>(values, BlockQ5_0::quantize),
        Q5_1 => blocks::<BlockQ5_1, 32>(values, BlockQ5_1::quantize),
        Q4_K => blocks::<BlockQ4K, 256>(values, BlockQ4K::quantize),
        Q5_K => blocks::<BlockQ5K, 256>(values, BlockQ5K::quantize),
        Q6_K => blocks::<BlockQ6K, 256>(values, BlockQ6K::quantize),
        IQ4_NL => blocks::<BlockIq4Nl, 32>(values, BlockIq4Nl::quantize),
        IQ4_XS => blocks::<BlockIq4Xs, 256>(values, BlockIq4Xs::quantize),
        other => unreachable!("tensor_type never picks {other}"),
    }
}

/// ggml's `GGML_FP32_TO_BF16`: round to nearest even, NaN kept quiet.
fn bf16_round(x: f32) -> bf16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return bf16::from_bits(((u >> 16) | 64) as u16);
    }
    bf16::from_bits((u.wrapping_add(0x7fff + ((u >> 16) & 1)) >> 16) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_k_m_picks_llama_cpp_types() {
        let t = |name: &str, shape: &[usize]| tensor_type(OutType::Q4KM, name, shape, 24);
        assert_eq!(t("token_embd.weight", &[262_144, 768]), Q6_K);
        assert_eq!(t("blk.0.attn_v.weight", &[256, 768]), Q6_K);
        assert_eq!(t("blk.3.attn_v.weight", &[256, 768]), Q4_K);
        assert_eq!(t("blk.5.attn_v.weight", &[256, 768]), Q6_K);
        // 1,152 columns: Q6_K → Q8_0, Q4_K → Q5_0.
        assert_eq!(t("blk.21.ffn_down.weight", &[768, 1152]), GgmlType::Q8_0);
        assert_eq!(t("blk.4.ffn_down.weight", &[768, 1152]), Q5_0);
        assert_eq!(t("blk.4.attn_norm.weight", &[768]), GgmlType::F32);
        assert_eq!(
            tensor_type(OutType::Q5KM, "blk.4.ffn_down.weight", &[768, 1152], 24),
            Q5_1
        );
        assert_eq!(
            tensor_type(OutType::Q6K, "blk.4.ffn_down.weight", &[768, 1152], 24),
            GgmlType::Q8_0
        );
        assert_eq!(
            tensor_type(OutType::Q4_0, "token_embd.weight", &[262_144, 768], 24),
            Q4_0
        );
        assert_eq!(tensor_type(OutType::Q4_0, "x.weight", &[4, 40], 24), GgmlType::F16);
    }

    #[test]
    fn iq4_mixes_pick_llama_cpp_types() {
        for ty in [OutType::IQ4NL, OutType::IQ4XS] {
            let t = |name: &str, shape: &[usize]| tensor_type(ty, name, shape, 24);
            assert_eq!(t("token_embd.weight", &[262_144, 768]), Q6_K);
            // The first eighth of the layers' ffn_down: Q5_K, whose fallback for 1,152 columns
            // is Q5_1.
            assert_eq!(t("blk.2.ffn_down.weight", &[768, 1152]), Q5_1);
            assert_eq!(t("blk.3.ffn_down.weight", &[768, 1152]), IQ4_NL);
            assert_eq!(t("blk.4.attn_norm.weight", &[768]), GgmlType::F32);
        }
        assert_eq!(
            tensor_type(OutType::IQ4XS, "blk.0.attn_q.weight", &[768, 768], 24),
            IQ4_XS
        );
        assert_eq!(
            tensor_type(OutType::IQ4NL, "blk.0.attn_q.weight", &[768, 768], 24),
            IQ4_NL
        );
    }

    #[test]
    fn more_bits_layers_of_24() {
        let picked: Vec<usize> = (0..24).filter(|&l| use_more_bits(l, 24)).collect();
        assert_eq!(picked, [0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23]);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(bf16_round(1.0).to_bits(), 0x3f80);
        assert_eq!(bf16_round(f32::from_bits(0x3f80_8000)).to_bits(), 0x3f80);
        assert_eq!(bf16_round(f32::from_bits(0x3f81_8000)).to_bits(), 0x3f82);
        assert_eq!(bf16_round(f32::NAN).to_bits() & 0x7fc0, 0x7fc0);
    }
}
