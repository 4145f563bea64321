"""grpcio against `gemma-graph serve --grpc-port` (started by scripts/check-server.sh), with
stubs generated from server/proto/tei.proto (TEI's tei.v1 API) by grpc_tools: vectors equal to
`gemma-graph run`'s, streaming in order, statuses for a bad request and a missing key, and a
client that cancels a stream mid-way (the server drops its work and keeps serving)."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from common import KEY, TEXTS, URL, run

PROTO_DIR = Path(__file__).resolve().parents[1] / "proto"
GRPC = os.environ["GG_GRPC_ADDR"]


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}", f"--python_out={out}",
         f"--grpc_python_out={out}", str(PROTO_DIR / "tei.proto")],
        check=True,
    )
    sys.path.insert(0, str(out))
    return importlib.import_module("tei_pb2"), importlib.import_module("tei_pb2_grpc")


@pytest.fixture(scope="module")
def channel():
    with grpc.insecure_channel(GRPC) as ch:
        yield ch


AUTH = (("authorization", f"Bearer {KEY}"),)


def test_embed_unary_and_stream_equal_run(pb, channel, tmp_path) -> None:
    tei, tei_grpc = pb
    stub = tei_grpc.EmbedStub(channel)
    want = run(tmp_path, TEXTS)
    for text, w in zip(TEXTS, want):
        r = stub.Embed(tei.EmbedRequest(inputs=text, normalize=True), metadata=AUTH)
        assert np.array_equal(np.array(r.embeddings, dtype=np.float32), w)
        assert r.metadata.compute_tokens > 2
    got = [np.array(r.embeddings, dtype=np.float32)
           for r in stub.EmbedStream(iter([tei.EmbedRequest(inputs=t, normalize=True) for t in TEXTS]), metadata=AUTH)]
    assert all(np.array_equal(g, w) for g, w in zip(got, want)) and len(got) == len(TEXTS)
    r = stub.Embed(tei.EmbedRequest(inputs=TEXTS[0], normalize=True, dimensions=256, prompt_name="query"), metadata=AUTH)
    assert np.array_equal(np.array(r.embeddings, dtype=np.float32),
                          run(tmp_path, TEXTS[:1], "--dim", "256", "--prompt", "query")[0])


def test_info_tokenize_decode(pb, channel) -> None:
    tei, tei_grpc = pb
    info = tei_grpc.InfoStub(channel).Info(tei.InfoRequest(), metadata=AUTH)
    assert info.max_input_length == 2048 and info.model_type == tei.MODEL_TYPE_EMBEDDING
    tok = tei_grpc.TokenizeStub(channel)
    enc = tok.Tokenize(tei.EncodeRequest(inputs="hello world", add_special_tokens=True), metadata=AUTH)
    ids = [t.id for t in enc.tokens]
    assert ids[0] == 2 and ids[-1] == 1 and enc.tokens[0].special and not enc.tokens[1].special
    assert tok.Decode(tei.DecodeRequest(ids=ids, skip_special_tokens=True), metadata=AUTH).text == "hello world"
    texts = [r.text for r in tok.DecodeStream(iter([tei.DecodeRequest(ids=ids[1:2])] * 3), metadata=AUTH)]
    assert texts == ["hello"] * 3


def test_statuses_name_the_problem(pb, channel) -> None:
    tei, tei_grpc = pb
    stub = tei_grpc.EmbedStub(channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.Embed(tei.EmbedRequest(inputs="x", prompt_name="nope"), metadata=AUTH)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "unknown prompt_name" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        stub.Embed(tei.EmbedRequest(inputs="x", dimensions=100), metadata=AUTH)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "dimensions 100" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        stub.Embed(tei.EmbedRequest(inputs="x"))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "missing API key" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        stub.Embed(tei.EmbedRequest(inputs="x"), metadata=(("authorization", "Bearer wrong"),))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as e:
        tei_grpc.TokenizeStub(channel).Decode(tei.DecodeRequest(ids=[5, 999999999]), metadata=AUTH)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ids[1]" in e.value.details()


def metrics() -> str:
    req = urllib.request.Request(f"{URL}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    return urllib.request.urlopen(req).read().decode()


def count(text: str, route: str, status: int) -> int:
    m = re.search(rf'gemma_graph_requests_total{{route="{re.escape(route)}",status="{status}"}} (\d+)', text)
    return int(m.group(1)) if m else 0


def test_a_client_that_cancels_a_stream(pb, channel, tmp_path) -> None:
    tei, tei_grpc = pb
    stub = tei_grpc.EmbedStub(channel)
    # 64 texts of ~2,000 tokens: many seconds of work; the client leaves after the first answer.
    long = " ".join(["the bread rises slowly in a warm kitchen"] * 230)
    call = stub.EmbedStream(iter([tei.EmbedRequest(inputs=f"{i} {long}") for i in range(64)]), metadata=AUTH)
    first = next(call)
    assert len(first.embeddings) == 768
    call.cancel()
    route = "/tei.v1.Embed/EmbedStream"
    for _ in range(100):  # the server logs each dropped call as 499 once the stream is gone
        m = metrics()
        if count(m, route, 499) > 0:
            break
        time.sleep(0.1)
    done, dropped = count(m, route, 200), count(m, route, 499)
    assert dropped > 0 and done < 64, m
    # The server keeps serving, with the same vectors.
    r = stub.Embed(tei.EmbedRequest(inputs=TEXTS[0], normalize=True), metadata=AUTH)
    assert np.array_equal(np.array(r.embeddings, dtype=np.float32), run(tmp_path, TEXTS[:1])[0])
