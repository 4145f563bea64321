//! The inputs of an embedding request, shared by the OpenAI and TEI routes: texts or token-id
//! arrays, with errors naming the offending element.

use serde_json::Value;

use gemma_graph::{Prompt, Sequence, Truncation};

use crate::api::{self, AppState, Owned};
use crate::error::ApiError;

/// What a request asks to embed.
pub enum Inputs {
    Texts(Vec<String>),
    Tokens(Vec<Vec<u64>>),
}

/// `field` (OpenAI's `input`, TEI's `inputs`): a string, an array of strings, an array of token
/// ids, or an array of those.
pub fn parse_input(field: &str, input: Option<Value>, max_inputs: usize) -> Result<Inputs, ApiError> {
    let bad = |what: String| ApiError::invalid("invalid_input", what);
    let input = input.ok_or_else(|| bad(format!("`{field}` is required")))?;
    let items = match input {
        Value::String(s) => return Ok(Inputs::Texts(vec![s])),
        Value::Array(items) => items,
        other => {
            return Err(bad(format!(
                "`{field}` must be a string or an array, not {}",
                kind(&other)
            )))
        }
    };
    if items.is_empty() {
        return Err(bad(format!("`{field}` is an empty array")));
    }
    let count = if items.iter().all(Value::is_number) {
        1
    } else {
        items.len()
    };
    if count > max_inputs {
        return Err(ApiError::too_large(
            "too_many_inputs",
            format!("`{field}` has {count} items, more than {max_inputs} per request (--max-inputs)"),
        ));
    }
    let token = |v: &Value, at: String| {
        v.as_u64()
            .ok_or_else(|| bad(format!("{field}{at} must be a non-negative integer token id, not {v}")))
    };
    match &items[0] {
        Value::String(_) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s),
                other => Err(bad(format!(
                    "{field}[{i}] must be a string like {field}[0], not {}",
                    kind(&other)
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Inputs::Texts),
        Value::Number(_) => items
            .iter()
            .enumerate()
            .map(|(i, v)| token(v, format!("[{i}]")))
            .collect::<Result<_, _>>()
            .map(|ids| Inputs::Tokens(vec![ids])),
        Value::Array(_) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::Array(ids) => ids
                    .iter()
                    .enumerate()
                    .map(|(j, t)| token(t, format!("[{i}][{j}]")))
                    .collect(),
                other => Err(bad(format!(
                    "{field}[{i}] must be an array of token ids like {field}[0], not {}",
                    kind(other)
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Inputs::Tokens),
        other => Err(bad(format!(
            "{field}[0] must be a string, a token id or an array of token ids, not {}",
            kind(other)
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Inputs {
    /// Each input as a sequence, by the library's rules (a prompt on token arrays, a token id
    /// outside the vocabulary, a sequence past the context with truncation off: 400s naming the
    /// input).
    pub async fn into_sequences(
        self,
        state: &AppState,
        prompt: Option<Prompt>,
        truncation: Truncation,
    ) -> Result<Vec<Sequence>, ApiError> {
        let owned = match self {
            Inputs::Texts(texts) => texts.into_iter().map(Owned::Text).collect(),
            Inputs::Tokens(arrays) => {
                let vocab = state.model.tokenizer().vocab_size() as u64;
                let mut out = Vec::with_capacity(arrays.len());
                for (index, ids) in arrays.into_iter().enumerate() {
                    // Ids past u32 cannot be the vocabulary's: refused here, before narrowing.
                    if let Some(bad) = ids.iter().find(|&&id| id >= vocab) {
                        return Err(ApiError::invalid(
                            "invalid_token_id",
                            format!("input {index}: token id {bad} is outside the vocabulary (size {vocab})"),
                        ));
                    }
                    out.push(Owned::Tokens(ids.into_iter().map(|id| id as u32).collect()));
                }
                out
            }
        };
        api::sequences(state, owned, prompt, truncation).await
    }
}
