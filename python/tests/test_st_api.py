"""A drop-in for sentence-transformers on this model: the same calls give the same results.

`../shared/golden/st_api/calls.jsonl` holds sentence-transformers' own answers (6.3.0, the
float32 checkpoint) to 27 calls. Our model file is Q8_0, so floats agree by cosine (≈ 0.999, the
file's quantization) and by norm — the norm is what tells a plain truncated slice (norm < 1,
sentence-transformers' default) from a re-normalized one. `quantize_embeddings` on the same
float32 inputs is matched byte for byte. int8/uint8 `encode` outputs take their buckets from the
batch's own ranges, so they are compared loosely, through the floats they stand for.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import numpy as np
import pytest

from gemma_graph import Model, quantize_embeddings

from conftest import golden_dir

# Cosine of every row with sentence-transformers' float32 answer: the Q8_0 file's own distance
# from the float32 checkpoint (measured: ≥ 0.99984 on these texts).
MIN_COSINE = 0.9995
# |our norm − theirs| for every row (measured: ≤ 5.3e-4): truncated slices have norms 0.5–0.9;
# a re-normalized one would be off by 0.1 or more.
NORM_TOLERANCE = 1e-3


def calls() -> List[Dict[str, Any]]:
    with open(golden_dir() / "st_api" / "calls.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def output(call: Dict[str, Any]) -> np.ndarray:
    out = call["output"]
    return np.asarray(out["data"], dtype=out["dtype"]).reshape(out["shape"])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a2, b2 = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    return np.sum(a2 * b2, axis=1) / (np.linalg.norm(a2, axis=1) * np.linalg.norm(b2, axis=1))


def assert_same_floats(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    cos = cosines(got, want)
    assert cos.min() >= MIN_COSINE, f"{what}: cosines {cos}"
    dn = np.abs(np.linalg.norm(np.atleast_2d(got), axis=1) - np.linalg.norm(np.atleast_2d(want), axis=1))
    assert dn.max() <= NORM_TOLERANCE, f"{what}: norms differ by {dn}"


ENCODE_CALLS = [c for c in calls() if c["call"] in ("encode", "encode_query", "encode_document")]


def call_id(c: Dict[str, Any]) -> str:
    return f"{c['call']}-{json.dumps(c['kwargs'], sort_keys=True)}"


@pytest.mark.parametrize("call", ENCODE_CALLS, ids=call_id)
def test_encode_calls_answer_as_sentence_transformers_does(model: Model, call: Dict[str, Any]) -> None:
    kwargs = dict(call["kwargs"])
    inputs = call["inputs"]
    if kwargs.pop("single_string", False):
        assert isinstance(inputs, str)
    got = getattr(model, call["call"])(inputs, **kwargs)
    want = output(call)
    what = call_id(call)
    assert got.dtype == want.dtype and got.shape == want.shape, f"{what}: {got.dtype}{got.shape} vs {want.dtype}{want.shape}"
    precision = kwargs.get("precision", "float32")
    if precision == "float32":
        assert_same_floats(got, want, what)
    elif precision in ("binary", "ubinary"):
        # Signs of the values: the two files' vectors disagree only on values near zero
        # (measured: ≥ 99.4 % of the bits agree).
        bits = lambda x: np.unpackbits(x.view(np.uint8) ^ (0x80 if precision == "binary" else 0), axis=1)
        agree = np.mean(bits(got) == bits(want))
        assert agree >= 0.99, f"{what}: {agree:.4f} of the sign bits agree"
    else:
        # Both quantize by the batch's own column ranges (close, not equal: the files differ);
        # each is a float vector again through its own ranges' bucket centres, which must point
        # the same way as sentence-transformers' floats.
        floats = model.encode(inputs, **{k: v for k, v in kwargs.items() if k != "precision"})
        lo, hi = floats.min(axis=0), floats.max(axis=0)
        step = (hi - lo) / 255
        shift = 128 if precision == "int8" else 0
        decoded = lambda q: lo + (q.astype(np.float32) + shift + 0.5) * step
        cos = cosines(decoded(got), decoded(want))
        assert cos.min() >= 0.99, f"{what}: decoded cosines {cos}"
        # (measured: about one bucket apart on average)
        assert np.mean(np.abs(got.astype(np.int16) - want.astype(np.int16))) <= 2.0, what


def test_similarity_answers_as_sentence_transformers_does(model: Model) -> None:
    call = next(c for c in calls() if c["call"] == "similarity")
    inputs = call["inputs"]
    got = model.similarity(model.encode_query(inputs[:2]), model.encode_document(inputs[2:]))
    want = output(call)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 2e-3, f"{got} vs {want}"


def test_quantize_embeddings_is_sentence_transformers_byte_for_byte() -> None:
    qcalls = [c for c in calls() if c["call"] == "quantize_embeddings"]
    inputs = {c["kwargs"]["precision"]: output(c) for c in qcalls if "of" not in c["kwargs"]}
    x, calibration = inputs["float32-input"], inputs["calibration-input"]
    checked = 0
    for c in qcalls:
        kw = c["kwargs"]
        if "of" not in kw:
            continue
        cal = calibration if "calibration_embeddings" in kw else None
        got = quantize_embeddings(x, kw["precision"], calibration_embeddings=cal)
        want = output(c)
        assert got.dtype == want.dtype and got.shape == want.shape, kw
        assert np.array_equal(got, want), f"{kw}: {np.count_nonzero(got != want)} elements differ"
        checked += 1
    assert checked == 6
    # The ranges argument (minima; maxima) is the calibration's.
    ranges = np.vstack([calibration.min(axis=0), calibration.max(axis=0)])
    assert np.array_equal(
        quantize_embeddings(x, "uint8", ranges=ranges), quantize_embeddings(x, "uint8", calibration_embeddings=calibration)
    )


def test_output_precision_is_not_the_compute_precision(model: Model) -> None:
    with pytest.raises(ValueError, match="compute_precision"):
        model.encode("hello", precision="exact")
    with pytest.raises(ValueError, match="float rather than int8"):
        quantize_embeddings(np.zeros((2, 8), dtype=np.int8), "binary")
    with pytest.raises(ValueError, match="calibration_embeddings have 4 columns"):
        quantize_embeddings(np.zeros((2, 8), np.float32), "int8", calibration_embeddings=np.ones((3, 4), np.float32))
    with pytest.deprecated_call():
        Model(precision="fast", threads=1)
    # Calibration ranges make int8 independent of the batch: a text alone gets the bytes it
    # gets among others.
    cal = model.encode(["Photosynthesis.", "The Eiffel Tower.", "Bread dough rises.", "Stock markets fell."])
    texts = ["How do I bake bread?", "A kitten rests on the rug."]
    together = model.encode(texts, precision="int8", calibration_embeddings=cal)
    alone = model.encode(texts[1], precision="int8", calibration_embeddings=cal)
    assert together.dtype == np.int8 and np.array_equal(together[1], alone)
    # float16 is numpy's rounding of the float32 vector.
    f32 = model.encode(texts)
    assert np.array_equal(model.encode(texts, precision="float16"), f32.astype(np.float16))
