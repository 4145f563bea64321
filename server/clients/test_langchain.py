"""LangChain's `OpenAIEmbeddings` against `gemma-graph serve` (started by scripts/check-server.sh),
configured as the README says: documents, queries with their prompts, `dimensions`, the async
API and LangChain's own request chunking; vectors equal to `gemma-graph run`'s."""

from __future__ import annotations

import asyncio

import langchain_openai
import numpy as np

from common import KEY, TEXTS, URL, run


def embeddings(**kwargs) -> langchain_openai.OpenAIEmbeddings:
    # check_embedding_ctx_length=False: send the texts. Left on, LangChain would turn them into
    # OpenAI (tiktoken) token ids first, which are not this model's tokens.
    return langchain_openai.OpenAIEmbeddings(
        base_url=f"{URL}/v1", api_key=KEY, model="embeddinggemma", check_embedding_ctx_length=False, max_retries=0, **kwargs
    )


def test_documents_and_queries_with_their_prompts(tmp_path) -> None:
    emb = embeddings()
    docs = np.array(emb.embed_documents(TEXTS, extra_body={"prompt_name": "document"}), dtype=np.float32)
    assert np.array_equal(docs, run(tmp_path, TEXTS, "--prompt", "document"))
    query = np.array(emb.embed_query(TEXTS[0], extra_body={"prompt_name": "query"}), dtype=np.float32)
    assert np.array_equal(query, run(tmp_path, TEXTS[:1], "--prompt", "query")[0])
    plain = np.array(emb.embed_documents(TEXTS), dtype=np.float32)
    assert np.array_equal(plain, run(tmp_path, TEXTS))


def test_prompt_for_every_call_and_dimensions(tmp_path) -> None:
    emb = embeddings(dimensions=256, model_kwargs={"extra_body": {"prompt_name": "query"}})
    got = np.array(emb.embed_documents(TEXTS), dtype=np.float32)
    assert got.shape == (3, 256)
    assert np.array_equal(got, run(tmp_path, TEXTS, "--prompt", "query", "--dim", "256"))


def test_async_and_chunked_requests_give_the_same_vectors(tmp_path) -> None:
    texts = TEXTS * 3
    expected = run(tmp_path, texts)
    chunked = np.array(embeddings(chunk_size=2).embed_documents(texts), dtype=np.float32)
    assert np.array_equal(chunked, expected)
    awaited = np.array(asyncio.run(embeddings().aembed_documents(texts)), dtype=np.float32)
    assert np.array_equal(awaited, expected)
