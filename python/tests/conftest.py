"""Shared fixtures: the model (loaded once), the CLI binary, the golden data.

Run from the repository: `scripts/check-python.sh` builds the wheel, installs it into a venv in
the cache and runs these tests. The model file is the one `scripts/fetch-model.sh` wrote
(`GEMMA_GRAPH_MODEL` overrides it); the CLI is `target/release/gemma-graph`
(`GEMMA_GRAPH_BIN` overrides it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import gemma_graph

REPO = Path(__file__).resolve().parents[2]


def golden_dir() -> Path:
    return Path(os.environ.get("GEMMA_GRAPH_GOLDEN", REPO.parent / "shared" / "golden"))


@pytest.fixture(scope="session")
def model() -> gemma_graph.Model:
    return gemma_graph.Model()


@pytest.fixture(scope="session")
def cli() -> Path:
    path = Path(os.environ.get("GEMMA_GRAPH_BIN", REPO / "target" / "release" / "gemma-graph"))
    if not path.is_file():
        pytest.fail(f"no CLI binary at {path}: run `cargo build --release` first")
    return path


@pytest.fixture(scope="session")
def golden() -> list:
    path = golden_dir() / "embeddings.jsonl"
    if not path.is_file():
        pytest.fail(f"no golden data at {path} (set GEMMA_GRAPH_GOLDEN)")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]
