"""What the client tests share: the server's address and key (from scripts/check-server.sh),
the texts, and `gemma-graph run` as the reference every response is compared with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

URL = os.environ["GG_SERVER_URL"]
KEY = os.environ.get("GG_API_KEY", "unused")
CLI = Path(os.environ["GEMMA_GRAPH_BIN"])
TEXTS = ["How do I bake bread?", "Knead the dough, let it rise, bake at 220 °C.", "日本語のテキスト"]


def run(tmp_path: Path, texts: list, *args: str) -> np.ndarray:
    """`gemma-graph run` on `texts` (one per line) with `args`: a float32 (len(texts), dim) matrix."""
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    subprocess.run([str(CLI), "run", "--quiet", "--input", str(src), "--output", str(out), *args], check=True)
    return np.load(out)
