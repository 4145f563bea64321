"""Train a classifier head on gemma-graph embeddings of Debian's AppStream metadata.

Each desktop application in `/var/lib/apt/lists/*dep11_Components-amd64.yml.gz` (after
`apt-get update`) has a name, a summary, a description and freedesktop Categories; the label is
its main category (AudioVideo, Development, Game, Graphics, Network, Office, ...). The script

1. writes the labelled texts (a fixed-seed split: 80 % train, 20 % held out) as JSONL,
2. embeds them with `gemma-graph run --prompt Classification ... --format npy`,
3. fits scikit-learn's LogisticRegression on the training vectors and reports held-out
   accuracy,
4. saves the head as safetensors (`weight` [classes, 768] and `bias` [classes] float32, class
   names in the metadata key "labels") for `gemma-graph run --head`, and scikit-learn's
   `predict_proba` on the held-out texts (`expected.jsonl`) for the parity test.

    python examples/classifier/train.py --gemma-graph target/release/gemma-graph --out /tmp/clf

Needs numpy, scikit-learn, pyyaml and safetensors (`pip install numpy scikit-learn pyyaml
safetensors`).
"""

import argparse
import glob
import gzip
import html
import json
import os
import random
import re
import subprocess
import sys

import numpy as np
import yaml
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression

# freedesktop.org main categories (the menu spec's registered main categories).
MAIN = [
    "AudioVideo", "Audio", "Video", "Development", "Education", "Game", "Graphics",
    "Network", "Office", "Science", "Settings", "System", "Utility",
]
# Audio and Video are AudioVideo's sub-kinds in the menu spec.
MERGE = {"Audio": "AudioVideo", "Video": "AudioVideo"}


def components(path):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for doc in yaml.load_all(f, Loader=loader):
            if isinstance(doc, dict) and doc.get("Type") == "desktop-application":
                yield doc


def text_of(doc):
    strip = lambda s: re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", s))).strip()
    name = (doc.get("Name") or {}).get("C", "")
    summary = (doc.get("Summary") or {}).get("C", "")
    desc = strip((doc.get("Description") or {}).get("C", ""))
    return f"{name}: {summary}. {desc}".strip() if desc else ""


def label_of(doc):
    for c in doc.get("Categories") or []:
        if c in MAIN:
            return MERGE.get(c, c)
    return None


def embed(gemma_graph, jsonl, npy):
    subprocess.run(
        [gemma_graph, "run", "--prompt", "Classification", "--input", jsonl, "--output", npy, "--quiet"],
        check=True,
    )
    return np.load(npy)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gemma-graph", default="gemma-graph", help="the gemma-graph binary")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--appstream", default=None, help="a dep11 Components yml.gz")
    ap.add_argument("--min-per-class", type=int, default=40)
    ap.add_argument("--max-per-class", type=int, default=150)
    args = ap.parse_args()

    path = args.appstream or next(iter(sorted(glob.glob("/var/lib/apt/lists/*dep11_Components-amd64.yml.gz"))), None)
    if not path:
        sys.exit("no AppStream metadata: run `apt-get update` (Debian's appstream lists) or pass --appstream")
    os.makedirs(args.out, exist_ok=True)

    by_label = {}
    for doc in components(path):
        text, label = text_of(doc), label_of(doc)
        if text and label:
            by_label.setdefault(label, []).append(text)
    rng = random.Random(1234)
    train, test = [], []
    labels = sorted(l for l, ts in by_label.items() if len(ts) >= args.min_per_class)
    for label in labels:
        texts = sorted(set(by_label[label]))
        rng.shuffle(texts)
        texts = texts[: args.max_per_class]
        cut = int(len(texts) * 0.8)
        train += [(t, label) for t in texts[:cut]]
        test += [(t, label) for t in texts[cut:]]
    rng.shuffle(train)
    rng.shuffle(test)

    def write(name, rows):
        p = os.path.join(args.out, name)
        with open(p, "w", encoding="utf-8") as f:
            for t, l in rows:
                f.write(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n")
        return p

    x_train = embed(args.gemma_graph, write("train.jsonl", train), os.path.join(args.out, "train.npy"))
    x_test = embed(args.gemma_graph, write("test.jsonl", test), os.path.join(args.out, "test.npy"))
    y_train = np.array([labels.index(l) for _, l in train])
    y_test = np.array([labels.index(l) for _, l in test])

    clf = LogisticRegression(max_iter=5000, C=10.0)
    clf.fit(x_train, y_train)
    accuracy = float((clf.predict(x_test) == y_test).mean())
    proba = clf.predict_proba(x_test)

    # coef_ may be a Fortran-order view; safetensors writes the buffer as it lies in memory,
    # so make it C order first.
    save_file(
        {
            "weight": np.ascontiguousarray(clf.coef_, dtype=np.float32),
            "bias": np.ascontiguousarray(clf.intercept_, dtype=np.float32),
        },
        os.path.join(args.out, "classifier.safetensors"),
        metadata={"labels": json.dumps([labels[c] for c in clf.classes_])},
    )
    with open(os.path.join(args.out, "expected.jsonl"), "w", encoding="utf-8") as f:
        for (t, l), p in zip(test, proba):
            f.write(json.dumps({"text": t, "label": l, "predict_proba": [float(v) for v in p]}) + "\n")
    report = {
        "appstream": path,
        "classes": labels,
        "train": len(train),
        "test": len(test),
        "accuracy": accuracy,
        "majority_baseline": float(np.bincount(y_test).max() / len(y_test)),
    }
    with open(os.path.join(args.out, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"{len(labels)} classes, {len(train)} training texts, {len(test)} held out: accuracy {accuracy:.3f} "
          f"(majority class {report['majority_baseline']:.3f})")


if __name__ == "__main__":
    main()
