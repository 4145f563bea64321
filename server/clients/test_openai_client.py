"""The official `openai` client against `gemma-graph serve` (started by scripts/check-server.sh):
every input shape, `dimensions`, base64, prompts; vectors equal to `gemma-graph run`'s."""

from __future__ import annotations

import base64
import json
import subprocess

import numpy as np
import openai
import pytest

from common import CLI, KEY, TEXTS, URL, run


@pytest.fixture(scope="module")
def client() -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{URL}/v1", api_key=KEY, max_retries=0)


def as_array(response) -> np.ndarray:
    # Asked for explicitly, base64 comes back as the string (little-endian float32 bytes);
    # otherwise the client asks for base64 itself and decodes it to floats.
    rows = [
        np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") if isinstance(d.embedding, str) else d.embedding
        for d in response.data
    ]
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("encoding_format", ["float", "base64"])
def test_list_of_strings(client, tmp_path, encoding_format) -> None:
    r = client.embeddings.create(model="embeddinggemma", input=TEXTS, encoding_format=encoding_format)
    assert [d.index for d in r.data] == [0, 1, 2]
    assert r.usage.prompt_tokens == r.usage.total_tokens > 0
    assert np.array_equal(as_array(r), run(tmp_path, TEXTS))


def test_default_encoding_is_what_the_client_asks_for(client, tmp_path) -> None:
    # openai-python asks for base64 by default and decodes it itself.
    r = client.embeddings.create(model="embeddinggemma", input=TEXTS[0])
    assert np.array_equal(as_array(r), run(tmp_path, TEXTS[:1]))


@pytest.mark.parametrize("dimensions", [512, 256, 128])
def test_dimensions(client, tmp_path, dimensions) -> None:
    r = client.embeddings.create(model="m", input=TEXTS, dimensions=dimensions)
    assert np.array_equal(as_array(r), run(tmp_path, TEXTS, "--dim", str(dimensions)))


def test_token_arrays(client, tmp_path) -> None:
    out = subprocess.run(
        [str(CLI), "tokenize", "--format", "jsonl", TEXTS[0]], check=True, capture_output=True, text=True
    ).stdout
    ids = json.loads(out)["ids"]
    expected = run(tmp_path, TEXTS[:1])
    one = client.embeddings.create(model="m", input=ids)
    assert np.array_equal(as_array(one), expected)
    many = client.embeddings.create(model="m", input=[ids, ids[1:-1]])
    assert np.array_equal(as_array(many), np.vstack([expected, expected]))


def test_prompt_extension(client, tmp_path) -> None:
    r = client.embeddings.create(model="m", input=TEXTS, extra_body={"prompt_name": "query"})
    assert np.array_equal(as_array(r), run(tmp_path, TEXTS, "--prompt", "query"))


def test_errors_are_openai_errors(client) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model="m", input=TEXTS, dimensions=300)
    assert "768, 512, 256, 128" in str(e.value)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="m", input=[[2, 10**9, 1]])


def test_models(client) -> None:
    assert [m.id for m in client.models.list()]
