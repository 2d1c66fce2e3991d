//! The sign-in pages: UPN → (phone sign-in: the number, waiting) or (password → push with the
//! number) → signed in. The session id changes when a request is started (the UPN for phone
//! sign-in, the password for push) and again at sign-in; the browser that started a request is
//! the only one it can sign in, once.
use authenticator_protocol::sign_in::RequestKind;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::flow::BrowserFlow;
use super::pages::{csrf, layout, layout_refreshing, local_time, notice, Notice};
use super::{load_user, page, see_other, Session, WebError};
use crate::extract::ClientIp;
use signin_domain::accounts::applications;
use signin_domain::accounts::methods::{self, OtherWays};
use signin_domain::accounts::passwords::{self, PasswordCheck};
use signin_domain::audit::{self, Event};
use signin_domain::sign_in::{self, StartSignIn, Started};
use signin_domain::state::AppState;
use signin_domain::store::requests::{kind_str, Status, StoredRequest};
use signin_domain::trust::{self, Method, Refusal};
use signin_domain::upn::Upn;
use signin_domain::AppError;

/// "Resend request" works this many times per sign-in attempt (then: start over).
pub const MAX_RESENDS: i64 = 3;

#[derive(Deserialize)]
pub struct UpnForm {
    pub csrf: String,
    pub upn: String,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    pub csrf: String,
    pub password: String,
}

impl std::fmt::Debug for PasswordForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordForm { .. }")
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// The organisation the sign-in pages name (`[server] name`), above each page's heading.
fn organisation(state: &AppState) -> maud::Markup {
    html! { p.organisation id="organisation" { (state.settings.server_name) } }
}

fn upn_page(state: &AppState, session: &Session, n: Notice<'_>, upn: &str) -> Response {
    page(
        session,
        layout(
            "Sign in",
            None,
            html! {
                section.card.narrow {
                    (organisation(state))
                    h1 { "Sign in" }
                    (notice(n))
                    form method="post" action="/signin" {
                        (csrf(session))
                        label for="upn" { "Email or username" }
                        input type="text" id="upn" name="upn" value=(upn) autocomplete="username"
                            required autofocus spellcheck="false" autocapitalize="none"
                            aria-describedby="upn-hint";
                        p.hint id="upn-hint" {
                            "For example bobby@contoso.com. Capital letters make no difference."
                        }
                        div.actions { button type="submit" id="next" { "Next" } }
                    }
                }
            },
        ),
    )
}

/// `GET /signin`
/// During an OpenID Connect authorization that needs a sign-in (`BrowserFlow`), the form
/// shows even to a signed-in browser, with the client's `login_hint` filled in.
pub async fn form(
    State(state): State<AppState>,
    session: Session,
    flow: BrowserFlow,
) -> Result<Response, WebError> {
    if session.upn.is_some() && !flow.is_active() {
        return Ok(Redirect::to("/me").into_response());
    }
    // Nothing is stored for a page view: the cookie (set now if new) carries the CSRF
    // token's secret, and the first form post stores the session.
    Ok(upn_page(
        &state,
        &session,
        Notice::None,
        flow.login_hint().unwrap_or_default(),
    ))
}

/// Messages for refusals of `create_request` that are not faults (rate limits and the like).
fn refusal_text(e: &AppError) -> String {
    match e {
        AppError::PolicyDisabled => "The Authenticator app is not enabled for this account.".into(),
        other => {
            let mut t = other.to_string();
            if let Some(c) = t.get_mut(0..1) {
                c.make_ascii_uppercase();
            }
            format!("{t}.")
        }
    }
}

/// `POST /signin`: phone sign-in when the user has it, the password page otherwise.
pub async fn submit_upn(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    mut session: Session,
    flow: BrowserFlow,
    Form(f): Form<UpnForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    // One form of the name from here on (`Upn`: trimmed, lower case): the pages and every
    // rule see the same name however it was typed.
    let Ok(upn) = Upn::parse(&f.upn) else {
        return Ok(upn_page(
            &state,
            &session,
            Notice::Error("Enter your email or username."),
            "",
        ));
    };
    let upn = upn.as_str();
    // This browser's earlier sign-in, if still pending, is withdrawn from the phone when the
    // new one is sent: one request per browser on the phone, never a pile of look-alikes.
    let previous = session.pending_request.take();
    session.pending_upn = Some(upn.to_owned());
    session.pending_kind = None;
    session.resends = 0;
    match start(
        &state,
        ip,
        upn,
        RequestKind::Passwordless,
        previous.as_deref(),
        &flow,
    )
    .await
    {
        Ok(started) => {
            // The sign-in continues under a new session id (see `Session::rotate_id`).
            session.rotate_id(&state.pool).await?;
            start_waiting(&state, &mut session, started, RequestKind::Passwordless).await?;
            Ok(see_other(&session, "/signin/wait"))
        }
        // No phone sign-in for this account (or no such account: the password page answers
        // the same for both).
        Err(
            AppError::UnknownAccount | AppError::NotPasswordlessCapable | AppError::PolicyDisabled,
        ) => {
            // The id changes when the password starts the push (`submit_password`).
            session.save(&state.pool).await?;
            Ok(see_other(&session, "/signin/password"))
        }
        Err(AppError::Internal(e)) => Err(WebError::Internal(e)),
        Err(AppError::Paused { retry_after_secs }) => {
            session.save(&state.pool).await?;
            paused_page(&state, &session, upn, retry_after_secs).await
        }
        Err(other) => Ok(upn_page(
            &state,
            &session,
            Notice::Error(&refusal_text(&other)),
            upn,
        )),
    }
}

/// A sign-in from these pages: the phone names the built-in portal application, or during an
/// OpenID Connect authorization the client's registered name. `replaces` is this browser's
/// earlier sign-in (resend, or a new start from the same browser); no other start supersedes
/// one.
async fn start(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    upn: &str,
    kind: RequestKind,
    replaces: Option<&str>,
    flow: &BrowserFlow,
) -> Result<Started, AppError> {
    let application = match flow.application() {
        Some(client) => client.clone(),
        None => applications::portal(&state.pool).await?,
    };
    sign_in::start(
        state,
        StartSignIn {
            upn,
            application: &application,
            kind,
            client_ip: ip,
            replaces,
            browser: true,
            lifetime_secs: None,
        },
    )
    .await
}

async fn start_waiting(
    state: &AppState,
    session: &mut Session,
    started: Started,
    kind: RequestKind,
) -> Result<(), WebError> {
    session.pending_request = Some(started.id.as_str().to_owned());
    session.pending_kind = Some(kind_str(kind).to_owned());
    session.save(&state.pool).await
}

fn password_page(session: &Session, upn: &str, n: Notice<'_>) -> Response {
    page(
        session,
        layout(
            "Enter password",
            None,
            html! {
                section.card.narrow {
                    h1 { "Enter password" }
                    p.muted { "Signing in as " strong { (upn) } }
                    (notice(n))
                    form method="post" action="/signin/password" {
                        (csrf(session))
                        // For password managers: which account this password belongs to.
                        input type="hidden" name="username" value=(upn) autocomplete="username";
                        label for="password" { "Password" }
                        input type="password" id="password" name="password" required autofocus
                            autocomplete="current-password";
                        div.actions {
                            button type="submit" id="sign-in" { "Sign in" }
                            a href="/signin" { "Use another account" }
                        }
                    }
                    p { a href="/signin/pass" id="use-pass" { "Use a temporary access pass" } }
                    p { a href="/signin/fallback" id="use-code" { "Can't use your phone? Use a verification code" } }
                }
            },
        ),
    )
}

#[derive(Deserialize)]
pub struct PassForm {
    pub csrf: String,
    pub pass: String,
}

impl std::fmt::Debug for PassForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassForm { .. }")
    }
}

fn pass_page(session: &Session, upn: &str, n: Notice<'_>) -> Response {
    page(
        session,
        layout(
            "Temporary access pass",
            None,
            html! {
                section.card.narrow {
                    h1 { "Temporary access pass" }
                    p.muted { "Signing in as " strong { (upn) } }
                    p { "Enter the pass your administrator gave you. It works once." }
                    (notice(n))
                    form method="post" action="/signin/pass" {
                        (csrf(session))
                        label for="pass" { "Temporary access pass" }
                        input type="password" id="pass" name="pass" required autofocus
                            autocomplete="one-time-code";
                        div.actions {
                            button type="submit" id="sign-in-pass" { "Sign in" }
                            a href="/signin" { "Use another account" }
                        }
                    }
                }
            },
        ),
    )
}

/// A page of a sign-in in progress (password, temporary pass): only for a browser that has
/// submitted a UPN (its session is stored); any other goes back to the start.
fn in_progress(
    session: &Session,
    page: fn(&Session, &str, Notice<'_>) -> Response,
) -> Result<Response, WebError> {
    match session.pending_upn.as_deref() {
        Some(upn) if session.is_stored() => Ok(page(session, upn, Notice::None)),
        _ => Ok(Redirect::to("/signin").into_response()),
    }
}

/// `GET /signin/pass`
pub async fn pass_form(session: Session) -> Result<Response, WebError> {
    in_progress(&session, pass_page)
}

/// `POST /signin/pass`: an admin-issued temporary access pass signs the user in once (to
/// register a phone where the policy refuses a password alone). The pass has 128 random
/// bits, so guessing is hopeless; every attempt is audited.
pub async fn submit_pass(
    State(state): State<AppState>,
    mut session: Session,
    flow: BrowserFlow,
    Form(f): Form<PassForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let Some(upn) = session.pending_upn.clone() else {
        return Ok(Redirect::to("/signin").into_response());
    };
    if f.pass.trim().is_empty() || f.pass.len() > 64 {
        return Ok(pass_page(&session, &upn, Notice::Error("Enter the pass.")));
    }
    let ok = signin_domain::accounts::temporary_pass::redeem(&state.pool, &upn, &f.pass)
        .await
        .map_err(WebError::Internal)?;
    if !ok {
        return Ok(pass_page(
            &session,
            &upn,
            Notice::Error("This pass is not valid: it may be used, expired or mistyped."),
        ));
    }
    session.pending_upn = None;
    signed_in(
        &state,
        &session,
        SignedIn {
            upn: &upn,
            method: Method::TemporaryPass,
            device: None,
            answered: None,
            to: "/me/security-info",
        },
        &flow,
    )
    .await
}

/// A browser that has just proven who it is: who, how and with which device (checked by
/// `trust::authenticate`, audited), the sign-in request it completes (consumed with the
/// session, so it completes once), and where it goes next.
pub(super) struct SignedIn<'a> {
    pub(super) upn: &'a str,
    pub(super) method: Method,
    /// The device whose key or TOTP secret proved it.
    pub(super) device: Option<&'a str>,
    /// (sign-in id, id of the request that was approved).
    pub(super) answered: Option<(&'a str, &'a str)>,
    pub(super) to: &'static str,
}

/// What the browser sees when `trust::authenticate` refuses a proven credential.
fn refusal_page(session: &Session, refusal: &Refusal) -> Response {
    let text = match refusal {
        Refusal::Disabled => "This account is disabled. Contact your administrator.".to_owned(),
        Refusal::Paused { retry_after_secs } => {
            let minutes = retry_after_secs.div_ceil(60);
            format!(
                "Sign-ins to this account are paused for {minutes} more minute{} because a \
                 sign-in was reported as not yours. Try again later, or ask your administrator.",
                if minutes == 1 { "" } else { "s" }
            )
        }
        Refusal::DeviceHeld => "This Authenticator app is waiting for approval from another of \
             your devices or your administrator. It cannot sign you in yet."
            .to_owned(),
        Refusal::DeviceGone => {
            "This Authenticator app is no longer registered for your account.".to_owned()
        }
        Refusal::UnknownUser => "We could not sign you in.".to_owned(),
    };
    let mut r = page(
        session,
        super::pages::message_page("You have not been signed in", &text),
    );
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

/// The one way a browser becomes signed in: `trust::authenticate` decides whether the proven
/// credential may act for the user now (the user not disabled or paused, the device not held
/// or removed); then the browser moves to a new, signed-in session id that records how it was
/// made, the sign-in is audited, and the browser is redirected (during an OpenID Connect
/// authorization, `flow`, back to it: `flow::after_sign_in`, which also records how
/// and when for the ID token).
pub(super) async fn signed_in(
    state: &AppState,
    session: &Session,
    s: SignedIn<'_>,
    flow: &BrowserFlow,
) -> Result<Response, WebError> {
    let who = match trust::authenticate(&state.pool, s.upn, s.method, s.device).await? {
        Ok(who) => who,
        Err(refusal) => return Ok(refusal_page(session, &refusal)),
    };
    let next = session
        .rotate_to_signed_in(&state.pool, &who, s.answered.map(|(signin, _)| signin))
        .await?;
    audit::record(
        &state.pool,
        Event::WebSignIn,
        audit::Entry {
            upn: Some(s.upn),
            account_id: s.device,
            request_id: s.answered.map(|(_, request)| request),
            outcome: s.method.as_str(),
            actor: None,
        },
    )
    .await?;
    let to = super::flow::after_sign_in(&state.pool, flow, &next, &who)
        .await?
        .unwrap_or(s.to);
    Ok(see_other(&next, to))
}

/// `GET /signin/password`
pub async fn password_form(session: Session) -> Result<Response, WebError> {
    in_progress(&session, password_page)
}

/// `POST /signin/password`: the password, then the phone as second factor when the policy
/// has push for this user and they have a phone.
pub async fn submit_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    mut session: Session,
    flow: BrowserFlow,
    Form(f): Form<PasswordForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let Some(upn) = session.pending_upn.clone() else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let checked =
        passwords::verify_password(&state.pool, &state.passwords, &upn, ip, &f.password).await?;
    if let PasswordCheck::Throttled {
        by,
        retry_after_secs,
    } = checked
    {
        let outcome = format!(
            "password_attempts by={} retry_after_secs={retry_after_secs}",
            by.as_str()
        );
        audit::record(
            &state.pool,
            Event::RateLimited,
            audit::Entry {
                upn: Some(&upn),
                outcome: &outcome,
                ..Default::default()
            },
        )
        .await?;
        tracing::info!(by = by.as_str(), "password attempt refused: throttled");
        let minutes = retry_after_secs.div_ceil(60);
        let text = format!(
            "Too many password attempts. Wait {minutes} minute{} and try again.",
            if minutes == 1 { "" } else { "s" }
        );
        let mut r = password_page(&session, &upn, Notice::Error(&text));
        *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let user = if checked == PasswordCheck::Correct {
        load_user(&state.pool, &upn).await?
    } else {
        None
    };
    let Some(user) = user else {
        audit::record(
            &state.pool,
            Event::WebSignIn,
            audit::Entry {
                upn: Some(&upn),
                outcome: "bad_password",
                ..Default::default()
            },
        )
        .await?;
        return Ok(password_page(
            &session,
            &upn,
            Notice::Error("Your username or password is incorrect."),
        ));
    };
    let previous = session.pending_request.take();
    match start(
        &state,
        ip,
        &upn,
        RequestKind::Push,
        previous.as_deref(),
        &flow,
    )
    .await
    {
        Ok(started) => {
            session.resends = 0;
            // The push sign-in continues under a new session id (see `Session::rotate_id`).
            session.rotate_id(&state.pool).await?;
            start_waiting(&state, &mut session, started, RequestKind::Push).await?;
            Ok(see_other(&session, "/signin/wait"))
        }
        Err(AppError::PolicyDisabled | AppError::NotPasswordlessCapable) => {
            if !sign_in::password_alone_allowed(&state, &user.upn).await? {
                // The policy requires the Authenticator for this account: a password alone
                // never signs in (fail closed).
                audit::record(
                    &state.pool,
                    Event::WebSignIn,
                    audit::Entry {
                        upn: Some(&upn),
                        outcome: "password_alone_refused",
                        ..Default::default()
                    },
                )
                .await?;
                return Ok(password_page(
                    &session,
                    &upn,
                    Notice::Error(
                        "Your organization requires the Authenticator app for this account. \
                         Approve on your phone, or, to register a phone, use a temporary \
                         access pass from your administrator.",
                    ),
                ));
            }
            // The Authenticator is not in use for this user: the password alone.
            let how = SignedIn {
                upn: &upn,
                method: Method::Password,
                device: None,
                answered: None,
                to: "/me",
            };
            signed_in(&state, &session, how, &flow).await
        }
        Err(AppError::Internal(e)) => Err(WebError::Internal(e)),
        Err(AppError::Paused { retry_after_secs }) => {
            session.save(&state.pool).await?;
            paused_page(&state, &session, &upn, retry_after_secs).await
        }
        Err(other) => Ok(password_page(
            &session,
            &upn,
            Notice::Error(&refusal_text(&other)),
        )),
    }
}

/// The session's pending request, its status settled by the lifecycle.
async fn pending(state: &AppState, session: &Session) -> Result<Option<StoredRequest>, WebError> {
    let Some(id) = session.pending_request.as_deref() else {
        return Ok(None);
    };
    Ok(sign_in::current(state, id).await?)
}

/// What `/signin/wait` may say on top of the number: that a new request was just sent
/// (`?resent`), or that "Continue" was pressed before the phone answered (`?early`).
#[derive(Debug, Default, Deserialize)]
pub struct WaitQuery {
    pub resent: Option<String>,
    pub early: Option<String>,
}

/// How many more times this sign-in may be resent.
fn resends_left(session: &Session) -> i64 {
    (MAX_RESENDS - session.resends).max(0)
}

/// Seconds until `req` expires (0 once it has): the phone shows the same lifetime.
fn seconds_left(req: &StoredRequest) -> u64 {
    let left = signin_domain::store::to_db_ms(req.expires_at) - signin_domain::store::now_ms();
    u64::try_from(left).unwrap_or(0).div_ceil(1000)
}

fn plural(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Resend, with its limit said: how many are left, or that there are none and why.
fn resend_control(session: &Session) -> maud::Markup {
    let left = resends_left(session);
    html! {
        @if left > 0 {
            form method="post" action="/signin/resend" {
                (csrf(session))
                button.secondary type="submit" id="resend" { "Send a new request" }
            }
            p.hint id="resend-limit" {
                "The earlier request is withdrawn from your phone. "
                (plural(left, "new request", "new requests")) " left for this sign-in."
            }
        } @else {
            p.hint id="resend-limit" {
                "You have sent the most new requests for one sign-in ("
                (MAX_RESENDS) "). To try again, start over."
            }
        }
    }
}

/// "Other ways to sign in" (`accounts::methods::other_ways`): the methods this user has and
/// the policy allows. `phone`: list a new request to the phone too (on the pages of a request
/// that ended; the number page has its own resend button beside the request).
fn other_ways_section(session: &Session, ways: &OtherWays, phone: bool) -> maud::Markup {
    let phone = phone && ways.phone;
    let can_resend = resends_left(session) > 0;
    html! {
        section.other-ways id="other-ways" aria-labelledby="other-ways-title" {
            h2 id="other-ways-title" { "Other ways to sign in" }
            @if phone || ways.temporary_pass || ways.code || ways.password {
                ul {
                    @if phone && can_resend {
                        li {
                            form.inline method="post" action="/signin/resend" {
                                (csrf(session))
                                button.link type="submit" id="resend" { "Send a new request to your phone" }
                            }
                        }
                    }
                    @if ways.temporary_pass {
                        li { a href="/signin/pass" id="use-pass" { "Use a temporary access pass" } }
                    }
                    @if ways.code {
                        li { a href="/signin/fallback" id="use-code" {
                            "Use a verification code from your Authenticator app, or a backup code"
                        } }
                    }
                    @if ways.password {
                        li { a href="/signin/password" id="use-password" { "Use your password" } }
                    }
                }
                @if phone && !can_resend {
                    p.hint id="resend-limit" {
                        "You have sent the most new requests to your phone for one sign-in ("
                        (MAX_RESENDS) "). To try your phone again, start over."
                    }
                }
            } @else {
                p id="no-other-ways" {
                    "Your account has no other way to sign in. Your administrator can give you \
                     a temporary access pass."
                }
            }
            p { a href="/signin" { "Start over, or use another account" } }
        }
    }
}

/// The page of a user whose sign-ins are paused after a report ("This wasn't me"): until
/// when (in the viewer's time zone, by `page.js`; UTC without script), and that no other way
/// works meanwhile — `trust::authenticate` refuses every method of a paused user — so the way
/// out is the administrator. Status 403 with `Retry-After`.
async fn paused_page(
    state: &AppState,
    session: &Session,
    upn: &str,
    retry_after_secs: u64,
) -> Result<Response, WebError> {
    let until = signin_domain::store::now_ms()
        .saturating_add(i64::try_from(retry_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX));
    let minutes = retry_after_secs.div_ceil(60);
    let content = html! {
        section.card.narrow {
            (organisation(state))
            h1 id="outcome" data-outcome="paused" { "Sign-ins paused" }
            p.muted { "Signing in as " strong { (upn) } }
            p.notice.error role="alert" id="paused-until" {
                "A sign-in request to your phone was reported as not yours, so sign-ins to this \
                 account are paused until " (local_time(until)) " (in "
                (plural(i64::try_from(minutes).unwrap_or(i64::MAX), "minute", "minutes")) ")."
            }
            section.other-ways id="other-ways" aria-labelledby="other-ways-title" {
                h2 id="other-ways-title" { "Other ways to sign in" }
                p id="paused-ways" {
                    "Until then no way of signing in works for this account: not your phone, \
                     your password, a verification code or a temporary access pass. If you need \
                     to sign in sooner, ask your administrator: they can check what happened \
                     and resume sign-ins."
                }
                p { a href="/signin" { "Use another account" } }
            }
        }
    };
    let mut r = page(session, layout("Sign-ins paused", None, content));
    *r.status_mut() = StatusCode::FORBIDDEN;
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    Ok(r)
}

/// `GET /signin/wait`: the number, and the wait for the phone.
pub async fn wait(
    State(state): State<AppState>,
    session: Session,
    flow: BrowserFlow,
    Query(q): Query<WaitQuery>,
) -> Result<Response, WebError> {
    let Some(req) = pending(&state, &session).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let status = req.status;
    let ways = methods::other_ways(&state.pool, &req.upn).await?;
    if !matches!(status, Status::Pending | Status::Approved) {
        return Ok(outcome_page(&state, &session, status, &flow, &ways));
    }
    let push = req.kind == RequestKind::Push;
    // §5.9: the page hands its challenge to the Authenticator on this device, which reads
    // the page's origin from what the browser itself sends.
    let binding = req.browser_binding()?;
    let listener_origin = format!("http://127.0.0.1:{}", state.settings.browser_listener_port);
    let listener = binding.as_ref().map(|_| {
        format!(
            "{listener_origin}{}",
            authenticator_protocol::sign_in::BROWSER_LISTENER_PATH
        )
    });
    let left = seconds_left(&req);
    let wrong = req.wrong_attempts;
    let max_wrong = authenticator_protocol::wire::MAX_WRONG_NUMBERS;
    let content = html! {
        // The sign-in's id, whichever device's request is shown; the page's script asks
        // `/signin/wait/status` (this session's sign-in) for news.
        section.card.narrow data-request-id=(req.signin_id)
            data-expires-in=(left) data-wrong=(wrong) data-max-wrong=(max_wrong)
            data-browser-challenge=[binding.as_ref().map(|b| b.challenge.as_str())]
            data-browser-listener=[listener.as_deref()] {
            (organisation(&state))
            h1 { "Approve sign-in request" }
            p.muted { "Signing in as " strong { (req.upn) } }
            @if q.resent.is_some() {
                p.notice.info role="status" id="resent" {
                    "A new request was sent to your phone, with a new number. The earlier \
                     request was withdrawn."
                }
            }
            @if q.early.is_some() {
                p.notice.info role="status" id="not-yet" {
                    "Your phone has not answered yet. This page moves on by itself when it does."
                }
            }
            @if binding.is_some() {
                p { "This sign-in is phishing-resistant: approve it in the Authenticator on "
                    strong { "this" } " computer or phone, the one showing this page." }
                p id="browser-status" role="status" aria-live="polite" {
                    "Looking for the Authenticator on this device\u{2026}"
                }
            }
            @if req.number_matching {
                p { "Open your Authenticator app, and enter the number shown to sign in." }
                p.number id="number" aria-label=(format!("Number to enter: {}", req.number)) { (req.number) }
            } @else {
                p { "Open your Authenticator app, and approve the request to sign in." }
            }
            @if push {
                p.hint { "Your password was correct: approve on your phone to finish signing in." }
            }
            // Updated by the script every second; read out only when it changes by a minute
            // (the script sets the live region's text then).
            p id="countdown" {
                "This request expires in " span id="seconds-left" { (left) } " seconds."
            }
            p id="wrong-tries" role="status" aria-live="polite" {
                @if wrong > 0 {
                    (wrong_tries_text(wrong, max_wrong))
                }
            }
            p id="wait-status" role="status" aria-live="polite" { "Waiting for your phone\u{2026}" }
            // The page moves on by itself when the phone answers (`signin.js` submits this
            // form); without script, the button does it by hand, and pressed early it says so.
            form id="complete-form" method="post" action="/signin/complete" {
                (csrf(&session))
                noscript {
                    button type="submit" id="continue" { "I've answered on my phone" }
                }
            }
            div.actions { (resend_control(&session)) }
            (other_ways_section(&session, &ways, false))
        }
        script src="/assets/signin.js" defer {}
    };
    let mut response = page(&session, layout("Approve sign-in request", None, content));
    if binding.is_some() {
        let csp = super::csp_connecting_to(&listener_origin);
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_str(&csp).map_err(|e| WebError::Internal(e.into()))?,
        );
    }
    Ok(response)
}

/// What the number page says after `wrong` wrong numbers on the phone (of `max`).
fn wrong_tries_text(wrong: u32, max: u32) -> String {
    let left = max.saturating_sub(wrong);
    format!(
        "{} entered on your phone. {} left.",
        if wrong == 1 {
            "A wrong number was".to_owned()
        } else {
            format!("{wrong} wrong numbers were")
        },
        if left == 1 {
            "1 try".to_owned()
        } else {
            format!("{left} tries")
        }
    )
}

/// `?wrong=N` of `/signin/wait/status`: the wrong tries the page already shows.
#[derive(Debug, Default, Deserialize)]
pub struct StatusQuery {
    #[serde(default)]
    pub wrong: u32,
}

/// What the number page's script learns from `/signin/wait/status`.
#[derive(Debug, serde::Serialize)]
pub struct WaitStatus {
    /// `pending`, `approved`, `denied`, `reported`, `expired`, `failed`, or `none` (this
    /// browser has no sign-in in progress).
    pub status: &'static str,
    pub wrong_attempts: u32,
    pub message: Option<String>,
    pub expires_in_secs: u64,
}

/// How long `/signin/wait/status` holds a request when nothing changes.
pub const STATUS_WAIT: std::time::Duration = std::time::Duration::from_secs(25);

/// `GET /signin/wait/status?wrong=N`: this browser's sign-in, answered when its status
/// changes or a new wrong number is entered on the phone (or after [`STATUS_WAIT`]). Only the
/// session's own sign-in: nothing here takes an id from the request.
pub async fn wait_status(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<StatusQuery>,
) -> Result<Response, WebError> {
    let Some(id) = session.pending_request.as_deref() else {
        return Ok(axum::Json(WaitStatus {
            status: "none",
            wrong_attempts: 0,
            message: None,
            expires_in_secs: 0,
        })
        .into_response());
    };
    let req = match sign_in::wait_for_news(&state, id, STATUS_WAIT, q.wrong).await {
        Ok(req) => req,
        Err(AppError::UnknownRequest) => {
            return Ok(axum::Json(WaitStatus {
                status: "none",
                wrong_attempts: 0,
                message: None,
                expires_in_secs: 0,
            })
            .into_response())
        }
        Err(e) => return Err(e.into()),
    };
    let max = authenticator_protocol::wire::MAX_WRONG_NUMBERS;
    Ok(axum::Json(WaitStatus {
        status: req.status.as_str(),
        wrong_attempts: req.wrong_attempts,
        message: (req.wrong_attempts > 0).then(|| wrong_tries_text(req.wrong_attempts, max)),
        expires_in_secs: seconds_left(&req),
    })
    .into_response())
}

/// During an OpenID Connect authorization, the page of a sign-in that did not succeed goes
/// back to the application by itself after this many seconds (it gets `access_denied`).
pub const RETURN_TO_APP_AFTER_SECS: u32 = 3;

/// The page of a sign-in that ended without signing in. During an OpenID Connect
/// authorization (`flow`), it says so, then returns to the application by itself (a meta
/// refresh to `flow::ABORT_PATH`, which gives the application `access_denied`); elsewhere it
/// lists the other ways to sign in (`ways`), a new request to the phone among them.
fn outcome_page(
    state: &AppState,
    session: &Session,
    status: Status,
    flow: &BrowserFlow,
    ways: &OtherWays,
) -> Response {
    let (title, text) = match status {
        Status::Denied => (
            "Sign-in denied",
            "The sign-in request was denied on your phone. You have not been signed in.",
        ),
        Status::Reported => (
            "Sign-in reported",
            "You reported this sign-in request as not yours (\u{201c}This wasn't me\u{201d}). \
             It has been stopped and recorded for your administrator.",
        ),
        Status::Expired => (
            "Request expired",
            "We didn't get an answer from your phone in time. You have not been signed in.",
        ),
        Status::Failed => (
            "Sign-in failed",
            "Too many wrong numbers were entered on the phone. You have not been signed in.",
        ),
        Status::Pending | Status::Approved | Status::Closed => {
            ("Sign-in in progress", "Please wait.")
        }
    };
    let ended = matches!(
        status,
        Status::Denied | Status::Reported | Status::Expired | Status::Failed
    );
    let back_to_app = flow.abort_to().filter(|_| ended);
    // After "This wasn't me" the user is paused: no way works until the pause ends (the next
    // start says until when), so none is offered here.
    let offer_ways = back_to_app.is_none()
        && matches!(status, Status::Expired | Status::Failed | Status::Denied);
    // A password + phone sign-in goes to the phone again as it came (the user has typed the
    // password), whether or not phone sign-in alone is open to them.
    let phone_again = OtherWays {
        phone: ways.phone || session.pending_kind.as_deref() == Some(kind_str(RequestKind::Push)),
        ..*ways
    };
    page(
        session,
        layout_refreshing(
            title,
            None,
            back_to_app.map(|(_, to)| (RETURN_TO_APP_AFTER_SECS, to)),
            html! {
                section.card.narrow {
                    (organisation(state))
                    h1 id="outcome" data-outcome=(status.as_str()) { (title) }
                    p.notice.error role="alert" { (text) }
                    @if let Some((app, to)) = back_to_app {
                        p role="status" { "Returning to " strong { (app) } "\u{2026}" }
                        div.actions {
                            a id="return-to-app" href=(to) { "Return to " (app) " now" }
                        }
                    }
                    @if offer_ways {
                        (other_ways_section(session, &phone_again, true))
                    } @else {
                        div.actions { a href="/signin" { "Start over" } }
                    }
                }
            },
        ),
    )
}

/// `POST /signin/complete`: an approved request signs this browser in (new session id);
/// any other final status is shown.
pub async fn complete(
    State(state): State<AppState>,
    session: Session,
    flow: BrowserFlow,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let Some(req) = pending(&state, &session).await? else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let status = req.status;
    match status {
        Status::Approved => {
            // The session holds the sign-in's id; `req` is the request of the device that
            // answered, which may be another one of the user's devices.
            // Approved under a browser binding (§5.9): this browser showed the page the
            // Authenticator saw, which the ID token says (`phr`).
            let bound = req.browser_binding()?.is_some();
            let how = SignedIn {
                upn: &req.upn,
                method: match (req.kind, bound) {
                    (RequestKind::Passwordless, false) => Method::PhoneSignIn,
                    (RequestKind::Passwordless, true) => Method::PhoneSignInBound,
                    (RequestKind::Push, false) => Method::PasswordAndPush,
                    (RequestKind::Push, true) => Method::PasswordAndPushBound,
                    // Never a session's sign-in (only the server sends these): no session.
                    (RequestKind::NewDevice, _) => {
                        return Ok(Redirect::to("/signin").into_response())
                    }
                },
                device: Some(req.account_id.as_str()),
                answered: Some((&req.signin_id, req.id.as_str())),
                to: "/me",
            };
            signed_in(&state, &session, how, &flow).await
        }
        // Pressed before the phone answered: the number page again, saying so.
        Status::Pending => Ok(Redirect::to("/signin/wait?early=1").into_response()),
        other => {
            let ways = methods::other_ways(&state.pool, &req.upn).await?;
            Ok(outcome_page(&state, &session, other, &flow, &ways))
        }
    }
}

/// `POST /signin/resend`: a new request of the same kind (the old one is superseded), at most
/// `MAX_RESENDS` times per attempt.
pub async fn resend(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    mut session: Session,
    flow: BrowserFlow,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let (Some(upn), Some(kind)) = (session.pending_upn.clone(), session.pending_kind.clone())
    else {
        return Ok(Redirect::to("/signin").into_response());
    };
    let kind = if kind == kind_str(RequestKind::Push) {
        RequestKind::Push
    } else {
        RequestKind::Passwordless
    };
    if session.resends >= MAX_RESENDS {
        return Ok(page(
            &session,
            super::pages::message_page(
                "Too many requests",
                &format!(
                    "You have sent the most new requests for one sign-in ({MAX_RESENDS}). \
                     Start over to try again."
                ),
            ),
        ));
    }
    let previous = session.pending_request.clone();
    match start(&state, ip, &upn, kind, previous.as_deref(), &flow).await {
        Ok(started) => {
            session.resends += 1;
            start_waiting(&state, &mut session, started, kind).await?;
            Ok(see_other(&session, "/signin/wait?resent=1"))
        }
        Err(AppError::Internal(e)) => Err(WebError::Internal(e)),
        Err(AppError::Paused { retry_after_secs }) => {
            paused_page(&state, &session, &upn, retry_after_secs).await
        }
        Err(other) => Ok(page(
            &session,
            super::pages::message_page("Could not resend", &refusal_text(&other)),
        )),
    }
}
