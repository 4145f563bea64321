"""gemma-graph against llama.cpp (and sentence-transformers, when its venv exists) on the
workloads of ../shared/bench: same GGUF file, same thread count, engines alternating, each
workload in fresh processes. Prints each workload's figure for both engines, the ratio, and
peak RSS, with the CPU model and flags.

    benches/compare/setup.sh            # once: llama-cpp-python 0.3.36 into a cached venv
    python3 benches/compare/compare.py  # [--threads 2] [--rounds 2] [--workloads queries,docs,long]
                                        # [--backends amx,avx512] [--precision fast,int8]
                                        # [--llama-extra-bufts auto|on|off]

Figures: `queries` and `long` are the median latency of one text per call (llama.cpp: each
`Llama.embed` call; gemma-graph: each forward pass of `run --batch-texts 1`, from its
`--stats-json`, a histogram with ±2.2 % buckets); `docs` is the wall time of the whole job
after loading. llama.cpp runs with its best settings: flash attention, n_batch = n_ubatch =
2048, control literals parsed when tokenizing.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("GEMMA_GRAPH_CACHE", os.path.expanduser("~/.cache/gemma-graph"))
BENCH = os.path.join(os.path.dirname(REPO), "shared", "bench")
WORKLOADS = {
    "queries": ("queries.jsonl", "p50 per query"),
    "docs": ("docs.jsonl", "512 texts, one job"),
    "long": ("long.jsonl", "p50 per document"),
}


def cpu():
    model, flags = "unknown", []
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and model == "unknown":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    keep = [f for f in flags if f in ("avx", "avx2", "fma", "f16c") or f.startswith("avx512") or f in ("avx_vnni", "amx_int8")]
    return model, keep


def gemma_graph(binary, model, workload, kind, threads, precision, backend):
    with tempfile.TemporaryDirectory() as tmp:
        stats = os.path.join(tmp, "stats.json")
        cmd = [binary, "run", "--model", model, "--input", workload, "--threads", str(threads), "--quiet",
               "--format", "npy", "--output", os.path.join(tmp, "out.npy"), "--stats-json", stats,
               "--precision", precision, "--backend", backend]
        if kind != "docs":
            cmd += ["--batch-texts", "1"]
        subprocess.run(cmd, check=True)
        s = json.load(open(stats))
    figure = s["wall_seconds"] if kind == "docs" else s["pass_p50_ms"] / 1e3
    return figure, s["peak_rss_bytes"], s["backend"]


def peer(engine, python, model, workload, kind, threads):
    out = subprocess.run(
        [python, os.path.join(HERE, "peer_worker.py"), engine, model, workload, kind, str(threads)],
        check=True, capture_output=True, text=True,
    ).stdout
    r = json.loads(out.strip().splitlines()[-1])
    figure = r["times"][0] if kind == "docs" else statistics.median(r["times"])
    return figure, r["peak_rss_bytes"]


def fmt_time(s):
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="alternating rounds per workload (medians reported)")
    ap.add_argument("--workloads", default="queries,docs,long")
    ap.add_argument("--model", default=os.environ.get("GEMMA_GRAPH_MODEL", os.path.join(CACHE, "embeddinggemma-300m-Q8_0.gguf")))
    ap.add_argument("--gemma-graph", default=os.path.join(REPO, "target", "release", "gemma-graph"))
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--precision", default="fast",
                    help="gemma-graph's precisions, comma-separated (fast, exact, int8): each runs as its own engine "
                         "beside the same llama.cpp run")
    ap.add_argument("--backends", default="auto", help="gemma-graph's backends, comma-separated: each runs as its own "
                    "engine in the same alternation, e.g. amx,avx512 (ratios to the first are printed too)")
    ap.add_argument("--llama-extra-bufts", default="auto", choices=["auto", "on", "off"],
                    help="llama.cpp's extra buffer types (its AMX and repacking paths); auto = off on CPUs with AMX, "
                    "where llama.cpp 0.3.36 segfaults on Q8_0 and Q4_0 through them")
    ap.add_argument("--no-st", action="store_true", help="leave sentence-transformers out (it does not read the GGUF: "
                    "its figure is the same for every weight type)")
    args = ap.parse_args()

    llama_py = os.path.join(CACHE, "venv-llama", "bin", "python")
    st_py = os.path.join(CACHE, "venv-st", "bin", "python")
    if not os.path.exists(llama_py):
        sys.exit("no llama.cpp venv: run benches/compare/setup.sh first")
    if not os.path.exists(args.gemma_graph):
        sys.exit(f"no {args.gemma_graph}: cargo build --release first")
    have_st = os.path.exists(st_py) and not args.no_st
    checkpoint = os.path.join(CACHE, "embeddinggemma-300m")

    model_name, flags = cpu()
    extra = args.llama_extra_bufts
    if extra == "auto":
        extra = "off" if "amx_int8" in flags else "on"
    os.environ["GG_LLAMA_EXTRA_BUFTS"] = extra
    backends = args.backends.split(",")
    precisions = args.precision.split(",")
    for p in precisions:
        if p not in ("fast", "exact", "int8"):
            sys.exit(f"--precision: unknown precision {p!r} (fast, exact, int8)")
    # Engine label → (backend, precision); the precision shows in the label when several run.
    configs = {(f"gemma-graph[{b}]" if len(precisions) == 1 else f"gemma-graph[{b},{p}]"): (b, p)
               for b in backends for p in precisions}
    engines = list(configs)
    print(f"CPU: {model_name}, {os.cpu_count()} cores; flags: {' '.join(flags)}")
    print(f"model {args.model}, {args.threads} threads, {args.rounds} round(s), engines alternating, "
          f"gemma-graph precision {args.precision}, llama.cpp extra buffer types {extra}")
    rows = []
    for name in args.workloads.split(","):
        file, what = WORKLOADS[name]
        workload = os.path.join(BENCH, file)
        runs = {e: [] for e in engines + ["llama.cpp", "sentence-transformers"]}
        for r in range(args.rounds):
            order = engines + ["llama.cpp"]
            if r % 2 == 1:
                order.reverse()
            if have_st and name != "long":
                order.append("sentence-transformers")
            for engine in order:
                if engine in configs:
                    b, p = configs[engine]
                    f, rss, ran = gemma_graph(args.gemma_graph, args.model, workload, name, args.threads, p, b)
                    if b == "auto":
                        print(f"  (auto chose {ran})")
                elif engine == "llama.cpp":
                    f, rss = peer("llama", llama_py, args.model, workload, name, args.threads)
                else:
                    f, rss = peer("st", st_py, checkpoint, workload, name, args.threads)
                runs[engine].append((f, rss))
                print(f"  {name:<8} {engine:<26} {fmt_time(f):>10}  peak RSS {rss / 2**20:7.0f} MiB", flush=True)
        med = {e: (statistics.median(x[0] for x in v), max(x[1] for x in v)) for e, v in runs.items() if v}
        rows.append((name, what, med))

    print()
    print(f"{'workload':<9} {'figure':<20} {'engine':<26} {'time':>10} {'÷ llama.cpp':>12} {'÷ ' + engines[0]:>26} {'peak RSS':>10}")
    for name, what, med in rows:
        l = med["llama.cpp"][0]
        first = med[engines[0]][0]
        for e in engines + ["llama.cpp", "sentence-transformers"]:
            if e not in med:
                continue
            f, rss = med[e]
            print(f"{name:<9} {what:<20} {e:<26} {fmt_time(f):>10} {f / l:>11.2f}× {f / first:>25.2f}× {rss / 2**20:>7.0f} MB")
    print("(ratios: each engine's time over llama.cpp's and over the first gemma-graph backend's; below 1 is faster; "
          f"llama.cpp's extra buffer types {extra})")
    if args.json:
        json.dump({"cpu": model_name, "flags": flags, "threads": args.threads, "precision": args.precision,
                   "llama_extra_bufts": extra,
                   "results": {n: {e: {"figure_seconds": f, "peak_rss_bytes": r} for e, (f, r) in m.items()} for n, _, m in rows}},
                  open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
