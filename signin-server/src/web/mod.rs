//! Server-rendered web pages (no external resources; the CSS and the one script are embedded):
//! sign-in (phone sign-in with number matching, password + push MFA), the signed-in landing
//! page, security info (add the Authenticator app: QR code + link), and the admin pages
//! (Authenticator policy, users, groups, audit).
//!
//! Every page answers with `Cache-Control: no-store` and a strict Content-Security-Policy.
//! Every POST form carries the session's CSRF token. Numbers, codes, passwords and cookies are
//! never logged.
pub mod account;
pub mod admin;
pub mod admin_apps;
pub mod admin_helpdesk;
pub mod devices;
pub mod fallback;
pub mod flow;
pub mod pages;
pub mod session;
pub mod signin;

use axum::http::header::{self, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::Markup;

use crate::http_error::InternalCause;
pub use session::Session;
use signin_domain::state::AppState;

/// Settings-table key of the server's public URL (`serve --public-url`).
pub use signin_domain::store::PUBLIC_URL_SETTING;
/// Members of this group may open the admin pages (`admin user add --group admins`).
pub const ADMIN_GROUP: &str = "admins";

const STYLE_CSS: &str = include_str!("assets/style.css");
const SIGNIN_JS: &str = include_str!("assets/signin.js");
const AUTOSUBMIT_JS: &str = include_str!("assets/autosubmit.js");
const PAGE_JS: &str = include_str!("assets/page.js");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");
/// Every page's script: times in the viewer's time zone, and security info that updates
/// itself when a phone enrolls.
pub const PAGE_JS_PATH: &str = "/assets/page.js";
/// The pages' icon (also answered at `/favicon.ico`, where browsers look by themselves).
pub const FAVICON_PATH: &str = "/assets/favicon.svg";
/// The script that submits a page's `form#autosubmit` (the `form_post` response mode).
pub const AUTOSUBMIT_JS_PATH: &str = "/assets/autosubmit.js";

/// The pages' routes, merged into `crate::app`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/signin") }))
        .route("/signin", get(signin::form).post(signin::submit_upn))
        .route(
            "/signin/password",
            get(signin::password_form).post(signin::submit_password),
        )
        .route(
            "/signin/pass",
            get(signin::pass_form).post(signin::submit_pass),
        )
        .route(
            "/signin/fallback",
            get(fallback::form).post(fallback::submit),
        )
        .route("/signin/wait", get(signin::wait))
        .route("/signin/wait/status", get(signin::wait_status))
        .route("/signin/complete", post(signin::complete))
        .route("/signin/resend", post(signin::resend))
        // `/signout` (the header's "Sign out") is `oidc::logout::sign_out`: ending a session
        // also tells the applications it signed in to (Back-Channel Logout).
        .route("/me", get(account::landing))
        .route("/me/security-info", get(account::security_info))
        .route(account::DEVICES_STATE_PATH, get(account::devices_state))
        .route(devices::USER_REMOVE_PATH, post(devices::remove_own))
        .route(devices::ADMIN_PATH, get(devices::admin_page))
        .route(devices::ADMIN_REMOVE_PATH, post(devices::admin_remove))
        .route(
            "/me/security-info/authenticator",
            post(account::add_authenticator),
        )
        .route(
            "/me/security-info/backup-codes",
            post(fallback::create_backup_codes),
        )
        .route(
            account::SIGN_OUT_EVERYWHERE_PATH,
            post(account::sign_out_everywhere),
        )
        .route("/admin", get(|| async { Redirect::to("/admin/policy") }))
        .route(
            "/admin/policy",
            get(admin::policy_page).post(admin::save_policy),
        )
        .route("/admin/policy/fallback", post(fallback::save_switch))
        .route("/admin/users", get(admin::users_page).post(admin::add_user))
        .route(
            "/admin/groups",
            get(admin::groups_page).post(admin::add_member),
        )
        .route(
            admin_helpdesk::USER_PATH,
            get(admin_helpdesk::user_page).post(admin_helpdesk::user_action),
        )
        .route(admin::AUDIT_PATH, get(admin::audit_page))
        .route(admin::AUDIT_EXPORT_PATH, get(admin::audit_export))
        .route(admin_apps::APPS_PATH, get(admin_apps::apps_page))
        .route(admin_apps::REMOVE_APP_PATH, post(admin_apps::remove_app))
        .route(admin_apps::ADD_APP_PATH, post(admin_apps::add_app))
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(
            "/assets/signin.js",
            get(|| async { asset("text/javascript; charset=utf-8", SIGNIN_JS) }),
        )
        .route(
            PAGE_JS_PATH,
            get(|| async { asset("text/javascript; charset=utf-8", PAGE_JS) }),
        )
        .route(
            FAVICON_PATH,
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset("image/svg+xml", FAVICON_SVG) }),
        )
        .route(
            AUTOSUBMIT_JS_PATH,
            get(|| async { asset("text/javascript; charset=utf-8", AUTOSUBMIT_JS) }),
        )
        .layer(axum::middleware::map_response(security_headers))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Every page's Content-Security-Policy (see [`csp_connecting_to`] for the one exception).
pub(crate) const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// [`CONTENT_SECURITY_POLICY`] that also lets the page's script connect to `origin`.
pub(crate) fn csp_connecting_to(origin: &str) -> String {
    CONTENT_SECURITY_POLICY.replace(
        "connect-src 'self'",
        &format!("connect-src 'self' {origin}"),
    )
}

/// [`CONTENT_SECURITY_POLICY`] whose forms may also post to `origin` (and nowhere else).
pub(crate) fn csp_with_form_action(origin: &str) -> String {
    CONTENT_SECURITY_POLICY.replace("form-action 'self'", &format!("form-action {origin}"))
}

/// The pages' headers (also on the OpenID Connect endpoints' pages, `oidc::routes`).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    // A page that must reach more (the sign-in page under the phishing-resistant policy calls
    // the Authenticator's loopback listener) sets its own, otherwise as strict.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Failures of the pages; each renders as a page (never JSON), without user data.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("the form expired or did not come from this site")]
    Csrf,
    #[error("sign in first")]
    SignInRequired,
    #[error("this page is for administrators")]
    Forbidden,
    /// An administrator whose session was made with a password or code alone (`trust::may`,
    /// `AccountChange::Administer`).
    #[error("the admin console needs a sign-in with the Authenticator app or a temporary pass")]
    ConsoleNeedsStrongerSignIn,
    #[error("this sign-in is no longer in progress")]
    SessionGone,
    #[error("{0}")]
    Config(&'static str),
    /// A capacity limit of the server (OPERATIONS.md, "Resource limits").
    #[error("the server is busy")]
    Busy { retry_after_secs: u64 },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl WebError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        WebError::Internal(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, text) = match &self {
            WebError::SignInRequired | WebError::SessionGone => {
                return Redirect::to("/signin").into_response()
            }
            WebError::Csrf => (
                StatusCode::FORBIDDEN,
                "Please try again",
                "This form expired or did not come from this site. Go back, reload the page and try again.",
            ),
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "This page is for administrators.",
            ),
            WebError::ConsoleNeedsStrongerSignIn => {
                let body = pages::console_needs_phone_page();
                return (StatusCode::FORBIDDEN, html(body)).into_response();
            }
            WebError::Config(m) => (StatusCode::INTERNAL_SERVER_ERROR, "Server not configured", *m),
            WebError::Busy { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "The server is busy right now. Please try again in a moment.",
            ),
            WebError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "Something went wrong on our side. Please try again.",
            ),
        };
        let body = pages::message_page(title, text);
        let mut response = (status, html(body)).into_response();
        if let WebError::Busy { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        if let WebError::Internal(cause) = self {
            response
                .extensions_mut()
                .insert(InternalCause(std::sync::Arc::new(cause)));
        }
        response
    }
}

pub fn html(m: Markup) -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
        .into_response()
}

/// A page for this session (sets the cookie if the session is new).
pub fn page(session: &Session, m: Markup) -> Response {
    with_cookie(session, html(m))
}

pub fn with_cookie(session: &Session, mut r: Response) -> Response {
    if session.is_new {
        r.headers_mut()
            .append(header::SET_COOKIE, session.set_cookie());
    }
    r
}

/// 303 See Other to `to`, setting the session cookie if the session is new.
pub fn see_other(session: &Session, to: &str) -> Response {
    with_cookie(session, Redirect::to(to).into_response())
}

/// The signed-in user of this session, with display name and groups.
#[derive(Debug, Clone)]
pub struct User {
    pub upn: String,
    pub display_name: String,
    pub groups: Vec<String>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.groups.iter().any(|g| g == ADMIN_GROUP)
    }
}

pub async fn load_user(
    pool: &signin_domain::store::Pool,
    upn: &str,
) -> Result<Option<User>, WebError> {
    Ok(signin_domain::store::users::find(pool, upn)
        .await?
        .map(|u| User {
            upn: u.upn,
            display_name: u.display_name,
            groups: u.groups,
        }))
}

/// The signed-in user, or `SignInRequired`.
pub async fn signed_in(state: &AppState, session: &Session) -> Result<User, WebError> {
    let upn = session.upn.as_deref().ok_or(WebError::SignInRequired)?;
    load_user(&state.pool, upn)
        .await?
        .ok_or(WebError::SignInRequired)
}

/// What `trust::may` answers for `change` by this signed-in session (its method, the policy
/// as it is now).
pub async fn may_change(
    state: &AppState,
    session: &Session,
    change: signin_domain::trust::AccountChange,
) -> Result<signin_domain::trust::Permission, WebError> {
    let method = session.method.ok_or(WebError::SignInRequired)?;
    let policy = signin_domain::rules::policy::load(&state.pool)
        .await
        .map_err(WebError::Internal)?;
    Ok(signin_domain::trust::may(
        method,
        change,
        policy.phishing_resistant,
    ))
}

/// Why a session may not make an account change, for the page.
pub const TOO_WEAK_TO_CHANGE: &str = "You signed in with a password or a verification code \
    alone. To remove a phone or create backup codes, sign in with your Authenticator app, or \
    ask your administrator for a temporary access pass.";

/// The signed-in user if an administrator whose session may use the console (`trust::may`,
/// `AccountChange::Administer`: a phone or temporary pass sign-in), `Forbidden` if not an
/// administrator, `ConsoleNeedsStrongerSignIn` if signed in with a password or code alone.
pub async fn admin_user(state: &AppState, session: &Session) -> Result<User, WebError> {
    let user = signed_in(state, session).await?;
    if !user.is_admin() {
        return Err(WebError::Forbidden);
    }
    match may_change(
        state,
        session,
        signin_domain::trust::AccountChange::Administer,
    )
    .await?
    {
        signin_domain::trust::Permission::Allowed => Ok(user),
        signin_domain::trust::Permission::AllowedHeld
        | signin_domain::trust::Permission::Refused => Err(WebError::ConsoleNeedsStrongerSignIn),
    }
}
