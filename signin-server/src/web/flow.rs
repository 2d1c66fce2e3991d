//! The browser-flow continuation: an OpenID Connect authorization in progress in this browser
//! (its `psi_oidc` cookie) that the sign-in pages carry ([`BrowserFlow`]) and return to once
//! the browser has signed in ([`after_sign_in`]). The pages and the authorization endpoint
//! (`oidc::authorize`) both use it; it lives with the pages, below `oidc`, so that the pages
//! never import the OpenID Connect endpoints.
use axum::extract::FromRequestParts;
use axum::http::header::HeaderValue;
use axum::http::request::Parts;
use signin_domain::accounts::applications::Application;
use signin_domain::oidc::clients::{self, Client};
use signin_domain::oidc::secret_hash;
use signin_domain::state::AppState;
use signin_domain::store::oidc::{self as store, AuthorizationRow, SessionAuthRow};
use signin_domain::store::{now_ms, Pool};

use super::session::{cookie_value, public_base, PublicBase, SIGNED_IN_TTL_MS};
use super::{Session, WebError};

/// Where the sign-in pages send a browser back once it has signed in during an authorization.
pub const RESUME_PATH: &str = "/oauth2/authorize/resume";
/// Where the sign-in pages send a browser whose sign-in was denied, reported, failed or
/// expired during an authorization: the client gets `access_denied`.
pub const ABORT_PATH: &str = "/oauth2/authorize/abort";

/// Cookie of an authorization in progress over plain http (loopback development only).
pub const FLOW_COOKIE: &str = "psi_oidc";
/// The same over https (`__Host-`: Secure, Path=/, no Domain).
pub const SECURE_FLOW_COOKIE: &str = "__Host-psi_oidc";

fn flow_cookie_name(base: &PublicBase) -> &'static str {
    if base.secure() {
        SECURE_FLOW_COOKIE
    } else {
        FLOW_COOKIE
    }
}

pub(crate) fn flow_cookie(base: &PublicBase, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if base.secure() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}",
        flow_cookie_name(base)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// An authorization request in progress in this browser.
#[derive(Debug, Clone)]
pub struct Flow {
    pub(crate) handle_hash: String,
    pub request: AuthorizationRow,
    pub client: Client,
}

/// The browser's authorization in progress, if any (from its `psi_oidc` cookie). The sign-in
/// pages take it to name the client on the phone and to come back here once signed in.
#[derive(Debug, Clone, Default)]
pub struct BrowserFlow(pub(crate) Option<Flow>);

impl BrowserFlow {
    pub fn is_active(&self) -> bool {
        self.0.is_some()
    }

    /// The client to name on the phone, during an authorization.
    pub fn application(&self) -> Option<&Application> {
        self.0.as_ref().map(|f| &f.client.application)
    }

    /// The `login_hint` of the authorization, to prefill the UPN.
    pub fn login_hint(&self) -> Option<&str> {
        self.0
            .as_ref()
            .and_then(|f| f.request.login_hint.as_deref())
    }

    /// The client's name and where a sign-in that did not succeed goes to tell it
    /// ([`ABORT_PATH`]), during an authorization.
    pub fn abort_to(&self) -> Option<(&str, &'static str)> {
        self.0
            .as_ref()
            .map(|f| (f.client.application.name.as_str(), ABORT_PATH))
    }
}

impl FromRequestParts<AppState> for BrowserFlow {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let Ok(base) = public_base(&state.pool, parts).await else {
            return Ok(BrowserFlow(None));
        };
        let Some(handle) = cookie_value(parts, flow_cookie_name(&base)) else {
            return Ok(BrowserFlow(None));
        };
        if handle.len() != 43 {
            return Ok(BrowserFlow(None));
        }
        let handle_hash = secret_hash(handle);
        let Some(request) = store::find_authorization(&state.pool, &handle_hash, now_ms()).await?
        else {
            return Ok(BrowserFlow(None));
        };
        let client = clients::find(&state.pool, &request.client_id)
            .await
            .map_err(|e| WebError::internal(anyhow::anyhow!("{e}")))?;
        Ok(BrowserFlow(client.map(|client| Flow {
            handle_hash,
            request,
            client,
        })))
    }
}

/// After the sign-in pages signed a browser in (`web::signin::signed_in`): records how and
/// when (for `auth_time`, `amr`, `max_age`), and, during an authorization, returns where the
/// browser goes next ([`RESUME_PATH`]).
pub async fn after_sign_in(
    pool: &Pool,
    flow: &BrowserFlow,
    session: &Session,
    who: &signin_domain::trust::Authenticated,
) -> Result<Option<&'static str>, WebError> {
    let now = now_ms();
    // The session's `sid` (ID and logout tokens): random, unrelated to the cookie.
    let sid = signin_domain::random::random_bytes::<16>()
        .map_err(|e| WebError::internal(anyhow::anyhow!("random source: {e}")))?;
    store::insert_session_auth(
        pool,
        &SessionAuthRow {
            session_hash: session.id_hash(),
            upn: who.upn().to_owned(),
            auth_time: now,
            amr: who.method().amr().join(" "),
            expires_at: now + SIGNED_IN_TTL_MS,
            method: Some(who.method().as_str().to_owned()),
            device: who.device().map(str::to_owned),
            sid: Some(authenticator_protocol::encoding::b64(&sid)),
        },
        now,
    )
    .await?;
    Ok(flow.is_active().then_some(RESUME_PATH))
}
