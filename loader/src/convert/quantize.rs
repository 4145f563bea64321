//! Which type each tensor is written in, and its bytes in that type: llama.cpp's choices
//! (`llama_tensor_get_type` for the K-quant mixes, `tensor_type_fallback` for rows that are not
//! whole blocks) and its reference quantizers, so each output type equals what
//! `llama-quantize` writes from the F32 file.

use gg_ops::quant::quantize_row_q8_0;
use gg_ops::{
    BlockIq3S, BlockIq4Nl, BlockIq4Xs, BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0,
    BlockQ5_1, BlockQ6K, BlockQ8_0, QK4_0, QK_K,
};
use half::{bf16, f16};
use rayon::prelude::*;

use super::OutType;
use crate::gguf::GgmlType;

const Q4_0: GgmlType = GgmlType(2);
const Q4_1: GgmlType = GgmlType(3);
const Q5_0: GgmlType = GgmlType(6);
const Q5_1: GgmlType = GgmlType(7);
const Q2_K: GgmlType = GgmlType(10);
const Q3_K: GgmlType = GgmlType(11);
const Q4_K: GgmlType = GgmlType(12);
const Q5_K: GgmlType = GgmlType(13);
const Q6_K: GgmlType = GgmlType(14);
const IQ4_NL: GgmlType = GgmlType(20);
const IQ4_XS: GgmlType = GgmlType(23);
const IQ3_S: GgmlType = GgmlType(21);

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
/// (as `llama-quantize --pure` does for the legacy types). The K and IQ mixes follow llama.cpp's
/// rules (`llama_tensor_get_type`) for a model with tied embeddings, no output matrix, one
/// KV head per 3 query heads and no experts, without an importance matrix:
/// - `token_embd` is quantized as the output would be: Q6_K;
/// - `Q4_K_M`/`Q5_K_M`: `attn_v` and `ffn_down` of the layers [`use_more_bits`] picks: Q6_K;
/// - `IQ4_NL`/`IQ4_XS`: `ffn_down` of the first eighth of the layers: Q5_K;
/// - `Q2_K`: `attn_v`, `attn_output` and `ffn_down`: Q3_K;
/// - `Q3_K_M`: `attn_v` of the first two layers Q5_K, of the others Q4_K; `ffn_down` of the
///   first sixteenth Q5_K, of the others Q4_K; `attn_output` Q4_K;
/// - `IQ3_M`: `attn_v`, `attn_output` and `ffn_down` of the first eighth: Q4_K.
///
/// Then rows that are not whole blocks fall back (`tensor_type_fallback`): Q2_K and Q3_K →
/// Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, IQ4_XS and IQ3_S → IQ4_NL, and a 32-value type
/// that still does not fit → F16.
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
        OutType::Q2K => Q2_K,
        OutType::Q3KS | OutType::Q3KM => Q3_K,
        OutType::Q4KM => Q4_K,
        OutType::Q5KM => Q5_K,
        OutType::Q6K => Q6_K,
        OutType::IQ4NL => IQ4_NL,
        OutType::IQ4XS => IQ4_XS,
        OutType::IQ3S | OutType::IQ3M => IQ3_S,
    };
    let mixed = base.block().is_some_and(|(n, _)| n == QK_K) || matches!(ty, OutType::IQ4NL);
    let layer = layer_of(name);
    let (attn_v, ffn_down, attn_out) = (
        name.ends_with("attn_v.weight"),
        name.ends_with("ffn_down.weight"),
        name.ends_with("attn_output.weight"),
    );
    let chosen = if !mixed {
        base
    } else if name == "token_embd.weight" {
        if cols.is_multiple_of(QK_K) {
            Q6_K
        } else {
            GgmlType::Q8_0
        }
    } else {
        let first = |part: usize| layer.is_some_and(|l| l < part);
        match ty {
            OutType::Q4KM | OutType::Q5KM
                if (attn_v || ffn_down) && layer.is_some_and(|l| use_more_bits(l, n_layers)) =>
            {
                Q6_K
            }
            OutType::IQ4NL | OutType::IQ4XS if ffn_down && first(n_layers / 8) => Q5_K,
            OutType::Q2K if attn_v || ffn_down || attn_out => Q3_K,
            OutType::Q3KM if attn_v => {
                if first(2) {
                    Q5_K
                } else {
                    Q4_K
                }
            }
            OutType::Q3KM if ffn_down => {
                if first(n_layers / 16) {
                    Q5_K
                } else {
                    Q4_K
                }
            }
            OutType::Q3KM if attn_out => Q4_K,
            OutType::IQ3M if attn_v || attn_out => Q4_K,
            OutType::IQ3M if ffn_down && first(n_layers / 8) => Q4_K,
            _ => base,
        }
    };
    let block_len = chosen.block().map_or(1, |(n, _)| n);
    if cols.is_multiple_of(block_len) {
        return chosen;
    }
    let fallback = match chosen {
        Q2_K | Q3_K => Q4_0,
        Q4_K => Q5_0,
        Q5_K => Q5_1,
        Q6_K => GgmlType::Q8_0,
        IQ4_XS | IQ3_S => IQ4_NL,
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
        Q2_K => blocks::<BlockQ2K, 256>(values, BlockQ2K::quantize),
        Q3_K => blocks::<BlockQ3K, 256>(values, BlockQ3K::quantize),
        Q4_K => blocks::<BlockQ4K, 256>(values, BlockQ4K::quantize),
        Q5_K => blocks::<BlockQ5K, 256>(values, BlockQ5K::quantize),
        Q6_K => blocks::<BlockQ6K, 256>(values, BlockQ6K::quantize),
        IQ4_NL => blocks::<BlockIq4Nl, 32>(values, BlockIq4Nl::quantize),
        IQ4_XS => blocks::<BlockIq4Xs, 256>(values, BlockIq4Xs::quantize),
        IQ3_S => blocks::<BlockIq3S, 256>(values, BlockIq3S::quantize),
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
    fn low_bit_mixes_pick_llama_cpp_types() {
        let t = |ty, name: &str, shape: &[usize]| tensor_type(ty, name, shape, 24);
        let (q, v, o, down) = (
            "blk.7.attn_q.weight",
            "blk.7.attn_v.weight",
            "blk.7.attn_output.weight",
            "blk.7.ffn_down.weight",
        );
        for ty in [OutType::Q2K, OutType::Q3KS, OutType::Q3KM] {
            assert_eq!(t(ty, "token_embd.weight", &[262_144, 768]), Q6_K);
        }
        assert_eq!(t(OutType::Q2K, q, &[768, 768]), Q2_K);
        assert_eq!(t(OutType::Q2K, v, &[256, 768]), Q3_K);
        assert_eq!(t(OutType::Q2K, o, &[768, 768]), Q3_K);
        // 1,152 columns: Q3_K → Q4_0.
        assert_eq!(t(OutType::Q2K, down, &[768, 1152]), Q4_0);
        assert_eq!(t(OutType::Q3KS, v, &[256, 768]), Q3_K);
        assert_eq!(t(OutType::Q3KS, down, &[768, 1152]), Q4_0);
        assert_eq!(t(OutType::Q3KM, q, &[768, 768]), Q3_K);
        assert_eq!(t(OutType::Q3KM, "blk.1.attn_v.weight", &[256, 768]), Q5_K);
        assert_eq!(t(OutType::Q3KM, v, &[256, 768]), Q4_K);
        assert_eq!(t(OutType::Q3KM, o, &[768, 768]), Q4_K);
        // Q5_K → Q5_1 in the first sixteenth, Q4_K → Q5_0 after.
        assert_eq!(t(OutType::Q3KM, "blk.0.ffn_down.weight", &[768, 1152]), Q5_1);
        assert_eq!(t(OutType::Q3KM, down, &[768, 1152]), Q5_0);
        assert_eq!(t(OutType::IQ3S, q, &[768, 768]), IQ3_S);
        assert_eq!(t(OutType::IQ3S, v, &[256, 768]), IQ3_S);
        assert_eq!(t(OutType::IQ3S, down, &[768, 1152]), IQ4_NL);
        assert_eq!(t(OutType::IQ3M, q, &[768, 768]), IQ3_S);
        assert_eq!(t(OutType::IQ3M, v, &[256, 768]), Q4_K);
        assert_eq!(t(OutType::IQ3M, o, &[768, 768]), Q4_K);
        assert_eq!(t(OutType::IQ3M, "blk.2.ffn_down.weight", &[768, 1152]), Q5_0);
        assert_eq!(t(OutType::IQ3M, down, &[768, 1152]), IQ4_NL);
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
