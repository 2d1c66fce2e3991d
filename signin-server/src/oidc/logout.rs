//! Sign-out: the end-session endpoint (OpenID Connect RP-Initiated Logout 1.0), the pages' own
//! "Sign out", and Back-Channel Logout 1.0 to the clients the session gave codes to.
//!
//! `GET|POST /oauth2/logout` takes `id_token_hint`, `client_id`, `post_logout_redirect_uri`
//! and `state` (`logout_hint` and `ui_locales` are accepted and ignored):
//! - `id_token_hint` must be an ID token of this provider (signature, issuer; an expired one is
//!   accepted, as §2 allows: it names a user, it grants nothing), issued to `client_id` when
//!   both are given; without `client_id`, its audience names the client;
//! - `post_logout_redirect_uri` must be registered for that client, exactly
//!   (`admin app add --post-logout-redirect-uri`), else nothing is redirected;
//! - `state` comes back with the redirect.
//!
//! A refused request gets a page, never a redirect ([`LogoutRefusal`], rendered in
//! `crate::error`). A browser signed in as the user the hint names is signed out at once; any
//! other signed-in browser is asked first, with a CSRF-protected form (§6: a request without a
//! valid hint could come from anywhere). Signing out ends this browser's session the trust
//! model's way (`trust::end_session`: the session, its OpenID Connect record, the codes it
//! issued and the access tokens they gave), then each client the session gave a code to and
//! that registered a `backchannel_logout_uri` gets a logout token ([`tell_clients`]), and the
//! browser goes back to the client or sees a "signed out" page.
//!
//! A cross-site `POST` does not carry the session cookie (`SameSite=Lax`): such a request is
//! sent on as a `GET` with the same parameters (303), which does carry it.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::{Deserialize, Serialize};

use super::authorize::{continue_page, issuer};
use super::clients::{self, Client};
use super::hint::{self, Hint, HintError};
use super::{keys, random_secret, token, Params, END_SESSION_CONFIRM_PATH, END_SESSION_PATH};
use crate::web::flow::flow_cookie;
use crate::web::pages::{csrf, layout};
use crate::web::{html as html_response, page, pages, Session, WebError};
use signin_domain::outbound::OutboundPolicy;
use signin_domain::state::AppState;
use signin_domain::store::now_ms;
use signin_domain::store::trust::EndedSession;
use signin_domain::trust::{self, SignOut};

/// The `events` member of a logout token (Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// The `typ` of a logout token's header (§2.4: explicit typing, so that no one takes it for an
/// ID token).
pub const LOGOUT_TOKEN_TYPE: &str = "logout+jwt";
/// A logout token is valid this long (its `exp`).
pub const LOGOUT_TOKEN_TTL_SECS: i64 = 120;
/// Waits between attempts at a client's back-channel logout URI: one attempt, then one after
/// each wait, while the client's answer is a failure worth retrying.
pub const BACKCHANNEL_RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(25),
];
/// Longest `state` echoed.
const MAX_STATE_LEN: usize = 2048;

/// Why an end-session request is refused (a page; nothing is redirected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LogoutRefusal {
    #[error("a parameter is repeated")]
    RepeatedParameter,
    #[error("id_token_hint is refused: {0}")]
    Hint(HintError),
    #[error("client_id names no registered client")]
    UnknownClient,
    #[error("post_logout_redirect_uri needs client_id or id_token_hint")]
    RedirectWithoutClient,
    #[error("post_logout_redirect_uri is not registered for the client")]
    UnregisteredRedirect,
    #[error("state is too long")]
    StateTooLong,
}

/// An end-session request whose parameters were checked.
#[derive(Debug)]
struct EndSession {
    client: Option<Client>,
    /// A registered post-logout redirect URI of `client`.
    redirect: Option<String>,
    state: Option<String>,
    hint: Option<Hint>,
}

/// Checks an end-session request's parameters (see the module). The outer error is a fault;
/// the inner one, a refusal.
async fn read_request(
    state: &AppState,
    iss: &str,
    p: &Params,
) -> Result<Result<EndSession, LogoutRefusal>, WebError> {
    let hint = match p.get("id_token_hint") {
        None => None,
        Some(token) => match hint::verify(&state.pool, iss, token).await? {
            Ok(h) => Some(h),
            Err(e) => return Ok(Err(LogoutRefusal::Hint(e))),
        },
    };
    let client_id = match (p.get("client_id"), &hint) {
        (Some(id), Some(h)) if !h.is_for(id) => {
            return Ok(Err(LogoutRefusal::Hint(HintError::OtherAudience)))
        }
        (Some(id), _) => Some(id.to_owned()),
        // The hint's audience names the client (when it names one).
        (None, Some(h)) if h.aud.len() == 1 => h.aud.first().cloned(),
        (None, _) => None,
    };
    let client = match client_id.as_deref() {
        None => None,
        Some(id) => match clients::find(&state.pool, id).await? {
            Some(c) => Some(c),
            None => return Ok(Err(LogoutRefusal::UnknownClient)),
        },
    };
    let redirect = match (p.get("post_logout_redirect_uri"), &client) {
        (None, _) => None,
        (Some(_), None) => return Ok(Err(LogoutRefusal::RedirectWithoutClient)),
        (Some(uri), Some(c)) if c.has_post_logout_redirect_uri(uri) => Some(uri.to_owned()),
        (Some(_), Some(_)) => return Ok(Err(LogoutRefusal::UnregisteredRedirect)),
    };
    let state_param = p.get("state").map(str::to_owned);
    if state_param
        .as_ref()
        .is_some_and(|s| s.len() > MAX_STATE_LEN)
    {
        return Ok(Err(LogoutRefusal::StateTooLong));
    }
    Ok(Ok(EndSession {
        client,
        redirect,
        state: state_param,
        hint,
    }))
}

/// `GET /oauth2/logout`
pub async fn end_session_get(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    end_session(&state, session, query.unwrap_or_default().as_bytes(), false).await
}

/// `POST /oauth2/logout` (form-encoded).
pub async fn end_session_post(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, WebError> {
    end_session(&state, session, &body, true).await
}

async fn end_session(
    state: &AppState,
    session: Session,
    raw: &[u8],
    post: bool,
) -> Result<Response, WebError> {
    let Ok(p) = Params::parse(raw) else {
        return Ok(LogoutRefusal::RepeatedParameter.into_response());
    };
    if post && session.is_new {
        // No session cookie: a cross-site POST, which SameSite=Lax keeps the cookie from.
        // The same request as a top-level GET carries it.
        return Ok(Redirect::to(&format!("{END_SESSION_PATH}?{}", p.encode())).into_response());
    }
    let iss = issuer(&session.base);
    let req = match read_request(state, &iss, &p).await? {
        Ok(req) => req,
        Err(refusal) => {
            tracing::info!(reason = %refusal, "end-session request refused");
            return Ok(refusal.into_response());
        }
    };
    let Some(upn) = session.upn.clone() else {
        // Not signed in here: nothing to end but a sign-in in progress.
        if session.is_stored() {
            session.destroy(&state.pool).await?;
        }
        return Ok(finish(&session, &req, Arrival::Navigation));
    };
    let named = match &req.hint {
        Some(h) => token::subject(&state.pool, &upn).await? == h.sub,
        None => false,
    };
    if !named {
        return Ok(confirm_page(&session, &upn, &req));
    }
    end_and_tell(state, &session, &upn, &iss, SignOut::Application).await?;
    Ok(finish(&session, &req, Arrival::Navigation))
}

/// How the browser reached the answer: after a form post on these pages a redirect to the
/// client's origin is held to `form-action 'self'`, so a page continues instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Navigation,
    AfterForm,
}

/// The answer once the session has ended (or there was none): back to the client's
/// post-logout redirect URI with `state`, or the "signed out" page; the cookies go.
fn finish(session: &Session, req: &EndSession, arrival: Arrival) -> Response {
    let to = req.redirect.as_deref().and_then(|uri| {
        let mut url = url::Url::parse(uri).ok()?;
        if let Some(s) = &req.state {
            url.query_pairs_mut().append_pair("state", s);
        }
        Some(String::from(url))
    });
    let app_name = req
        .client
        .as_ref()
        .map_or("the application", |c| c.application.name.as_str());
    let mut response = match (to, arrival) {
        (Some(url), Arrival::Navigation) => Redirect::to(&url).into_response(),
        (Some(url), Arrival::AfterForm) => {
            continue_page(&url, "Signed out", "Returning to", app_name)
        }
        (None, _) => html_response(pages::message_page(
            "Signed out",
            "You have signed out of this sign-in service.",
        )),
    };
    if !session.is_new {
        response
            .headers_mut()
            .append(header::SET_COOKIE, session.clear_cookie());
    }
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie(&session.base, "", 0));
    response
}

/// "Sign out?": the form that confirms an end-session request without a hint naming this
/// browser's user. It carries the checked parameters, which [`confirm`] checks again.
fn confirm_page(session: &Session, upn: &str, req: &EndSession) -> Response {
    let app = req.client.as_ref().map(|c| c.application.name.as_str());
    page(
        session,
        layout(
            "Sign out?",
            None,
            html! {
                section.card.narrow {
                    h1 { "Sign out?" }
                    @if let Some(app) = app {
                        p { strong { (app) } " asks to sign you out of this sign-in service." }
                    }
                    p.muted { "Signed in as " strong { (upn) } }
                    form id="sign-out-form" method="post" action=(END_SESSION_CONFIRM_PATH) {
                        (csrf(session))
                        @if let Some(c) = &req.client {
                            input type="hidden" name="client_id" value=(c.client_id());
                        }
                        @if let Some(uri) = &req.redirect {
                            input type="hidden" name="post_logout_redirect_uri" value=(uri);
                        }
                        @if let Some(s) = &req.state {
                            input type="hidden" name="state" value=(s);
                        }
                        div.actions {
                            button type="submit" id="confirm-sign-out" { "Sign out" }
                            a href="/me" id="stay" { "Stay signed in" }
                        }
                    }
                }
            },
        ),
    )
}

/// `POST /oauth2/logout/confirm`: the user confirmed (CSRF token of the session).
pub async fn confirm(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, WebError> {
    let Ok(p) = Params::parse(&body) else {
        return Ok(LogoutRefusal::RepeatedParameter.into_response());
    };
    session.check_csrf(p.get("csrf").unwrap_or_default())?;
    let iss = issuer(&session.base);
    let req = match read_request(&state, &iss, &p).await? {
        Ok(req) => req,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    if let Some(upn) = session.upn.clone() {
        end_and_tell(&state, &session, &upn, &iss, SignOut::Application).await?;
    }
    Ok(finish(&session, &req, Arrival::AfterForm))
}

#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    pub csrf: String,
}

/// `POST /signout`: the pages' "Sign out" (CSRF token of the session). The same ending as the
/// end-session endpoint, back-channel logout included; then the sign-in page.
pub async fn sign_out(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<SignOutForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    match session.upn.clone() {
        Some(upn) => {
            let iss = issuer(&session.base);
            end_and_tell(&state, &session, &upn, &iss, SignOut::Pages).await?;
        }
        None => session.destroy(&state.pool).await?,
    }
    let mut r = Redirect::to("/signin").into_response();
    r.headers_mut()
        .append(header::SET_COOKIE, session.clear_cookie());
    Ok(r)
}

/// Ends this browser's session (`trust::end_session`) and tells the clients it gave codes to.
async fn end_and_tell(
    state: &AppState,
    session: &Session,
    upn: &str,
    iss: &str,
    how: SignOut,
) -> Result<(), WebError> {
    let ended = trust::end_session(&state.pool, &session.id_hash(), Some(upn), how).await?;
    tracing::info!(
        by = ?how,
        access_tokens = ended.ended.access_tokens,
        codes = ended.ended.codes,
        clients = ended.clients.len(),
        "signed out"
    );
    tell_clients(state, iss, upn, &ended).await
}

/// The claims of a logout token (Back-Channel Logout 1.0 §2.4): no `nonce`, an `events`
/// member with the back-channel logout event, `sub` and `sid`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogoutTokenClaims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    pub events: serde_json::Value,
}

/// Sends each client of the ended session that registered a back-channel logout URI a logout
/// token (signed with the ID-token key), in the background, retried ([`deliver`]).
async fn tell_clients(
    state: &AppState,
    iss: &str,
    upn: &str,
    ended: &EndedSession,
) -> Result<(), WebError> {
    let mut targets = Vec::new();
    for client_id in &ended.clients {
        if let Some(c) = clients::find(&state.pool, client_id).await? {
            if let Some(uri) = c.backchannel_logout_uri {
                targets.push((c.application.client_id, c.id_token_alg, uri));
            }
        }
    }
    if targets.is_empty() {
        return Ok(());
    }
    let sub = token::subject(&state.pool, upn).await?;
    let now = now_ms() / 1000;
    for (client_id, alg, uri) in targets {
        // Signed like the client's ID tokens (Back-Channel Logout 1.0 §2.4).
        let key = keys::current(&state.pool, alg)
            .await
            .map_err(WebError::Internal)?;
        let claims = LogoutTokenClaims {
            iss: iss.to_owned(),
            aud: client_id.clone(),
            iat: now,
            exp: now + LOGOUT_TOKEN_TTL_SECS,
            jti: random_secret()?,
            sub: sub.clone(),
            sid: ended.sid.clone(),
            events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
        };
        let logout_token = key
            .sign_typed(Some(LOGOUT_TOKEN_TYPE), &claims)
            .map_err(WebError::Internal)?;
        let outbound = state.outbound.clone();
        tokio::spawn(async move {
            let (outcome, attempts) = deliver(&BACKCHANNEL_RETRY_DELAYS, || {
                send_once(outbound.clone(), uri.clone(), logout_token.clone())
            })
            .await;
            match outcome {
                Attempt::Delivered => {
                    tracing::info!(client_id = %client_id, attempts, "back-channel logout delivered")
                }
                other => tracing::warn!(
                    client_id = %client_id,
                    attempts,
                    outcome = other.reason(),
                    "back-channel logout not delivered"
                ),
            }
        });
    }
    Ok(())
}

/// What one POST of a logout token came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx (§2.8: the client answers 200 OK; some frameworks say 204).
    Delivered,
    /// The client answered that the logout failed (4xx other than 408 and 429): sending the
    /// same token again changes nothing.
    Refused(u16),
    /// No answer, or one worth another try (5xx, 408, 429, a network failure, a timeout).
    Failed(&'static str),
    /// The outbound policy refused the URI: nothing was sent, and nothing will be.
    NotAllowed(&'static str),
}

impl Attempt {
    fn reason(&self) -> &'static str {
        match self {
            Attempt::Delivered => "delivered",
            Attempt::Refused(_) => "refused_by_client",
            Attempt::Failed(r) | Attempt::NotAllowed(r) => r,
        }
    }
}

/// Calls `send` until it is not [`Attempt::Failed`], waiting `delays[i]` before the
/// `i + 2`-th call: at most `delays.len() + 1` calls. Returns the last outcome and how many
/// calls were made.
pub async fn deliver<F, Fut>(delays: &[Duration], mut send: F) -> (Attempt, usize)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt>,
{
    let mut attempts = 0;
    loop {
        let outcome = send().await;
        attempts += 1;
        match (&outcome, delays.get(attempts - 1)) {
            (Attempt::Failed(_), Some(wait)) => tokio::time::sleep(*wait).await,
            _ => return (outcome, attempts),
        }
    }
}

/// One POST of `logout_token` (form-encoded, §2.5) to `uri`, under the outbound policy (the
/// URI's addresses checked again now, no redirect followed, a bounded answer).
async fn send_once(outbound: Arc<OutboundPolicy>, uri: String, logout_token: String) -> Attempt {
    let Ok(url) = url::Url::parse(&uri) else {
        return Attempt::NotAllowed("malformed_url");
    };
    let sent = outbound
        .send(reqwest::Method::POST, &url, |request| {
            request
                .header(reqwest::header::CACHE_CONTROL, "no-store")
                .form(&[("logout_token", logout_token.as_str())])
        })
        .await;
    match sent {
        Ok(answer) if answer.status.is_success() => Attempt::Delivered,
        Ok(answer)
            if answer.status.is_client_error() && !matches!(answer.status.as_u16(), 408 | 429) =>
        {
            Attempt::Refused(answer.status.as_u16())
        }
        Ok(_) => Attempt::Failed("client_error_status"),
        Err(e) if e.is_refusal() => Attempt::NotAllowed(e.reason()),
        Err(e) => Attempt::Failed(e.reason()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A sender that answers `outcomes` in turn (the last one from then on), counting calls.
    async fn run(outcomes: Vec<Attempt>) -> (Attempt, usize, usize) {
        let calls = AtomicUsize::new(0);
        let delays = [Duration::ZERO; 3];
        let (outcome, attempts) = deliver(&delays, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let answer = outcomes[n.min(outcomes.len() - 1)].clone();
            async move { answer }
        })
        .await;
        (outcome, attempts, calls.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn failures_are_retried_a_bounded_number_of_times() {
        let (outcome, attempts, calls) = run(vec![Attempt::Failed("timeout")]).await;
        assert_eq!(outcome, Attempt::Failed("timeout"));
        assert_eq!((attempts, calls), (4, 4), "one try and three retries");
    }

    #[tokio::test]
    async fn delivery_refusal_and_policy_end_the_retries() {
        let (outcome, attempts, _) =
            run(vec![Attempt::Failed("connect"), Attempt::Delivered]).await;
        assert_eq!((outcome, attempts), (Attempt::Delivered, 2));
        let (outcome, attempts, _) = run(vec![Attempt::Refused(400)]).await;
        assert_eq!((outcome, attempts), (Attempt::Refused(400), 1));
        let (outcome, attempts, _) = run(vec![Attempt::NotAllowed("not_https")]).await;
        assert_eq!((outcome, attempts), (Attempt::NotAllowed("not_https"), 1));
    }
}
