"""Vectors equal, bit for bit, to `gemma-graph run`; golden cosines on the real model."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from gemma_graph import Model

TEXTS = [
    "How do I bake bread?",
    "A second, somewhat longer text about sourdough starters and hydration levels.",
    "日本語のテキストも埋め込めます。",
    "x" * 3000,
]


def run_cli(cli: Path, tmp_path: Path, texts: list, *args: str) -> np.ndarray:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    subprocess.run(
        [str(cli), "run", "--quiet", "--input", str(src), "--output", str(out), *args],
        check=True,
    )
    return np.load(out)


@pytest.mark.parametrize(
    "cli_args, kwargs",
    [
        ([], {}),
        (["--prompt", "query"], {"prompt_name": "query"}),
        (["--prompt", "document", "--dim", "256"], {"prompt_name": "document", "truncate_dim": 256, "normalize_embeddings": True}),
        (["--prompt-text", "title: x | text: ", "--dim", "128"], {"prompt": "title: x | text: ", "truncate_dim": 128, "normalize_embeddings": True}),
        (["--precision", "exact"], {"precision": "exact"}),
    ],
)
def test_equal_to_the_cli(model: Model, cli: Path, tmp_path: Path, cli_args: list, kwargs: dict) -> None:
    expected = run_cli(cli, tmp_path, TEXTS, *cli_args)
    precision = kwargs.pop("precision", None)
    m = model if precision is None else Model(compute_precision=precision)
    got = m.encode(TEXTS, **kwargs)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"max abs diff {np.max(np.abs(got - expected))}"


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# The default precision on every golden text. The exact precision's vectors are held equal, bit
# for bit, to `gemma-graph run --precision exact` above, which tests/embeddings_golden.rs holds
# to ≥ 0.99999 on the same texts (running it here again would add a minute to CI).
@pytest.mark.parametrize("precision, bound", [("fast", 0.9999)])
def test_golden_cosines(golden: list, precision: str, bound: float) -> None:
    m = Model(compute_precision=precision)
    got = m.encode([g["text"] for g in golden])
    want = np.array([g["st_q8w"] for g in golden], dtype=np.float32)
    cos = cosines(got, want)
    worst = int(np.argmin(cos))
    assert cos[worst] >= bound, f"{golden[worst]['id']}: cosine {cos[worst]:.7f} with st_q8w"
    # And the token ids the reference tokenizer produced.
    ids = m.tokenize([g["text"] for g in golden])
    for g, mine in zip(golden, ids):
        assert mine == g["ids"], g["id"]
