"""Type stubs of the extension module (python/src/lib.rs)."""

from os import PathLike
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class GemmaGraphError(RuntimeError):
    """A model file, weight or runtime error reported by gemma-graph."""

class NativeModel:
    def __new__(
        cls,
        path: Union[str, PathLike[str]],
        threads: int,
        backend: str,
        precision: Optional[str],
        max_batch_tokens: int,
    ) -> NativeModel: ...
    def embed(
        self,
        texts: List[str],
        prompt: Optional[str],
        dim: Optional[int],
        renormalize: bool,
        batch_texts: Optional[int],
    ) -> npt.NDArray[np.float32]: ...
    def tokenize(self, texts: List[str], prompt: Optional[str]) -> List[List[int]]: ...
    def decode(self, ids: List[int]) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def dim(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def max_batch_tokens(self) -> int: ...
    @property
    def max_batch_texts(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def threads(self) -> int: ...

def prompts() -> List[Tuple[str, str]]: ...
def matryoshka_dims() -> List[int]: ...
def default_model_path() -> Path: ...
def cache_dir() -> Path: ...
def quantize_embeddings(
    embeddings: npt.NDArray[np.float32],
    precision: str,
    calibration: Optional[npt.NDArray[np.float32]],
) -> Tuple[bytes, str, int]: ...
