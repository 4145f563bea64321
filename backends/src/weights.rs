//! Weight storage the executor reads: zero-copy views into the model file, or buffers a
//! compiler pass produced (e.g. concatenated Q/K/V rows); the copies repacked for a program's
//! kernels; and the load-time check that no weight holds a NaN or an infinity.

use std::sync::Arc;

use gg_ops::{DType, Shape, WeightId, WeightView};

use crate::fast::{PackFn, PackedQ8};

/// Something that owns bytes for as long as the weights are used (the memory-mapped file).
pub trait ByteSource: Send + Sync {
    fn bytes(&self) -> &[u8];
    /// Bytes `start..start + len` will not be read again soon: the source may let them leave
    /// memory (they must stay readable). Default: keep them.
    fn release(&self, _start: usize, _len: usize) {}
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
    /// Owned bytes freed after repacking: no step of the program reads them
    /// ([`WeightTable::prepare`]).
    Released,
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
            WeightBytes::Released => &[],
        }
    }
}

/// One weight: its type, shape and bytes.
pub struct Weight {
    pub dtype: DType,
    pub shape: Shape,
    pub bytes: WeightBytes,
    /// The tensor (or tensors, joined by `+`) it reads, for errors.
    pub name: Option<String>,
}

/// A weight a step reads repacked for its kernel: made once by [`WeightTable::prepare`],
/// found by its index in the program's list.
#[derive(Clone, Copy)]
pub struct PackSpec {
    pub weight: WeightId,
    /// Row groups (2 for GeGLU's gate and up halves).
    pub groups: usize,
    pub pack: PackFn,
}

#[derive(Debug, thiserror::Error)]
#[error("weight {index}{}: {what}", name.as_ref().map_or(String::new(), |n| format!(" ({n:?})")))]
pub struct WeightError {
    pub index: usize,
    /// The tensor (or tensors, joined by `+`) it reads, when known.
    pub name: Option<String>,
    pub what: String,
}

/// The weights of a compiled graph, indexed by `WeightId`, and the repacked copies a
/// program's fast kernels read (indexed as the program's [`PackSpec`] list).
#[derive(Default)]
pub struct WeightTable {
    weights: Vec<Weight>,
    packed: Vec<PackedQ8>,
}

/// What [`WeightTable::prepare`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Prepared {
    /// Weights repacked, and the bytes their copies hold.
    pub weights: usize,
    pub bytes: usize,
    /// Bytes of originals let go of (file pages released, owned copies freed).
    pub released: usize,
    pub seconds: f64,
}

impl WeightTable {
    /// Check each weight's size and alignment once, so views never fail later.
    pub fn new(weights: Vec<Weight>) -> Result<WeightTable, WeightError> {
        for (index, w) in weights.iter().enumerate() {
            let gg_ops::Rows::Fixed(rows) = w.shape.rows else {
                return Err(WeightError {
                    index,
                    name: w.name.clone(),
                    what: format!("shape {} has symbolic rows", w.shape),
                });
            };
            WeightView::new(w.dtype, rows, w.shape.cols, w.bytes.as_bytes()).map_err(|e| WeightError {
                index,
                name: w.name.clone(),
                what: e.to_string(),
            })?;
        }
        Ok(WeightTable {
            weights,
            packed: Vec::new(),
        })
    }

    /// Bind a graph's weight table: `tensor` gives the bytes of a named tensor of the model
    /// file, `user` those of a tensor of a user's weight file; rows of concatenated weights
    /// are stacked here, once.
    pub fn bind(
        descs: &[gg_graph::WeightDesc],
        tensor: impl Fn(&str) -> Result<WeightBytes, String>,
        user: impl Fn(&str, &str) -> Result<WeightBytes, String>,
    ) -> Result<WeightTable, WeightError> {
        let mut weights = Vec::with_capacity(descs.len());
        for (index, desc) in descs.iter().enumerate() {
            let err = |what: String| WeightError {
                index,
                name: Some(desc.name()),
                what,
            };
            let bytes = match &desc.source {
                gg_graph::WeightSource::Tensor(name) => tensor(name).map_err(err)?,
                gg_graph::WeightSource::User { file, tensor } => user(file, tensor).map_err(err)?,
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
                name: Some(desc.name()),
            });
        }
        WeightTable::new(weights).map_err(|e| WeightError {
            name: Some(descs[e.index].name()),
            ..e
        })
    }

    /// Repack the weights a program's kernels read packed (`specs`, once; a table prepared for
    /// another program is repacked again), and let go of the originals of `repacked_only`.
    pub fn prepare(&mut self, specs: &[PackSpec], repacked_only: &[WeightId]) -> Result<Prepared, WeightError> {
        let started = std::time::Instant::now();
        let mut packed = Vec::with_capacity(specs.len());
        let mut released = 0;
        for (i, spec) in specs.iter().enumerate() {
            if spec.weight >= self.weights.len() {
                return Err(WeightError {
                    index: spec.weight,
                    name: None,
                    what: format!("the program reads weight {} of {}", spec.weight, self.weights.len()),
                });
            }
            let p = (spec.pack)(self.view(spec.weight), spec.groups).map_err(|what| WeightError {
                index: spec.weight,
                name: self.weights[spec.weight].name.clone(),
                what,
            })?;
            packed.push(p);
            // What only the repacked copies are read as need not stay in memory: file pages
            // are dropped (read again if ever touched), owned copies (concatenated rows) freed
            // — right after the weight's last packing, so the peak stays low too.
            let last = !specs[i + 1..].iter().any(|s| s.weight == spec.weight);
            if last && repacked_only.contains(&spec.weight) {
                let w = &mut self.weights[spec.weight];
                released += w.bytes.as_bytes().len();
                match &w.bytes {
                    WeightBytes::Shared { source, start, len } => source.release(*start, *len),
                    WeightBytes::Owned { .. } => w.bytes = WeightBytes::Released,
                    WeightBytes::Released => {}
                }
            }
        }
        self.packed = packed;
        Ok(Prepared {
            weights: self.packed.len(),
            bytes: self.packed.iter().map(PackedQ8::bytes).sum(),
            released,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// NaN or infinite weights would turn every vector into NaN (or zeros after a NaN scale):
    /// the first weight holding one, with the element, is refused. Reads scales only for
    /// quantized types, but those sit on every page, so the file pages are let go of as the scan
    /// passes them, [`SCAN_CHUNK_BYTES`] of rows at a time: what the first pass reads comes back
    /// from the page cache, what it never reads (most embedding rows: 805 MB of them in an F32
    /// file) is never resident all at once. Types no kernel knows are left to lowering.
    pub fn check_finite(&self) -> Result<(), NonFinite> {
        for (index, w) in self.weights.iter().enumerate() {
            let Some(spec) = crate::wtypes::spec(w.dtype) else {
                continue;
            };
            let bad = scan_finite(
                self.view(index),
                spec.first_non_finite,
                SCAN_CHUNK_BYTES,
                |offset, len| self.release_file_range(index, offset, len),
            );
            if let Some(element) = bad {
                return Err(NonFinite {
                    index,
                    name: w.name.clone(),
                    element,
                });
            }
            // The chunks release only the whole pages inside them; this takes the pages that
            // straddle two chunks.
            self.release_file_range(index, 0, usize::MAX);
        }
        Ok(())
    }

    /// Let bytes `offset..offset + len` of weight `index` leave memory (clamped to the weight;
    /// only the whole pages inside). Pages come back from the page cache when read again; owned
    /// bytes stay.
    fn release_file_range(&self, index: usize, offset: usize, len: usize) {
        if let Some(WeightBytes::Shared {
            source,
            start,
            len: total,
        }) = self.weights.get(index).map(|w| &w.bytes)
        {
            let offset = offset.min(*total);
            source.release(start + offset, len.min(total - offset));
        }
    }

    /// Repacked weight `index` of the program the table was prepared for.
    pub fn packed(&self, index: usize) -> Option<&PackedQ8> {
        self.packed.get(index)
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

    /// Weight `id` as stored. Not for a weight the table released after repacking (the
    /// program it was prepared for never asks).
    pub fn view(&self, id: usize) -> WeightView<'_> {
        let w = &self.weights[id];
        assert!(
            !matches!(w.bytes, WeightBytes::Released),
            "weight {id} was released after repacking: only its packed copy exists"
        );
        WeightView::new(w.dtype, w.shape.rows_for(0, 0), w.shape.cols, w.bytes.as_bytes())
            .expect("weights are checked when the table is made")
    }

    /// A vector weight (norm scales) as f32: lowering only binds f32 weights here.
    pub fn f32(&self, id: usize) -> &[f32] {
        self.view(id).cast::<f32>()
    }
}

/// A weight holding a NaN or an infinity.
#[derive(Debug, thiserror::Error)]
#[error("weight {}: element {element} is NaN or infinite", name.as_deref().unwrap_or("?"))]
pub struct NonFinite {
    pub index: usize,
    pub name: Option<String>,
    /// The first element of the first block holding one.
    pub element: usize,
}

/// Rows scanned between two releases of file pages.
pub const SCAN_CHUNK_BYTES: usize = 8 << 20;

/// The first element of the first block of `view` holding a NaN or an infinity, scanning whole
/// rows about `chunk_bytes` at a time and handing each clean chunk's byte range to `done`.
fn scan_finite(
    view: WeightView<'_>,
    first_non_finite: fn(WeightView<'_>) -> Option<usize>,
    chunk_bytes: usize,
    mut done: impl FnMut(usize, usize),
) -> Option<usize> {
    let rows = view.rows();
    let row_bytes = view.row_bytes();
    let rows_per_chunk = (chunk_bytes / row_bytes.max(1)).max(1);
    let block_len = view.dtype().block_len();
    for r0 in (0..rows).step_by(rows_per_chunk) {
        let n = rows_per_chunk.min(rows - r0);
        if let Some(block) = first_non_finite(view.rows_range(r0, n)) {
            return Some(r0 * view.cols() + block * block_len);
        }
        done(r0 * row_bytes, n * row_bytes);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::scan_finite;
    use gg_ops::{DType, WeightView};

    /// `values` as f32 bytes in a buffer, and the 4-aligned offset they start at.
    fn f32_bytes(values: &[f32]) -> (Vec<u8>, usize) {
        let mut buf = vec![0u8; values.len() * 4 + 4];
        let at = buf.as_ptr().align_offset(4);
        for (c, v) in buf[at..].chunks_exact_mut(4).zip(values) {
            c.copy_from_slice(&v.to_le_bytes());
        }
        (buf, at)
    }

    #[test]
    fn the_finiteness_scan_names_the_element_and_releases_only_clean_chunks() {
        // 10 rows × 32 f32, chunks of 3 rows; a NaN at row 7, column 5.
        let (rows, cols) = (10, 32);
        let row_bytes = cols * 4;
        let spec = crate::wtypes::spec(DType::F32).unwrap();
        let mut values = vec![1f32; rows * cols];
        values[7 * cols + 5] = f32::NAN;
        let (buf, at) = f32_bytes(&values);
        let view = WeightView::new(DType::F32, rows, cols, &buf[at..at + rows * row_bytes]).unwrap();
        let mut released = Vec::new();
        let bad = scan_finite(view, spec.first_non_finite, 3 * row_bytes, |o, n| released.push((o, n)));
        assert_eq!(bad, Some(7 * cols + 5));
        assert_eq!(released, [(0, 3 * row_bytes), (3 * row_bytes, 3 * row_bytes)]);
        // A clean weight: every row released, the short last chunk included.
        let (buf, at) = f32_bytes(&vec![0f32; rows * cols]);
        let view = WeightView::new(DType::F32, rows, cols, &buf[at..at + rows * row_bytes]).unwrap();
        let mut released = Vec::new();
        assert_eq!(
            scan_finite(view, spec.first_non_finite, 4 * row_bytes, |o, n| released.push((o, n))),
            None
        );
        assert_eq!(
            released,
            [
                (0, 4 * row_bytes),
                (4 * row_bytes, 4 * row_bytes),
                (8 * row_bytes, 2 * row_bytes)
            ]
        );
    }
}
