//! `gemma_graph._native`: the model behind the Python package. The Python side
//! (`python/gemma_graph/__init__.py`) gives it the sentence-transformers calling convention;
//! this module loads the model, embeds with the GIL released, and hands vectors to numpy
//! without a copy.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use gemma_graph::{
    Backend, BackendChoice, CancelToken, EmbedOptions, Error, Model, ModelOptions, Precision, Prompt,
    SentenceTransformersHead,
};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray2, PyReadonlyArray2};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    _native,
    GemmaGraphError,
    PyRuntimeError,
    "A model file, weight or runtime error reported by gemma-graph."
);

/// Options the caller got wrong are `ValueError`s; everything else (a corrupt file, a CPU
/// without the asked-for backend) is a `GemmaGraphError`. The message is the library's.
fn to_py(e: Error) -> PyErr {
    match e {
        Error::InvalidOption(_)
        | Error::TextTooLong { .. }
        | Error::TextTooLarge { .. }
        | Error::WouldTruncate { .. }
        | Error::EmptyText { .. }
        | Error::Backend(gemma_graph::Unavailable::Unknown(_)) => PyValueError::new_err(e.to_string()),
        e => GemmaGraphError::new_err(e.to_string()),
    }
}

/// How often a waiting call looks for Ctrl-C while the model runs.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Run `work` with the GIL released, on a scoped thread, while this thread waits and checks
/// for signals: Ctrl-C cancels the work at its next batch boundary and raises
/// `KeyboardInterrupt` (Python runs signal handlers only when code holds the GIL).
fn run_released<T: Send>(py: Python<'_>, work: impl FnOnce(&CancelToken) -> T + Send) -> PyResult<T> {
    let cancel = CancelToken::new();
    py.detach(|| {
        std::thread::scope(|s| {
            let (tx, rx) = mpsc::channel();
            let cancel = &cancel;
            let worker = s.spawn(move || {
                // The receiver lives until the worker is joined; a failed send cannot happen.
                let _ = tx.send(work(cancel));
            });
            loop {
                match rx.recv_timeout(SIGNAL_POLL) {
                    Ok(value) => return Ok(value),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if let Err(interrupt) = Python::attach(|py| py.check_signals()) {
                            cancel.cancel();
                            let _ = worker.join();
                            return Err(interrupt);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        // The worker panicked before sending: report it, do not hang.
                        let _ = worker.join();
                        return Err(GemmaGraphError::new_err("the embedding thread panicked"));
                    }
                }
            }
        })
    })
}

fn parse_backend(name: &str) -> PyResult<BackendChoice> {
    match name {
        "auto" => Ok(BackendChoice::Auto),
        name => Backend::from_name(name)
            .map(BackendChoice::Force)
            .map_err(|e| PyValueError::new_err(format!("backend: {e} (or \"auto\")"))),
    }
}

fn parse_precision(name: Option<&str>) -> PyResult<Precision> {
    match name {
        None => Ok(Precision::default()),
        Some(name) => Precision::from_name(name).ok_or_else(|| {
            PyValueError::new_err(format!("precision {name:?}: expected \"fast\", \"exact\" or \"int8\""))
        }),
    }
}

/// A loaded model, shared by every Python thread that calls it.
#[pyclass(frozen, module = "gemma_graph._native")]
struct NativeModel {
    model: Model,
    path: PathBuf,
}

#[pymethods]
impl NativeModel {
    /// Load `path` (the GIL is released while the file is mapped and the plan compiled).
    #[new]
    #[pyo3(signature = (path, threads, backend, precision, max_batch_tokens))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        threads: usize,
        backend: &str,
        precision: Option<&str>,
        max_batch_tokens: usize,
    ) -> PyResult<NativeModel> {
        let options = ModelOptions {
            backend: parse_backend(backend)?,
            threads,
            max_batch_tokens,
            precision: parse_precision(precision)?,
            ..ModelOptions::default()
        };
        let model = py
            .detach(|| Model::load_with(&path, &options, &SentenceTransformersHead))
            .map_err(to_py)?;
        Ok(NativeModel { model, path })
    }

    /// Embed `texts` (each prefixed with `prompt`) into a `(len(texts), dim)` float32 array.
    /// `renormalize`: after keeping the first `dim` values, scale each vector back to unit
    /// length (the library's Matryoshka rule); without it the truncated vector is returned
    /// as is, as sentence-transformers does with `normalize_embeddings=False`.
    #[pyo3(signature = (texts, prompt, dim, renormalize, batch_texts))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        prompt: Option<String>,
        dim: Option<usize>,
        renormalize: bool,
        batch_texts: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let full = self.model.output_dim();
        let dim = dim.unwrap_or(full);
        if dim == 0 || dim > full {
            return Err(PyValueError::new_err(format!(
                "truncate_dim {dim} must be between 1 and {full}"
            )));
        }
        let model = &self.model;
        let values = run_released(py, |cancel| -> Result<Vec<f32>, Error> {
            let options = EmbedOptions {
                prompt: prompt.map(Prompt::Text),
                // The library re-normalizes what it truncates; the un-normalized slice is cut
                // from the full vector below.
                dim: renormalize.then_some(dim),
                batch_texts: batch_texts.map(|n| n.clamp(1, model.program().max_seqs())),
                cancel: Some(cancel.clone()),
                ..EmbedOptions::default()
            };
            let out = model.embed(&texts, &options)?;
            let mut values = Vec::with_capacity(texts.len() * dim);
            for i in 0..out.len() {
                values.extend_from_slice(&out.vector(i)[..dim]);
            }
            Ok(values)
        })?
        .map_err(|e| match e {
            // Ctrl-C raced the last batch: the interrupt is already raised by Python.
            Error::Cancelled { .. } => pyo3::exceptions::PyKeyboardInterrupt::new_err("cancelled"),
            e => to_py(e),
        })?;
        let rows = values.len() / dim;
        let array = Array2::from_shape_vec((rows, dim), values)
            .map_err(|e| GemmaGraphError::new_err(format!("result shape: {e}")))?;
        // The Vec becomes the array's buffer (no copy).
        Ok(array.into_pyarray(py))
    }

    /// Token ids of each text (BOS … EOS, truncated to the context as `embed` does).
    #[pyo3(signature = (texts, prompt))]
    fn tokenize(&self, py: Python<'_>, texts: Vec<String>, prompt: Option<String>) -> PyResult<Vec<Vec<u32>>> {
        let model = &self.model;
        py.detach(|| {
            let options = gemma_graph::EmbedOptions {
                prompt: prompt.map(gemma_graph::Prompt::Text),
                ..Default::default()
            };
            let rules = model.sequencer(&options).map_err(to_py)?;
            let seqs = rules
                .sequences(texts.iter().map(|t| gemma_graph::Input::Text(t)))
                .map_err(to_py)?;
            Ok(seqs.into_iter().map(|s| s.ids).collect())
        })
    }

    /// The text of token ids (special tokens included as their literals).
    fn decode(&self, ids: Vec<u32>) -> PyResult<String> {
        let vocab = self.model.tokenizer().vocab_size();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(PyValueError::new_err(format!(
                "token id {bad} is outside the vocabulary (size {vocab})"
            )));
        }
        Ok(self.model.tokenizer().decode(&ids))
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }
    #[getter]
    fn dim(&self) -> usize {
        self.model.output_dim()
    }
    #[getter]
    fn max_seq_length(&self) -> usize {
        self.model.config().context_length
    }
    #[getter]
    fn max_batch_tokens(&self) -> usize {
        self.model.max_batch_tokens()
    }
    #[getter]
    fn max_batch_texts(&self) -> usize {
        self.model.program().max_seqs()
    }
    #[getter]
    fn backend(&self) -> &'static str {
        self.model.backend().name()
    }
    #[getter]
    fn precision(&self) -> &'static str {
        self.model.precision().name()
    }
    #[getter]
    fn threads(&self) -> usize {
        self.model.threads()
    }
}

/// `rows × cols` float32 embeddings stored as `precision` (sentence-transformers'
/// `quantize_embeddings`: the library's `quantize_row`, one rule for every surface), as
/// `(bytes, numpy dtype, elements per row)`; Python views the bytes as an array. Ranges for
/// int8/uint8 come from `calibration` (its columns' min and max).
#[pyfunction]
#[pyo3(signature = (embeddings, precision, calibration))]
fn quantize_embeddings<'py>(
    py: Python<'py>,
    embeddings: PyReadonlyArray2<'py, f32>,
    precision: &str,
    calibration: Option<PyReadonlyArray2<'py, f32>>,
) -> PyResult<(Bound<'py, pyo3::types::PyBytes>, &'static str, usize)> {
    let dtype: gemma_graph::OutputDtype = precision.parse().map_err(to_py)?;
    let x = embeddings.as_array();
    let cols = x.ncols();
    let ranges = match calibration {
        None => None,
        Some(c) => {
            let c = c.as_array();
            if c.ncols() != cols {
                return Err(PyValueError::new_err(format!(
                    "calibration_embeddings have {} columns; the embeddings have {cols}",
                    c.ncols()
                )));
            }
            let values: Vec<f32> = c.iter().copied().collect();
            Some(gemma_graph::Ranges::from_calibration(&values, cols).map_err(to_py)?)
        }
    };
    let mut out = Vec::with_capacity(x.nrows() * dtype.row_len(cols) * dtype.element_bytes());
    let mut row = Vec::with_capacity(cols);
    for r in x.rows() {
        row.clear();
        row.extend(r.iter().copied());
        gemma_graph::quantize_row(&row, dtype, ranges.as_ref(), &mut out).map_err(to_py)?;
    }
    Ok((
        pyo3::types::PyBytes::new(py, &out),
        dtype.numpy_descr(),
        dtype.row_len(cols),
    ))
}

/// The model's prompts, name → text, in the file's order.
#[pyfunction]
fn prompts() -> Vec<(&'static str, &'static str)> {
    gemma_graph::PROMPTS.to_vec()
}

/// Matryoshka dimensions the model is trained for.
#[pyfunction]
fn matryoshka_dims() -> Vec<usize> {
    gemma_graph::MATRYOSHKA_DIMS.to_vec()
}

/// Where the model is looked for without a path (`$GEMMA_GRAPH_MODEL`, else the cache).
#[pyfunction]
fn default_model_path() -> PathBuf {
    gemma_graph::default_model_path()
}

/// The cache directory (`$GEMMA_GRAPH_CACHE`, else `~/.cache/gemma-graph`).
#[pyfunction]
fn cache_dir() -> PathBuf {
    gemma_graph::cache_dir()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeModel>()?;
    m.add("GemmaGraphError", m.py().get_type::<GemmaGraphError>())?;
    m.add_function(wrap_pyfunction!(prompts, m)?)?;
    m.add_function(wrap_pyfunction!(matryoshka_dims, m)?)?;
    m.add_function(wrap_pyfunction!(default_model_path, m)?)?;
    m.add_function(wrap_pyfunction!(cache_dir, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_embeddings, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
