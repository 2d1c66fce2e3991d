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
/// How long a connection may take to send its request's headers: a page sends them at once;
/// a local program that opens connections and sends nothing does not keep them.
pub(crate) const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| Error::InvalidInput(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?
        .port();
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
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let store = store.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let store = store.clone();
                    async move { Ok::<_, Infallible>(handle(&store, req).await) }
                });
                // A connection that breaks off is the page's business, not ours.
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
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
        // A preflight (Private Network Access): allow the one simple POST.
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
