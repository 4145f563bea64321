//! Accepting connections: HTTP/1.1 through hyper, a cap on open connections, graceful
//! shutdown, and a watch on each socket for a client that hangs up while its request waits.
//!
//! hyper notices a closed peer only when it next reads or writes, which for a request waiting
//! on the model is after the work is done. A second handle on the socket waits for it to
//! become readable and peeks. End-of-file alone does not mean the client is gone: a client may
//! shut down only its sending side (`shutdown(SHUT_WR)`) and still read the answer. So on
//! end-of-file the request's handler, which knows nothing has been written yet, sends an
//! interim `HTTP/1.1 100 Continue` (every HTTP/1.1 client must accept and skip unexpected 1xx
//! responses): a half-closed client takes it, a closed socket answers it with a reset, which
//! the watcher reads as the socket's error — then [`ClientGone`] fires and the handler drops
//! its queued texts and stops its tokenization.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, Semaphore};

/// What the watcher knows about the client's side of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Peer {
    Open,
    /// End-of-file: half-closed, or gone without a reset yet.
    Eof,
    /// Reset or failed: nobody will read an answer.
    Gone,
}

/// Fires when the request's client has closed its connection.
#[derive(Clone, Debug)]
pub struct ClientGone {
    state: watch::Receiver<Peer>,
    socket: Option<Arc<TcpStream>>,
    /// The request is HTTP/1.1, whose clients accept an unexpected 1xx.
    pub(crate) may_probe: bool,
}

impl ClientGone {
    /// Resolves once the client is gone (never, if it stays). Call only while no byte of the
    /// response has been written: on end-of-file it writes the interim probe.
    pub async fn wait(mut self) {
        if self.state.wait_for(|p| *p != Peer::Open).await.is_err() {
            // The watcher ended without seeing a hang-up: the connection finished normally.
            return std::future::pending().await;
        }
        if *self.state.borrow() == Peer::Gone || !self.may_probe {
            return;
        }
        let Some(socket) = self.socket.take() else { return };
        let probe = b"HTTP/1.1 100 Continue\r\n\r\n";
        // An empty send buffer always takes 25 bytes; a failed write means the peer is gone.
        if !matches!(socket.try_write(probe), Ok(n) if n == probe.len()) {
            return;
        }
        if self.state.wait_for(|p| *p == Peer::Gone).await.is_err() {
            std::future::pending().await
        }
    }
}

/// Connections open at once, and what one past the cap gets.
pub struct Admission {
    pub max_connections: usize,
    /// How long a connection may take to send its request head.
    pub header_timeout: Duration,
}

/// Serve `app` on `listener` until `shutdown`, then let in-flight connections finish (a
/// request still sending its body is answered 503 at once: see `body.rs`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    admission: Admission,
    stopping: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(admission.max_connections));
    let refusals = Arc::new(Semaphore::new(REFUSALS));
    let mut shutdown = std::pin::pin!(shutdown);
    let mut accept_errors = Throttled::default();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin, and log once a
                    // second with a count rather than every time.
                    accept_errors.warn(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            // Past the cap: a short answer, from a bounded number of refusals at once (each
            // holds its fd for at most 250 ms); past those, the connection is closed unanswered
            // rather than let a flood take the descriptors the served connections need.
            if let Ok(refusal) = Arc::clone(&refusals).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse_over_cap(stream, admission.max_connections).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (peer_tx, peer_rx) = watch::channel(Peer::Open);
        let finished = Arc::new(Notify::new());
        let socket = second_handle(&stream).map(Arc::new);
        if let Some(peer) = &socket {
            tokio::spawn(watch_peer(Arc::clone(peer), peer_tx, Arc::clone(&finished)));
        }
        let gone = ClientGone {
            state: peer_rx,
            socket,
            may_probe: false,
        };
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(gone)));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(admission.header_timeout)
            // A client that shuts down its sending side after the request still gets the
            // answer (hyper would otherwise close the connection at end-of-file).
            .half_close(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            finished.notify_one();
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// Refusals past the connection cap being written at once.
pub const REFUSALS: usize = 32;

/// One past the cap: a 503 with a JSON body and `Connection: close`, written without reading
/// the request (its fd is released once the answer is out and the client closed, or after
/// 250 ms).
async fn refuse_over_cap(mut stream: TcpStream, cap: usize) {
    let body = format!(
        "{{\"error\":\"the server has {cap} connections open, its limit (--max-connections); retry later\",\"error_type\":\"too_many_connections\"}}"
    );
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_millis(250), async {
        let _ = stream.write_all(reply.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Closing with the request unread would reset the connection, and the client could
        // lose the answer: read what it sent (up to 64 kB) until it closes too.
        let mut sink = [0u8; 4096];
        let mut read = 0;
        while read < 64 << 10 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}

/// A warning that repeats at most once a second, with how many were held back.
#[derive(Default)]
struct Throttled {
    last: Option<Instant>,
    held: u64,
}

impl Throttled {
    fn warn(&mut self, e: &std::io::Error) {
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            self.held += 1;
            return;
        }
        tracing::warn!(error = %e, repeated = self.held, "accept failed");
        self.last = Some(Instant::now());
        self.held = 0;
    }
}

#[cfg(unix)]
fn second_handle(stream: &TcpStream) -> Option<TcpStream> {
    use std::os::fd::AsFd;
    let fd = stream.as_fd().try_clone_to_owned().ok()?;
    let std = std::net::TcpStream::from(fd);
    std.set_nonblocking(true).ok()?;
    TcpStream::from_std(std).ok()
}

#[cfg(not(unix))]
fn second_handle(_stream: &TcpStream) -> Option<TcpStream> {
    None
}

async fn watch_peer(peer: Arc<TcpStream>, state: watch::Sender<Peer>, finished: Arc<Notify>) {
    let mut byte = [0u8; 1];
    loop {
        tokio::select! {
            () = finished.notified() => return,
            peeked = peer.peek(&mut byte) => match peeked {
                Ok(0) => {
                    // Readable at end-of-file from now on: look for a reset (the socket's
                    // error) every 50 ms instead.
                    state.send_if_modified(|p| std::mem::replace(p, Peer::Eof) == Peer::Open);
                    if !matches!(peer.take_error(), Ok(None)) {
                        let _ = state.send(Peer::Gone);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => {
                    let _ = state.send(Peer::Gone);
                    return;
                }
                // The next request is already there (keep-alive, pipelining): hyper reads it;
                // look again later rather than spin on unread data.
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    }
}
