"""examples/ray_embed.py on a small corpus: a local Ray cluster, Parquet out, resumable by shard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gemma_graph import Model

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "ray_embed.py"


def job(*args: str) -> dict:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_output(shard: Path) -> dict:
    table = pq.read_table(str(shard))
    return dict(zip(table.column("id").to_pylist(), np.array(table.column("embedding").to_pylist(), dtype=np.float32)))


def test_ray_job_embeds_every_shard_once_and_resumes(model: Model, tmp_path: Path) -> None:
    texts = [f"Document number {i}: " + "some words about bread and ovens " * (i % 5 + 1) for i in range(24)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with open(corpus / "part-a.jsonl", "w", encoding="utf-8") as f:
        for i in range(12):
            f.write(json.dumps({"id": i, "text": texts[i]}) + "\n")
    pq.write_table(pa.table({"id": list(range(12, 24)), "text": texts[12:]}), str(corpus / "part-b.parquet"))
    out = tmp_path / "out"
    common = [str(corpus), "-o", str(out), "--actors", "1", "--batch-size", "5", "--prompt-name", "document"]

    first = job(*common)
    assert first["shards"] == 2 and first["shards_embedded"] == 2 and first["texts"] == 24
    expected = model.encode_document(texts)
    got = {**read_output(out / "part-a"), **read_output(out / "part-b")}
    assert sorted(got) == list(range(24))
    for i, vector in got.items():
        assert np.array_equal(vector, expected[i]), f"text {i}"

    # A finished shard is skipped; a shard without its completion marker runs again.
    (out / "part-b" / "_SUCCESS").unlink()
    second = job(*common)
    assert second["shards_embedded"] == 1 and second["texts"] == 12
    assert sorted(read_output(out / "part-b")) == list(range(12, 24))
