"""Text embeddings from EmbeddingGemma GGUF files, computed by gemma-graph's Rust runtime.

>>> from gemma_graph import Model
>>> model = Model()                                   # the cached Q8_0 file
>>> q = model.encode_query("How do I bake bread?")    # shape (768,), float32, unit length
>>> d = model.encode_document(["Knead the dough ...", "Preheat the oven ..."])  # (2, 768)
>>> model.similarity(q, d)                            # cosine similarities, shape (1, 2)

The calling convention is sentence-transformers' ``SentenceTransformer.encode``; the vectors
are bit-identical to ``gemma-graph run`` for the same texts, prompt and dimension, and do not
depend on batch size, batch neighbours or thread count. The model runs with the GIL released,
so Python threads embedding at the same time run in parallel.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import GemmaGraphError, __version__

__all__ = [
    "Model",
    "GemmaGraphError",
    "quantize_embeddings",
    "OUTPUT_PRECISIONS",
    "PROMPTS",
    "MATRYOSHKA_DIMS",
    "default_model_path",
    "cache_dir",
    "__version__",
]

#: The model's prompts, name → text (``query``, ``document``, and the task names).
PROMPTS: Dict[str, str] = dict(_native.prompts())
#: Output sizes EmbeddingGemma is trained for (Matryoshka); any size up to 768 works.
MATRYOSHKA_DIMS = tuple(_native.matryoshka_dims())

#: ``encode(precision=...)`` and ``quantize_embeddings``: sentence-transformers' output
#: precisions, plus ``float16``.
OUTPUT_PRECISIONS = ("float32", "float16", "int8", "uint8", "binary", "ubinary")

_log = logging.getLogger("gemma_graph")

#: Texts per native call when a progress bar is shown and no ``batch_size`` is given.
_PROGRESS_CHUNK = 32

Sentences = Union[str, Iterable[str]]


def default_model_path() -> Path:
    """Where ``Model()`` looks: ``$GEMMA_GRAPH_MODEL``, else the Q8_0 file in the cache."""
    return Path(_native.default_model_path())


def cache_dir() -> Path:
    """``$GEMMA_GRAPH_CACHE``, else ``~/.cache/gemma-graph``."""
    return Path(_native.cache_dir())


def _check_int(name: str, value: Any, minimum: int) -> int:
    # bool is an int in Python; `threads=True` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _resolve_prompt(prompt_name: Optional[str], prompt: Optional[str]) -> Optional[str]:
    """The prompt text: ``prompt`` wins over ``prompt_name`` (as in sentence-transformers)."""
    if prompt is not None:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, not {type(prompt).__name__}")
        return prompt
    if prompt_name is None:
        return None
    if not isinstance(prompt_name, str):
        raise TypeError(f"prompt_name must be a str, not {type(prompt_name).__name__}")
    if prompt_name in PROMPTS:
        return PROMPTS[prompt_name]
    for name, text in PROMPTS.items():
        if name.lower() == prompt_name.lower():
            return text
    raise ValueError(f"unknown prompt_name {prompt_name!r}; known: {', '.join(PROMPTS)}")


def _text_list(sentences: Sentences) -> List[str]:
    if isinstance(sentences, (bytes, bytearray)):
        raise TypeError("sentences must be str or an iterable of str, not bytes")
    try:
        texts = list(sentences)
    except TypeError:
        raise TypeError(
            f"sentences must be str or an iterable of str, not {type(sentences).__name__}"
        ) from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"sentences[{i}] must be a str, not {type(t).__name__}")
    return texts


def _float_rows(name: str, value: Any) -> np.ndarray:
    a = np.asarray(value)
    if a.dtype.kind not in "fc" and a.dtype != np.float16:
        raise ValueError(f"{name} must be float rather than {a.dtype} (quantize float vectors)")
    a = np.ascontiguousarray(np.atleast_2d(a), dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {a.shape}")
    return a


def quantize_embeddings(
    embeddings: Any,
    precision: str,
    ranges: Optional[np.ndarray] = None,
    calibration_embeddings: Optional[np.ndarray] = None,
) -> np.ndarray:
    """sentence-transformers' ``quantize_embeddings``, byte for byte: ``float32``,
    ``float16``, ``int8``, ``uint8``, ``binary`` (int8, 8 values per byte) or ``ubinary``.

    ``int8``/``uint8`` cut each column's range into 256 buckets: ``ranges`` (shape
    ``(2, dim)``: minima, maxima), else the range of ``calibration_embeddings``, else (as
    sentence-transformers does) the range of ``embeddings`` themselves — which then depends
    on what else is in the call; a warning says so. Rows are packed one by one for ``binary``:
    a dimension that is not a multiple of 8 ends each row in a zero-padded byte.
    """
    if not isinstance(precision, str) or precision not in OUTPUT_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(OUTPUT_PRECISIONS)}; got {precision!r}")
    x = _float_rows("embeddings", embeddings)
    single = np.ndim(embeddings) == 1
    calibration = None
    if precision in ("int8", "uint8"):
        if ranges is not None:
            calibration = _float_rows("ranges", ranges)
            if calibration.shape[0] != 2:
                raise ValueError(f"ranges must have shape (2, dim): minima and maxima; got {calibration.shape}")
        elif calibration_embeddings is not None:
            calibration = _float_rows("calibration_embeddings", calibration_embeddings)
        else:
            if x.shape[0] < 100:
                _log.warning(
                    "%s quantization of %d embeddings with ranges taken from those embeddings: pass "
                    "calibration_embeddings for buckets that do not depend on the batch",
                    precision,
                    x.shape[0],
                )
            calibration = x
    data, descr, cols = _native.quantize_embeddings(x, precision, calibration)
    out = np.frombuffer(data, dtype=np.dtype(descr)).reshape(x.shape[0], cols)
    return out[0] if single else out


class _Progress:
    """tqdm when it is installed, else a counter on stderr."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.bar = total, 0, None
        try:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="Batches", unit="text")
        except ImportError:
            pass

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        else:
            print(f"\rembedded {self.done}/{self.total} texts", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        else:
            print(file=sys.stderr)


class Model:
    """An EmbeddingGemma GGUF file, loaded once and shared by every thread that uses it.

    Args:
        path: the GGUF file (default: ``default_model_path()``, where
            ``scripts/fetch-model.sh`` puts the converted Q8_0 model).
        threads: worker threads per call; 0 uses every core. With several Python threads (or
            Ray actors) each embedding, ``threads=1`` per caller uses the cores best.
        backend: ``"auto"`` (the best this CPU runs), ``"scalar"``, ``"avx2"``, ``"avx512"`` or
            ``"neon"``; a backend the CPU cannot run names the missing feature.
        compute_precision: how the model computes: ``"fast"`` (default: integer dot products,
            cosine ≥ 0.9999 with the exact answer), ``"exact"`` (f32 arithmetic on exactly
            dequantized weights) or ``"int8"`` (8-bit activations as llama.cpp computes them:
            faster on AVX-512 VNNI, about llama.cpp's accuracy; a ``RuntimeError`` on CPUs
            without its kernels). Not ``encode``'s ``precision``, which is the output's dtype
            as sentence-transformers names it. (``precision=`` here is its deprecated name.)
        max_batch_tokens: the largest batch in tokens the memory plan is made for (default:
            the model's context length).
    """

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]", None] = None,
        *,
        threads: int = 0,
        backend: str = "auto",
        compute_precision: Optional[str] = None,
        max_batch_tokens: Optional[int] = None,
        precision: Optional[str] = None,
    ) -> None:
        if precision is not None:
            if compute_precision is not None:
                raise TypeError("give compute_precision only (precision is its deprecated name)")
            warnings.warn(
                "Model(precision=...) is now Model(compute_precision=...); encode(precision=...) "
                "is the output dtype, as in sentence-transformers",
                DeprecationWarning,
                stacklevel=2,
            )
            compute_precision = precision
        precision = compute_precision
        file = Path(os.fspath(path)) if path is not None else default_model_path()
        _check_int("threads", threads, 0)
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a str, not {type(backend).__name__}")
        if precision is not None and not isinstance(precision, str):
            raise TypeError(f"precision must be a str or None, not {type(precision).__name__}")
        if max_batch_tokens is not None:
            _check_int("max_batch_tokens", max_batch_tokens, 1)
        if not file.is_file():
            hint = (
                "pass the GGUF's path"
                if path is not None
                else "run scripts/fetch-model.sh from a gemma-graph checkout (it downloads the "
                "checkpoint and converts it to this path), set GEMMA_GRAPH_MODEL to a GGUF file, "
                "or pass path="
            )
            raise FileNotFoundError(f"no model file at {file}: {hint}")
        self._args = (str(file), threads, backend, precision, max_batch_tokens)
        self._native = _native.NativeModel(str(file), threads, backend, precision, max_batch_tokens or 0)

    # Pickled as its load arguments: a Model captured by a Ray or Spark task is loaded again
    # on the worker (the weights are memory-mapped, not copied).
    def __reduce__(self) -> Any:
        path, threads, backend, precision, max_batch_tokens = self._args
        return (
            _restore,
            (path, threads, backend, precision, max_batch_tokens),
        )

    def __repr__(self) -> str:
        m = self._native
        return (
            f"Model(path={str(m.path)!r}, dim={m.dim}, backend={m.backend!r}, "
            f"compute_precision={m.precision!r}, threads={m.threads})"
        )

    # --- embedding --------------------------------------------------------------------------

    def encode(
        self,
        sentences: Sentences,
        *,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        batch_size: Optional[int] = None,
        truncate_dim: Optional[int] = None,
        normalize_embeddings: bool = False,
        precision: str = "float32",
        calibration_embeddings: Optional[np.ndarray] = None,
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        show_progress_bar: bool = False,
    ) -> Any:
        """Embed one text (→ shape ``(dim,)``) or many (→ ``(n, dim)``), float32 unless
        ``precision`` says otherwise. sentence-transformers' ``encode``: the same arguments,
        defaults and results.

        Args:
            prompt_name: one of ``PROMPTS`` (``"query"``, ``"document"``, ...), put in front
                of every text.
            prompt: literal prompt text (wins over ``prompt_name``).
            batch_size: most texts per forward pass (default: packed by the token budget).
                Vectors do not depend on it.
            truncate_dim: keep the first ``truncate_dim`` values (Matryoshka: 512, 256, 128):
                the plain slice (norm below 1) unless ``normalize_embeddings``.
            normalize_embeddings: scale each (truncated) vector to unit length. The model's
                own output is unit length already, so this matters only with ``truncate_dim``.
            precision: the output's dtype, as sentence-transformers' ``quantize_embeddings``
                makes it: ``"float32"``, ``"int8"``, ``"uint8"``, ``"binary"``,
                ``"ubinary"`` (or ``"float16"``). Not the model's ``compute_precision``.
            calibration_embeddings: float vectors of representative texts whose column
                ranges set the ``int8``/``uint8`` buckets (without them, as in
                sentence-transformers, the ranges of this call's own embeddings).
            convert_to_numpy: ``False`` returns a list of 1-D arrays.
            convert_to_tensor: a ``torch.Tensor`` (needs torch installed).
            show_progress_bar: a progress bar (tqdm if installed) on stderr.
        """
        single = isinstance(sentences, str)
        texts = [sentences] if single else _text_list(sentences)
        prompt_text = _resolve_prompt(prompt_name, prompt)
        if batch_size is not None:
            _check_int("batch_size", batch_size, 1)
        dim = self.dim
        if truncate_dim is not None:
            _check_int("truncate_dim", truncate_dim, 1)
            if truncate_dim > dim:
                raise ValueError(f"truncate_dim {truncate_dim} is more than the model's {dim}")
            dim = truncate_dim
        normalize = bool(normalize_embeddings)
        if not isinstance(precision, str) or precision not in OUTPUT_PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(OUTPUT_PRECISIONS)} (the output dtype; the "
                f"model's compute precision is Model(compute_precision=...)); got {precision!r}"
            )

        def run(chunk: List[str]) -> np.ndarray:
            return self._native.embed(chunk, prompt_text, dim, normalize, batch_size)

        if not texts:
            out = np.empty((0, dim), dtype=np.float32)
        elif not show_progress_bar:
            out = run(texts)
        else:
            step = batch_size or _PROGRESS_CHUNK
            out = np.empty((len(texts), dim), dtype=np.float32)
            progress = _Progress(len(texts))
            try:
                for start in range(0, len(texts), step):
                    chunk = texts[start : start + step]
                    out[start : start + len(chunk)] = run(chunk)
                    progress.update(len(chunk))
            finally:
                progress.close()
        if precision != "float32":
            out = quantize_embeddings(out, precision, calibration_embeddings=calibration_embeddings)
        if convert_to_tensor:
            try:
                import torch
            except ImportError:
                raise ImportError("convert_to_tensor=True needs torch installed") from None
            t = torch.from_numpy(np.ascontiguousarray(out))
            return t[0] if single else t
        if single:
            return out[0]
        if not convert_to_numpy:
            return list(out)
        return out

    def encode_query(self, sentences: Sentences, **kwargs: Any) -> Union[np.ndarray, List[np.ndarray]]:
        """``encode`` with the ``query`` prompt (``task: search result | query: ``)."""
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None:
            kwargs["prompt_name"] = "query"
        return self.encode(sentences, **kwargs)

    def encode_document(self, sentences: Sentences, **kwargs: Any) -> Union[np.ndarray, List[np.ndarray]]:
        """``encode`` with the ``document`` prompt (``title: none | text: ``)."""
        if kwargs.get("prompt") is None and kwargs.get("prompt_name") is None:
            kwargs["prompt_name"] = "document"
        return self.encode(sentences, **kwargs)

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine similarity of every row of ``a`` with every row of ``b`` (1-D inputs are
        one row): shape ``(len(a), len(b))``."""
        a2 = np.atleast_2d(np.asarray(a, dtype=np.float32))
        b2 = np.atleast_2d(np.asarray(b, dtype=np.float32))
        if a2.ndim != 2 or b2.ndim != 2 or a2.shape[1] != b2.shape[1]:
            raise ValueError(f"similarity needs rows of one length, got shapes {a2.shape} and {b2.shape}")
        a2 = a2 / np.maximum(np.linalg.norm(a2, axis=1, keepdims=True), 1e-12)
        b2 = b2 / np.maximum(np.linalg.norm(b2, axis=1, keepdims=True), 1e-12)
        return a2 @ b2.T

    # --- tokens -----------------------------------------------------------------------------

    def tokenize(
        self,
        sentences: Sentences,
        *,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
    ) -> Union[List[int], List[List[int]]]:
        """Token ids (BOS, the text's tokens, EOS; truncated to ``max_seq_length`` as ``encode``
        does): a list for one text, a list of lists for many."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else _text_list(sentences)
        ids = self._native.tokenize(texts, _resolve_prompt(prompt_name, prompt))
        return ids[0] if single else ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of token ids (a leading BOS and a trailing EOS dropped, other control
        tokens written as their text)."""
        return self._native.decode(list(ids))

    # --- facts ------------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Length of the full embedding (768)."""
        return self._native.dim

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for ``dim``."""
        return self.dim

    @property
    def max_seq_length(self) -> int:
        """Context length in tokens; longer texts are truncated (BOS … EOS kept)."""
        return self._native.max_seq_length

    @property
    def prompts(self) -> Dict[str, str]:
        """The model's prompts, name → text."""
        return dict(PROMPTS)

    @property
    def path(self) -> Path:
        return Path(self._native.path)

    @property
    def backend(self) -> str:
        """The kernel table in use (``scalar``, ``avx2``, ``avx512``, ``neon``)."""
        return self._native.backend

    @property
    def compute_precision(self) -> str:
        """How the model computes (``fast``, ``exact`` or ``int8``)."""
        return self._native.precision

    @property
    def precision(self) -> str:
        """Deprecated name of ``compute_precision``."""
        warnings.warn("Model.precision is now Model.compute_precision", DeprecationWarning, stacklevel=2)
        return self._native.precision

    @property
    def threads(self) -> int:
        return self._native.threads

    @property
    def max_batch_tokens(self) -> int:
        return self._native.max_batch_tokens


def _restore(
    path: str, threads: int, backend: str, precision: Optional[str], max_batch_tokens: Optional[int]
) -> Model:
    return Model(
        path, threads=threads, backend=backend, compute_precision=precision, max_batch_tokens=max_batch_tokens
    )
