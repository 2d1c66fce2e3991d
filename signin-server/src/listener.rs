//! The HTTP listener: accepts TCP connections and serves HTTP/1.1 on them under the server's
//! connection limits, so that silent, slow or numerous clients cost a bounded number of file
//! descriptors and tasks instead of taking the server down (issue 20, finding 1).
//!
//! - **Header-read timeout**: a connection that has not sent a whole request head this long after
//!   it opened, or after its previous response (keep-alive idle), is closed. This covers silent
//!   connections and slowloris (hyper's `header_read_timeout`, which needs a timer; `axum::serve`
//!   sets none, so it had no timeout at all).
//! - **Idle timeout**: a request body that stops arriving, or a response the client stops reading,
//!   for this long ends the connection. A long-poll that is waiting for news is not idle.
//! - **Connection caps**: in total and per client address (trusted proxies are exempt from the
//!   per-address cap: every user behind them shares their address). A connection beyond a cap is
//!   answered `503`/`429` with `Retry-After` and closed at once, before it costs a task.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a proxy in front terminates.
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use authenticator_protocol::wire::{ErrorBody, ErrorCode};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, Sleep};
use tower::ServiceExt;

/// What one server instance allows its clients (`[limits]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A request head must arrive within this time of the connection opening or going idle.
    pub header_read_timeout: Duration,
    /// A request body or a response write that makes no progress this long ends the connection.
    pub idle_timeout: Duration,
    /// Open connections in total.
    pub max_connections: usize,
    /// Open connections from one client address (trusted proxies exempt).
    pub max_connections_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_address: 256,
        }
    }
}

/// Why a connection was turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The server holds `max_connections`.
    Full,
    /// The client's address holds `max_connections_per_address`.
    AddressFull,
}

impl Refusal {
    /// A whole HTTP/1.1 response in the API's error shape (PROTOCOL.md §8): the client learns
    /// why and when to retry, not just a reset.
    fn response(self) -> Vec<u8> {
        let (status, error, message) = match self {
            Refusal::Full => (
                "503 Service Unavailable",
                ErrorCode::ServerBusy,
                "the server has too many open connections: try again later",
            ),
            Refusal::AddressFull => (
                "429 Too Many Requests",
                ErrorCode::RateLimited,
                "too many open connections from your address: try again later",
            ),
        };
        let body = serde_json::to_vec(&ErrorBody {
            error,
            message: message.to_owned(),
            attempts_left: None,
        })
        .unwrap_or_default();
        let mut out = format!(
            "HTTP/1.1 {status}\r\nretry-after: 1\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        out.extend(body);
        out
    }
}

/// The open connections: a permit each from the total, a count per address.
struct Admission {
    limits: ConnectionLimits,
    total: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    exempt: Vec<IpNet>,
}

/// Held by a connection's task; gives its place back when the connection ends.
struct Slot {
    admission: Arc<Admission>,
    address: Option<IpAddr>,
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let permit = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Full)?;
        // `::ffff:192.0.2.1` on a dual-stack socket is the IPv4 client 192.0.2.1: one count.
        let peer = peer.to_canonical();
        let address = if self.exempt.iter().any(|net| net.contains(&peer)) {
            None
        } else {
            let mut map = self.per_address.lock().unwrap_or_else(|p| p.into_inner());
            let count = map.entry(peer).or_default();
            if *count >= self.limits.max_connections_per_address {
                return Err(Refusal::AddressFull);
            }
            *count += 1;
            Some(peer)
        };
        Ok(Slot {
            admission: self.clone(),
            address,
            _permit: permit,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(address) = self.address {
            let mut map = self
                .admission
                .per_address
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(count) = map.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&address);
                }
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the open connections to finish their requests (idle ones close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    exempt: Vec<IpNet>,
    shutdown: impl Future<Output = ()>,
) {
    let admission = Arc::new(Admission {
        limits,
        total: Arc::new(Semaphore::new(limits.max_connections.max(1))),
        per_address: Mutex::default(),
        exempt,
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                tokio::spawn(refuse(stream, refusal));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(WriteStallTimeout::new(stream, limits.idle_timeout));
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let req = req.map(|body| {
                axum::body::Body::new(tower_http::timeout::TimeoutBody::new(
                    limits.idle_timeout,
                    body,
                ))
            });
            router.clone().oneshot(req)
        });
        // Registered with the shutdown here, before the task runs: `shutdown` waits for it.
        let watcher = graceful.watcher();
        let builder = Arc::clone(&builder);
        // The connection is made inside the task and awaited at once: a connection made
        // outside and moved in would be stored twice in the task, once as what the task
        // captured and once as what it awaits (about 0.9 KiB more for every open connection,
        // issue 24).
        let task = async move {
            let _slot = slot;
            // Errors here are the client's (reset, timeout, bad request): nothing to log.
            let _ = watcher.watch(builder.serve_connection(io, service)).await;
        };
        tokio::spawn(task);
    }
    drop(listener);
    graceful.shutdown().await;
}

/// An accept error: per-connection ones (the client already left) are skipped; running out of
/// descriptors or memory is logged and waited out, as a flood passes.
async fn accept_failed(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(error = %e, "accept failed; pausing");
    sleep(Duration::from_millis(100)).await;
}

async fn refuse(mut stream: TcpStream, refusal: Refusal) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&refusal.response()).await?;
        stream.shutdown().await
    })
    .await;
}

/// A socket whose writes fail with `TimedOut` once one has been pending for `limit`: a client that
/// stops reading its response cannot hold the connection open forever.
struct WriteStallTimeout {
    inner: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteStallTimeout {
    fn new(inner: TcpStream, limit: Duration) -> Self {
        WriteStallTimeout {
            inner,
            limit,
            stalled: None,
        }
    }

    /// Passes on a write's outcome; a `Pending` starts (or checks) the stall timer.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match poll {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let limit = self.limit;
                let timer = self.stalled.get_or_insert_with(|| Box::pin(sleep(limit)));
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
        }
    }
}

impl AsyncRead for WriteStallTimeout {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteStallTimeout {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises this process's open-file limit to its hard limit (the soft default, often 1,024, is
/// below the default connection cap) and lowers `max_connections` to what the limit allows,
/// keeping room for the database, push clients and logs.
pub fn fit_to_descriptor_limit(limits: &mut ConnectionLimits) {
    const RESERVED: u64 = 128;
    let available = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the open-file limit");
            return;
        }
    };
    let room = usize::try_from(available.saturating_sub(RESERVED).max(1)).unwrap_or(usize::MAX);
    if limits.max_connections > room {
        tracing::warn!(
            configured = limits.max_connections,
            open_file_limit = available,
            max_connections = room,
            "the open-file limit is below max_connections; lowering it"
        );
        limits.max_connections = room;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_address_cap_counts_open_connections_and_exempts_trusted_proxies() {
        let admission = Arc::new(Admission {
            limits: ConnectionLimits {
                max_connections: 10,
                max_connections_per_address: 2,
                ..ConnectionLimits::default()
            },
            total: Arc::new(Semaphore::new(10)),
            per_address: Mutex::default(),
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
        });
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let a = admission.admit(client).unwrap();
        let _b = admission.admit(client).unwrap();
        assert_eq!(admission.admit(client).err(), Some(Refusal::AddressFull));
        drop(a);
        let _c = admission
            .admit(client)
            .expect("a closed connection frees its place");
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let proxied: Vec<Slot> = (0..5).map(|_| admission.admit(proxy).unwrap()).collect();
        assert_eq!(proxied.len(), 5);
        // 2 + 5 open; the total cap (10) still applies to everyone.
        let _more: Vec<Slot> = (0..3).map(|_| admission.admit(proxy).unwrap()).collect();
        assert_eq!(admission.admit(proxy).err(), Some(Refusal::Full));
        assert!(admission.per_address.lock().unwrap().get(&proxy).is_none());
    }

    #[test]
    fn refusal_responses_carry_their_content_length() {
        for refusal in [Refusal::Full, Refusal::AddressFull] {
            let bytes = refusal.response();
            let text = std::str::from_utf8(&bytes).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("content-length: {}", body.len())),
                "{head}"
            );
            assert!(head.contains("retry-after: 1"));
            serde_json::from_str::<serde_json::Value>(body).unwrap();
        }
    }
}
