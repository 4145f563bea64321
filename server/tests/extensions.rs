//! Ollama's routes (`/api/embed`, `/api/embeddings`), the `dtype` and chunking extensions of
//! `/embed` and `/v1/embeddings`, and the vector cache, over the real model: the same vectors as
//! the library, stored by the same `quantize_row` as `run --output-dtype` and Python, errors in
//! each API's own shape.

mod common;

use base64::Engine;
use common::*;
use gemma_graph::{quantize_row, OutputDtype, Ranges};
use gg_server::ServeConfig;
use serde_json::json;

fn config() -> ServeConfig {
    ServeConfig {
        model_name: "embeddinggemma".into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_embed_answers_as_ollama_with_the_library_vectors() {
    let s = start(config()).await;
    let texts = ["first text", "the second one"];
    let r = post(
        s.addr,
        "/api/embed",
        &json!({"model": "embeddinggemma", "input": texts}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["model"], "embeddinggemma");
    assert!(body["prompt_eval_count"].as_u64().unwrap() > 4);
    assert!(body["total_duration"].as_u64().unwrap() > 0);
    let got: Vec<Vec<f32>> = serde_json::from_value(body["embeddings"].clone()).unwrap();
    assert_eq!(got, vec![alone(texts[0], None, None), alone(texts[1], None, None)]);
    // One string; `dimensions` re-normalized; `options` and `keep_alive` ignored.
    let r = post(
        s.addr,
        "/api/embed",
        &json!({"model": "x", "input": texts[0], "dimensions": 256, "options": {"num_ctx": 512}, "keep_alive": "5m"}),
    )
    .await;
    let got: Vec<Vec<f32>> = serde_json::from_value(r.json()["embeddings"].clone()).unwrap();
    assert_eq!(got, vec![alone(texts[0], None, Some(256))]);
    // The older route: one `prompt`, one `embedding`.
    let r = post(s.addr, "/api/embeddings", &json!({"model": "x", "prompt": texts[1]})).await;
    let got: Vec<f32> = serde_json::from_value(r.json()["embedding"].clone()).unwrap();
    assert_eq!(got, alone(texts[1], None, None));
    // Errors are Ollama's `{"error": message}`.
    let long = "word ".repeat(5000);
    let r = post(s.addr, "/api/embed", &json!({"input": long, "truncate": false})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("tokens"), "{}", r.text());
    let r = post(s.addr, "/api/embed", &json!({"input": [1.5]})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("input[0]"), "{}", r.text());
    let r = post(s.addr, "/api/embeddings", &json!({"model": "x"})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("prompt"), "{}", r.text());
    let m = get(s.addr, "/metrics").await.text();
    assert!(
        m.contains("gemma_graph_requests_total{route=\"/api/embed\",status=\"200\"} 2"),
        "{m}"
    );
}

fn stored(v: &[f32], dtype: OutputDtype, ranges: Option<&Ranges>) -> Vec<u8> {
    let mut out = Vec::new();
    quantize_row(v, dtype, ranges, &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtype_stores_vectors_as_run_does_on_both_apis() {
    // Calibration: vectors of other texts, at the answers' dimension (256).
    let calibration: Vec<f32> = ["Photosynthesis.", "The Eiffel Tower.", "Bread rises.", "Markets fell."]
        .iter()
        .flat_map(|t| alone(t, None, Some(256)))
        .collect();
    let ranges = Ranges::from_calibration(&calibration, 256).unwrap();
    let s = start(ServeConfig {
        calibration: Some(ranges.clone()),
        ..config()
    })
    .await;
    let text = "How do I bake bread?";
    let v = alone(text, None, Some(256));
    for dtype in OutputDtype::ALL {
        let want = stored(&v, dtype, Some(&ranges));
        let numbers = gemma_graph::stored_values(&want, dtype).to_f64();
        // TEI: numbers (integers for byte dtypes), or base64 bytes.
        let r = post(
            s.addr,
            "/embed",
            &json!({"inputs": text, "dimensions": 256, "dtype": dtype.name()}),
        )
        .await;
        assert_eq!(r.status, 200, "{dtype}: {}", r.text());
        let got: Vec<f64> = r.json()[0]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let got32: Vec<f32> = got.iter().map(|&x| x as f32).collect();
        assert_eq!(got32, numbers.iter().map(|&x| x as f32).collect::<Vec<_>>(), "{dtype}");
        let r = post(
            s.addr,
            "/embed",
            &json!({"inputs": text, "dimensions": 256, "dtype": dtype.name(), "encoding_format": "base64"}),
        )
        .await;
        let b64 = r.json()[0].as_str().unwrap().to_string();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
            want,
            "{dtype}"
        );
        // OpenAI: the same bytes through base64.
        let r = post(
            s.addr,
            "/v1/embeddings",
            &json!({"input": [text], "dimensions": 256, "dtype": dtype.name(), "encoding_format": "base64"}),
        )
        .await;
        let b64 = r.json()["data"][0]["embedding"].as_str().unwrap().to_string();
        assert_eq!(
            base64::engine::general_purpose::STANDARD.decode(b64).unwrap(),
            want,
            "{dtype}"
        );
    }
    // The calibration has 256 columns: int8 at 768 is refused before any text runs.
    let r = post(s.addr, "/embed", &json!({"inputs": text, "dtype": "int8"})).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("256 dimensions, the answer 768"), "{}", r.text());
    let r = post(s.addr, "/v1/embeddings", &json!({"input": text, "dtype": "int4"})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("ubinary"),
        "{}",
        r.text()
    );
    drop(s);
    // Without --calibration, int8 and uint8 are refused by name; binary needs none.
    let s = start(config()).await;
    let r = post(s.addr, "/embed", &json!({"inputs": text, "dtype": "uint8"})).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("without --calibration"), "{}", r.text());
    let r = post(s.addr, "/embed", &json!({"inputs": text, "dtype": "ubinary"})).await;
    assert_eq!(r.json()[0].as_array().unwrap().len(), 96);
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// `--cache-entries`: a repeat is answered from the cache, bit-identical to a fresh answer and
/// to the library's, for every route and option applied after the lookup; the cache holds at
/// most N vectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_vectors_are_the_fresh_ones_and_the_cache_is_bounded() {
    let s = start(ServeConfig {
        cache_entries: 3,
        ..config()
    })
    .await;
    let texts = ["first text", "the second one"];
    let fresh = vectors(&post(s.addr, "/v1/embeddings", &json!({"input": texts})).await);
    let again = vectors(&post(s.addr, "/v1/embeddings", &json!({"input": texts})).await);
    assert_eq!(fresh, again);
    assert_eq!(fresh, vec![alone(texts[0], None, None), alone(texts[1], None, None)]);
    let m = get(s.addr, "/metrics").await.text();
    assert_eq!(
        (
            metric(&m, "gemma_graph_cache_hits_total"),
            metric(&m, "gemma_graph_cache_misses_total")
        ),
        (2, 2)
    );
    // Dimensions and prompts: a prompt is another sequence (a miss); a dimension cuts the
    // cached full vector (a hit).
    let r = post(
        s.addr,
        "/embed",
        &json!({"inputs": texts[0], "dimensions": 128, "prompt_name": "query"}),
    )
    .await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], alone(texts[0], Some("query"), Some(128)));
    let r = post(s.addr, "/embed", &json!({"inputs": texts[0], "dimensions": 256})).await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], alone(texts[0], None, Some(256)));
    // Token ids of a cached text are the same sequence: a hit.
    let ids = model().tokenizer().encode(texts[1], &Default::default()).ids;
    let r = post(s.addr, "/api/embed", &json!({"input": texts[1]})).await;
    let got: Vec<Vec<f32>> = serde_json::from_value(r.json()["embeddings"].clone()).unwrap();
    assert_eq!(got[0], alone(texts[1], None, None));
    let r = post(s.addr, "/embed", &json!({"inputs": ids})).await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], alone(texts[1], None, None));
    let m = get(s.addr, "/metrics").await.text();
    assert_eq!(
        (
            metric(&m, "gemma_graph_cache_hits_total"),
            metric(&m, "gemma_graph_cache_misses_total")
        ),
        (5, 3)
    );
    // Bounded: three entries now; a fourth evicts the least recently used, the query-prompted
    // text (texts[0] was used after it), whose next request is a miss again.
    post(s.addr, "/embed", &json!({"inputs": "a fourth text"})).await;
    let m = get(s.addr, "/metrics").await.text();
    assert_eq!(metric(&m, "gemma_graph_cache_entries"), 3);
    let r = post(s.addr, "/embed", &json!({"inputs": texts[0]})).await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], fresh[0]);
    let m = get(s.addr, "/metrics").await.text();
    assert_eq!(
        (
            metric(&m, "gemma_graph_cache_hits_total"),
            metric(&m, "gemma_graph_cache_misses_total")
        ),
        (6, 4)
    );
    post(s.addr, "/embed", &json!({"inputs": texts[0], "prompt_name": "query"})).await;
    let m = get(s.addr, "/metrics").await.text();
    assert_eq!(metric(&m, "gemma_graph_cache_misses_total"), 5, "{m}");
}

/// `chunk_tokens`/`chunk_overlap`: the chunks `run --chunk-tokens` makes (the library's
/// `chunk_text`), each embedded as a text of its own, with character offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunking_answers_the_chunks_and_vectors_of_run() {
    let s = start(config()).await;
    let texts = [
        "Bread needs flour, water, salt and yeast. Knead it for ten minutes, let it rise for an hour, \
         shape it, let it rise again and bake it at 220 °C for thirty-five minutes until it sounds hollow.",
        "short",
    ];
    let chunk = gemma_graph::ChunkOptions { tokens: 12, overlap: 4 };
    let opts = gemma_graph::EmbedOptions {
        prompt: Some(gemma_graph::Prompt::Name("document".into())),
        ..Default::default()
    };
    let mut want = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        for (k, c) in model().chunk_text(t, chunk, &opts).unwrap().into_iter().enumerate() {
            let v = model().embed(&[c.text(t)], &opts).unwrap().vector(0).to_vec();
            want.push((i, k, c.chars.start, c.chars.end, v));
        }
    }
    assert!(
        want.iter().filter(|w| w.0 == 0).count() > 3,
        "the long text makes several chunks"
    );
    let r = post(
        s.addr,
        "/v1/embeddings",
        &json!({"input": texts, "prompt_name": "document", "chunk_tokens": 12, "chunk_overlap": 4}),
    )
    .await;
    let data = r.json()["data"].as_array().unwrap().clone();
    assert_eq!(data.len(), want.len());
    for (d, (i, k, start, end, v)) in data.iter().zip(&want) {
        assert_eq!(
            (d["index"].as_u64(), d["chunk"].as_u64()),
            (Some(*i as u64), Some(*k as u64))
        );
        assert_eq!(
            (d["start"].as_u64(), d["end"].as_u64()),
            (Some(*start as u64), Some(*end as u64))
        );
        let got: Vec<f32> = serde_json::from_value(d["embedding"].clone()).unwrap();
        assert_eq!(&got, v);
    }
    let r = post(
        s.addr,
        "/embed",
        &json!({"inputs": texts, "prompt_name": "document", "chunk_tokens": 12, "chunk_overlap": 4}),
    )
    .await;
    let per_input = r.json();
    let flat: Vec<_> = per_input
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c.as_array().unwrap().clone())
        .collect();
    assert_eq!(per_input[1].as_array().unwrap().len(), 1);
    for (c, (_, k, start, end, v)) in flat.iter().zip(&want) {
        assert_eq!(
            (c["chunk"].as_u64(), c["start"].as_u64(), c["end"].as_u64()),
            (Some(*k as u64), Some(*start as u64), Some(*end as u64))
        );
        let got: Vec<f32> = serde_json::from_value(c["embedding"].clone()).unwrap();
        assert_eq!(&got, v);
    }
    // Refused before any text runs, naming the field.
    for (body, needle) in [
        (
            json!({"inputs": "x", "chunk_tokens": 4, "chunk_overlap": 4}),
            "chunk_overlap",
        ),
        (json!({"inputs": "x", "chunk_overlap": 2}), "needs `chunk_tokens`"),
        (
            json!({"inputs": [2, 100, 1], "chunk_tokens": 4}),
            "must be text for chunking",
        ),
        (json!({"inputs": "x", "chunk_tokens": 4000}), "do not fit"),
    ] {
        let r = post(s.addr, "/embed", &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.text().contains(needle), "{body}: {}", r.text());
    }
}

/// TEI's `/similarity` and `/decode`, and `--default-prompt-name`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn similarity_decode_and_the_default_prompt() {
    let s = start(ServeConfig {
        default_prompt_name: Some("query".into()),
        ..config()
    })
    .await;
    let source = "How do I bake bread?";
    let sentences = ["Knead the dough and bake it at 220 °C.", "Stock markets fell today."];
    let r = post(
        s.addr,
        "/similarity",
        &json!({"inputs": {"source_sentence": source, "sentences": sentences}, "prompt_name": "document"}),
    )
    .await;
    let got: Vec<f32> = serde_json::from_slice(&r.body).unwrap();
    let a = alone(source, Some("document"), None);
    let want: Vec<f32> = sentences
        .iter()
        .map(|t| {
            a.iter()
                .zip(alone(t, Some("document"), None))
                .map(|(x, y)| x * y)
                .sum::<f32>()
        })
        .collect();
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
    assert!(got[0] > got[1]);
    let r = post(
        s.addr,
        "/similarity",
        &json!({"inputs": {"source_sentence": source, "sentences": []}}),
    )
    .await;
    assert_eq!(r.status, 400);
    // Without a prompt in the request, the default one; an explicit one wins.
    let r = post(s.addr, "/embed", &json!({"inputs": source})).await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], alone(source, Some("query"), None));
    let r = post(s.addr, "/v1/embeddings", &json!({"input": source, "prompt": ""})).await;
    assert_eq!(vectors(&r)[0], alone(source, None, None));
    // /decode: the text back; special tokens skipped unless asked for.
    let ids = model().tokenizer().encode("hello world", &Default::default()).ids;
    let r = post(s.addr, "/decode", &json!({"ids": ids})).await;
    assert_eq!(r.json(), json!(["hello world"]));
    let r = post(
        s.addr,
        "/decode",
        &json!({"ids": [ids.clone(), ids[1..2].to_vec()], "skip_special_tokens": false}),
    )
    .await;
    assert_eq!(r.json(), json!(["<bos>hello world<eos>", "hello"]));
    let r = post(s.addr, "/decode", &json!({"ids": [[5, 999999999]]})).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("ids[0][1]"), "{}", r.text());
    drop(s);
    let bad = gg_server::Server::bind(
        model(),
        ServeConfig {
            default_prompt_name: Some("nope".into()),
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await;
    let e = bad.err().expect("an unknown default prompt is refused");
    assert!(e.to_string().contains("query"), "{e}");
}

/// Several models in one server: each request picks one by name (the `model` field, the
/// `x-model` header), an unknown name is a 404 naming the known ones, `/v1/models` lists them,
/// and `/metrics` labels every sample with its model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_models_are_chosen_by_name() {
    use gemma_graph::{Model, ModelOptions, Precision};
    let path = gemma_graph::default_model_path();
    let exact = std::sync::Arc::new(
        Model::load_with(
            &path,
            &ModelOptions {
                precision: Precision::Exact,
                ..ModelOptions::default()
            },
            &gemma_graph::SentenceTransformersHead,
        )
        .unwrap(),
    );
    let server = gg_server::Server::bind_models(
        vec![
            ("fast".into(), model()),
            ("exact".into(), std::sync::Arc::clone(&exact)),
        ],
        config(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..600 {
        if get(addr, "/health").await.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = "How do I bake bread?";
    let fast_v = alone(text, None, None);
    let exact_v = exact.embed(&[text], &Default::default()).unwrap().vector(0).to_vec();
    assert_ne!(fast_v, exact_v, "the two precisions differ in the last bits");
    assert_eq!(
        vectors(&post(addr, "/v1/embeddings", &json!({"input": text})).await)[0],
        fast_v
    );
    assert_eq!(
        vectors(&post(addr, "/v1/embeddings", &json!({"input": text, "model": "exact"})).await)[0],
        exact_v
    );
    let r = post(addr, "/api/embed", &json!({"input": text, "model": "exact"})).await;
    let got: Vec<Vec<f32>> = serde_json::from_value(r.json()["embeddings"].clone()).unwrap();
    assert_eq!(got[0], exact_v);
    let r = send(
        addr,
        "POST",
        "/embed",
        &[("Content-Type", "application/json"), ("x-model", "exact")],
        json!({"inputs": text}).to_string().as_bytes(),
    )
    .await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], exact_v);
    let r = post(addr, "/v1/embeddings", &json!({"input": text, "model": "nope"})).await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"]["message"].as_str().unwrap().contains("fast, exact"),
        "{}",
        r.text()
    );
    let r = send(
        addr,
        "POST",
        "/embed",
        &[("Content-Type", "application/json"), ("x-model", "nope")],
        b"{\"inputs\": \"x\"}",
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        r.json()["error"].as_str().unwrap().contains("fast, exact"),
        "{}",
        r.text()
    );
    let ids: Vec<String> = get(addr, "/v1/models").await.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["fast", "exact"]);
    let m = get(addr, "/metrics").await.text();
    assert!(
        m.contains("gemma_graph_requests_total{model=\"exact\",route=\"/v1/embeddings\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("gemma_graph_requests_total{model=\"fast\",route=\"/v1/embeddings\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(m.contains("gemma_graph_texts_total{model=\"exact\"} 3"), "{m}");
    assert_eq!(
        m.matches("# TYPE gemma_graph_texts_total").count(),
        1,
        "one family, two samples"
    );
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// `/openapi.json` describes every route (from the handlers' types), with our extensions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_describes_every_route() {
    let s = start(config()).await;
    let doc = get(s.addr, "/openapi.json").await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for route in gg_server::ROUTES.iter().filter(|r| **r != "/embeddings") {
        assert!(paths.contains_key(*route), "/openapi.json lacks {route}");
    }
    assert_eq!(
        paths.len(),
        gg_server::ROUTES.len() - 1,
        "no route described twice or made up"
    );
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("TeiEmbedRequest", "chunk_tokens"),
        ("TeiEmbedRequest", "truncation_direction"),
        ("OpenAiEmbeddingsRequest", "dtype"),
        ("OpenAiEmbeddingsRequest", "encoding_format"),
        ("OllamaEmbedRequest", "keep_alive"),
        ("OllamaEmbeddingsRequest", "prompt"),
        ("SimilarityRequest", "inputs"),
        ("DecodeRequest", "skip_special_tokens"),
    ] {
        assert!(
            schemas[schema]["properties"].get(field).is_some(),
            "{schema}.{field} in {}",
            schemas[schema]
        );
    }
}

/// A classifier head file: `weight` [classes, 768] and `bias` [classes], labels in metadata.
fn head_file(labels: &[&str]) -> std::path::PathBuf {
    let classes = labels.len();
    let weight: Vec<f32> = (0..classes * 768)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.1)
        .collect();
    let bias: Vec<f32> = (0..classes).map(|c| c as f32 * 0.01).collect();
    let labels_json = serde_json::to_string(&labels).unwrap();
    let w_bytes = weight.len() * 4;
    let header = json!({
        "__metadata__": {"labels": labels_json},
        "weight": {"dtype": "F32", "shape": [classes, 768], "data_offsets": [0, w_bytes]},
        "bias": {"dtype": "F32", "shape": [classes], "data_offsets": [w_bytes, w_bytes + classes * 4]},
    })
    .to_string();
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(weight.iter().chain(&bias).flat_map(|x| x.to_le_bytes()));
    let path = std::env::temp_dir().join(format!("gg-server-head-{}.safetensors", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `/predict` over a classifier head loaded with the model: raw scores are the head's logits
/// from the library, bit for bit; scores are their softmax, best first, with the labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_answers_with_the_heads_outputs() {
    use gemma_graph::{LinearHead, Model, ModelOptions, SentenceTransformersHead};
    let file = head_file(&["bread", "cats", "markets"]);
    let head = LinearHead {
        name: "topic".into(),
        softmax: false,
        ..LinearHead::classifier(&file)
    };
    let model = std::sync::Arc::new(
        Model::load_heads(
            gemma_graph::default_model_path(),
            &ModelOptions::default(),
            &[&SentenceTransformersHead, &head],
        )
        .unwrap(),
    );
    let spec = gg_server::HeadSpec {
        name: "topic".into(),
        file: file.clone(),
        softmax: false,
    };
    let server = gg_server::Server::bind_models(
        vec![("m".into(), std::sync::Arc::clone(&model))],
        ServeConfig {
            heads: vec![spec],
            ..config()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    for _ in 0..600 {
        if get(addr, "/health").await.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let texts = ["How do I bake bread?", "A kitten rests on the rug."];
    let out = model.embed(&texts, &Default::default()).unwrap();
    let r = post(addr, "/predict", &json!({"inputs": texts, "raw_scores": true})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got = r.json();
    for (i, per_text) in got.as_array().unwrap().iter().enumerate() {
        let logits = out.head(1, i);
        let labels = ["bread", "cats", "markets"];
        let mut want: Vec<(f32, &str)> = logits.iter().copied().zip(labels).collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        let answer: Vec<(f32, String)> = per_text
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["score"].as_f64().unwrap() as f32,
                    p["label"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(answer.len(), 3);
        for ((g, gl), (w, wl)) in answer.iter().zip(&want) {
            assert_eq!((g, gl.as_str()), (w, *wl), "text {i}");
        }
    }
    // One text: one list; probabilities that sum to 1, in the logits' order.
    let r = post(addr, "/predict", &json!({"inputs": texts[0]})).await;
    let p: Vec<f64> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .collect();
    assert!(
        (p.iter().sum::<f64>() - 1.0).abs() < 1e-6 && p.windows(2).all(|w| w[0] >= w[1]),
        "{p:?}"
    );
    for (body, needle) in [
        (json!({"inputs": "x", "head": "nope"}), "; loaded: topic"),
        (json!({"inputs": [["a", "b"]]}), "inputs[0]"),
    ] {
        let r = post(addr, "/predict", &body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.text().contains(needle), "{body}: {}", r.text());
    }
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    // Without a head, /predict says how to get one.
    let s = start(config()).await;
    let r = post(s.addr, "/predict", &json!({"inputs": "x"})).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("--head NAME=FILE"), "{}", r.text());
}

/// `/embed_all` (with `token_states`, as `--embed-all` loads them): every token's state, bit
/// for bit the library's per-token head; refused, saying how, when not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embed_all_answers_every_tokens_state() {
    use gemma_graph::{Model, ModelOptions, TokenStatesHead};
    let states = std::sync::Arc::new(
        Model::load_with(
            gemma_graph::default_model_path(),
            &ModelOptions::default(),
            &TokenStatesHead,
        )
        .unwrap(),
    );
    let s = start(ServeConfig {
        token_states: vec![std::sync::Arc::clone(&states)],
        ..config()
    })
    .await;
    let texts = ["How do I bake bread?", "hello"];
    let r = post(s.addr, "/embed_all", &json!({"inputs": texts, "prompt_name": "query"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Vec<Vec<Vec<f32>>> = serde_json::from_slice(&r.body).unwrap();
    let opts = gemma_graph::EmbedOptions {
        prompt: Some(gemma_graph::Prompt::Name("query".into())),
        ..Default::default()
    };
    let want = states.embed(&texts, &opts).unwrap();
    for (i, rows) in got.iter().enumerate() {
        let tokens = want.items[i].tokens;
        assert_eq!(rows.len(), tokens, "one row per token, BOS and EOS included");
        assert_eq!(rows.concat(), want.head(0, i), "text {i}");
    }
    let long = "word ".repeat(3000);
    let r = post(
        s.addr,
        "/embed_all",
        &json!({"inputs": [long.clone(), long.clone(), long.clone(), long.clone(), long]}),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("--max-batch-tokens"), "{}", r.text());
    drop(s);
    let s = start(config()).await;
    let r = post(s.addr, "/embed_all", &json!({"inputs": "x"})).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("--embed-all"), "{}", r.text());
}
