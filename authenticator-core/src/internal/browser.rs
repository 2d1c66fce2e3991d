//! The browser listener and the browser check of an approval (PROTOCOL.md §5.9, the
//! phishing-resistant policy).
//!
//! A real-time phishing proxy relays the sign-in page, number included; number matching cannot
//! tell its page from the real one, because the phone never sees the page. This does: the
//! sign-in page posts its challenge to `http://127.0.0.1:<port>/v1/browser-binding`, and the
//! browser itself writes the page's origin in the `Origin` header — a relayed page's origin
//! is the relay's, and no script can change it. The listener records (challenge, origin); an
//! approval of a browser-bound request is signed only when the only origin seen for its
//! challenge is the one the server signed in the details, and it carries that origin in the
//! signed response, which the server checks again.
//!
//! Only the loopback interface is bound: the page and this Authenticator must be on the same
//! device. What the listener answers tells a page nothing but "seen" (no account, no state).
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use authenticator_protocol::encoding::unb64_fixed;
use authenticator_protocol::sign_in::{
    BrowserBinding, BROWSER_CHALLENGE_BYTES, BROWSER_LISTENER_PATH,
};
use authenticator_protocol::UnixMillis;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::store::Store;
use crate::error::{Error, Result};

/// Longest `Origin` header recorded (a real origin is far shorter).
const MAX_ORIGIN_LEN: usize = 256;
/// Largest body read: the challenge is 22 characters.
const MAX_BODY: usize = 64;
/// How long a connection may take to send a request's headers once it sends anything, and how
/// long it may sit idle between requests: a page sends its headers at once, and a local program
/// that opens connections and sends nothing does not keep them.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new connection may wait before the first byte of its first request, while the
/// browser asks its user. Chrome's Local Network Access (PROTOCOL.md §5.9) opens the connection
/// to the listener, then holds the page's request until the user answers the prompt "… wants to
/// access other apps and services on this device": the request arrives on that connection
/// seconds later, when the user clicks Allow. With only [`HEADER_READ_TIMEOUT`] (as before),
/// an Allow clicked after 5 s failed that request, and the page showed "has not seen" until
/// its retry. A user who reads the prompt answers within two minutes; one who takes longer
/// loses nothing but this first try (the page tries again as soon as the permission turns
/// granted).
///
/// Idle connections cannot hoard this wait: only [`PROMPT_WAITS`] connections may wait so long
/// at a time (taken at accept, in order, and given back at the first byte, at end of stream
/// or at the end of the wait); any other connection gets [`HEADER_READ_TIMEOUT`] from the
/// start, and once a connection has sent its first byte it is held to that timeout for good
/// (hyper's header timeout also runs while a kept-alive connection is idle). A local program
/// that fills the slots with silent connections leaves the listener as it was before this
/// wait existed: every page is still served, only a page behind a prompt answered after 5 s
/// needs its retry.
pub(crate) const PROMPT_WAIT: Duration = Duration::from_secs(120);
/// How many connections may wait [`PROMPT_WAIT`] at the same time: one per sign-in page with a
/// pending prompt (the page sends one request at a time), and a few pages open at once.
pub(crate) const PROMPT_WAITS: usize = 8;

/// The listener's timeouts (tests shorten them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub header_read: Duration,
    pub prompt_wait: Duration,
    pub prompt_waits: usize,
}

impl Timeouts {
    pub(crate) const DEFAULT: Timeouts = Timeouts {
        header_read: HEADER_READ_TIMEOUT,
        prompt_wait: PROMPT_WAIT,
        prompt_waits: PROMPT_WAITS,
    };
}

/// A running listener; stops when dropped.
pub(crate) struct BrowserListener {
    pub port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl BrowserListener {
    /// Stops serving and returns the task: its socket is closed once the task has ended, so
    /// await it before binding the same port again (`stopped`).
    pub fn stop(mut self) -> Option<tokio::task::JoinHandle<()>> {
        let task = self.task.take();
        if let Some(task) = &task {
            task.abort();
        }
        task
    }
}

impl Drop for BrowserListener {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Waits until a stopped listener's task has ended (its socket and connections closed).
pub(crate) async fn stopped(task: tokio::task::JoinHandle<()>) {
    // Aborted: the result is the cancellation, which is what was asked for.
    let _ = task.await;
}

/// Binds `127.0.0.1:port` (0: any free port) and serves sign-in pages until dropped.
pub(crate) async fn listen(store: Arc<Store>, port: u16) -> Result<BrowserListener> {
    listen_with(store, port, Timeouts::DEFAULT).await
}

pub(crate) async fn listen_with(
    store: Arc<Store>,
    port: u16,
    timeouts: Timeouts,
) -> Result<BrowserListener> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| Error::InvalidInput(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?
        .port();
    let prompt_waits = Arc::new(tokio::sync::Semaphore::new(timeouts.prompt_waits));
    let task = tokio::spawn(async move {
        // The connections live in this set, inside this task: stopping the listener (aborting
        // the task) closes the kept-alive ones too, so a stopped listener sees no more pages.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "browser listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Taken here, in the order connections arrive, not in the connection's task.
            let slot = prompt_waits.clone().try_acquire_owned().ok();
            let store = store.clone();
            connections.spawn(async move {
                if let Some(slot) = slot {
                    let sent = first_byte(&stream, timeouts.prompt_wait).await;
                    // Given back before a silent connection is closed.
                    drop(slot);
                    if !sent {
                        return;
                    }
                }
                let service = hyper::service::service_fn(move |req| {
                    let store = store.clone();
                    async move { Ok::<_, Infallible>(handle(&store, req).await) }
                });
                // A connection that breaks off is the page's business, not ours.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(timeouts.header_read)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    tracing::info!(port, "browser listener started");
    Ok(BrowserListener {
        port,
        task: Some(task),
    })
}

/// Waits up to `wait` for the first byte on a new connection ([`PROMPT_WAIT`]); false when
/// the connection ended, failed or sent nothing in time (then it is closed).
async fn first_byte(stream: &tokio::net::TcpStream, wait: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, stream.peek(&mut byte)).await,
        Ok(Ok(n)) if n > 0
    )
}

async fn handle(store: &Store, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if req.uri().path() != BROWSER_LISTENER_PATH {
        return reply(StatusCode::NOT_FOUND, None);
    }
    // Only a page (which always sends its origin) is served; `null` is an opaque origin
    // (a sandboxed frame, a file), which no sign-in page has.
    let Some(origin) = origin.filter(|o| plausible_origin(o)) else {
        return reply(StatusCode::FORBIDDEN, None);
    };
    match *req.method() {
        // A preflight: Chrome's Local Network Access sends none (the POST is a simple
        // request), its predecessor Private Network Access did; allow the one simple POST.
        Method::OPTIONS => reply(StatusCode::NO_CONTENT, Some(&origin)),
        Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(body) => body.to_bytes(),
                Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, Some(&origin)),
            };
            // The challenge exactly as the page sent it (§5.9): nothing trimmed.
            let Ok(challenge) = String::from_utf8(body.to_vec()) else {
                return reply(StatusCode::BAD_REQUEST, Some(&origin));
            };
            if unb64_fixed::<BROWSER_CHALLENGE_BYTES>("challenge", &challenge).is_err() {
                return reply(StatusCode::BAD_REQUEST, Some(&origin));
            }
            match store.record_browser_sighting(&challenge, &origin, UnixMillis::now()) {
                Ok(()) => {
                    tracing::debug!(origin = %origin, "sign-in page seen");
                    reply(StatusCode::NO_CONTENT, Some(&origin))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not record a sign-in page");
                    reply(StatusCode::INTERNAL_SERVER_ERROR, Some(&origin))
                }
            }
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, Some(&origin)),
    }
}

/// What a browser can put in `Origin` for a page: visible ASCII, not `null`, bounded. Any
/// such origin is recorded, the relay's included: that is what exposes it.
fn plausible_origin(origin: &str) -> bool {
    origin != "null"
        && !origin.is_empty()
        && origin.len() <= MAX_ORIGIN_LEN
        && origin.bytes().all(|b| b.is_ascii_graphic())
}

fn reply(status: StatusCode, origin: Option<&str>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        // The page may read the status ("seen"), nothing else.
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    response
}

/// §5.9 on the phone: the origin an approval of a request with `binding` may carry — the
/// binding's, when that is the only origin a page with its challenge was seen at.
pub(crate) fn approved_origin(store: &Store, binding: &BrowserBinding) -> Result<String> {
    let seen = store.browser_sightings(&binding.challenge, UnixMillis::now())?;
    if seen.is_empty() {
        return Err(Error::BrowserNotSeen);
    }
    if let Some(other) = seen.iter().find(|o| **o != binding.origin) {
        return Err(Error::BrowserOriginMismatch {
            seen: other.clone(),
            expected: binding.origin.clone(),
        });
    }
    Ok(binding.origin.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use authenticator_protocol::encoding::b64;

    fn binding() -> BrowserBinding {
        BrowserBinding {
            challenge: b64(&[5u8; BROWSER_CHALLENGE_BYTES]),
            origin: "https://id.contoso.test".into(),
        }
    }

    #[test]
    fn an_approval_needs_the_page_seen_at_exactly_the_signed_origin() {
        let store = Store::in_memory().unwrap();
        let b = binding();
        assert!(matches!(
            approved_origin(&store, &b),
            Err(Error::BrowserNotSeen)
        ));
        store
            .record_browser_sighting(&b.challenge, "https://id.contoso.test", UnixMillis::now())
            .unwrap();
        assert_eq!(approved_origin(&store, &b).unwrap(), b.origin);
        // The same page also seen through a relay: refused, naming the relay.
        store
            .record_browser_sighting(
                &b.challenge,
                "https://id-contoso.example",
                UnixMillis::now(),
            )
            .unwrap();
        match approved_origin(&store, &b) {
            Err(Error::BrowserOriginMismatch { seen, expected }) => {
                assert_eq!(seen, "https://id-contoso.example");
                assert_eq!(expected, b.origin);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sightings_expire_and_are_bounded() {
        let store = Store::in_memory().unwrap();
        let b = binding();
        let long_ago =
            UnixMillis(UnixMillis::now().millis() - super::super::store::SIGHTING_TTL_MS - 1);
        store
            .record_browser_sighting(&b.challenge, &b.origin, long_ago)
            .unwrap();
        assert!(matches!(
            approved_origin(&store, &b),
            Err(Error::BrowserNotSeen)
        ));
        // A flood of other challenges pushes the oldest out; the store keeps at most the cap.
        let now = UnixMillis::now();
        store
            .record_browser_sighting(&b.challenge, &b.origin, now)
            .unwrap();
        for i in 0..(super::super::store::MAX_SIGHTINGS + 10) {
            let c = b64(&(i as u128).to_be_bytes());
            store
                .record_browser_sighting(
                    &c,
                    "https://flood.example",
                    UnixMillis(now.millis() + 1 + i as u64),
                )
                .unwrap();
        }
        assert!(matches!(
            approved_origin(&store, &b),
            Err(Error::BrowserNotSeen)
        ));
    }

    /// The listener's timeouts, shortened: [`HOLD`] is longer than `header_read` and well
    /// within `prompt_wait`.
    const SHORT: Timeouts = Timeouts {
        header_read: Duration::from_millis(200),
        prompt_wait: Duration::from_secs(20),
        prompt_waits: 2,
    };
    /// How long the "browser" holds its request after connecting (the prompt on screen).
    const HOLD: Duration = Duration::from_millis(1500);

    async fn connect(port: u16) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap()
    }

    /// The page's request on `stream`, as a browser sends it: the status answered, or None
    /// when the listener had closed the connection.
    async fn announce(stream: &mut tokio::net::TcpStream, challenge: &str) -> Option<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST {BROWSER_LISTENER_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Origin: https://id.contoso.test\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{challenge}",
            challenge.len()
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            return None;
        }
        let mut answer = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            // Bounded: an answer or the end of the connection, never a hang.
            let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut chunk))
                .await
                .expect("the listener answered or closed the connection");
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&chunk[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
    }

    /// Bounded: true once the listener has closed `stream` (end of stream, or reset).
    async fn closed(stream: &mut tokio::net::TcpStream) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("the listener closed the connection");
        matches!(read, Ok(0) | Err(_))
    }

    fn challenge(n: u8) -> String {
        b64(&[n; BROWSER_CHALLENGE_BYTES])
    }

    fn seen(store: &Store, challenge: &str) -> Vec<String> {
        store
            .browser_sightings(challenge, UnixMillis::now())
            .unwrap()
    }

    /// Chrome's Local Network Access: the browser connects, then holds the page's request
    /// until its user answers the prompt; the request comes later than the header timeout.
    #[tokio::test]
    async fn a_request_held_behind_a_browser_prompt_is_still_served() {
        let store = Arc::new(Store::in_memory().unwrap());
        let listener = listen_with(store.clone(), 0, SHORT).await.unwrap();
        let mut page = connect(listener.port).await;
        tokio::time::sleep(HOLD).await;
        assert_eq!(announce(&mut page, &challenge(1)).await, Some(204));
        assert_eq!(seen(&store, &challenge(1)), ["https://id.contoso.test"]);
    }

    /// Silent connections cannot hoard the long wait: only `prompt_waits` of them get it, the
    /// others are closed after the header timeout, and pages are still served.
    #[tokio::test]
    async fn only_a_few_connections_may_wait_long_for_their_first_request() {
        let store = Arc::new(Store::in_memory().unwrap());
        let listener = listen_with(store.clone(), 0, SHORT).await.unwrap();
        // Accepted in this order: the first two take the two long waits.
        let mut first = connect(listener.port).await;
        let mut second = connect(listener.port).await;
        let mut third = connect(listener.port).await;
        tokio::time::sleep(HOLD).await;
        assert_eq!(announce(&mut third, &challenge(3)).await, None);
        assert!(seen(&store, &challenge(3)).is_empty());
        // A page that does not wait is served while both long waits are taken.
        let mut quick = connect(listener.port).await;
        assert_eq!(announce(&mut quick, &challenge(4)).await, Some(204));
        assert_eq!(announce(&mut first, &challenge(1)).await, Some(204));
        assert_eq!(announce(&mut second, &challenge(2)).await, Some(204));
        // Both gave their wait back with their first byte: a new connection may wait again.
        let mut again = connect(listener.port).await;
        tokio::time::sleep(HOLD).await;
        assert_eq!(announce(&mut again, &challenge(5)).await, Some(204));
    }

    /// The long wait is for the first request only: a kept-alive connection idle for longer
    /// than the header timeout is closed.
    #[tokio::test]
    async fn after_its_first_request_a_connection_may_not_idle() {
        let store = Arc::new(Store::in_memory().unwrap());
        let listener = listen_with(store.clone(), 0, SHORT).await.unwrap();
        let mut page = connect(listener.port).await;
        assert_eq!(announce(&mut page, &challenge(1)).await, Some(204));
        assert!(closed(&mut page).await);
    }

    /// A connection that never sends is closed at the end of the long wait, and its wait is
    /// free for the next connection.
    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_prompt_wait_and_frees_it() {
        let store = Arc::new(Store::in_memory().unwrap());
        let timeouts = Timeouts {
            prompt_wait: Duration::from_secs(4),
            prompt_waits: 1,
            ..SHORT
        };
        let listener = listen_with(store.clone(), 0, timeouts).await.unwrap();
        let mut silent = connect(listener.port).await;
        assert!(closed(&mut silent).await);
        let mut page = connect(listener.port).await;
        tokio::time::sleep(HOLD).await;
        assert_eq!(announce(&mut page, &challenge(1)).await, Some(204));
    }

    #[test]
    fn plausible_origins_are_bounded_visible_ascii_and_not_null() {
        for ok in [
            "https://id.contoso.test",
            "http://127.0.0.1:8080",
            "https://xn--80ak6aa92e.com",
        ] {
            assert!(plausible_origin(ok), "{ok}");
        }
        let long = format!("https://{}", "a".repeat(MAX_ORIGIN_LEN));
        for bad in [
            "",
            "null",
            "https://a b",
            "https://\u{e9}.test",
            long.as_str(),
        ] {
            assert!(!plausible_origin(bad), "{bad}");
        }
    }
}
