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
//!    A sign-in the phone denied or reported, or that failed or expired, ends at
//!    `/oauth2/authorize/abort` once the page has said so: the client gets `access_denied`.
//!
//! Responses go back in the query (`response_mode=query`, the default) or as an
//! auto-submitting form (`response_mode=form_post`, [`form_post_page`]), always with `state`
//! and `iss` (RFC 9207). `acr_values` and an essential `acr` in `claims` set the weakest
//! sign-in the client accepts ([`requested_acr`]); an `id_token_hint` must be an ID token of
//! this provider for this client, and only its user may complete the request.
use authenticator_protocol::text;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::clients::{self, Client};
use super::{
    acr_for, hint, random_secret, secret_hash, OAuthError, Params, ACR_MFA, ACR_PHISHING_RESISTANT,
    ACR_SINGLE_FACTOR,
};
use crate::web::flow::flow_cookie;
pub use crate::web::flow::{
    after_sign_in, BrowserFlow, Flow, ABORT_PATH, FLOW_COOKIE, SECURE_FLOW_COOKIE,
};
use crate::web::session::PublicBase;
use crate::web::{html, pages, Session, WebError};
use signin_domain::audit::{self, Event};
use signin_domain::state::AppState;
use signin_domain::store::oidc::{self as store, AuthorizationRow, CodeRow, SessionAuthRow};
use signin_domain::store::requests::Status;
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
/// `profile`, `email` and `groups` ask for the user's claims (`token::user_claims`), in
/// userinfo and in the ID token. The granted scope (the token response's `scope`) is the
/// supported scopes asked for; others are not echoed.
pub const SUPPORTED_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "groups",
    super::OFFLINE_ACCESS,
];

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

/// How the authorization response goes back to the client (OAuth 2.0 Multiple Response Type
/// Encoding Practices §2.1; OAuth 2.0 Form Post Response Mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// In the redirect URI's query (the default for `response_type=code`).
    Query,
    /// As an HTML form the browser posts to the redirect URI.
    FormPost,
}

impl ResponseMode {
    /// The `response_mode` parameter; `None` for a mode this provider does not support.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("query") => Some(ResponseMode::Query),
            Some("form_post") => Some(ResponseMode::FormPost),
            Some(_) => None,
        }
    }

    fn stored(self) -> Option<String> {
        match self {
            ResponseMode::Query => None,
            ResponseMode::FormPost => Some("form_post".to_owned()),
        }
    }

    fn from_stored(value: Option<&str>) -> Self {
        match value {
            Some("form_post") => ResponseMode::FormPost,
            _ => ResponseMode::Query,
        }
    }
}

/// How the browser reached the answer being built: it decides whether a query response may be
/// a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// A navigation (the client's redirect, a link, a meta refresh): a redirect may go to the
    /// client.
    Navigation,
    /// The redirects of a form post on this server's pages (the sign-in ends with one):
    /// browsers hold those to the page's CSP `form-action 'self'`, which the client's origin is
    /// not, so a page continues instead ([`continue_page`]).
    AfterForm,
}

/// Where an authorization response goes.
struct ClientReply<'a> {
    redirect_uri: &'a str,
    state: Option<&'a str>,
    iss: &'a str,
    mode: ResponseMode,
    app_name: &'a str,
}

impl ClientReply<'_> {
    /// `params` (a code, or an error and its description) with `state` and `iss` (RFC 9207),
    /// in the response mode.
    fn send(&self, params: &[(&str, &str)], arrival: Arrival) -> Result<Response, WebError> {
        let mut fields: Vec<(&str, &str)> = params.to_vec();
        if let Some(s) = self.state {
            fields.push(("state", s));
        }
        fields.push(("iss", self.iss));
        match self.mode {
            ResponseMode::Query => {
                let url = client_url(self.redirect_uri, &fields)?;
                Ok(match arrival {
                    Arrival::Navigation => Redirect::to(&url).into_response(),
                    Arrival::AfterForm => {
                        continue_page(&url, "Signed in", "Returning to", self.app_name)
                    }
                })
            }
            ResponseMode::FormPost => form_post_page(self.redirect_uri, &fields, self.app_name),
        }
    }

    /// An error response (OpenID Connect Core §3.1.2.6).
    fn error(
        &self,
        error: &str,
        description: &str,
        arrival: Arrival,
    ) -> Result<Response, WebError> {
        self.send(
            &[("error", error), ("error_description", description)],
            arrival,
        )
    }
}

/// `redirect_uri` with `fields` added to its query.
fn client_url(redirect_uri: &str, fields: &[(&str, &str)]) -> Result<String, WebError> {
    let mut url = url::Url::parse(redirect_uri)
        .map_err(|e| WebError::internal(anyhow::anyhow!("registered redirect URI: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in fields {
            q.append_pair(k, v);
        }
    }
    Ok(url.into())
}

/// A page that sends the browser on to `url` (another origin) once a form post on these pages
/// is done. Not a redirect: browsers hold the redirects of a form submission to the page's CSP
/// `form-action 'self'`, which the other origin is not. A meta refresh is a new navigation
/// (with a link for browsers that do not follow it); `Referrer-Policy: no-referrer` keeps this
/// page's address out of it.
pub(crate) fn continue_page(url: &str, heading: &str, lead: &str, app_name: &str) -> Response {
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content=(format!("0;url={url}"));
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (heading) " · Phone sign-in" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                main id="main" {
                    section.card.narrow {
                        h1 { (heading) }
                        p { (lead) " " strong { (app_name) } "…" }
                        p { a id="continue" href=(url) { "Continue" } }
                    }
                }
            }
        }
    };
    html(page)
}

/// `response_mode=form_post`: a page whose form posts `fields` to the client's redirect URI.
///
/// The page keeps the strict CSP (no inline script, no nonce): the form is submitted by
/// `/assets/autosubmit.js`, a static script of this server (`script-src 'self'`), and, without
/// JavaScript, by the user's click on its button. A nonce would have to be fresh per answer and
/// would admit inline script into pages that otherwise have none; a static same-origin script
/// needs neither, and a page that shows the fields' values nowhere gives injected markup nothing
/// to run. Only `form-action` is widened, to the redirect URI's **origin** (the path is not part
/// of a CSP source that also has to match a redirect the client's callback may answer with;
/// the URI itself was matched exactly against the registration).
fn form_post_page(
    redirect_uri: &str,
    fields: &[(&str, &str)],
    app_name: &str,
) -> Result<Response, WebError> {
    let origin = url::Url::parse(redirect_uri)
        .map_err(|e| WebError::internal(anyhow::anyhow!("registered redirect URI: {e}")))?
        .origin()
        .ascii_serialization();
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Returning to " (app_name) " · Phone sign-in" }
                link rel="stylesheet" href="/assets/style.css";
                script src=(crate::web::AUTOSUBMIT_JS_PATH) defer {}
            }
            body {
                main id="main" {
                    section.card.narrow {
                        h1 { "Returning to " (app_name) }
                        form id="autosubmit" method="post" action=(redirect_uri) {
                            @for (name, value) in fields {
                                input type="hidden" name=(name) value=(value);
                            }
                            p { "If nothing happens, continue by hand." }
                            div.actions { button type="submit" id="continue" { "Continue" } }
                        }
                    }
                }
            }
        }
    };
    let mut response = html(page);
    let csp = crate::web::csp_with_form_action(&origin);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).map_err(|e| WebError::Internal(e.into()))?,
    );
    Ok(response)
}

/// The weakest of this provider's `acr` values a sign-in may have to answer the request, from
/// `acr_values` (OpenID Connect Core §3.1.2.1: values in order of preference; a sign-in that
/// meets any listed value this provider knows is accepted, so the weakest of them counts, and
/// unknown values are ignored) and from an essential `acr` claim in `claims` (§5.5.1.1: its
/// `value` or `values`; one that names no value this provider knows cannot be met). The
/// stricter of the two counts. The values are ordered: single-factor < mfa < phr.
fn requested_acr(p: &Params) -> Result<Option<&'static str>, (&'static str, &'static str)> {
    let from_values = p
        .get("acr_values")
        .map(|v| weakest_known(v.split(' ')))
        .unwrap_or(None);
    let from_claims = match p.get("claims") {
        None => None,
        Some(claims) => {
            let claims: serde_json::Value = serde_json::from_str(claims)
                .map_err(|_| ("invalid_request", "claims is not a JSON object"))?;
            if !claims.is_object() {
                return Err(("invalid_request", "claims is not a JSON object"));
            }
            let acr = &claims["id_token"]["acr"];
            if acr["essential"] == serde_json::Value::Bool(true) {
                let values: Vec<&str> = match (&acr["value"], &acr["values"]) {
                    (serde_json::Value::String(v), _) => vec![v.as_str()],
                    (_, serde_json::Value::Array(list)) => {
                        list.iter().filter_map(serde_json::Value::as_str).collect()
                    }
                    _ => Vec::new(),
                };
                match weakest_known(values.into_iter()) {
                    Some(acr) => Some(acr),
                    // Essential, and any acr does: every sign-in has one.
                    None if acr.get("value").is_none() && acr.get("values").is_none() => None,
                    None => {
                        return Err((
                            "unmet_authentication_requirements",
                            "the essential acr names no value this provider offers",
                        ))
                    }
                }
            } else {
                None
            }
        }
    };
    Ok(match (from_values, from_claims) {
        (Some(a), Some(b)) => Some(if acr_level(a) >= acr_level(b) { a } else { b }),
        (a, b) => a.or(b),
    })
}

/// The weakest of `values` this provider knows.
fn weakest_known<'a>(values: impl Iterator<Item = &'a str>) -> Option<&'static str> {
    values
        .filter_map(|v| {
            [ACR_SINGLE_FACTOR, ACR_MFA, ACR_PHISHING_RESISTANT]
                .into_iter()
                .find(|k| *k == v)
        })
        .min_by_key(|a| acr_level(a))
}

/// The rank of an `acr` of this provider (unknown: below all).
fn acr_level(acr: &str) -> u8 {
    match acr {
        ACR_PHISHING_RESISTANT => 3,
        ACR_MFA => 2,
        ACR_SINGLE_FACTOR => 1,
        _ => 0,
    }
}

/// The `acr` a stored sign-in earned.
fn acr_of(auth: &SessionAuthRow) -> &'static str {
    let amr: Vec<String> = auth.amr.split(' ').map(str::to_owned).collect();
    acr_for(&amr)
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
    /// The weakest `acr` the client accepts ([`requested_acr`]).
    acr_min: Option<&'static str>,
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
    let acr_min = requested_acr(p)?;
    Ok(Checked {
        scope,
        state,
        nonce,
        code_challenge,
        login_hint,
        prompt_login,
        prompt_none,
        max_age,
        acr_min,
    })
}

/// What a browser's existing sign-in must meet to answer a request without a new one.
struct Needs<'a> {
    login_hint: Option<&'a str>,
    /// The user an `id_token_hint` named.
    hint_upn: Option<&'a str>,
    max_age: Option<i64>,
    /// With `prompt=login`: signed in after this.
    not_before: Option<i64>,
    acr_min: Option<&'a str>,
}

/// Whether this browser's sign-in satisfies the request: same user as a `login_hint` and an
/// `id_token_hint`, not older than `max_age`, (with `prompt=login`) after `not_before`, and at
/// least as strong as the requested `acr`.
fn satisfies(auth: &SessionAuthRow, needs: &Needs<'_>, now: i64) -> bool {
    if needs.login_hint.is_some_and(|h| h != auth.upn) {
        return false;
    }
    if needs
        .max_age
        .is_some_and(|m| now - auth.auth_time > m * 1000)
    {
        return false;
    }
    if needs.not_before.is_some_and(|t| auth.auth_time < t) {
        return false;
    }
    unmet(auth, needs).is_none()
}

/// What a sign-in made for the request (so fresh by definition) still fails: another user
/// than the `id_token_hint`'s, or a weaker sign-in than the requested `acr`. As the error for
/// the client (error, description).
fn unmet(auth: &SessionAuthRow, needs: &Needs<'_>) -> Option<(&'static str, &'static str)> {
    if needs.hint_upn.is_some_and(|u| u != auth.upn) {
        return Some((
            "login_required",
            "the user who signed in is not the one id_token_hint names",
        ));
    }
    if needs
        .acr_min
        .is_some_and(|min| acr_level(acr_of(auth)) < acr_level(min))
    {
        return Some((
            "unmet_authentication_requirements",
            "the sign-in is weaker than the requested acr",
        ));
    }
    None
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
    nonce: Option<&'a str>,
    code_challenge: Option<&'a str>,
}

/// Stores a new code for the signed-in user (and records that the browser's session gave the
/// client one, for Back-Channel Logout); returns the code.
async fn issue_code(pool: &Pool, g: Grant<'_>, auth: &SessionAuthRow) -> Result<String, WebError> {
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
            sid: auth.sid.clone(),
        },
        now,
    )
    .await?;
    if let Some(sid) = auth.sid.as_deref() {
        store::record_session_client(pool, sid, g.client.client_id(), now, auth.expires_at).await?;
    }
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
    Ok(code)
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
    let state_param = p.get("state").filter(|s| s.len() <= MAX_STATE_LEN);
    // The response mode first: every later answer goes back in it.
    let mode = ResponseMode::parse(p.get("response_mode"));
    let reply = ClientReply {
        redirect_uri,
        state: state_param,
        iss: &iss,
        mode: mode.unwrap_or(ResponseMode::Query),
        app_name: &client.application.name,
    };
    let refuse = |error: &str, description: &str| {
        tracing::info!(client_id = %client.client_id(), error, "authorization refused");
        reply.error(error, description, Arrival::Navigation)
    };
    if mode.is_none() {
        return refuse(
            "invalid_request",
            "response_mode must be query or form_post",
        );
    }
    let c = match check(&p, &client) {
        Ok(c) => c,
        Err((error, description)) => return refuse(error, description),
    };
    // A phishing-resistant sign-in is one bound to this browser, which only the policy's
    // phishing-resistant option makes (PROTOCOL.md §5.9): without it, none can be had.
    if c.acr_min == Some(ACR_PHISHING_RESISTANT) {
        let policy = signin_domain::rules::policy::load(&state.pool)
            .await
            .map_err(WebError::Internal)?;
        if !policy.phishing_resistant {
            return refuse(
                "unmet_authentication_requirements",
                "phishing-resistant sign-ins are not enabled on this provider",
            );
        }
    }
    // An id_token_hint must be this provider's ID token for this client; its user is the
    // only one who may complete the request.
    let hint_upn = match p.get("id_token_hint") {
        None => None,
        Some(token) => match hint::verify(&state.pool, &iss, token).await? {
            Ok(h) if h.is_for(client.client_id()) => {
                match store::upn_for_subject(&state.pool, &h.sub).await? {
                    Some(upn) => Some(upn),
                    None => {
                        return refuse(
                            "login_required",
                            "the user id_token_hint names cannot sign in",
                        )
                    }
                }
            }
            Ok(_) => {
                tracing::info!(reason = %hint::HintError::OtherAudience, "id_token_hint refused");
                return refuse(
                    "invalid_request",
                    "id_token_hint is not an ID token this provider issued to this client",
                );
            }
            Err(e) => {
                tracing::info!(reason = %e, "id_token_hint refused");
                return refuse(
                    "invalid_request",
                    "id_token_hint is not an ID token this provider issued to this client",
                );
            }
        },
    };
    let login_hint = c.login_hint.clone().or_else(|| hint_upn.clone());
    let now = now_ms();
    let grant = Grant {
        client: &client,
        redirect_uri,
        scope: &c.scope,
        nonce: c.nonce.as_deref(),
        code_challenge: c.code_challenge.as_deref(),
    };
    let needs = Needs {
        login_hint: login_hint.as_deref(),
        hint_upn: hint_upn.as_deref(),
        max_age: c.max_age,
        not_before: None,
        acr_min: c.acr_min,
    };
    if !c.prompt_login {
        if let Some(auth) = session_auth(&state.pool, &session).await? {
            if satisfies(&auth, &needs, now) {
                let code = issue_code(&state.pool, grant, &auth).await?;
                return reply.send(&[("code", &code)], Arrival::Navigation);
            }
        }
    }
    if c.prompt_none {
        return refuse("login_required", "the user must sign in");
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
            login_hint,
            prompt_login: i64::from(c.prompt_login),
            max_age: c.max_age,
            created_at: now,
            expires_at: now + AUTHORIZATION_TTL_MS,
            response_mode: reply.mode.stored(),
            acr_min: c.acr_min.map(str::to_owned),
            hint_upn,
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

/// The page for a browser whose authorization is no longer in progress.
fn expired_page() -> Response {
    (
        StatusCode::BAD_REQUEST,
        html(pages::message_page(
            "Sign-in request expired",
            "This application's sign-in request is no longer in progress. Go back to the application and sign in again.",
        )),
    )
        .into_response()
}

/// Where the stored authorization request of `f` answers.
fn stored_reply<'a>(f: &'a Flow, iss: &'a str) -> ClientReply<'a> {
    ClientReply {
        redirect_uri: &f.request.redirect_uri,
        state: f.request.state.as_deref(),
        iss,
        mode: ResponseMode::from_stored(f.request.response_mode.as_deref()),
        app_name: &f.client.application.name,
    }
}

/// Ends the browser's authorization in progress: the response also removes its cookie.
fn ended(base: &PublicBase, mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::SET_COOKIE, flow_cookie(base, "", 0));
    response
}

/// `GET /oauth2/authorize/resume`: the browser signed in during an authorization; it gets its
/// code (once) if its sign-in satisfies the request, or goes back to sign in. A sign-in made
/// for the request that is by another user than an `id_token_hint` named, or weaker than the
/// requested `acr`, ends the request with an error for the client.
pub async fn resume(
    State(state): State<AppState>,
    session: Session,
    flow: BrowserFlow,
) -> Result<Response, WebError> {
    let Some(f) = flow.0 else {
        return Ok(expired_page());
    };
    let r = &f.request;
    let now = now_ms();
    let Some(auth) = session_auth(&state.pool, &session).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let needs = Needs {
        login_hint: r.login_hint.as_deref(),
        hint_upn: r.hint_upn.as_deref(),
        max_age: r.max_age,
        not_before: (r.prompt_login != 0).then_some(r.created_at),
        acr_min: r.acr_min.as_deref(),
    };
    // A sign-in after the request was made is fresh by definition (also for max_age=0), and
    // answers it whoever signed in (login_hint only fills in the form); an older one must
    // meet everything, or the browser signs in again.
    let fresh = auth.auth_time >= r.created_at;
    if !fresh && !satisfies(&auth, &needs, now) {
        return Ok(Redirect::to("/signin").into_response());
    }
    if !store::delete_authorization(&state.pool, &f.handle_hash).await? {
        return Ok(Redirect::to("/signin").into_response());
    }
    let base: PublicBase = session.base.clone();
    let iss = issuer(&base);
    let reply = stored_reply(&f, &iss);
    if let Some((error, description)) = unmet(&auth, &needs) {
        tracing::info!(client_id = %f.client.client_id(), error, "authorization refused after the sign-in");
        return Ok(ended(
            &base,
            reply.error(error, description, Arrival::AfterForm)?,
        ));
    }
    let code = issue_code(
        &state.pool,
        Grant {
            client: &f.client,
            redirect_uri: &r.redirect_uri,
            scope: &r.scope,
            nonce: r.nonce.as_deref(),
            code_challenge: r.code_challenge.as_deref(),
        },
        &auth,
    )
    .await?;
    Ok(ended(
        &base,
        reply.send(&[("code", &code)], Arrival::AfterForm)?,
    ))
}

/// `GET /oauth2/authorize/abort`: the sign-in of this browser's authorization was denied or
/// reported on the phone, failed (wrong numbers) or expired, and the page has said so (it
/// comes here by itself, or by its link): the client gets `access_denied` with `state` and
/// `iss`, once. Only a sign-in that has ended so does it; any other goes back to its page, so
/// a link from elsewhere cannot end an authorization that is still going.
pub async fn abort(
    State(state): State<AppState>,
    session: Session,
    flow: BrowserFlow,
) -> Result<Response, WebError> {
    let Some(f) = flow.0 else {
        return Ok(expired_page());
    };
    let Some(signin_id) = session.pending_request.as_deref() else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let status = signin_domain::sign_in::current(&state, signin_id)
        .await?
        .map(|r| r.status);
    let description = match status {
        Some(Status::Denied) => "the user denied the sign-in",
        Some(Status::Reported) => "the user reported the sign-in as not theirs",
        Some(Status::Failed) => "the sign-in failed: too many wrong numbers",
        Some(Status::Expired) => "the sign-in request expired",
        Some(Status::Pending | Status::Approved | Status::Closed) => {
            return Ok(Redirect::to("/signin/wait").into_response())
        }
        None => return Ok(Redirect::to("/signin").into_response()),
    };
    if !store::delete_authorization(&state.pool, &f.handle_hash).await? {
        return Ok(expired_page());
    }
    tracing::info!(client_id = %f.client.client_id(), "authorization ended: access_denied");
    let base = session.base.clone();
    let iss = issuer(&base);
    let reply = stored_reply(&f, &iss);
    Ok(ended(
        &base,
        reply.error("access_denied", description, Arrival::Navigation)?,
    ))
}

impl From<OAuthError> for WebError {
    fn from(e: OAuthError) -> Self {
        WebError::internal(anyhow::anyhow!("{e}"))
    }
}
