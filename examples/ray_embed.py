#!/usr/bin/env python3
"""Embed a corpus on a Ray cluster with gemma-graph: JSONL or Parquet shards in, Parquet out.

    python examples/ray_embed.py CORPUS_DIR_OR_FILES... --output OUT_DIR \
        [--actors 2] [--threads-per-actor 1] [--batch-size 64] [--prompt-name document]

Every input file is one shard. A shard's output is the directory OUT_DIR/<shard name>/ (Parquet
files with the input's columns plus `embedding`, a fixed-size list of float32), written under a
temporary name and renamed when complete: a job that stops part-way is run again with the same
command and skips the shards already done.

Each Ray actor loads the model once (memory-mapped, so actors on one machine share the weight
pages) and embeds batches with the GIL released. The model file must be at the same path on
every node (`--model`, default: gemma_graph.default_model_path()). The script runs unchanged on
a multi-node cluster: start Ray on each node (`ray start --head` / `ray start --address=HEAD:6379`),
install the gemma-graph wheel and the model on every node, then run this script with
`--address auto` (or RAY_ADDRESS=...) and `--actors` set to the cluster's total; shards and
outputs must then live on shared storage (NFS, or an s3:// / gs:// URI that pyarrow can write).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pyarrow as pa
import pyarrow.dataset as pads

INPUT_SUFFIXES = (".jsonl", ".json", ".parquet")


class Embedder:
    """The Ray Data UDF: one model per actor, one `encode` per batch."""

    def __init__(
        self,
        model_path: str,
        threads: int,
        precision: Optional[str],
        prompt_name: Optional[str],
        dim: Optional[int],
        text_field: str,
        stats_dir: Optional[str],
    ) -> None:
        import gemma_graph

        self.model = gemma_graph.Model(model_path, threads=threads, compute_precision=precision)
        self.prompt_name, self.dim, self.text_field = prompt_name, dim, text_field
        self.stats = Path(stats_dir) / f"actor-{os.getpid()}.json" if stats_dir else None
        self.texts = 0

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.text_field not in batch.column_names:
            raise KeyError(f"no column {self.text_field!r} in the input (columns: {batch.column_names})")
        texts = [t if t is not None else "" for t in batch.column(self.text_field).to_pylist()]
        # `run --dim`'s Matryoshka rule: the prefix scaled back to unit length.
        vectors = self.model.encode(
            texts, prompt_name=self.prompt_name, truncate_dim=self.dim, normalize_embeddings=True
        )
        dim = vectors.shape[1]
        column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), dim)
        self.texts += len(texts)
        self._write_stats()
        return batch.append_column("embedding", column)

    def _write_stats(self) -> None:
        if self.stats is None:
            return
        # ru_maxrss is in KiB on Linux.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        tmp = self.stats.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "texts": self.texts, "peak_rss_bytes": peak}))
        tmp.replace(self.stats)


def find_shards(inputs: List[str]) -> List[Path]:
    shards: List[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            shards.extend(sorted(f for f in p.iterdir() if f.suffix in INPUT_SUFFIXES))
        elif p.is_file():
            shards.append(p)
        else:
            sys.exit(f"ray_embed: no such file or directory: {item}")
    if not shards:
        sys.exit(f"ray_embed: no {'/'.join(INPUT_SUFFIXES)} files in {' '.join(inputs)}")
    names = [s.stem for s in shards]
    if len(set(names)) != len(names):
        sys.exit("ray_embed: two input shards have the same name; outputs are named by shard")
    return shards


# Reading and writing Parquet/JSON take little CPU; they ask Ray for none, so the actors can
# hold every CPU of the cluster without starving the reads that feed them (a deadlock
# otherwise: actors waiting for input that cannot be scheduled).
IO_CPUS = 0


def read_shard(path: Path):
    import ray.data

    if path.suffix == ".parquet":
        return ray.data.read_parquet(str(path), num_cpus=IO_CPUS)
    return ray.data.read_json(str(path), lines=True, num_cpus=IO_CPUS)


def embed_shard(path: Path, out: Path, args: argparse.Namespace) -> int:
    """Embed one shard into `out` (atomically); returns its row count."""
    import ray.data

    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    ds = read_shard(path).map_batches(
        Embedder,
        fn_constructor_kwargs=dict(
            model_path=args.model,
            threads=args.threads_per_actor,
            precision=args.precision,
            prompt_name=args.prompt_name,
            dim=args.dim,
            text_field=args.text_field,
            stats_dir=args.stats_dir,
        ),
        batch_format="pyarrow",
        batch_size=args.batch_size,
        compute=ray.data.ActorPoolStrategy(size=args.actors),
        num_cpus=args.threads_per_actor,
    )
    ds.write_parquet(str(tmp), ray_remote_args={"num_cpus": IO_CPUS})
    rows = pads.dataset(str(tmp), format="parquet").count_rows()
    (tmp / "_SUCCESS").write_text(json.dumps({"input": str(path), "rows": rows}))
    # A directory without its marker is an earlier, interrupted attempt's.
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    import gemma_graph

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help="JSONL/Parquet files, or directories of them (one shard per file)")
    ap.add_argument("--output", "-o", required=True, help="output directory (one sub-directory per shard)")
    ap.add_argument("--model", default=str(gemma_graph.default_model_path()), help="GGUF path on every node")
    ap.add_argument("--actors", type=int, default=1, help="model replicas (Ray actors)")
    ap.add_argument("--threads-per-actor", type=int, default=1, help="threads (and Ray CPUs) per actor")
    ap.add_argument("--batch-size", type=int, default=64, help="texts per map_batches batch")
    ap.add_argument("--precision", choices=["fast", "exact"], default=None)
    ap.add_argument("--prompt-name", default=None, help="a model prompt (query, document, ...); default none")
    ap.add_argument("--dim", type=int, default=None, help="Matryoshka dimension (512, 256, 128)")
    ap.add_argument("--text-field", default="text", help="the column holding the text")
    ap.add_argument("--address", default=None, help="Ray cluster address ('auto' to join a running one)")
    ap.add_argument("--stats-dir", default=None, help="write each actor's peak RSS here")
    args = ap.parse_args(argv)
    for name in ("actors", "threads_per_actor", "batch_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    if not Path(args.model).is_file():
        ap.error(f"no model file at {args.model}: run scripts/fetch-model.sh or pass --model")

    import ray

    shards = find_shards(args.inputs)
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.stats_dir:
        Path(args.stats_dir).mkdir(parents=True, exist_ok=True)
    ray.init(address=args.address, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    todo = [s for s in shards if not (out_dir / s.stem / "_SUCCESS").is_file()]
    print(f"ray_embed: {len(shards)} shards, {len(shards) - len(todo)} already done", file=sys.stderr)
    started, rows = time.perf_counter(), 0
    for shard in todo:
        t = time.perf_counter()
        n = embed_shard(shard, out_dir / shard.stem, args)
        rows += n
        print(f"ray_embed: {shard.name}: {n} texts in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    seconds = time.perf_counter() - started
    summary: Dict[str, object] = {
        "shards": len(shards),
        "shards_embedded": len(todo),
        "texts": rows,
        "seconds": round(seconds, 3),
        "texts_per_second": round(rows / seconds, 3) if rows else None,
        "actors": args.actors,
        "threads_per_actor": args.threads_per_actor,
    }
    print(json.dumps(summary))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
