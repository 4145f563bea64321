//! Accepting connections: HTTP/1.1 through hyper, graceful shutdown, and a watch on each
//! socket for a client that hangs up while its request is queued.
//!
//! hyper notices a closed peer only when it next reads or writes, which for a request waiting
//! on the model is after the work is done. A second handle on the socket waits for it to
//! become readable and peeks: end-of-file means the client is gone, and the request's
//! [`ClientGone`] fires, so its handler returns and drops its queued texts.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

/// Fires when the request's client has closed its connection.
#[derive(Clone, Debug)]
pub struct ClientGone(watch::Receiver<bool>);

impl ClientGone {
    /// Resolves once the client is gone (never, if it stays).
    pub async fn wait(mut self) {
        if self.0.wait_for(|gone| *gone).await.is_err() {
            // The watcher ended without seeing a hang-up: the connection finished normally.
            std::future::pending::<()>().await;
        }
    }
}

/// Serve `app` on `listener` until `shutdown`, then let in-flight connections finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (gone_tx, gone_rx) = watch::channel(false);
        let finished = Arc::new(Notify::new());
        if let Some(peer) = second_handle(&stream) {
            tokio::spawn(watch_peer(peer, gone_tx, Arc::clone(&finished)));
        }
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(ClientGone(gone_rx))));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            finished.notify_one();
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
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

async fn watch_peer(peer: TcpStream, gone: watch::Sender<bool>, finished: Arc<Notify>) {
    let mut byte = [0u8; 1];
    loop {
        tokio::select! {
            () = finished.notified() => return,
            peeked = peer.peek(&mut byte) => match peeked {
                Ok(0) | Err(_) => {
                    let _ = gone.send(true);
                    return;
                }
                // The next request is already there (keep-alive, pipelining): hyper reads it;
                // look again later rather than spin on unread data.
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    }
}
