//! The `chunk_tokens`/`chunk_overlap` extension of `/embed` and `/v1/embeddings`: each text
//! split on token boundaries into windows (the library's `Model::chunk_text`, as
//! `run --chunk-tokens` does), each window embedded as a text of its own — the same chunks and
//! vectors as the CLI — and answered with its character offsets in the text.

use std::sync::atomic::Ordering;

use gemma_graph::{ChunkOptions, EmbedOptions, Input, Sequence};
use serde::Serialize;

use crate::api::{self, input_error, AppState};
use crate::error::ApiError;

/// Where a chunk came from: its input, its number there, its characters `start..end`.
#[derive(Clone, Copy, Debug, Serialize, utoipa::ToSchema)]
pub struct ChunkOf {
    #[serde(skip)]
    pub input: usize,
    pub chunk: usize,
    pub start: usize,
    pub end: usize,
}

/// The request's chunk options, or none; checked before any text runs.
pub fn options(tokens: Option<usize>, overlap: Option<usize>) -> Result<Option<ChunkOptions>, ApiError> {
    let chunk = match (tokens, overlap) {
        (None, None) => return Ok(None),
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "invalid_chunking",
                "`chunk_overlap` needs `chunk_tokens`",
            ))
        }
        (Some(tokens), overlap) => ChunkOptions {
            tokens,
            overlap: overlap.unwrap_or(0),
        },
    };
    chunk
        .check()
        .map_err(|e| ApiError::invalid("invalid_chunking", e.to_string()))?;
    Ok(Some(chunk))
}

/// Every text's chunks as sequences, in order, with where each came from. The chunks of a
/// request count against `--max-inputs` like inputs do.
pub async fn sequences(
    state: &AppState,
    texts: Vec<String>,
    options: EmbedOptions,
    chunk: ChunkOptions,
) -> Result<(Vec<Sequence>, Vec<ChunkOf>), ApiError> {
    let text_bytes = api::texts_bytes(&options, texts.iter().map(String::len))?;
    let max_chunks = state.limits.max_inputs;
    api::tokenizing_job(state, text_bytes, move |model, stop| {
        let rules = model.sequencer(&options).map_err(input_error)?;
        let (mut seqs, mut from) = (Vec::new(), Vec::new());
        for (input, text) in texts.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                return Err(ApiError::internal("stopped: the request was dropped"));
            }
            let chunks = model
                .chunk_text(text, chunk, &options)
                .map_err(|e| ApiError::invalid("invalid_chunking", format!("input {input}: {e}")))?;
            if seqs.len() + chunks.len() > max_chunks {
                return Err(ApiError::too_large(
                    "too_many_chunks",
                    format!("the request's texts make more than {max_chunks} chunks (--max-inputs)"),
                ));
            }
            for (k, c) in chunks.iter().enumerate() {
                seqs.push(rules.sequence(input, Input::Text(c.text(text))).map_err(input_error)?);
                from.push(ChunkOf {
                    input,
                    chunk: k,
                    start: c.chars.start,
                    end: c.chars.end,
                });
            }
        }
        Ok((seqs, from))
    })
    .await
}
