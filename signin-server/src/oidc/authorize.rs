//! The authorization endpoint (OpenID Connect Core §3.1.2, authorization code flow with PKCE,
//! RFC 7636) and its sign-in, which is the server's own sign-in pages (`web::signin`).
//!
//! 1. `GET|POST /oauth2/authorize` checks the client and its exact redirect URI (a failure here
//!    is an error page: nothing is sent to an unverified URI), then the other parameters (a
//!    failure is an error sent back to the redirect URI with `state`).
//! 2. A browser already signed in, whose sign-in satisfies `prompt`, `max_age` and
//!    `login_hint`, gets its code at once. Otherwise the request is stored under a random
//!    handle in the browser's `psi_oidc` cookie (HttpOnly, SameSite=Lax, 10 minutes) and the
//!    browser goes to `/signin`: the pages run their usual ceremony (the number on the page,
//!    typed on the phone), and the phone names the client ([`BrowserFlow::application`]).
//! 3. Once signed in, the pages send the browser to `/oauth2/authorize/resume`, which ends
//!    the stored request (single use) and redirects to the client with a code (60 seconds,
//!    single use, stored hashed, bound to the client, the redirect URI and the PKCE challenge).
use authenticator_protocol::text;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::clients::{self, Client};
use super::{random_secret, secret_hash, OAuthError, Params};
use crate::web::flow::flow_cookie;
pub use crate::web::flow::{after_sign_in, BrowserFlow, Flow, FLOW_COOKIE, SECURE_FLOW_COOKIE};
use crate::web::session::PublicBase;
use crate::web::{html, pages, Session, WebError};
use signin_domain::audit::{self, Event};
use signin_domain::state::AppState;
use signin_domain::store::oidc::{self as store, AuthorizationRow, CodeRow, SessionAuthRow};
use signin_domain::store::{now_ms, Pool};

/// An authorization request waits this long for its sign-in.
pub const AUTHORIZATION_TTL_MS: i64 = 10 * 60 * 1000;
/// Authorization codes live 60 seconds.
pub const CODE_TTL_MS: i64 = 60 * 1000;
/// Longest `state`, `nonce` and `login_hint` accepted.
const MAX_STATE_LEN: usize = 2048;
const MAX_NONCE_LEN: usize = 512;
const MAX_LOGIN_HINT_LEN: usize = 256;

/// Scopes this provider knows; others are ignored (OpenID Connect Core §3.1.2.1).
/// `offline_access` asks for a refresh token (§11); clients are registered by an administrator,
/// which stands for the consent §11 asks for, so `prompt=consent` is not required.
pub const SUPPORTED_SCOPES: &[&str] = &["openid", "profile", super::OFFLINE_ACCESS];

/// A page for a request that cannot go back to the client (unknown client, redirect URI not
/// registered): the user sees why; nothing goes to the URI.
fn refusal_page(text: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        html(pages::message_page("Sign-in request refused", text)),
    )
        .into_response()
}

/// The issuer identifier: the public URL without its trailing slash.
pub fn issuer(base: &PublicBase) -> String {
    base.url.as_str().trim_end_matches('/').to_owned()
}

/// A redirect to the client: `redirect_uri` with `params` added, plus `state` and `iss`
/// (RFC 9207).
fn to_client(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    iss: &str,
) -> Result<Response, WebError> {
    let url = client_url(redirect_uri, params, state, iss)?;
    Ok(Redirect::to(&url).into_response())
}

/// `redirect_uri` with `params`, `state` and `iss` added to its query.
fn client_url(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    iss: &str,
) -> Result<String, WebError> {
    let mut url = url::Url::parse(redirect_uri)
        .map_err(|e| WebError::internal(anyhow::anyhow!("registered redirect URI: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", iss);
    }
    Ok(url.into())
}

/// The page that sends a browser that has just signed in on the pages back to the client. Not
/// a redirect: the sign-in ends with a form post (`/signin/complete`), and browsers hold the
/// redirects of a form submission to the page's CSP `form-action 'self'`, which the client's
/// origin is not. A meta refresh is a new navigation (with a link for browsers that do not
/// follow it); `Referrer-Policy: no-referrer` keeps this page's address out of it.
fn continue_page(url: &str, app_name: &str) -> Response {
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={url}"));
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Signed in · Phone sign-in" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                main id="main" {
                    section.card.narrow {
                        h1 { "Signed in" }
                        p { "Returning to " strong { (app_name) } "…" }
                        p { a id="continue" href=(url) { "Continue" } }
                    }
                }
            }
        }
    };
    html(page)
}

/// The parameters of an authorization request after the client and redirect URI checks.
struct Checked {
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    login_hint: Option<String>,
    prompt_login: bool,
    prompt_none: bool,
    max_age: Option<i64>,
}

/// Checks the parameters that are answered at the redirect URI (error, description).
fn check(p: &Params, client: &Client) -> Result<Checked, (&'static str, &'static str)> {
    if p.get("request").is_some() {
        return Err(("request_not_supported", "request objects are not supported"));
    }
    if p.get("request_uri").is_some() {
        return Err(("request_uri_not_supported", "request_uri is not supported"));
    }
    match p.get("response_type") {
        Some("code") => {}
        None => return Err(("invalid_request", "response_type is required")),
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if p.get("response_mode").is_some_and(|m| m != "query") {
        return Err(("invalid_request", "only response_mode=query is supported"));
    }
    let scopes: Vec<&str> = p.get("scope").unwrap_or("").split(' ').collect();
    if !scopes.contains(&"openid") {
        return Err(("invalid_scope", "scope must include openid"));
    }
    let scope = SUPPORTED_SCOPES
        .iter()
        .filter(|s| scopes.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let state = p.get("state").map(str::to_owned);
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
        return Err(("invalid_request", "state is too long"));
    }
    let nonce = p.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return Err(("invalid_request", "nonce is too long"));
    }
    let code_challenge = match (p.get("code_challenge"), p.get("code_challenge_method")) {
        (None, None) => None,
        (Some(c), Some("S256")) => {
            // BASE64URL(SHA-256(verifier)): exactly 43 characters.
            let well_formed = c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !well_formed {
                return Err(("invalid_request", "code_challenge is not an S256 challenge"));
            }
            Some(c.to_owned())
        }
        (Some(_), _) => {
            return Err((
                "invalid_request",
                "code_challenge_method must be S256 (plain is not supported)",
            ))
        }
        (None, Some(_)) => return Err(("invalid_request", "code_challenge is missing")),
    };
    if client.public && code_challenge.is_none() {
        return Err((
            "invalid_request",
            "a public client must use PKCE (code_challenge with S256)",
        ));
    }
    let mut prompt_login = false;
    let mut prompt_none = false;
    if let Some(prompt) = p.get("prompt") {
        for value in prompt.split(' ') {
            match value {
                "login" => prompt_login = true,
                "none" => prompt_none = true,
                // Clients are registered by an administrator: there is no consent screen
                // and one account per browser.
                "consent" | "select_account" => {}
                _ => return Err(("invalid_request", "unknown prompt value")),
            }
        }
        if prompt_none && prompt.split(' ').count() > 1 {
            return Err(("invalid_request", "prompt=none cannot go with other values"));
        }
    }
    let max_age = match p.get("max_age") {
        None => None,
        Some(m) => Some(
            m.parse::<u32>()
                .map_err(|_| ("invalid_request", "max_age must be a non-negative integer"))?
                .into(),
        ),
    };
    // The hint in the one form of a user name (`Upn`), compared as stored.
    let login_hint = match p.get("login_hint") {
        None => None,
        Some(h) if h.trim().len() > MAX_LOGIN_HINT_LEN || text::escape(h.trim()) != h.trim() => {
            return Err(("invalid_request", "login_hint is not a plain user name"))
        }
        Some(h) => Some(
            signin_domain::upn::Upn::parse(h)
                .map_err(|_| ("invalid_request", "login_hint is not a plain user name"))?
                .as_str()
                .to_owned(),
        ),
    };
    Ok(Checked {
        scope,
        state,
        nonce,
        code_challenge,
        login_hint,
        prompt_login,
        prompt_none,
        max_age,
    })
}

/// Whether this browser's sign-in satisfies the request: same user as a `login_hint`, not
/// older than `max_age`, and (with `prompt=login`) after `not_before`.
fn satisfies(
    auth: &SessionAuthRow,
    login_hint: Option<&str>,
    max_age: Option<i64>,
    not_before: Option<i64>,
    now: i64,
) -> bool {
    if login_hint.is_some_and(|h| h != auth.upn) {
        return false;
    }
    if max_age.is_some_and(|m| now - auth.auth_time > m * 1000) {
        return false;
    }
    if not_before.is_some_and(|t| auth.auth_time < t) {
        return false;
    }
    true
}

/// The signed-in user's sign-in record, if this session is signed in and has one.
async fn session_auth(pool: &Pool, session: &Session) -> Result<Option<SessionAuthRow>, WebError> {
    let Some(upn) = session.upn.as_deref() else {
        return Ok(None);
    };
    Ok(store::find_session_auth(pool, &session.id_hash(), now_ms())
        .await?
        .filter(|a| a.upn == upn))
}

/// What goes into a code.
struct Grant<'a> {
    client: &'a Client,
    redirect_uri: &'a str,
    scope: &'a str,
    state: Option<&'a str>,
    nonce: Option<&'a str>,
    code_challenge: Option<&'a str>,
}

/// Stores a new code for the signed-in user; returns the client's URL with it.
async fn issue_code(
    pool: &Pool,
    base: &PublicBase,
    g: Grant<'_>,
    auth: &SessionAuthRow,
) -> Result<String, WebError> {
    let code = random_secret().map_err(|e| WebError::internal(anyhow::anyhow!("{e}")))?;
    let now = now_ms();
    store::insert_code(
        pool,
        &CodeRow {
            code_hash: secret_hash(&code),
            client_id: g.client.client_id().to_owned(),
            redirect_uri: g.redirect_uri.to_owned(),
            upn: auth.upn.clone(),
            scope: g.scope.to_owned(),
            nonce: g.nonce.map(str::to_owned),
            code_challenge: g.code_challenge.map(str::to_owned),
            auth_time: auth.auth_time,
            amr: auth.amr.clone(),
            created_at: now,
            expires_at: now + CODE_TTL_MS,
            used_at: None,
            method: auth.method.clone(),
            device: auth.device.clone(),
        },
        now,
    )
    .await?;
    let outcome = format!("code_issued client_id={}", g.client.client_id());
    audit::record(
        pool,
        Event::WebSignIn,
        audit::Entry {
            upn: Some(&auth.upn),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(client_id = %g.client.client_id(), "authorization code issued");
    client_url(g.redirect_uri, &[("code", &code)], g.state, &issuer(base))
}

/// `GET /oauth2/authorize`
pub async fn authorize_get(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    authorize(&state, session, query.unwrap_or_default().as_bytes()).await
}

/// `POST /oauth2/authorize` (form-encoded, OpenID Connect Core §3.1.2.1).
pub async fn authorize_post(
    State(state): State<AppState>,
    session: Session,
    body: Bytes,
) -> Result<Response, WebError> {
    authorize(&state, session, &body).await
}

async fn authorize(state: &AppState, session: Session, raw: &[u8]) -> Result<Response, WebError> {
    let Ok(p) = Params::parse(raw) else {
        return Ok(refusal_page("The sign-in request repeats a parameter."));
    };
    let client = match p.get("client_id") {
        Some(id) => clients::find(&state.pool, id)
            .await
            .map_err(|e| WebError::internal(anyhow::anyhow!("{e}")))?,
        None => None,
    };
    let Some(client) = client else {
        tracing::info!("authorization refused: unknown client");
        return Ok(refusal_page(
            "The application that sent you here is not registered with this sign-in service.",
        ));
    };
    let Some(redirect_uri) = p.get("redirect_uri").filter(|u| client.has_redirect_uri(u)) else {
        tracing::info!(client_id = %client.client_id(), "authorization refused: redirect_uri not registered");
        return Ok(refusal_page(
            "The application asked to return to an address that is not registered for it.",
        ));
    };
    let base = session.base.clone();
    let iss = issuer(&base);
    let state_param = p.get("state");
    let c = match check(&p, &client) {
        Ok(c) => c,
        Err((error, description)) => {
            tracing::info!(client_id = %client.client_id(), error, "authorization refused");
            return to_client(
                redirect_uri,
                &[("error", error), ("error_description", description)],
                state_param,
                &iss,
            );
        }
    };
    let now = now_ms();
    let grant = Grant {
        client: &client,
        redirect_uri,
        scope: &c.scope,
        state: c.state.as_deref(),
        nonce: c.nonce.as_deref(),
        code_challenge: c.code_challenge.as_deref(),
    };
    if !c.prompt_login {
        if let Some(auth) = session_auth(&state.pool, &session).await? {
            if satisfies(&auth, c.login_hint.as_deref(), c.max_age, None, now) {
                let url = issue_code(&state.pool, &base, grant, &auth).await?;
                return Ok(Redirect::to(&url).into_response());
            }
        }
    }
    if c.prompt_none {
        return to_client(
            redirect_uri,
            &[
                ("error", "login_required"),
                ("error_description", "the user must sign in"),
            ],
            c.state.as_deref(),
            &iss,
        );
    }
    let handle = random_secret().map_err(|e| WebError::internal(anyhow::anyhow!("{e}")))?;
    store::insert_authorization(
        &state.pool,
        &AuthorizationRow {
            handle_hash: secret_hash(&handle),
            client_id: client.client_id().to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            scope: c.scope.clone(),
            state: c.state.clone(),
            nonce: c.nonce.clone(),
            code_challenge: c.code_challenge.clone(),
            login_hint: c.login_hint.clone(),
            prompt_login: i64::from(c.prompt_login),
            max_age: c.max_age,
            created_at: now,
            expires_at: now + AUTHORIZATION_TTL_MS,
        },
        now,
    )
    .await?;
    let mut r = Redirect::to("/signin").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        flow_cookie(&base, &handle, AUTHORIZATION_TTL_MS / 1000),
    );
    Ok(r)
}

/// `GET /oauth2/authorize/resume`: the browser signed in during an authorization; it gets its
/// code (once) if its sign-in satisfies the request, or goes back to sign in.
pub async fn resume(
    State(state): State<AppState>,
    session: Session,
    flow: BrowserFlow,
) -> Result<Response, WebError> {
    let Some(f) = flow.0 else {
        return Ok(
            (
                StatusCode::BAD_REQUEST,
                html(pages::message_page(
                    "Sign-in request expired",
                    "This application's sign-in request is no longer in progress. Go back to the application and sign in again.",
                )),
            )
                .into_response(),
        );
    };
    let r = &f.request;
    let now = now_ms();
    let not_before = (r.prompt_login != 0).then_some(r.created_at);
    // A sign-in after the request was made is fresh by definition (also for max_age=0).
    let auth = session_auth(&state.pool, &session)
        .await?
        .filter(|a| a.auth_time >= r.created_at || satisfies(a, None, r.max_age, not_before, now));
    let Some(auth) = auth else {
        return Ok(Redirect::to("/signin").into_response());
    };
    if !store::delete_authorization(&state.pool, &f.handle_hash).await? {
        return Ok(Redirect::to("/signin").into_response());
    }
    let base: PublicBase = session.base.clone();
    let url = issue_code(
        &state.pool,
        &base,
        Grant {
            client: &f.client,
            redirect_uri: &r.redirect_uri,
            scope: &r.scope,
            state: r.state.as_deref(),
            nonce: r.nonce.as_deref(),
            code_challenge: r.code_challenge.as_deref(),
        },
        &auth,
    )
    .await?;
    let mut response = continue_page(&url, &f.client.application.name);
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie(&base, "", 0));
    Ok(response)
}

impl From<OAuthError> for WebError {
    fn from(e: OAuthError) -> Self {
        WebError::internal(anyhow::anyhow!("{e}"))
    }
}
