"""The `ollama` Python package against `gemma-graph serve` (started by scripts/check-server.sh):
`embed` with one text and a list, `dimensions`, `truncate`; the older `embeddings`; vectors
equal to `gemma-graph run`'s. Ollama's client sends the API key as any httpx header."""

from __future__ import annotations

import numpy as np
import ollama
import pytest

from common import KEY, TEXTS, URL, run


@pytest.fixture(scope="module")
def client() -> ollama.Client:
    return ollama.Client(host=URL, headers={"Authorization": f"Bearer {KEY}"})


def test_embed_a_list_and_one_text(client, tmp_path) -> None:
    r = client.embed(model="embeddinggemma", input=TEXTS)
    assert r.model and r.prompt_eval_count > 0
    assert np.array_equal(np.array(r.embeddings, dtype=np.float32), run(tmp_path, TEXTS))
    one = client.embed(model="embeddinggemma", input=TEXTS[0])
    assert np.array_equal(np.array(one.embeddings, dtype=np.float32), run(tmp_path, TEXTS[:1]))


def test_dimensions_and_ignored_options(client, tmp_path) -> None:
    r = client.embed(model="embeddinggemma", input=TEXTS, dimensions=256, options={"num_ctx": 512})
    assert np.array_equal(np.array(r.embeddings, dtype=np.float32), run(tmp_path, TEXTS, "--dim", "256"))


def test_truncate_false_is_an_error_the_client_raises(client) -> None:
    with pytest.raises(ollama.ResponseError) as e:
        client.embed(model="embeddinggemma", input="word " * 5000, truncate=False)
    assert e.value.status_code == 400 and "tokens" in e.value.error


def test_older_embeddings_route(client, tmp_path) -> None:
    r = client.embeddings(model="embeddinggemma", prompt=TEXTS[1])
    assert np.array_equal(np.array(r.embedding, dtype=np.float32), run(tmp_path, TEXTS[1:2])[0])
