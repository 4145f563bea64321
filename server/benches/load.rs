//! A bounded loopback load generator for any OpenAI-compatible embeddings server (ours, or
//! llama.cpp's `llama-server --embeddings`): N clients, each on its own keep-alive connection,
//! send one text per request from a workload file for a fixed time; prints throughput and
//! latency percentiles, with 429s and errors counted apart.
//!
//!     cargo bench -p gg-server --bench load -- --url http://127.0.0.1:8080 \
//!         --input ../shared/bench/queries.jsonl --concurrency 1,8,64 --seconds 20
//!
//! `--grpc HOST:PORT` sends TEI's gRPC `Embed` instead (our `serve --grpc-port`), each client
//! on its own HTTP/2 connection; `--distinct N` draws from the first N texts only, so texts
//! repeat (what `serve --cache-entries` is for).
//!
//! Output: one JSON line per concurrency level (for scripts), and a table on stderr.

#[allow(clippy::all, dead_code)]
mod pb {
    tonic::include_proto!("tei.v1");
}

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Args {
    url: String,
    input: String,
    concurrency: Vec<usize>,
    seconds: f64,
    model: String,
    api_key: Option<String>,
    grpc: Option<String>,
    distinct: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        url: "http://127.0.0.1:8080".into(),
        input: "../shared/bench/queries.jsonl".into(),
        concurrency: vec![1, 8, 64],
        seconds: 20.0,
        model: "embeddinggemma".into(),
        api_key: None,
        grpc: None,
        distinct: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value()?,
            "--input" => args.input = value()?,
            "--model" => args.model = value()?,
            "--api-key" => args.api_key = Some(value()?),
            "--grpc" => args.grpc = Some(value()?),
            "--distinct" => args.distinct = Some(value()?.parse().map_err(|e| format!("--distinct: {e}"))?),
            "--seconds" => args.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--concurrency" => {
                args.concurrency = value()?
                    .split(',')
                    .map(|c| c.trim().parse().map_err(|e| format!("--concurrency {c:?}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            // cargo bench passes --bench; ignore it and other harness flags.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.concurrency.iter().any(|&c| c == 0 || c > 1024) {
        return Err("--concurrency values must be between 1 and 1024".into());
    }
    Ok(args)
}

/// `host:port` and path prefix of an `http://` URL.
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs"))?;
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    Ok((host.to_string(), format!("/{path}").trim_end_matches('/').to_string()))
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    tokens: AtomicU64,
    busy: AtomicU64,
    errors: AtomicU64,
}

/// What one request got back.
struct Reply {
    status: u16,
    /// `usage.prompt_tokens` (0 when absent).
    tokens: u64,
    /// The server said `Connection: close` (llama-server does after 100 requests on one
    /// connection): reconnect, this is not an error.
    close: bool,
}

/// One request on a keep-alive connection.
async fn request(conn: &mut BufReader<TcpStream>, head: &str, body: &[u8]) -> std::io::Result<Reply> {
    conn.get_mut().write_all(head.as_bytes()).await?;
    conn.get_mut().write_all(body).await?;
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status = line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            } else if k.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    let mut response = vec![0u8; length];
    conn.read_exact(&mut response).await?;
    Ok(Reply {
        status,
        tokens: prompt_tokens(&response),
        close,
    })
}

/// The number after `"prompt_tokens":` in a response body (both servers put it in `usage`).
fn prompt_tokens(body: &[u8]) -> u64 {
    const KEY: &[u8] = b"\"prompt_tokens\":";
    let Some(at) = body.windows(KEY.len()).rposition(|w| w == KEY) else {
        return 0;
    };
    body[at + KEY.len()..]
        .iter()
        .skip_while(|b| b.is_ascii_whitespace())
        .take_while(|b| b.is_ascii_digit())
        .fold(0, |n, &d| n * 10 + u64::from(d - b'0'))
}

/// One gRPC client: `Embed` calls on its own connection until `stop`; latencies of the answers.
async fn grpc_client(
    addr: String,
    key: Option<String>,
    texts: Arc<Vec<String>>,
    next: Arc<AtomicU64>,
    counts: Arc<Counts>,
    stop: Instant,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    let mut client = loop {
        match pb::embed_client::EmbedClient::connect(format!("http://{addr}")).await {
            Ok(c) => break c,
            Err(_) if Instant::now() < stop => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => return latencies,
        }
    };
    while Instant::now() < stop {
        let i = next.fetch_add(1, Ordering::Relaxed) as usize % texts.len();
        let mut request = tonic::Request::new(pb::EmbedRequest {
            inputs: texts[i].clone(),
            normalize: true,
            ..Default::default()
        });
        if let Some(k) = &key {
            if let Ok(v) = format!("Bearer {k}").parse() {
                request.metadata_mut().insert("authorization", v);
            }
        }
        let started = Instant::now();
        match client.embed(request).await {
            Ok(r) => {
                latencies.push(started.elapsed().as_secs_f64());
                counts.ok.fetch_add(1, Ordering::Relaxed);
                let tokens = r.get_ref().metadata.as_ref().map_or(0, |m| m.compute_tokens);
                counts.tokens.fetch_add(u64::from(tokens), Ordering::Relaxed);
            }
            Err(s) if s.code() == tonic::Code::ResourceExhausted => {
                counts.busy.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    latencies
}

async fn level(args: &Args, texts: &Arc<Vec<String>>, clients: usize) -> serde_json::Value {
    let (host, prefix) = split_url(&args.url).expect("url");
    let counts = Arc::new(Counts::default());
    let stop = Instant::now() + Duration::from_secs_f64(args.seconds);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        if let Some(addr) = &args.grpc {
            let (texts, counts, next) = (Arc::clone(texts), Arc::clone(&counts), Arc::clone(&next));
            tasks.push(tokio::spawn(grpc_client(
                addr.clone(),
                args.api_key.clone(),
                texts,
                next,
                counts,
                stop,
            )));
            continue;
        }
        let (host, prefix, texts, counts, next) = (
            host.clone(),
            prefix.clone(),
            Arc::clone(texts),
            Arc::clone(&counts),
            Arc::clone(&next),
        );
        let (model, key) = (args.model.clone(), args.api_key.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut conn = None;
            while Instant::now() < stop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % texts.len();
                let body = serde_json::json!({"model": model, "input": texts[i]}).to_string();
                let auth = key.as_ref().map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
                let head = format!(
                    "POST {prefix}/v1/embeddings HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n",
                    body.len()
                );
                if conn.is_none() {
                    match TcpStream::connect(&host).await {
                        Ok(s) => conn = Some(BufReader::new(s)),
                        Err(_) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    }
                }
                let started = Instant::now();
                let reply = request(conn.as_mut().unwrap(), &head, body.as_bytes()).await;
                if reply.as_ref().map_or(true, |r| r.close) {
                    conn = None;
                }
                match reply {
                    Ok(Reply { status: 200, tokens, .. }) => {
                        latencies.push(started.elapsed().as_secs_f64());
                        counts.ok.fetch_add(1, Ordering::Relaxed);
                        counts.tokens.fetch_add(tokens, Ordering::Relaxed);
                    }
                    Ok(Reply { status: 429, .. }) => {
                        counts.busy.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(_) | Err(_) => {
                        counts.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap_or_default());
    }
    let wall = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() - 1) as f64 * p).round() as usize] * 1e3
        }
    };
    let ok = counts.ok.load(Ordering::Relaxed);
    let tokens = counts.tokens.load(Ordering::Relaxed);
    let url = args.grpc.as_ref().map_or(args.url.clone(), |g| format!("grpc://{g}"));
    serde_json::json!({
        "url": url, "input": args.input, "distinct": texts.len(), "concurrency": clients, "seconds": wall,
        "texts": ok, "texts_per_s": ok as f64 / wall, "tokens_per_s": tokens as f64 / wall,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99),
        "status_429": counts.busy.load(Ordering::Relaxed), "errors": counts.errors.load(Ordering::Relaxed),
    })
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let texts: Vec<String> = std::fs::read_to_string(&args.input)
        .unwrap_or_else(|e| panic!("{}: {e}", args.input))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSONL");
            v["text"].as_str().expect("a text field").to_string()
        })
        .take(args.distinct.unwrap_or(usize::MAX))
        .collect();
    let texts = Arc::new(texts);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    eprintln!(
        "{:>11} {:>8} {:>9} {:>9} {:>9} {:>9} {:>6} {:>6}",
        "concurrency", "texts", "texts/s", "tokens/s", "p50 ms", "p99 ms", "429", "errors"
    );
    for &c in &args.concurrency {
        let r = runtime.block_on(level(&args, &texts, c));
        eprintln!(
            "{:>11} {:>8} {:>9.2} {:>9.0} {:>9.1} {:>9.1} {:>6} {:>6}",
            c,
            r["texts"].as_u64().unwrap_or(0),
            r["texts_per_s"].as_f64().unwrap_or(0.0),
            r["tokens_per_s"].as_f64().unwrap_or(0.0),
            r["p50_ms"].as_f64().unwrap_or(f64::NAN),
            r["p99_ms"].as_f64().unwrap_or(f64::NAN),
            r["status_429"],
            r["errors"]
        );
        println!("{r}");
    }
}
