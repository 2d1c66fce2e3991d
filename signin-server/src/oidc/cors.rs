//! Cross-origin access for single-page applications (issue 21, item 3). A browser app on
//! another origin reads the provider's metadata and keys (public documents: any origin) and,
//! when it is a registered **public** client, calls the token and userinfo endpoints from its
//! own origin: those answer CORS only to the origins of public clients' registered redirect
//! URIs. A confidential client's secret never belongs in a browser, so its redirect origins
//! get nothing. No credentials mode: these endpoints use no cookies.
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use signin_domain::oidc::clients;
use signin_domain::state::AppState;

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: &str = "600";

/// Discovery and JWKS: readable from any origin.
pub async fn any_origin(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS;
    let mut response = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    if preflight {
        allow_methods(h, "GET, OPTIONS");
    }
    response
}

/// Token and userinfo: readable by the origins of public clients' redirect URIs only.
pub async fn public_clients(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let allowed = match &origin {
        None => None,
        Some(origin) => match clients::public_client_origins(&state.pool).await {
            Ok(origins) => origins.iter().any(|o| o == origin).then(|| origin.clone()),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the public clients' origins");
                None
            }
        },
    };
    let preflight = req.method() == Method::OPTIONS && origin.is_some();
    let mut response = if preflight {
        // An origin that is not allowed gets a preflight answer without CORS headers: the
        // browser then refuses the call.
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = response.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed.and_then(|o| HeaderValue::from_str(&o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if preflight {
            allow_methods(h, "GET, POST, OPTIONS");
        } else {
            h.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("WWW-Authenticate"),
            );
        }
    }
    response
}

fn allow_methods(h: &mut HeaderMap, methods: &'static str) {
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, DPoP"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECS),
    );
}
