//! What an embedding call returns: per text its rows, token counts and the other heads' rows;
//! and the Matryoshka rule for cutting a vector shorter.

/// The result for one text.
#[derive(Clone, Debug, PartialEq)]
pub struct TextEmbedding {
    /// `rows × dim` values, row-major: one row for per-text heads, one per token for
    /// per-token heads.
    pub values: Vec<f32>,
    pub rows: usize,
    pub dim: usize,
    /// Tokens the model saw (BOS and EOS included).
    pub tokens: usize,
    /// Tokens dropped by truncation to the context length.
    pub dropped_tokens: usize,
    /// The outputs of the model's other heads (`Model::load_heads`), in order.
    pub extra: Vec<HeadRows>,
}

/// One head's rows for one text: `rows × dim` values, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadRows {
    pub values: Vec<f32>,
    pub rows: usize,
    pub dim: usize,
}

/// Results in input order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Embeddings {
    pub items: Vec<TextEmbedding>,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The vector of text `i` (its first row, for per-token heads).
    pub fn vector(&self, i: usize) -> &[f32] {
        let it = &self.items[i];
        &it.values[..it.dim]
    }

    /// Head `h`'s output for text `i` (all its rows; head 0 is [`Embeddings::vector`]'s).
    pub fn head(&self, h: usize, i: usize) -> &[f32] {
        let it = &self.items[i];
        match h {
            0 => &it.values,
            h => &it.extra[h - 1].values,
        }
    }
}

pub(crate) fn renormalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    for x in v {
        *x /= n;
    }
}

/// Matryoshka truncation as [`EmbedOptions::dim`] does it: the first `dim` values, scaled
/// back to unit length (bit for bit the same arithmetic, for callers that truncate later).
pub fn matryoshka(vector: &[f32], dim: usize) -> Vec<f32> {
    let mut v = vector[..dim.min(vector.len())].to_vec();
    if v.len() < vector.len() {
        renormalize(&mut v);
    }
    v
}
