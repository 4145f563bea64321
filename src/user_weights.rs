//! Weights a pooling head brings in its own file — safetensors (the format training
//! libraries save) or a numpy `.npy` array — held as f32 for the head's ops.

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;

/// One tensor: `[rows, cols]` (a vector is `[1, n]`) of f32.
#[derive(Clone, Debug, PartialEq)]
pub struct UserTensor {
    pub rows: usize,
    pub cols: usize,
    pub values: Vec<f32>,
}

/// The tensors of every file heads loaded, by (file as given, tensor name).
#[derive(Clone, Debug, Default)]
pub struct UserWeights {
    tensors: BTreeMap<(String, String), UserTensor>,
    /// Per file: its `__metadata__` (safetensors), e.g. class labels.
    metadata: BTreeMap<String, BTreeMap<String, String>>,
}

/// A head's weight file is small (a classifier or a projection); refuse what cannot be one.
const MAX_FILE_BYTES: u64 = 1 << 30;

impl UserWeights {
    /// Load every tensor of `path` (`.safetensors`, or `.npy`: one tensor named by the file
    /// stem). Returns the file's key and its tensor names.
    pub(crate) fn load(&mut self, path: &Path) -> Result<(String, Vec<String>), Error> {
        let file = path.display().to_string();
        let bad = |what: String| Error::UserWeights {
            file: file.clone(),
            what,
        };
        let len = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?.len();
        if len > MAX_FILE_BYTES {
            return Err(bad(format!(
                "{len} bytes; a head's weights are at most {MAX_FILE_BYTES}"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let is_npy = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        let mut names = Vec::new();
        if is_npy {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let t = npy(&bytes).map_err(bad)?;
            names.push(name.clone());
            self.tensors.insert((file.clone(), name), t);
        } else {
            let st = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
            let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
            if let Some(m) = meta.metadata() {
                self.metadata.insert(file.clone(), m.clone().into_iter().collect());
            }
            for (name, view) in st.tensors() {
                let t = tensor(&view).map_err(|what| bad(format!("tensor {name:?}: {what}")))?;
                if let Some(i) = t.values.iter().position(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "tensor {name:?} holds a NaN or infinite value (element {i})"
                    )));
                }
                names.push(name.clone());
                self.tensors.insert((file.clone(), name), t);
            }
        }
        names.sort();
        Ok((file, names))
    }

    pub fn get(&self, file: &str, tensor: &str) -> Option<&UserTensor> {
        self.tensors.get(&(file.to_string(), tensor.to_string()))
    }

    /// A loaded file's safetensors metadata value.
    pub fn metadata(&self, file: &str, key: &str) -> Option<&str> {
        self.metadata.get(file)?.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// A classifier head file's class names: its metadata key `labels`, a JSON array of
    /// `classes` distinct strings (they become JSON keys, CSV columns, `/predict` labels);
    /// without the key, `0`, `1`, ... . `run --head` and `serve --head` both read them here.
    pub fn class_labels(&self, file: &str, classes: usize) -> Result<Vec<String>, Error> {
        let bad = |what: String| Error::UserWeights {
            file: file.to_string(),
            what: format!("metadata \"labels\": {what}"),
        };
        let Some(json) = self.metadata(file, "labels") else {
            return Ok((0..classes).map(|i| i.to_string()).collect());
        };
        let labels: Vec<String> =
            serde_json::from_str(json).map_err(|e| bad(format!("not a JSON array of strings ({e})")))?;
        if labels.len() != classes {
            return Err(bad(format!("{} names for {classes} classes", labels.len())));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = labels.iter().find(|l| !seen.insert(l.as_str())) {
            return Err(bad(format!("the class name {dup:?} appears more than once")));
        }
        Ok(labels)
    }
}

fn shape2(shape: &[usize]) -> Result<(usize, usize), String> {
    match *shape {
        [n] => Ok((1, n)),
        [r, c] => Ok((r, c)),
        _ => Err(format!("shape {shape:?}; a head takes vectors and matrices")),
    }
}

fn tensor(view: &safetensors::tensor::TensorView<'_>) -> Result<UserTensor, String> {
    use safetensors::Dtype;
    let (rows, cols) = shape2(view.shape())?;
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        d => return Err(format!("dtype {d:?}; a head's weights are F32, F64, F16 or BF16")),
    };
    if values.len() != rows * cols {
        return Err(format!("{} values for shape [{rows}, {cols}]", values.len()));
    }
    Ok(UserTensor { rows, cols, values })
}

/// A little-endian f32 or f64 array, C order, 1-D or 2-D, with finite values.
fn npy(bytes: &[u8]) -> Result<UserTensor, String> {
    let (rows, cols, values) = crate::npy::parse(bytes)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("a NaN or infinite value (element {i})"));
    }
    Ok(UserTensor { rows, cols, values })
}
