"""One workload through a peer engine, in its own process (so its peak RSS is its own).

    python peer_worker.py llama MODEL.gguf WORKLOAD.jsonl queries|long|docs THREADS
    python peer_worker.py st CHECKPOINT_DIR WORKLOAD.jsonl queries|docs THREADS

Prints one JSON object: per-text latencies (one text per call) or the job's time, and the
peak RSS. GG_LLAMA_EXTRA_BUFTS=off turns llama.cpp's extra buffer types off.
"""

import json
import os
import resource
import sys
import time


def llama(model, texts, one_by_one, threads):
    import llama_cpp.llama as llama_module
    from llama_cpp import Llama

    if os.environ.get("GG_LLAMA_EXTRA_BUFTS") == "off":
        # llama.cpp's extra buffer types (its AMX and repacking paths) off, as its users must on
        # the AMX Xeons where 0.3.36 segfaults in ggml_backend_amx_mul_mat on Q8_0 and Q4_0.
        # Llama() takes no such argument: its model parameters start from this function.
        defaults = llama_module.llama_cpp.llama_model_default_params

        def no_extra_bufts():
            params = defaults()
            params.use_extra_bufts = False
            return params

        llama_module.llama_cpp.llama_model_default_params = no_extra_bufts
    llm = Llama(
        model_path=model,
        embedding=True,
        n_ctx=2048,
        n_batch=2048,
        n_ubatch=2048,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn=True,
        verbose=False,
    )
    # Llama.embed tokenizes with special=False; parse control literals as the reference does.
    plain = llm.tokenize
    llm.tokenize = lambda text, add_bos=True, special=False: plain(text, add_bos, True)
    llm.embed(texts[0])  # warm-up, as gemma-graph's load does its planning
    if one_by_one:
        times = []
        for t in texts:
            t0 = time.perf_counter()
            llm.embed(t)
            times.append(time.perf_counter() - t0)
        return times
    t0 = time.perf_counter()
    llm.embed(texts)
    return [time.perf_counter() - t0]


def st(checkpoint, texts, one_by_one, threads):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(checkpoint, device="cpu")
    model.encode(texts[:1])
    if one_by_one:
        times = []
        for t in texts:
            t0 = time.perf_counter()
            model.encode([t])
            times.append(time.perf_counter() - t0)
        return times
    t0 = time.perf_counter()
    model.encode(texts, batch_size=32)
    return [time.perf_counter() - t0]


def main():
    engine, model, workload, kind, threads = sys.argv[1:6]
    texts = [json.loads(l)["text"] for l in open(workload, encoding="utf-8")]
    run = {"llama": llama, "st": st}[engine]
    times = run(model, texts, kind != "docs", int(threads))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"times": times, "peak_rss_bytes": peak}))


if __name__ == "__main__":
    main()
