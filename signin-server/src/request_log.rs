//! One span and one INFO line per HTTP request (method, route template, a sequence number,
//! then status and duration; never bodies, queries or headers). Internal errors are logged
//! here, once.
//!
//! A tower layer rather than `axum::middleware::from_fn`: its future is the inner one plus a
//! span and a start time, inline. A request parked for its whole wait (a long-poll) otherwise
//! also kept two boxed futures, a clone of the inner service and the route's text
//! (docs/PERFORMANCE.md, "Parked long-polls").
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower::{Layer, Service};

use crate::error;

/// Logs every request of the service it wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogRequestsLayer;

impl<S> Layer<S> for LogRequestsLayer {
    type Service = LogRequests<S>;

    fn layer(&self, inner: S) -> LogRequests<S> {
        LogRequests { inner }
    }
}

#[derive(Debug, Clone)]
pub struct LogRequests<S> {
    inner: S,
}

impl<S> Service<Request> for LogRequests<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        static SEQ: AtomicU64 = AtomicU64::new(1);
        let span = {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("<unmatched>", MatchedPath::as_str);
            tracing::info_span!(
                "http",
                http_seq = SEQ.fetch_add(1, Ordering::Relaxed),
                method = %req.method(),
                route = %route,
            )
        };
        let inner = span.in_scope(|| self.inner.call(req));
        Logged {
            inner,
            span,
            started: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, polled inside the request's span; logs the answer.
    pub struct Logged<F> {
        #[pin]
        inner: F,
        span: tracing::Span,
        started: Instant,
    }
}

impl<F, E> Future for Logged<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let answered = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &answered {
            if let Some(cause) = response.extensions().get::<error::InternalCause>() {
                tracing::error!(error = format!("{:#}", cause.0), "internal error");
            }
            tracing::info!(
                status = response.status().as_u16(),
                ms = this.started.elapsed().as_millis() as u64,
                "answered"
            );
        }
        Poll::Ready(answered)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Seek, SeekFrom};
    use std::sync::Arc;

    use axum::body::Body;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    use super::*;
    use crate::{AppError, HttpError};

    async fn get_and_log(app: Router, uri: &str) -> String {
        // `Arc<File>` is a `MakeWriter` (`&File` writes): the lines go to a file read back.
        let file = tempfile::tempfile().unwrap();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(Arc::new(file.try_clone().unwrap()))
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let response = app
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        drop(response);
        let mut file = file;
        let mut text = String::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_string(&mut text).unwrap();
        text
    }

    /// One INFO line per request, in the request's span: the route template (never the path's
    /// values or the query), the method and the status.
    #[tokio::test]
    async fn a_request_is_logged_once_with_its_route_template_and_status_never_its_values() {
        let app = Router::new()
            .route("/items/{id}", get(|| async { "ok" }))
            .layer(LogRequestsLayer);
        let log = get_and_log(app, "/items/secret-42?code=hidden").await;
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        let line = lines[0];
        assert!(line.contains(" INFO "), "{line}");
        assert!(line.contains("route=/items/{id}"), "{line}");
        assert!(line.contains("method=GET"), "{line}");
        assert!(line.contains("status=200"), "{line}");
        assert!(line.contains("answered"), "{line}");
        assert!(
            !line.contains("secret-42") && !line.contains("hidden"),
            "{line}"
        );
    }

    /// An internal error is logged once, at ERROR, with its cause, in the request's span; the
    /// answer line follows. A path no route matches is logged as `<unmatched>`.
    #[tokio::test]
    async fn an_internal_error_is_logged_once_with_its_cause() {
        let app = Router::new()
            .route(
                "/fails",
                get(|| async {
                    HttpError(AppError::internal(anyhow::anyhow!("disk on fire"))).into_response()
                }),
            )
            .layer(LogRequestsLayer);
        let log = get_and_log(app.clone(), "/fails").await;
        assert_eq!(log.matches("disk on fire").count(), 1, "{log}");
        assert_eq!(log.matches(" ERROR ").count(), 1, "{log}");
        assert!(log.contains("route=/fails"), "{log}");
        assert!(log.contains("status=500"), "{log}");

        let log = get_and_log(app, "/nowhere").await;
        assert!(log.contains("route=<unmatched>"), "{log}");
        assert!(log.contains("status=404"), "{log}");
    }
}
