//! A bounded soak of `gemma-graph serve` (the release binary, its own process, the real
//! model): valid load at 1, 8 and 32 clients with hostile clients interleaved the whole time —
//! slow bodies, 12 MB token arrays, bad JSON, clients that hang up mid-request or half-close
//! their socket. Every valid answer must be the CLI's vector bit for bit, or a documented
//! 429/503; the server's RSS and open file descriptors must come back to where they were.
//! The figures are printed (and quoted in docs/security.md).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gemma-graph"))
}

fn queries() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/queries.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .take(24)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The CLI's vectors for `texts` (`run --format npy`), as f32 bits.
fn cli_vectors(texts: &[String]) -> Vec<Vec<u32>> {
    let out = bin()
        .arg("run")
        .args(texts)
        .args(["--format", "npy", "--quiet"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (rows, dim, values) = gemma_graph::npy::parse(&out.stdout).unwrap();
    assert_eq!(rows, texts.len());
    values
        .chunks_exact(dim)
        .map(|r| r.iter().map(|x| x.to_bits()).collect())
        .collect()
}

struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Served {
    let mut child = bin()
        .args(["serve", "--port", "0", "--max-connections", "96", "--body-timeout", "3"])
        .args(["--max-queue-tokens", "32768", "--request-timeout", "60"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log's `serving address=…` line names the port; the rest of stderr is drained so the
    // server never blocks on a full pipe.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        use std::io::BufRead;
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "serve exited before listening"
        );
        if let Some(at) = line.find("address=") {
            break line[at + 8..].split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let served = Served { child, addr };
    let started = Instant::now();
    while request(served.addr, "GET", "/health", b"").0 != 200 {
        assert!(started.elapsed() < Duration::from_secs(120), "not healthy");
        std::thread::sleep(Duration::from_millis(200));
    }
    served
}

/// One request on its own connection: (status, body); status 0 if the connection failed.
fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, Vec::new());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse(&raw)
}

fn parse(raw: &[u8]) -> (u16, Vec<u8>) {
    let mut rest = raw;
    // Skip interim 1xx answers (the hang-up probe's `100 Continue`).
    while rest.starts_with(b"HTTP/1.1 1") {
        match rest.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => rest = &rest[end + 4..],
            None => return (0, Vec::new()),
        }
    }
    let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, Vec::new());
    };
    let status = rest
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, rest[end + 4..].to_vec())
}

fn proc_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb << 10
}

fn proc_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

#[derive(Default)]
struct Tally {
    ok: usize,
    busy: usize,
    latencies: Vec<f64>,
    wrong: Vec<String>,
    hostile: std::collections::BTreeMap<String, usize>,
}

/// Hostile clients, one after another until `stop`.
fn hostile(addr: SocketAddr, stop: &AtomicBool, tally: &Mutex<Tally>) {
    let mut round = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (kind, status) = match round % 5 {
            0 => {
                // A slow body: a byte every 100 ms, never finished (408 after --body-timeout).
                let mut s = TcpStream::connect(addr).unwrap();
                let _ = s.write_all(
                    b"POST /embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"inputs\": \"",
                );
                let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
                let mut raw = Vec::new();
                let mut buf = [0u8; 1024];
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(10) {
                    let _ = s.write_all(b"a");
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => raw.extend_from_slice(&buf[..n]),
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
                ("slow body", parse(&raw).0)
            }
            1 => {
                // 12 MB: one array of six million token ids (truncated to the context).
                let mut body = String::with_capacity(12 << 20);
                body.push_str("{\"input\": [");
                for _ in 0..6_000_000 {
                    body.push_str("9,");
                }
                body.push_str("9]}");
                (
                    "12 MB token array",
                    request(addr, "POST", "/v1/embeddings", body.as_bytes()).0,
                )
            }
            2 => (
                "bad JSON",
                request(addr, "POST", "/v1/embeddings", b"{\"input\": [\"a\",").0,
            ),
            3 => {
                // Hang up right after the request.
                let mut s = TcpStream::connect(addr).unwrap();
                let body = br#"{"input": ["a hang-up", "b", "c"]}"#;
                let _ = s.write_all(format!("POST /v1/embeddings HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                let _ = s.write_all(body);
                drop(s);
                ("hang-up", 0)
            }
            _ => {
                // Half-close after the request: the answer must still come.
                let mut s = TcpStream::connect(addr).unwrap();
                let body = br#"{"inputs": "half closed"}"#;
                let _ = s.write_all(format!("POST /embed HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                let _ = s.write_all(body);
                let _ = s.shutdown(Shutdown::Write);
                let _ = s.set_read_timeout(Some(Duration::from_secs(120)));
                let mut raw = Vec::new();
                let _ = s.read_to_end(&mut raw);
                ("half-close", parse(&raw).0)
            }
        };
        *tally
            .lock()
            .unwrap()
            .hostile
            .entry(format!("{kind} → {status}"))
            .or_default() += 1;
        round += 1;
    }
}

#[test]
fn soak_valid_load_with_hostile_clients_interleaved() {
    let texts = queries();
    let expected = cli_vectors(&texts);
    let server = serve();
    let (addr, pid) = (server.addr, server.child.id());
    // Warm the allocator and the queue with one pass of every text before the baseline.
    for t in &texts {
        assert_eq!(
            request(
                addr,
                "POST",
                "/v1/embeddings",
                serde_json::json!({"input": t}).to_string().as_bytes()
            )
            .0,
            200
        );
    }
    let (rss0, fds0) = (proc_rss(pid), proc_fds(pid));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut peak_rss = rss0;
    let mut report = Vec::new();
    for (level, seconds) in [(1usize, 15u64), (8, 20), (32, 20)] {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for c in 0..level {
            let (stop, tally, texts, expected) =
                (Arc::clone(&stop), Arc::clone(&tally), texts.clone(), expected.clone());
            threads.push(std::thread::spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    let k = i % texts.len();
                    let body = serde_json::json!({"input": [texts[k]]}).to_string();
                    let started = Instant::now();
                    let (status, reply) = request(addr, "POST", "/v1/embeddings", body.as_bytes());
                    let took = started.elapsed().as_secs_f64();
                    let mut t = tally.lock().unwrap();
                    match status {
                        200 => {
                            let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
                            let bits: Vec<u32> = v["data"][0]["embedding"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|x| (x.as_f64().unwrap() as f32).to_bits())
                                .collect();
                            if bits == expected[k] {
                                t.ok += 1;
                                t.latencies.push(took);
                            } else {
                                t.wrong.push(format!("text {k}: a different vector"));
                            }
                        }
                        429 | 503 => t.busy += 1,
                        s => t
                            .wrong
                            .push(format!("text {k}: status {s}: {}", String::from_utf8_lossy(&reply))),
                    }
                    i += 1;
                }
            }));
        }
        {
            let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
            threads.push(std::thread::spawn(move || hostile(addr, &stop, &tally)));
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_millis(250));
            peak_rss = peak_rss.max(proc_rss(pid));
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
        let mut t = tally.lock().unwrap();
        t.latencies.sort_by(f64::total_cmp);
        let p99 = t.latencies.get(t.latencies.len() * 99 / 100).copied().unwrap_or(0.0);
        report.push(format!(
            "{level} clients: {} ok, {} busy (429/503), p99 {:.0} ms",
            t.ok,
            t.busy,
            p99 * 1e3
        ));
        t.latencies.clear();
        t.ok = 0;
        t.busy = 0;
    }
    // Let the last hostile requests time out, then measure again.
    std::thread::sleep(Duration::from_secs(4));
    let (rss1, fds1) = (proc_rss(pid), proc_fds(pid));
    let t = tally.lock().unwrap();
    eprintln!("soak: {}", report.join("; "));
    eprintln!("soak: hostile requests by answer: {:?}", t.hostile);
    eprintln!(
        "soak: RSS {:.1} MiB after warm-up, {:.1} MiB peak, {:.1} MiB after; fds {fds0} → {fds1}",
        rss0 as f64 / (1 << 20) as f64,
        peak_rss as f64 / (1 << 20) as f64,
        rss1 as f64 / (1 << 20) as f64
    );
    assert!(t.wrong.is_empty(), "{:?}", &t.wrong[..t.wrong.len().min(5)]);
    for (kind, n) in &t.hostile {
        let status: u16 = kind.rsplit(' ').next().unwrap().parse().unwrap();
        let allowed = match kind.split(" → ").next().unwrap() {
            "slow body" => [408].as_slice(),
            "12 MB token array" => &[200, 429, 503],
            "bad JSON" => &[400],
            "hang-up" => &[0],
            _ => &[200, 429, 503],
        };
        assert!(allowed.contains(&status), "{kind}: {n} times");
    }
    // Back to where it was: within 64 MiB of RSS (allocator arenas keep some freed pages)
    // and 4 file descriptors.
    assert!(rss1 < rss0 + (64 << 20), "RSS {rss0} → {rss1} bytes");
    assert!(fds1 <= fds0 + 4, "fds {fds0} → {fds1}");
}
