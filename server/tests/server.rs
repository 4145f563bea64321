//! The server on an ephemeral loopback port over the real model: every route, the vectors
//! against the library's, limits, auth, back-pressure, truncation, shutdown, hostile bodies.

mod common;

use std::time::Duration;

use base64::Engine;
use common::{alone, get, model, post, send, start, vectors};
use gg_server::{Limits, ServeConfig, Server};
use serde_json::json;

fn config() -> ServeConfig {
    ServeConfig {
        model_name: "embeddinggemma-test".into(),
        ..ServeConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_route_gives_the_library_vectors_for_every_input_shape() {
    let s = start(config()).await;
    let text = "How do I bake bread?";

    let one = vectors(&post(s.addr, "/v1/embeddings", &json!({"input": text, "model": "x"})).await);
    assert_eq!(one, vec![alone(text, None, None)]);

    let reply = post(
        s.addr,
        "/v1/embeddings",
        &json!({"input": [text, "second"], "user": "u"}),
    )
    .await;
    let body = reply.json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "embeddinggemma-test");
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["object"], "embedding");
    let ids = model().tokenizer().encode(text, &Default::default()).ids;
    let ids2 = model().tokenizer().encode("second", &Default::default()).ids;
    assert_eq!(body["usage"]["prompt_tokens"], ids.len() + ids2.len());
    assert_eq!(
        vectors(&reply),
        vec![alone(text, None, None), alone("second", None, None)]
    );

    // Token arrays: with or without BOS/EOS, one array or several.
    let bare: Vec<u32> = ids[1..ids.len() - 1].to_vec();
    for input in [json!(ids), json!(bare), json!([ids, bare])] {
        let got = vectors(&post(s.addr, "/v1/embeddings", &json!({ "input": input })).await);
        assert!(got.iter().all(|v| *v == alone(text, None, None)));
    }
    let bad = post(s.addr, "/v1/embeddings", &json!({"input": [[2, 999_999_999, 1]]})).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]["message"].as_str().unwrap().contains("999999999"));

    // dimensions, base64, prompts.
    let d = vectors(&post(s.addr, "/v1/embeddings", &json!({"input": text, "dimensions": 256})).await);
    assert_eq!(d, vec![alone(text, None, Some(256))]);
    let b = post(
        s.addr,
        "/v1/embeddings",
        &json!({"input": text, "encoding_format": "base64"}),
    )
    .await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b.json()["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let floats: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(floats, alone(text, None, None));
    let q = vectors(
        &post(
            s.addr,
            "/v1/embeddings",
            &json!({"input": text, "prompt_name": "query"}),
        )
        .await,
    );
    assert_eq!(q, vec![alone(text, Some("query"), None)]);
    let p = vectors(
        &post(
            s.addr,
            "/v1/embeddings",
            &json!({"input": text, "prompt": "task: search result | query: "}),
        )
        .await,
    );
    assert_eq!(p, q);

    let models = get(s.addr, "/v1/models").await.json();
    assert_eq!(models["data"][0]["id"], "embeddinggemma-test");
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_wrong_get_400_naming_the_field() {
    let s = start(config()).await;
    let cases = [
        (
            json!({"input": "x", "dimensions": 300}),
            "dimensions 300 is not one of 768, 512, 256, 128",
        ),
        (
            json!({"input": "x", "dimensions": "big"}),
            "`dimensions` must be an integer",
        ),
        (json!({"input": "x", "encoding_format": "hex"}), "encoding_format"),
        (json!({"input": []}), "empty array"),
        (json!({"input": 5.5}), "must be a string or an array"),
        (json!({"input": ["a", 1]}), "input[1] must be a string"),
        (json!({"input": [[1, -2]]}), "input[0][1]"),
        (json!({"model": "m"}), "`input` is required"),
        (json!({"input": "x", "prompt_name": "nope"}), "unknown prompt_name"),
        (json!({"input": "x", "prompt_name": "query", "prompt": "p"}), "not both"),
    ];
    for (body, needle) in cases {
        let r = post(s.addr, "/v1/embeddings", &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let e = &r.json()["error"];
        assert!(e["message"].as_str().unwrap().contains(needle), "{body}: {e}");
        assert_eq!(e["type"], "invalid_request_error");
        assert!(e["code"].is_string());
    }
    let r = send(
        s.addr,
        "POST",
        "/v1/embeddings",
        &[("Content-Type", "application/json")],
        b"{not json",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("request body"));
    let r = get(s.addr, "/nowhere").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string(), "TEI shape off /v1");
    let r = get(s.addr, "/v1/embeddings").await;
    assert_eq!(r.status, 405);
    assert!(r.json()["error"]["message"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_texts_are_truncated_unless_asked_not_to() {
    let s = start(config()).await;
    let long = "word ".repeat(4000);
    let r = post(s.addr, "/v1/embeddings", &json!({"input": ["short", long]})).await;
    assert_eq!(r.json()["usage"]["prompt_tokens"].as_u64().unwrap(), 2048 + 3);
    assert_eq!(vectors(&r)[1], alone(&long, None, None));
    let r = post(
        s.addr,
        "/v1/embeddings",
        &json!({"input": ["short", long], "truncate": false}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("input 1 has"));
    let r = post(s.addr, "/embed", &json!({"inputs": long, "truncate": false})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error_type"], "context_length_exceeded");
    // Left truncation keeps the end: a different vector than the right-truncated one.
    let left = post(
        s.addr,
        "/embed",
        &json!({"inputs": format!("start {long} end"), "truncation_direction": "Left"}),
    )
    .await;
    let right = post(s.addr, "/embed", &json!({"inputs": format!("start {long} end")})).await;
    assert_eq!(left.status, 200);
    assert_ne!(left.json(), right.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tei_routes() {
    let s = start(config()).await;
    let texts = ["first text", "the second one"];
    let r = post(s.addr, "/embed", &json!({"inputs": texts})).await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got, vec![alone(texts[0], None, None), alone(texts[1], None, None)]);
    assert!(r.headers.contains_key("x-compute-time") && r.headers.contains_key("x-queue-time"));
    assert!(r.headers["x-total-tokens"].parse::<usize>().unwrap() > 4);
    assert!(r.headers.contains_key("x-request-id"));

    let r = post(
        s.addr,
        "/embed",
        &json!({"inputs": texts[0], "dimensions": 128, "normalize": false}),
    )
    .await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], alone(texts[0], None, None)[..128].to_vec());
    let r = post(s.addr, "/embed", &json!({"inputs": texts[0], "prompt_name": "query"})).await;
    let got: Vec<Vec<f32>> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(got[0], alone(texts[0], Some("query"), None));
    let r = post(s.addr, "/embed", &json!({"inputs": "x", "bogus": 1})).await;
    assert_eq!(r.status, 400);
    // Token ids, as TEI takes them: one array or several, BOS/EOS added when missing.
    let ids = model().tokenizer().encode(texts[1], &Default::default()).ids;
    let bare: Vec<u32> = ids[1..ids.len() - 1].to_vec();
    for inputs in [json!(ids), json!([bare, ids])] {
        let got: Vec<Vec<f32>> =
            serde_json::from_slice(&post(s.addr, "/embed", &json!({ "inputs": inputs })).await.body).unwrap();
        assert!(!got.is_empty() && got.iter().all(|v| *v == alone(texts[1], None, None)));
    }
    let r = post(s.addr, "/embed", &json!({"inputs": [[2, "x"]]})).await;
    assert_eq!(r.status, 400);
    assert!(
        String::from_utf8_lossy(&r.body).contains("inputs[0][1]"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    let tok = post(s.addr, "/tokenize", &json!({"inputs": "hello world"}))
        .await
        .json();
    assert_eq!(tok[0][0]["id"], 2);
    assert_eq!(tok[0][0]["special"], true);
    assert_eq!(tok[0][1]["special"], false);
    let info = get(s.addr, "/info").await.json();
    assert_eq!(info["dimensions"], 768);
    assert_eq!(info["max_input_length"], 2048);
    assert_eq!(info["prompts"]["query"], "task: search result | query: ");
    assert!(info["backend"].is_string() && info["precision"] == "fast" && info["version"].is_string());

    let m = get(s.addr, "/metrics").await.text();
    assert!(
        m.contains("gemma_graph_requests_total{route=\"/embed\",status=\"200\"}"),
        "{m}"
    );
    assert!(m.contains("gemma_graph_batch_tokens_bucket"));
    assert!(m.contains("gemma_graph_queue_seconds_count"));
    assert!(m.contains("gemma_graph_queue_texts"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_are_bit_identical_whether_batched_or_alone_under_load() {
    let s = start(ServeConfig {
        limits: Limits {
            max_wait: Duration::from_millis(20),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let texts: Vec<String> = (0..24)
        .map(|i| format!("Request {i}: {}", "bread and butter ".repeat(i % 7 + 1)))
        .collect();
    let mut tasks = Vec::new();
    for t in &texts {
        let (addr, t) = (s.addr, t.clone());
        tasks.push(tokio::spawn(async move {
            post(
                addr,
                "/v1/embeddings",
                &json!({"input": [t.clone(), "shared neighbour"]}),
            )
            .await
        }));
    }
    for (t, task) in texts.iter().zip(tasks) {
        let got = vectors(&task.await.unwrap());
        assert_eq!(got[0], alone(t, None, None), "{t}");
        assert_eq!(got[1], alone("shared neighbour", None, None));
    }
    // They were batched together: some forward batch held more than one request's texts.
    let m = get(s.addr, "/metrics").await.text();
    let one_text_batches: u64 = m
        .lines()
        .find(|l| l.starts_with("gemma_graph_batch_texts_bucket{le=\"2\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let batches: u64 = m
        .lines()
        .find(|l| l.starts_with("gemma_graph_batch_texts_count"))
        .and_then(|l| l.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(batches >= 1 && one_text_batches < batches, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_413_and_a_full_queue_429_with_retry_after() {
    let s = start(ServeConfig {
        limits: Limits {
            max_body_bytes: 4096,
            max_inputs: 3,
            max_queue_tokens: 64,
            max_batch_tokens: 8192,
            // The first request waits in the queue for a batch to fill: long enough to see it.
            max_wait: Duration::from_millis(1500),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let r = post(s.addr, "/v1/embeddings", &json!({"input": "x".repeat(5000)})).await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("4096 bytes"));
    let r = post(s.addr, "/v1/embeddings", &json!({"input": ["a", "b", "c", "d"]})).await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("more than 3 per request"));
    let r = post(s.addr, "/embed", &json!({"inputs": ["a", "b", "c", "d"]})).await;
    assert_eq!(r.status, 413);
    let r = post(s.addr, "/v1/embeddings", &json!({"input": "word ".repeat(100)})).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("--max-queue-tokens"));

    let text = "word ".repeat(35); // ~37 tokens: one fits the queue, two do not
    let addr = s.addr;
    let first_text = text.clone();
    let first = tokio::spawn(async move { post(addr, "/v1/embeddings", &json!({ "input": first_text })).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = post(s.addr, "/v1/embeddings", &json!({ "input": text })).await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.headers["retry-after"], "1");
    assert_eq!(second.json()["error"]["code"], "queue_full");
    assert_eq!(first.await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_is_required_everywhere_but_health() {
    let s = start(ServeConfig {
        api_key: Some("s3cret".into()),
        ..config()
    })
    .await;
    let body = json!({"input": "x"}).to_string();
    let r = send(s.addr, "POST", "/v1/embeddings", &[], body.as_bytes()).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = send(
        s.addr,
        "POST",
        "/v1/embeddings",
        &[("Authorization", "Bearer wrong"), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = send(
        s.addr,
        "POST",
        "/v1/embeddings",
        &[("Authorization", "Bearer s3cret"), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    // The scheme is case-insensitive (RFC 7235); the key is not.
    for header in ["bearer s3cret", "BEARER s3cret"] {
        let r = send(
            s.addr,
            "POST",
            "/v1/embeddings",
            &[("Authorization", header), ("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 200, "{header}: {}", r.text());
    }
    let r = send(
        s.addr,
        "POST",
        "/v1/embeddings",
        &[("Authorization", "bearer S3CRET"), ("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(get(s.addr, "/metrics").await.status, 401);
    assert_eq!(get(s.addr, "/health").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_api_key_or_a_mixed_wildcard_origin_is_refused_at_bind() {
    // An empty key (an unset variable) would serve without auth while auth was asked for.
    for key in ["", "  "] {
        let config = ServeConfig {
            api_key: Some(key.into()),
            ..config()
        };
        let err = match Server::bind(model(), config, "127.0.0.1:0".parse().unwrap()).await {
            Ok(_) => panic!("an empty API key was accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("API key is empty"), "{err}");
    }
    let config = ServeConfig {
        cors_allow_origins: vec!["*".into(), "https://app.example".into()],
        ..config()
    };
    let err = match Server::bind(model(), config, "127.0.0.1:0".parse().unwrap()).await {
        Ok(_) => panic!("`*` beside an origin was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("--cors-allow-origin") && err.contains("`*`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_body_must_be_declared_json() {
    // text/plain, form types and no type are what a page can make a browser send to any origin
    // without a preflight.
    let s = start(config()).await;
    let body = json!({"input": "x"}).to_string();
    for (route, ty) in [
        ("/v1/embeddings", Some("text/plain")),
        ("/embed", Some("application/x-www-form-urlencoded")),
        ("/v1/embeddings", Some("multipart/form-data; boundary=x")),
        ("/tokenize", None),
    ] {
        let headers: Vec<(&str, &str)> = ty.map(|t| ("Content-Type", t)).into_iter().collect();
        let b = if route == "/v1/embeddings" {
            body.clone()
        } else {
            json!({"inputs": "x"}).to_string()
        };
        let r = send(s.addr, "POST", route, &headers, b.as_bytes()).await;
        assert_eq!(r.status, 415, "{route} {ty:?}: {}", r.text());
        assert!(r.text().contains("application/json"), "{}", r.text());
    }
    let ok = [("Content-Type", "Application/JSON; charset=utf-8")];
    assert_eq!(
        send(s.addr, "POST", "/v1/embeddings", &ok, body.as_bytes())
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_wildcard_allows_every_origin() {
    // `*` alone used to panic inside the CORS layer.
    let s = start(ServeConfig {
        cors_allow_origins: vec!["*".into()],
        ..config()
    })
    .await;
    let r = send(s.addr, "GET", "/info", &[("Origin", "https://any.example")], b"").await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_off_unless_an_origin_is_allowed() {
    let off = start(config()).await;
    let r = send(off.addr, "GET", "/info", &[("Origin", "https://app.example")], b"").await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let on = start(ServeConfig {
        cors_allow_origins: vec!["https://app.example".into()],
        ..config()
    })
    .await;
    let r = send(on.addr, "GET", "/info", &[("Origin", "https://app.example")], b"").await;
    assert_eq!(r.headers["access-control-allow-origin"], "https://app.example");
    let r = send(on.addr, "GET", "/info", &[("Origin", "https://evil.example")], b"").await;
    assert!(!r.headers.contains_key("access-control-allow-origin"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let s = start(ServeConfig {
        limits: Limits {
            max_wait: Duration::from_millis(800),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let addr = s.addr;
    let in_flight = tokio::spawn(async move { post(addr, "/v1/embeddings", &json!({"input": "finish me"})).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.shutdown().await.expect("clean exit");
    let r = in_flight.await.unwrap();
    assert_eq!(vectors(&r), vec![alone("finish me", None, None)]);
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_has_its_queued_texts_dropped() {
    let s = start(ServeConfig {
        limits: Limits {
            max_wait: Duration::from_millis(1000),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    use tokio::io::AsyncWriteExt;
    let body = json!({"input": ["a", "b", "c"]}).to_string();
    let mut stream = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let m = get(s.addr, "/metrics").await.text();
    assert!(m.contains("gemma_graph_dropped_texts_total 3"), "{m}");
}

/// Random and mutated bodies: every one gets a status and a JSON body, never a dropped
/// connection or a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_always_get_a_json_answer() {
    let s = start(ServeConfig {
        limits: Limits {
            max_inputs: 8,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let seeds = [
        json!({"input": ["a", "b"], "dimensions": 256, "encoding_format": "base64"}).to_string(),
        json!({"inputs": ["a"], "normalize": false, "truncate": true, "truncation_direction": "Left"}).to_string(),
        json!({"input": [[2, 10, 1], [5, 6]]}).to_string(),
        json!({"inputs": "a b c d e f", "chunk_tokens": 2, "chunk_overlap": 1, "dtype": "ubinary"}).to_string(),
        json!({"input": ["a"], "dtype": "float16", "options": {"num_ctx": 4}, "truncate": false}).to_string(),
        json!({"inputs": {"source_sentence": "a", "sentences": ["b", "c"]}, "prompt_name": "query"}).to_string(),
        json!({"ids": [[2, 5, 1], [7]], "skip_special_tokens": false}).to_string(),
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let routes = [
        "/v1/embeddings",
        "/embed",
        "/tokenize",
        "/api/embed",
        "/api/embeddings",
        "/similarity",
        "/decode",
    ];
    for i in 0..600 {
        let mut body = seeds[i % seeds.len()].clone().into_bytes();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % body.len();
            match next() % 3 {
                0 => body[at] = (next() % 256) as u8,
                1 => {
                    body.remove(at);
                }
                _ => body.insert(at, b"[]{}\",:-019e\\u\xff"[(next() % 15) as usize]),
            }
        }
        let route = routes[(next() as usize) % routes.len()];
        let r = send(s.addr, "POST", route, &[("Content-Type", "application/json")], &body).await;
        assert!(
            matches!(r.status, 200 | 400 | 413),
            "{route} {:?}: {} {}",
            String::from_utf8_lossy(&body),
            r.status,
            r.text()
        );
        let _ = r.json();
    }
    assert_eq!(get(s.addr, "/health").await.status, 200);
}
