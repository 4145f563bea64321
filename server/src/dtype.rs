//! The `dtype` extension of the embedding routes: vectors stored as float32, float16, int8,
//! uint8, binary or ubinary by the library's `quantize_row` (sentence-transformers'
//! `quantize_embeddings`), as JSON numbers or, with base64, as the stored bytes.

use base64::Engine;
use gemma_graph::{OutputDtype, StoredValues};
use serde::Serialize;

use crate::api::AppState;
use crate::error::ApiError;

/// A vector as a response carries it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Stored {
    Floats(Vec<f32>),
    Ints(Vec<i16>),
    /// The stored bytes (little-endian for float dtypes), base64.
    Base64(String),
}

/// How vectors are answered: the dtype, and whether as base64 bytes.
#[derive(Clone, Copy, Debug)]
pub struct Encoding {
    pub dtype: OutputDtype,
    pub base64: bool,
}

impl Encoding {
    /// The request's `dtype` field (default float32), checked before any text runs: int8 and
    /// uint8 need the server's `--calibration` ranges, of the answer's dimension.
    pub fn parse(state: &AppState, dtype: Option<&str>, base64: bool, dim: usize) -> Result<Encoding, ApiError> {
        let dtype = match dtype {
            None => OutputDtype::Float32,
            Some(name) => name
                .parse()
                .map_err(|e: gemma_graph::Error| ApiError::invalid("invalid_dtype", format!("`dtype`: {e}")))?,
        };
        if dtype.needs_ranges() {
            match &state.ranges {
                None => {
                    return Err(ApiError::invalid(
                        "invalid_dtype",
                        format!(
                            "`dtype` {dtype} needs each column's range from calibration embeddings; this \
                             server was started without --calibration"
                        ),
                    ))
                }
                Some(r) if r.dim() != dim => {
                    return Err(ApiError::invalid(
                        "invalid_dtype",
                        format!(
                            "`dtype` {dtype}: the server's calibration embeddings have {} dimensions, the \
                             answer {dim}",
                            r.dim()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(Encoding { dtype, base64 })
    }

    /// One vector in this encoding.
    pub fn store(&self, state: &AppState, v: Vec<f32>) -> Result<Stored, ApiError> {
        if self.dtype == OutputDtype::Float32 && !self.base64 {
            return Ok(Stored::Floats(v));
        }
        let mut bytes = Vec::with_capacity(v.len() * 4);
        gemma_graph::quantize_row(&v, self.dtype, state.ranges.as_ref(), &mut bytes)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(if self.base64 {
            Stored::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
        } else {
            match gemma_graph::stored_values(&bytes, self.dtype) {
                StoredValues::Floats(v) => Stored::Floats(v),
                StoredValues::Ints(v) => Stored::Ints(v),
            }
        })
    }
}
