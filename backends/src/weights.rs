//! Weight storage the executor reads: zero-copy views into the model file, or buffers a
//! compiler pass produced (e.g. concatenated Q/K/V rows).

use std::sync::Arc;

use gg_ops::{BlockQ8_0, DType, Shape};
use half::{bf16, f16};

/// Something that owns bytes for as long as the weights are used (the memory-mapped file).
pub trait ByteSource: Send + Sync {
    fn bytes(&self) -> &[u8];
}

/// Where a weight's bytes are.
pub enum WeightBytes {
    /// `len` bytes at `start` of a shared source (zero copy).
    Shared {
        source: Arc<dyn ByteSource>,
        start: usize,
        len: usize,
    },
    /// Owned bytes in u64 words, so typed views are aligned.
    Owned { words: Vec<u64>, len: usize },
}

impl WeightBytes {
    pub fn owned(bytes: &[u8]) -> WeightBytes {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        WeightBytes::Owned {
            words,
            len: bytes.len(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            WeightBytes::Shared { source, start, len } => &source.bytes()[*start..*start + *len],
            WeightBytes::Owned { words, len } => &bytemuck::cast_slice(words)[..*len],
        }
    }
}

/// A typed view of a weight's data.
#[derive(Clone, Copy, Debug)]
pub enum WeightView<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    BF16(&'a [bf16]),
    Q8_0(&'a [BlockQ8_0]),
}

impl WeightView<'_> {
    /// Convert row `j` of a `[n, k]` matrix to f32 in `out` (`out.len() == k`).
    #[inline]
    pub fn row_to_f32(&self, j: usize, out: &mut [f32]) {
        self.row_segment_to_f32(j, out.len(), 0, out);
    }

    /// Convert elements `k0..k0 + out.len()` of row `j` of a `[n, k]` matrix to f32. For
    /// Q8_0, `k0` and the length (unless it reaches the row end) are multiples of 32.
    #[inline]
    pub fn row_segment_to_f32(&self, j: usize, k: usize, k0: usize, out: &mut [f32]) {
        let start = j * k + k0;
        let len = out.len();
        match self {
            WeightView::F32(w) => out.copy_from_slice(&w[start..start + len]),
            WeightView::F16(w) => {
                for (o, v) in out.iter_mut().zip(&w[start..start + len]) {
                    *o = v.to_f32();
                }
            }
            WeightView::BF16(w) => {
                for (o, v) in out.iter_mut().zip(&w[start..start + len]) {
                    *o = v.to_f32();
                }
            }
            WeightView::Q8_0(w) => {
                let qk = gg_ops::QK8_0;
                gg_ops::quant::dequantize_row_q8_0(&w[start / qk..(start + len) / qk], out);
            }
        }
    }
}

/// One weight: its type, shape and bytes.
pub struct Weight {
    pub dtype: DType,
    pub shape: Shape,
    pub bytes: WeightBytes,
}

#[derive(Debug, thiserror::Error)]
#[error("weight {index}: {what}")]
pub struct WeightError {
    pub index: usize,
    pub what: String,
}

/// The weights of a compiled graph, indexed by `WeightId`.
#[derive(Default)]
pub struct WeightTable {
    weights: Vec<Weight>,
}

impl WeightTable {
    /// Check each weight's size and alignment once, so views never fail later.
    pub fn new(weights: Vec<Weight>) -> Result<WeightTable, WeightError> {
        for (index, w) in weights.iter().enumerate() {
            let err = |what: String| WeightError { index, what };
            let gg_ops::Rows::Fixed(rows) = w.shape.rows else {
                return Err(err(format!("shape {} has symbolic rows", w.shape)));
            };
            let want = w
                .dtype
                .bytes_for(rows * w.shape.cols)
                .ok_or_else(|| err(format!("{} x {} is not whole {} blocks", rows, w.shape.cols, w.dtype)))?;
            if w.bytes.as_bytes().len() != want {
                return Err(err(format!(
                    "{} bytes for {} {}, expected {want}",
                    w.bytes.as_bytes().len(),
                    w.dtype,
                    w.shape
                )));
            }
            let align = match w.dtype {
                DType::F32 | DType::I32 => 4,
                _ => 2,
            };
            if !(w.bytes.as_bytes().as_ptr() as usize).is_multiple_of(align) {
                return Err(err(format!("data is not {align}-byte aligned")));
            }
        }
        Ok(WeightTable { weights })
    }

    /// Bind a graph's weight table: `tensor` gives the bytes of a named tensor; rows of
    /// concatenated weights are stacked here, once.
    pub fn bind(
        descs: &[gg_graph::WeightDesc],
        tensor: impl Fn(&str) -> Result<WeightBytes, String>,
    ) -> Result<WeightTable, WeightError> {
        let mut weights = Vec::with_capacity(descs.len());
        for (index, desc) in descs.iter().enumerate() {
            let err = |what: String| WeightError { index, what };
            let bytes = match &desc.source {
                gg_graph::WeightSource::Tensor(name) => tensor(name).map_err(err)?,
                gg_graph::WeightSource::ConcatRows(names) => {
                    let mut all = Vec::new();
                    for name in names {
                        all.extend_from_slice(tensor(name).map_err(err)?.as_bytes());
                    }
                    WeightBytes::owned(&all)
                }
            };
            weights.push(Weight {
                dtype: desc.dtype,
                shape: desc.shape,
                bytes,
            });
        }
        WeightTable::new(weights)
    }

    pub fn len(&self) -> usize {
        self.weights.len()
    }

    pub fn is_empty(&self) -> bool {
        self.weights.is_empty()
    }

    pub fn get(&self, id: usize) -> &Weight {
        &self.weights[id]
    }

    pub fn view(&self, id: usize) -> WeightView<'_> {
        let w = &self.weights[id];
        let b = w.bytes.as_bytes();
        // Sizes and alignment were checked in `new`.
        match w.dtype {
            DType::F32 | DType::I32 => WeightView::F32(bytemuck::cast_slice(b)),
            DType::F16 => WeightView::F16(bytemuck::cast_slice(b)),
            DType::BF16 => WeightView::BF16(bytemuck::cast_slice(b)),
            DType::Q8_0 => WeightView::Q8_0(bytemuck::cast_slice(b)),
        }
    }

    /// A vector weight (norm scales) as f32; only F32 vectors are accepted by the graph.
    pub fn f32(&self, id: usize) -> &[f32] {
        match self.view(id) {
            WeightView::F32(v) => v,
            _ => panic!("weight {id} is not f32 (the graph validates this)"),
        }
    }
}
