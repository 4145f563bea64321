//! `run --output-dtype`: vectors stored as float32, float16, int8, uint8, binary or ubinary
//! (the library's `quantize_row`, sentence-transformers' `quantize_embeddings`), and how the
//! stored values read in each output format.

use std::path::Path;

use anyhow::{bail, Context, Result};
use gemma_graph::{quantize_row, OutputDtype, Ranges, StoredValues};

/// The output dtype and, for int8/uint8, the ranges from `--calibration`.
pub struct Encoding {
    pub dtype: OutputDtype,
    ranges: Option<Ranges>,
}

impl Encoding {
    pub const FLOAT32: Encoding = Encoding {
        dtype: OutputDtype::Float32,
        ranges: None,
    };

    /// Checked before any text runs: int8/uint8 need calibration embeddings of the output's
    /// dimension; the others take none.
    pub fn new(dtype: OutputDtype, calibration: Option<&Path>, dim: usize) -> Result<Encoding> {
        let ranges = match (dtype.needs_ranges(), calibration) {
            (true, None) => bail!(
                "--output-dtype {dtype} needs --calibration FILE.npy: embeddings of representative texts \
                 (for example `gemma-graph run --input sample.txt -o calibration.npy`, with the same \
                 --dim); each column's range over them sets its 256 buckets"
            ),
            (false, Some(_)) => bail!("--calibration applies to --output-dtype int8 and uint8 only, not {dtype}"),
            (false, None) => None,
            (true, Some(path)) => {
                let (_, cols, values) = read_npy(path)?;
                if cols != dim {
                    bail!(
                        "--calibration {}: {cols} columns, but the output has {dim} (make it with the same --dim)",
                        path.display()
                    );
                }
                Some(Ranges::from_calibration(&values, cols).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
            }
        };
        Ok(Encoding { dtype, ranges })
    }

    /// Stored elements per row of `dim` values.
    pub fn row_len(&self, dim: usize) -> usize {
        self.dtype.row_len(dim)
    }

    /// One vector as stored: its bytes (npy) and its values (text formats).
    pub fn store(&self, v: &[f32]) -> Result<Stored> {
        let mut bytes = Vec::with_capacity(self.dtype.row_len(v.len()) * self.dtype.element_bytes());
        quantize_row(v, self.dtype, self.ranges.as_ref(), &mut bytes)?;
        Ok(Stored {
            bytes,
            dtype: self.dtype,
        })
    }
}

/// A stored row.
pub struct Stored {
    pub bytes: Vec<u8>,
    dtype: OutputDtype,
}

impl Stored {
    fn values(&self) -> StoredValues {
        gemma_graph::stored_values(&self.bytes, self.dtype)
    }

    /// Each element as text: floats as the shortest f32 text, bytes as integers.
    pub fn cells(&self) -> Vec<String> {
        match self.values() {
            StoredValues::Floats(f) => f.iter().map(f32::to_string).collect(),
            StoredValues::Ints(i) => i.iter().map(i16::to_string).collect(),
        }
    }
}

impl serde::Serialize for Stored {
    /// A JSON array of numbers (floats for float dtypes, integers for the byte ones).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.values() {
            StoredValues::Floats(f) => f.serialize(s),
            StoredValues::Ints(i) => i.serialize(s),
        }
    }
}

/// A float32 matrix read back from an `.npy` file `run --format npy` wrote (or numpy saved
/// as little-endian float32, C order, 2-D).
pub fn read_npy(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    gemma_graph::npy::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
