//! A recording reverse proxy: what a network attacker between phone and server sees. The phone
//! talks to the proxy; every exchange is kept so a test can replay or inspect it.
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;

#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub request_body: String,
    pub status: u16,
    pub response_body: String,
}

#[derive(Clone)]
struct Upstream {
    base: String,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<Exchange>>>,
}

pub struct RecordingProxy {
    pub base_url: String,
    log: Arc<Mutex<Vec<Exchange>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    /// Starts a proxy on a loopback port in front of `upstream_base` (`http://127.0.0.1:N/`).
    pub async fn start(upstream_base: &str) -> Result<Self> {
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = Upstream {
            base: upstream_base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::new(),
            log: log.clone(),
        };
        let app = Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RecordingProxy {
            base_url: format!("http://{addr}/"),
            log,
            task,
        })
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().expect("proxy log").clone()
    }

    /// The last recorded request whose path ends with `suffix`.
    pub fn last(&self, method: &str, suffix: &str) -> Option<Exchange> {
        self.exchanges()
            .into_iter()
            .rev()
            .find(|e| e.method == method && e.path.ends_with(suffix))
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(
    State(up): State<Upstream>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let mut req = up.client.request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method"),
        format!("{}{}", up.base, path),
    );
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            req = req.header(name, v);
        }
    }
    let (status, text) = match req.body(body.to_vec()).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap_or_default())
        }
        Err(_) => (502, String::new()),
    };
    up.log.lock().expect("proxy log").push(Exchange {
        method: method.as_str().to_owned(),
        path,
        request_body: String::from_utf8_lossy(&body).into_owned(),
        status,
        response_body: text.clone(),
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
        [("content-type", "application/json")],
        text,
    )
}
