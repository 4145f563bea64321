//! Weight storage the executor reads: zero-copy views into the model file, or buffers a
//! compiler pass produced (e.g. concatenated Q/K/V rows).

use std::sync::Arc;

use gg_ops::{DType, Shape, WeightView};

use crate::fast::PackedQ8;
use crate::lower::Program;

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
/// program's fast kernels read (indexed as [`Program::packs`]).
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
                    name: None,
                    what: format!("shape {} has symbolic rows", w.shape),
                });
            };
            WeightView::new(w.dtype, rows, w.shape.cols, w.bytes.as_bytes()).map_err(|e| WeightError {
                index,
                name: None,
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
            });
        }
        WeightTable::new(weights).map_err(|e| WeightError {
            name: Some(descs[e.index].name()),
            ..e
        })
    }

    /// Repack the weights `program`'s kernels want repacked (once; a table prepared for
    /// another program is repacked again).
    pub fn prepare(&mut self, program: &Program) -> Result<Prepared, WeightError> {
        let started = std::time::Instant::now();
        let mut packed = Vec::with_capacity(program.packs().len());
        let mut released = 0;
        let specs = program.packs();
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
                name: None,
                what,
            })?;
            packed.push(p);
            // What only the repacked copies are read as need not stay in memory: file pages
            // are dropped (read again if ever touched), owned copies (concatenated rows) freed
            // — right after the weight's last packing, so the peak stays low too.
            let last = !specs[i + 1..].iter().any(|s| s.weight == spec.weight);
            if last && program.repacked_only().contains(&spec.weight) {
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

    /// Let the file pages of weight `index` leave memory (a scan that touched all of it, such as
    /// the load-time finiteness check, need not keep it resident: the token embedding table is
    /// 213 MB of which a text gathers a few rows). Pages come back from the page cache when read
    /// again. Owned bytes stay.
    pub fn release_file_pages(&self, index: usize) {
        self.release_file_range(index, 0, usize::MAX);
    }

    /// [`Self::release_file_pages`] for bytes `offset..offset + len` of weight `index` (clamped
    /// to the weight; only the whole pages inside are let go of).
    pub fn release_file_range(&self, index: usize, offset: usize, len: usize) {
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
