"""The sentence-transformers calling convention, and what it returns."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import gemma_graph
from gemma_graph import Model

TEXTS = [
    "How do I bake bread?",
    "Knead the dough for ten minutes, then let it rise until doubled.",
    "The mitochondria is the powerhouse of the cell.",
    "",
    "Ein kurzer deutscher Satz.",
]


def test_shapes_and_types(model: Model) -> None:
    one = model.encode("hello")
    assert one.shape == (768,) and one.dtype == np.float32
    many = model.encode(TEXTS)
    assert many.shape == (len(TEXTS), 768) and many.dtype == np.float32
    assert many.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)
    assert model.encode([]).shape == (0, 768)
    assert model.encode(t for t in TEXTS[:2]).shape == (2, 768)
    as_list = model.encode(TEXTS[:2], convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == 2 and as_list[0].shape == (768,)


def test_facts(model: Model) -> None:
    assert model.dim == model.get_sentence_embedding_dimension() == 768
    assert model.max_seq_length == 2048
    assert model.prompts["query"] == "task: search result | query: "
    assert model.prompts["document"] == "title: none | text: "
    assert gemma_graph.MATRYOSHKA_DIMS == (768, 512, 256, 128)
    assert model.compute_precision == "fast"
    assert model.backend in ("scalar", "avx2", "avx512", "amx", "neon")
    assert model.path == gemma_graph.default_model_path()
    assert "dim=768" in repr(model)


def test_a_text_alone_or_in_any_batch_gives_the_same_bits(model: Model) -> None:
    together = model.encode(TEXTS)
    for i, text in enumerate(TEXTS):
        assert np.array_equal(model.encode([text])[0], together[i])
    assert np.array_equal(model.encode(TEXTS, batch_size=1), together)
    assert np.array_equal(model.encode(TEXTS, batch_size=2), together)
    assert np.array_equal(model.encode(TEXTS[::-1])[::-1], together)
    assert np.array_equal(model.encode(TEXTS, show_progress_bar=True, batch_size=2), together)


def test_prompts(model: Model) -> None:
    text = "How do I bake bread?"
    by_name = model.encode(text, prompt_name="query")
    assert np.array_equal(model.encode_query(text), by_name)
    assert np.array_equal(model.encode(text, prompt="task: search result | query: "), by_name)
    assert np.array_equal(model.encode_document(text), model.encode(text, prompt_name="document"))
    assert not np.array_equal(by_name, model.encode(text))
    # `prompt` wins over `prompt_name`, as in sentence-transformers.
    assert np.array_equal(model.encode(text, prompt_name="document", prompt=""), model.encode(text))
    assert np.array_equal(model.encode_query(text, prompt_name="document"), model.encode_document(text))


def test_matryoshka_truncation(model: Model) -> None:
    full = model.encode(TEXTS)
    for dim in (512, 256, 128):
        cut = model.encode(TEXTS, truncate_dim=dim, normalize_embeddings=True)
        assert cut.shape == (len(TEXTS), dim)
        np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-5)
        expected = full[:, :dim] / np.linalg.norm(full[:, :dim], axis=1, keepdims=True)
        np.testing.assert_allclose(cut, expected, atol=1e-6)
        # By default the slice is returned as is (sentence-transformers' rule).
        plain = model.encode(TEXTS, truncate_dim=dim)
        assert np.array_equal(plain, full[:, :dim])


def test_similarity(model: Model) -> None:
    q = model.encode_query("How do I bake bread?")
    d = model.encode_document(["Knead the dough and bake it at 220 °C.", "Stock markets fell today."])
    s = model.similarity(q, d)
    assert s.shape == (1, 2)
    assert s[0, 0] > s[0, 1]
    np.testing.assert_allclose(model.similarity(d, d).diagonal(), 1.0, atol=1e-5)


def test_tokenize_and_decode(model: Model) -> None:
    ids = model.tokenize("hello world")
    assert ids[0] == 2 and ids[-1] == 1
    assert model.decode(ids) == "hello world"
    both = model.tokenize(["hello world", "a"], prompt_name="query")
    assert both[0][:3] == model.tokenize("task: search result | query: hello world")[:3]
    long = model.tokenize("word " * 5000)
    assert len(long) == model.max_seq_length and long[-1] == 1


def test_pickles_as_its_load_arguments(model: Model) -> None:
    again = pickle.loads(pickle.dumps(model))
    assert again.path == model.path and again.threads == model.threads
    assert np.array_equal(again.encode("pickle"), model.encode("pickle"))


def test_exact_precision_is_another_model(model: Model) -> None:
    exact = Model(compute_precision="exact", threads=1)
    assert exact.compute_precision == "exact"
    a, b = exact.encode(TEXTS), model.encode(TEXTS)
    assert np.min(np.sum(a * b, axis=1)) > 0.9999


def test_int8_precision_runs_or_names_what_is_missing(model: Model) -> None:
    # int8 has kernels on avx512 with VNNI (and scalar); elsewhere loading it is an error that
    # says why, never a silent fallback.
    try:
        int8 = Model(compute_precision="int8")
    except gemma_graph.GemmaGraphError as e:
        assert "int8 precision" in str(e) and ("VNNI" in str(e) or "avx512vnni" in str(e)), str(e)
        return
    assert int8.compute_precision == "int8"
    a, b = int8.encode(TEXTS), model.encode(TEXTS)
    # 8-bit activations: llama.cpp's accuracy (its worst golden text is at 0.998).
    assert np.min(np.sum(a * b, axis=1)) > 0.995
    assert np.array_equal(int8.encode(TEXTS[1]), a[1]), "batch-invariant"


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"truncate_dim": 0}, ValueError, "truncate_dim must be at least 1"),
        ({"truncate_dim": 769}, ValueError, "truncate_dim 769"),
        ({"truncate_dim": "128"}, TypeError, "truncate_dim must be an int"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"prompt_name": "nope"}, ValueError, "unknown prompt_name 'nope'"),
        ({"prompt": 3}, TypeError, "prompt must be a str"),
        ({"no_such_option": 1}, TypeError, "no_such_option"),
    ],
)
def test_bad_encode_arguments(model: Model, kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        model.encode(["a"], **kwargs)


@pytest.mark.parametrize(
    "sentences, message",
    [([1], r"sentences\[0\] must be a str"), (b"bytes", "not bytes"), (5, "not int"), (["a", None], r"\[1\]")],
)
def test_bad_sentences(model: Model, sentences: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        model.encode(sentences)  # type: ignore[arg-type]


def test_a_text_past_4_mib_is_refused_like_the_cli_does(model: Model) -> None:
    # 65 MB of text: refused before the tokenizer (which would take gigabytes) sees it.
    with pytest.raises(ValueError, match=r"text 1 has 68157440 bytes .*more than the 4194304 accepted"):
        model.encode(["fine", "word " * (13 << 20)])
    with pytest.raises(ValueError, match="more than the 4194304 accepted"):
        model.tokenize("x" * ((4 << 20) + 1))
    assert model.encode("x" * 1000).shape == (768,)


def test_bad_model_arguments(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no model file at"):
        Model(tmp_path / "missing.gguf")
    with pytest.raises(ValueError, match='unknown backend "gpu"'):
        Model(backend="gpu")
    with pytest.raises(ValueError, match="precision"):
        Model(compute_precision="int3")
    with pytest.raises(TypeError, match="threads must be an int"):
        Model(threads=True)
    with pytest.raises(ValueError, match="threads must be at least 0"):
        Model(threads=-1)
    not_gguf = tmp_path / "x.gguf"
    not_gguf.write_bytes(b"not a gguf file at all")
    with pytest.raises(gemma_graph.GemmaGraphError, match="not a GGUF file"):
        Model(not_gguf)
    with pytest.raises(ValueError, match="token id"):
        Model().decode([10**9])


def test_missing_default_model_points_to_the_fetch_script(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GEMMA_GRAPH_MODEL", str(tmp_path / "nothing-here.gguf"))
    with pytest.raises(FileNotFoundError, match="scripts/fetch-model.sh"):
        Model()


def test_stubs_name_what_the_extension_has() -> None:
    import ast
    from pathlib import Path

    from gemma_graph import _native

    stub = ast.parse((Path(gemma_graph.__file__).parent / "_native.pyi").read_text())
    functions = {n.name for n in stub.body if isinstance(n, ast.FunctionDef)}
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    public = {name for name in dir(_native) if not name.startswith("_")}
    assert functions | set(classes) == public
    methods = {n.name for n in classes["NativeModel"].body if isinstance(n, ast.FunctionDef)} - {"__new__"}
    assert methods == {name for name in dir(_native.NativeModel) if not name.startswith("_")}
    assert (Path(gemma_graph.__file__).parent / "py.typed").is_file()


def test_a_backend_this_cpu_cannot_run_is_named() -> None:
    import platform

    other = "neon" if platform.machine() in ("x86_64", "AMD64") else "avx2"
    with pytest.raises(gemma_graph.GemmaGraphError, match=other):
        Model(backend=other)
