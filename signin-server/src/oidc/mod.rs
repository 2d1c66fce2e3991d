//! OpenID Connect provider (Core 1.0 + Discovery 1.0) and CIBA (Client-Initiated Backchannel
//! Authentication Core 1.0) over the phone sign-in: an application registered with redirect
//! URIs (`admin app add --name N --redirect-uri U [--public]`) is an OpenID Connect client.
//! docs/INTEGRATION.md is the operator's guide; this module is the whole surface:
//!
//! - [`discovery`]: `/.well-known/openid-configuration` and the JWKS;
//! - [`keys`]: the ID-token signing keys, RS256 and ES256 (stored in the database, rotated by
//!   `admin oidc-key rotate`);
//! - [`clients`]: registration and client authentication at the token endpoint;
//! - [`authorize`]: the authorization endpoint, whose sign-in is the server's own sign-in
//!   pages (`web::signin`) with the client named on the phone ([`crate::web::flow::BrowserFlow`]);
//! - [`token`]: the token endpoint (authorization code + PKCE, refresh token, CIBA) and
//!   userinfo;
//! - [`refresh`]: refresh tokens (rotation, reuse detection), revocation (RFC 7009) and token
//!   introspection (RFC 7662);
//! - [`ciba`]: the backchannel authentication endpoint (poll and ping modes);
//! - [`logout`]: the end-session endpoint (RP-Initiated Logout 1.0), the pages' sign-out, and
//!   Back-Channel Logout 1.0 to the clients a session gave codes to;
//! - [`hint`]: `id_token_hint` checks (authorization and end-session endpoints).
//!
//! Errors are [`OAuthError`]: RFC 6749 §5.2 JSON (`{"error", "error_description"}`).
pub mod authorize;
pub mod ciba;
pub mod clients;
pub mod cors;
pub mod discovery;
pub mod hint;
pub mod keys;
pub mod logout;
pub mod refresh;
pub mod token;

use std::sync::Arc;

use authenticator_protocol::encoding::b64;
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

use crate::http_error::InternalCause;
pub use signin_domain::oidc::{
    acr_for, secret_hash, ACR_MFA, ACR_PHISHING_RESISTANT, ACR_SINGLE_FACTOR,
    AMR_PHISHING_RESISTANT,
};
use signin_domain::state::AppState;

pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/oauth2/jwks";
pub const AUTHORIZE_PATH: &str = "/oauth2/authorize";
/// Where the sign-in pages send a browser back once it has signed in during an authorization,
/// and where one whose sign-in was denied, reported, failed or expired goes to tell the client.
pub use crate::web::flow::{ABORT_PATH, RESUME_PATH};
pub const TOKEN_PATH: &str = "/oauth2/token";
pub const USERINFO_PATH: &str = "/oauth2/userinfo";
pub const CIBA_PATH: &str = "/oauth2/bc-authorize";
/// The end-session endpoint (RP-Initiated Logout 1.0).
pub const END_SESSION_PATH: &str = "/oauth2/logout";
/// Where its confirmation form posts.
pub const END_SESSION_CONFIRM_PATH: &str = "/oauth2/logout/confirm";
/// The pages' own sign-out (the header's "Sign out" button): the same ending of the session.
pub const SIGN_OUT_PATH: &str = "/signout";
pub const CIBA_GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";
pub const REVOCATION_PATH: &str = "/oauth2/revoke";
pub const INTROSPECTION_PATH: &str = "/oauth2/introspect";
/// The scope that asks for a refresh token (OpenID Connect Core §11).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The OpenID Connect routes, merged into `crate::app`.
pub fn routes(state: AppState) -> Router<AppState> {
    // Public documents: any origin may read them (single-page applications discover here).
    let documents = Router::new()
        .route(DISCOVERY_PATH, get(discovery::configuration))
        .route(JWKS_PATH, get(discovery::jwks))
        .layer(axum::middleware::from_fn(cors::any_origin));
    // What a public client's script calls from its own origin.
    let browser_callable = Router::new()
        .route(TOKEN_PATH, post(token::token))
        .route(USERINFO_PATH, get(token::userinfo).post(token::userinfo))
        .route(REVOCATION_PATH, post(refresh::revoke))
        .layer(axum::middleware::from_fn_with_state(
            state,
            cors::public_clients,
        ));
    Router::new()
        .merge(documents)
        .merge(browser_callable)
        .route(
            AUTHORIZE_PATH,
            get(authorize::authorize_get).post(authorize::authorize_post),
        )
        .route(RESUME_PATH, get(authorize::resume))
        .route(ABORT_PATH, get(authorize::abort))
        .route(
            END_SESSION_PATH,
            get(logout::end_session_get).post(logout::end_session_post),
        )
        .route(END_SESSION_CONFIRM_PATH, post(logout::confirm))
        .route(SIGN_OUT_PATH, post(logout::sign_out))
        .route(CIBA_PATH, post(ciba::backchannel_authorize))
        .route(INTROSPECTION_PATH, post(refresh::introspect))
        .layer(axum::middleware::map_response(crate::web::security_headers))
}

/// 32 random bytes, base64url: every code, token and handle.
pub(crate) fn random_secret() -> Result<String, OAuthError> {
    Ok(b64(&signin_domain::random::random_bytes::<32>().map_err(
        |e| OAuthError::Internal(anyhow::anyhow!("random source: {e}")),
    )?))
}

/// The parameters of a form-encoded POST to the token, revocation or introspection endpoint
/// (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1): another content type is `invalid_request`.
pub(crate) fn form_params(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<Params, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "expected Content-Type: application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body)
}

/// Parameters of a form or query string, each at most once (RFC 6749 §3.1: "parameters MUST
/// NOT be included more than once"); empty values count as absent.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(encoded: &[u8]) -> Result<Self, OAuthError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(encoded) {
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::InvalidRequest("a parameter is repeated"));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Params(pairs))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &str, missing: &'static str) -> Result<&str, OAuthError> {
        self.get(name).ok_or(OAuthError::InvalidRequest(missing))
    }

    /// The parameters form-encoded again (as a query string).
    pub fn encode(&self) -> String {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }
}

/// An OAuth 2.0 / OpenID Connect error (RFC 6749 §5.2, OpenID Connect Core §3.1.2.6, CIBA
/// §11 and §13, RFC 6750 §3.1). The description is static text, never user data.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed (unknown client, wrong or missing secret, wrong method).
    /// `basic`: the client tried HTTP Basic (the answer then carries `WWW-Authenticate`).
    #[error("invalid_client")]
    InvalidClient { basic: bool },
    #[error("invalid_grant: {0}")]
    InvalidGrant(&'static str),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(&'static str),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    #[error("invalid_scope: {0}")]
    InvalidScope(&'static str),
    #[error("authorization_pending")]
    AuthorizationPending,
    #[error("slow_down")]
    SlowDown,
    #[error("expired_token")]
    ExpiredToken,
    #[error("access_denied: {0}")]
    AccessDenied(&'static str),
    #[error("invalid_binding_message: {0}")]
    InvalidBindingMessage(&'static str),
    #[error("unknown_user_id")]
    UnknownUserId,
    /// The userinfo endpoint without a valid access token (RFC 6750 §3.1).
    #[error("invalid_token")]
    InvalidToken,
    #[error("temporarily_unavailable: {0}")]
    TemporarilyUnavailable(&'static str),
    #[error("server_error")]
    Internal(#[source] anyhow::Error),
}

impl OAuthError {
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::AuthorizationPending => "authorization_pending",
            OAuthError::SlowDown => "slow_down",
            OAuthError::ExpiredToken => "expired_token",
            OAuthError::AccessDenied(_) => "access_denied",
            OAuthError::InvalidBindingMessage(_) => "invalid_binding_message",
            OAuthError::UnknownUserId => "unknown_user_id",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
            OAuthError::Internal(_) => "server_error",
        }
    }

    fn description(&self) -> Option<&'static str> {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::AccessDenied(d)
            | OAuthError::InvalidBindingMessage(d)
            | OAuthError::TemporarilyUnavailable(d) => Some(d),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            OAuthError::InvalidClient { .. } | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Serialize)]
struct ErrorJson {
    error: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<&'static str>,
}

/// `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1) on a JSON answer.
pub(crate) fn no_store(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = ErrorJson {
            error: self.code(),
            error_description: self.description(),
        };
        let mut r = no_store((self.status(), axum::Json(body)).into_response());
        match &self {
            OAuthError::InvalidClient { basic: true } => {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"oauth2\""),
                );
            }
            OAuthError::InvalidToken => {
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        if let OAuthError::Internal(cause) = self {
            r.extensions_mut().insert(InternalCause(Arc::new(cause)));
        }
        r
    }
}
