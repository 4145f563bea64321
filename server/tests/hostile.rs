//! The server under clients a library would never be: slow bodies, half-closed sockets,
//! hang-ups, too many connections, shutdown mid-body, `Expect: 100-continue` with an absurd
//! length, bodies that are not objects, foreign Host headers, and requests whose shape would
//! multiply their cost (tiny arrays by the million, a prompt copied onto every input, huge
//! tokenize answers). Raw sockets throughout: a client library would hide the behaviour.

mod common;

use std::time::{Duration, Instant};

use common::{alone, get, model, post, send, start, vectors};
use gg_server::{Limits, ServeConfig, Server};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config() -> ServeConfig {
    ServeConfig {
        model_name: "embeddinggemma-300m".into(),
        ..ServeConfig::default()
    }
}

fn head(path: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
}

/// Read until the server closes, with a deadline; the raw bytes.
async fn read_all(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut raw)).await;
    raw
}

fn status_of(raw: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(raw);
    // Skip interim 1xx responses (the hang-up probe may send `100 Continue`).
    let finals: Vec<&str> = text.split("HTTP/1.1 ").skip(1).collect();
    finals
        .iter()
        .map(|r| r[..3].parse::<u16>().unwrap_or(0))
        .find(|s| *s >= 200)
        .unwrap_or_else(|| panic!("no final status in {text:?}"))
}

fn metric(text: &str, line_start: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_gets_its_answer() {
    let s = start(config()).await;
    let body = json!({"input": ["half", "closed"]}).to_string();
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(format!("{}{body}", head("/v1/embeddings", body.len(), "")).as_bytes())
        .await
        .unwrap();
    stream.shutdown().await.unwrap(); // SHUT_WR: nothing more to send, still reading.
    let raw = read_all(&mut stream, Duration::from_secs(60)).await;
    assert_eq!(status_of(&raw), 200, "{}", String::from_utf8_lossy(&raw));
    let text = String::from_utf8_lossy(&raw);
    let json_start = text.find("{\"object\"").expect("a JSON body");
    let reply: serde_json::Value = serde_json::from_str(&text[json_start..]).unwrap();
    let v: Vec<f32> = reply["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(v, alone("half", None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_is_logged_and_counted_as_499() {
    let s = start(ServeConfig {
        limits: Limits {
            max_wait: Duration::from_millis(1500),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let body = json!({"inputs": ["gone", "away"]}).to_string();
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(format!("{}{body}", head("/embed", body.len(), "")).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let m = get(s.addr, "/metrics").await.text();
    assert_eq!(
        metric(&m, "gemma_graph_requests_total{route=\"/embed\",status=\"499\"}"),
        1,
        "{m}"
    );
    assert_eq!(metric(&m, "gemma_graph_dropped_texts_total"), 2, "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_gets_408_and_frees_its_connection() {
    let s = start(ServeConfig {
        limits: Limits {
            body_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(head("/embed", 100_000, "").as_bytes()).await.unwrap();
    stream.write_all(b"{\"inputs\": \"").await.unwrap();
    let started = Instant::now();
    // A byte every 200 ms, as a slowloris client would, until the server answers.
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(10) {
        let _ = stream.write_all(b"a").await;
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        if raw.windows(4).any(|w| w == b"\r\n\r\n") && raw.ends_with(b"}") {
            break;
        }
    }
    let took = started.elapsed();
    assert_eq!(status_of(&raw), 408, "{}", String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("--body-timeout"));
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_get_503_and_health_answers_once_they_go() {
    let s = start(ServeConfig {
        limits: Limits {
            max_connections: Some(4),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    // Four connections that send half a request head and stall.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        c.write_all(b"POST /embed HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .unwrap();
        held.push(c);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let over = get(s.addr, "/health").await;
    assert_eq!(over.status, 503, "{}", over.text());
    assert!(over.text().contains("--max-connections"), "{}", over.text());
    assert_eq!(over.headers.get("retry-after").map(String::as_str), Some("1"));
    // Their slots come back as the server sees them close (each connection's task ends).
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(s.addr, "/health").await.status != 200 {
        assert!(Instant::now() < deadline, "slots were not released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_an_unfinished_body() {
    let s = start(config()).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream.write_all(head("/embed", 1000, "").as_bytes()).await.unwrap();
    stream.write_all(b"{\"inputs\": \"never fin").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), s.shutdown())
        .await
        .expect("shutdown waited on a client that is not sending")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let raw = read_all(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(status_of(&raw), 503, "{}", String::from_utf8_lossy(&raw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_continue_past_the_body_limit_gets_413_not_100() {
    let s = start(config()).await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(head("/v1/embeddings", 100_000_000_000, "Expect: 100-continue\r\n").as_bytes())
        .await
        .unwrap();
    let raw = read_all(&mut stream, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.contains("--max-body-bytes"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_not_objects_and_foreign_hosts_are_refused() {
    let s = start(config()).await;
    for body in [&b"[\"a\", null]"[..], b"\"a\"", b"5"] {
        let r = send(
            s.addr,
            "POST",
            "/v1/embeddings",
            &[("Content-Type", "application/json")],
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("must be a JSON object"), "{}", r.text());
    }
    // The test client sends `Host: 127.0.0.1:PORT`; a rebinding page sends its own name.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let body = json!({"input": "x"}).to_string();
    let request = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: evil.example:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        s.addr.port(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let raw = read_all(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status_of(&raw), 421, "{}", String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("evil.example"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_shapes_cannot_multiply_their_cost() {
    let s = start(config()).await;
    // `{"input": [ITEM, ITEM, …, LAST]}` with a million ITEMs, sent as it is.
    let addr = s.addr;
    let repeated = |item: &str, last: &str| {
        let body = format!("{{\"input\": [{}{last}]}}", item.repeat(1_000_000));
        async move {
            send(
                addr,
                "POST",
                "/v1/embeddings",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            )
            .await
        }
    };
    // A million empty token arrays in 3 MB: counted, not kept.
    let r = repeated("[],", "[]").await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("1000001 items"), "{}", r.text());
    // A flat array of ids is one input, however long: truncated to the context like a text.
    let r = repeated("9,", "9").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["usage"]["prompt_tokens"], 2048);
    // A 64 kB prompt in front of 2,048 short inputs is 128 MB of text: refused before the
    // tokenizer sees any of it.
    let inputs: Vec<String> = (0..2048).map(|i| format!("t{i}")).collect();
    let started = Instant::now();
    let r = post(
        s.addr,
        "/v1/embeddings",
        &json!({"input": inputs, "prompt": "p ".repeat(32 << 10)}),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("with the prompt in front"), "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    // /tokenize answers ~40 bytes a token: bounded like an embedding's tokens.
    let small = start(ServeConfig {
        limits: Limits {
            max_queue_tokens: 4096,
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let r = post(
        small.addr,
        "/tokenize",
        &json!({"inputs": vec!["word ".repeat(1000); 5]}),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.text().contains("--max-queue-tokens"), "{}", r.text());
    // One text past the library's 4 MiB: 400 naming it, not minutes in the tokenizer.
    let r = post(
        s.addr,
        "/v1/embeddings",
        &json!({"input": ["fine", "word ".repeat(1 << 20)]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("text 1 has"), "{}", r.text());
    // Token ids read straight into u32: ids past it name their place.
    let r = post(s.addr, "/embed", &json!({"inputs": [[2, 5], [2, 4294967296u64]]})).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("inputs[1][1]"), "{}", r.text());
    // And a valid request still gets the library's vectors.
    let v = vectors(&post(s.addr, "/v1/embeddings", &json!({"input": ["still fine"]})).await);
    assert_eq!(v[0], alone("still fine", None, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_budget_below_the_context_is_refused_at_bind() {
    let config = ServeConfig {
        limits: Limits {
            max_batch_tokens: 512,
            ..Limits::default()
        },
        ..config()
    };
    let e = Server::bind(model(), config, "127.0.0.1:0".parse().unwrap())
        .await
        .err()
        .expect("refused");
    assert!(e.to_string().contains("below the model's context of 2048"), "{e}");
}

/// The request timeout covers tokenizing, not only the model: 14 MB of text (2,048 texts of
/// 5,000 bytes, about a second of tokenizing) with a 0.2 s timeout is a 503 at 0.2 s, where it
/// used to tokenize to the end and then be refused for its 2 M tokens (413).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeout_stops_tokenizing() {
    let s = start(ServeConfig {
        limits: Limits {
            request_timeout: Duration::from_millis(200),
            ..Limits::default()
        },
        ..config()
    })
    .await;
    let words = ["the", "world", "rain", "photosynthesis", "über", "naïve", "data"];
    let text: String = (0..1000).map(|i| words[i * 5 % 7]).collect::<Vec<_>>().join(" ");
    let texts: Vec<&str> = (0..2048).map(|_| &text[..5000]).collect();
    let started = Instant::now();
    let r = post(s.addr, "/v1/embeddings", &json!({ "input": texts })).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("--request-timeout"), "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(3));
}
