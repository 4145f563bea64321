"""Cosines per weight type and precision on the golden texts of ../shared/golden/formats: our
vectors (`gemma-graph run --precision P --model FILE`) against the file's exact answer (`st_w`)
and float32 (`st_f32`), beside llama.cpp's vectors on the same file (`llama`).

    python3 benches/compare/accuracy.py [--precisions fast,int8] [TYPE ...]

The files are the converter's outputs in the cache (`formats/embeddinggemma-300m-TYPE.gguf`,
written by tests/formats_golden.rs). Prints min/mean per column; the README's int8 table."""

import argparse
import json
import math
import os
import subprocess
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(REPO, "..", "shared", "golden")
CACHE = os.environ.get("GEMMA_GRAPH_CACHE", os.path.expanduser("~/.cache/gemma-graph"))
TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K_M", "Q5_K_M", "Q6_K", "BF16", "F16"]


def cos(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def stats(v):
    return f"{min(v):.5f} / {sum(v) / len(v):.5f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("types", nargs="*", default=TYPES)
    ap.add_argument("--precisions", default="fast,int8")
    ap.add_argument("--gemma-graph", default=os.path.join(REPO, "target", "release", "gemma-graph"))
    args = ap.parse_args()
    gold = {}
    with open(os.path.join(SHARED, "embeddings.jsonl")) as f:
        for line in f:
            g = json.loads(line)
            gold[g["id"]] = g
    print(f"{'type':<7} {'precision':<9} {'cos st_w min / mean':>20} {'cos st_f32 min / mean':>22} "
          f"{'llama st_w min / mean':>22} {'llama st_f32 min / mean':>24}")
    with tempfile.TemporaryDirectory() as tmp:
        texts, out = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
        for ty in args.types:
            with open(os.path.join(SHARED, "formats", f"{ty}.jsonl")) as f:
                lines = [json.loads(l) for l in f]
            with open(texts, "w") as f:
                for l in lines:
                    f.write(json.dumps({"text": gold[l["id"]]["text"]}) + "\n")
            model = os.path.join(CACHE, "formats", f"embeddinggemma-300m-{ty}.gguf")
            llama = [l for l in lines if l.get("llama")]
            lw = [cos(l["llama"], l["st_w"]) for l in llama]
            lf = [cos(l["llama"], gold[l["id"]]["st_f32"]) for l in llama]
            for prec in args.precisions.split(","):
                subprocess.run([args.gemma_graph, "run", "--precision", prec, "--model", model, "-i", texts, "-o", out],
                               check=True, stderr=subprocess.DEVNULL)
                with open(out) as f:
                    ours = [json.loads(l)["embedding"] for l in f]
                cw = [cos(o, l["st_w"]) for o, l in zip(ours, lines)]
                cf = [cos(o, gold[l["id"]]["st_f32"]) for o, l in zip(ours, lines)]
                print(f"{ty:<7} {prec:<9} {stats(cw):>20} {stats(cf):>22} {stats(lw):>22} {stats(lf):>24}", flush=True)


if __name__ == "__main__":
    main()
