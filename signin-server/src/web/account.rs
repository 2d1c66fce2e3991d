//! The signed-in landing page and security info (add the Authenticator app: QR code + link).
use authenticator_protocol::encoding::b64;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Form;
use maud::{html, Markup};

use super::pages::{csrf, layout, notice, Notice};
use super::signin::CsrfForm;
use super::{page, signed_in, Session, User, WebError};
use signin_domain::state::AppState;
use signin_domain::trust::{self, AccountChange, Permission};

/// `GET /me`
pub async fn landing(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, WebError> {
    let user = signed_in(&state, &session).await?;
    // A user without a phone (signed in with a password, say) is offered to add one, where
    // the policy has the Authenticator for them.
    let offer_phone = signin_domain::store::devices::of_user(&state.pool, &user.upn)
        .await?
        .is_empty()
        && authenticator_allowed(&state, &user).await?;
    let content = html! {
        section.card {
            h1 id="signed-in" { "You're signed in" }
            p { "Welcome, " strong { (user.display_name) } " (" (user.upn) ")." }
            p { "Signed in to " (state.settings.server_name) "." }
            @if offer_phone {
                section.offer id="add-phone-offer" aria-labelledby="add-phone-title" {
                    h2 id="add-phone-title" { "Sign in with your phone" }
                    p { "Add the Authenticator app: next time you sign in, you only type your \
                         name and approve on your phone, with no password to remember." }
                    form method="post" action="/me/security-info/authenticator" {
                        (csrf(&session))
                        div.actions { button type="submit" id="add-phone" { "Add the Authenticator app" } }
                    }
                }
            }
            ul {
                li { a href="/me/security-info" { "Security info: add or review sign-in methods" } }
                @if user.is_admin() {
                    li { a href="/admin/policy" { "Administration" } }
                }
            }
        }
    };
    Ok(page(
        &session,
        layout("Signed in", Some((&user, &session)), content),
    ))
}

/// Whether the policy has the Authenticator (phone sign-in or push) for `user`.
async fn authenticator_allowed(state: &AppState, user: &User) -> Result<bool, WebError> {
    let policy = signin_domain::rules::policy::load(&state.pool)
        .await
        .map_err(WebError::Internal)?;
    Ok(policy.allows_passwordless_for(&user.groups) || policy.allows_push_for(&user.groups))
}

/// Where the security-info page asks whether the user's phones changed (`page.js`).
pub const DEVICES_STATE_PATH: &str = "/me/security-info/devices/state";

/// What changes when a phone enrolls, enables phone sign-in, is approved or removed: the
/// number of devices first (so the page can tell "added"), then those with phone sign-in,
/// then those awaiting approval.
fn devices_state_of(devices: &[signin_domain::store::devices::DeviceSummary]) -> String {
    format!(
        "{}:{}:{}",
        devices.len(),
        devices
            .iter()
            .filter(|d| d.passwordless_enabled_at.is_some())
            .count(),
        devices.iter().filter(|d| d.awaiting_approval).count()
    )
}

/// `GET /me/security-info/devices/state`: `{"state": "devices:phone sign-in:awaiting"}` of
/// the signed-in user (counts only: no names or ids).
pub async fn devices_state(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, WebError> {
    let user = signed_in(&state, &session).await?;
    let devices = signin_domain::store::devices::of_user(&state.pool, &user.upn).await?;
    Ok(axum::Json(serde_json::json!({ "state": devices_state_of(&devices) })).into_response())
}

async fn devices_table(
    state: &AppState,
    session: &Session,
    user: &User,
) -> Result<Markup, WebError> {
    let devices = signin_domain::store::devices::of_user(&state.pool, &user.upn).await?;
    Ok(html! {
        div data-devices-state=(devices_state_of(&devices))
            data-devices-state-url=(DEVICES_STATE_PATH) {
            @if devices.is_empty() {
                p id="no-methods" { "You have no Authenticator app yet." }
            } @else {
                div id="methods" {
                    (super::devices::table(session, &devices, super::devices::USER_REMOVE_PATH, false))
                }
            }
        }
    })
}

fn security_page(
    session: &Session,
    user: &User,
    n: Notice<'_>,
    table: Markup,
    extra: Markup,
) -> Response {
    let content = html! {
        section.card {
            h1 { "Security info" }
            p { "These are the methods you use to sign in to your account." }
            (notice(n))
            (table)
            form method="post" action="/me/security-info/authenticator" {
                (csrf(session))
                div.actions { button type="submit" id="add-authenticator" { "Add sign-in method: Authenticator app" } }
            }
        }
        (extra)
        section.card aria-labelledby="sessions-title" {
            h2 id="sessions-title" { "Signed-in browsers and apps" }
            p.hint { "Lost a device, or signed in somewhere you no longer use? This signs you out \
                      of every browser and application, this one included." }
            form method="post" action=(SIGN_OUT_EVERYWHERE_PATH) {
                (csrf(session))
                div.actions { button.secondary type="submit" id="sign-out-everywhere" { "Sign out everywhere" } }
            }
        }
    };
    page(
        session,
        layout("Security info", Some((user, session)), content),
    )
}

/// `?added=1` of `/me/security-info`: `page.js` came back after a phone enrolled.
#[derive(Debug, Default, serde::Deserialize)]
pub struct SecurityInfoQuery {
    pub added: Option<String>,
}

/// `GET /me/security-info`
pub async fn security_info(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<SecurityInfoQuery>,
) -> Result<Response, WebError> {
    let user = signed_in(&state, &session).await?;
    if q.added.is_some() {
        let devices = signin_domain::store::devices::of_user(&state.pool, &user.upn).await?;
        if let Some(newest) = devices.iter().max_by_key(|d| d.enrolled_at) {
            let text = format!(
                "{} was added. {}",
                newest.device_name,
                if newest.awaiting_approval {
                    "It can sign you in once it is approved."
                } else if newest.passwordless_enabled_at.is_some() {
                    "You can now sign in with your phone."
                } else {
                    "To sign in with only your phone, choose \u{201c}Enable phone sign-in\u{201d} in the app."
                }
            );
            return security_info_with(&state, &session, &user, Notice::Info(&text)).await;
        }
    }
    security_info_with(&state, &session, &user, Notice::None).await
}

/// The security-info page with a notice (after removing a device).
pub async fn security_info_with(
    state: &AppState,
    session: &Session,
    user: &User,
    n: Notice<'_>,
) -> Result<Response, WebError> {
    let table = devices_table(state, session, user).await?;
    let backup = super::fallback::backup_codes_card(state, session, user).await?;
    Ok(security_page(session, user, n, table, backup))
}

/// The QR code of `text` as an SVG data URL.
pub fn qr_data_url(text: &str) -> anyhow::Result<String> {
    let code = qrcode::QrCode::new(text.as_bytes())?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(264, 264)
        .quiet_zone(true)
        .build();
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        standard_b64(svg.as_bytes())
    ))
}

/// Standard base64 (with padding), as data URLs use.
fn standard_b64(bytes: &[u8]) -> String {
    // The protocol's url-safe unpadded alphabet, mapped to the standard one.
    let mut s: String = b64(bytes)
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !s.len().is_multiple_of(4) {
        s.push('=');
    }
    s
}

/// `POST /me/security-info/authenticator`: a one-time registration link as QR code and text.
pub async fn add_authenticator(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = signed_in(&state, &session).await?;
    let table = devices_table(&state, &session, &user).await?;
    let policy = signin_domain::rules::policy::load(&state.pool)
        .await
        .map_err(WebError::Internal)?;
    if !authenticator_allowed(&state, &user).await? {
        return Ok(security_page(
            &session,
            &user,
            Notice::Error(
                "Your organization has not enabled the Authenticator app for your account.",
            ),
            table,
            html! {},
        ));
    }
    let method = session.method.ok_or(WebError::SignInRequired)?;
    let permission = trust::may(method, AccountChange::AddPhone, policy.phishing_resistant);
    if permission == Permission::Refused {
        let mut r = security_page(
            &session,
            &user,
            Notice::Error(
                "Your organization requires phishing-resistant sign-in: a phone can be added \
                 only after signing in with your Authenticator app, or with a temporary access \
                 pass from your administrator, not with a password or verification code.",
            ),
            table,
            html! {},
        );
        *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
        return Ok(r);
    }
    let ttl = signin_domain::store::enrollment_ttl_secs(&state.pool)
        .await
        .map_err(WebError::Internal)?;
    let link = signin_domain::accounts::registration_link_for_session(
        &state.pool,
        &user.upn,
        &session.base.url,
        ttl,
        method,
    )
    .await
    .map_err(WebError::Internal)?;
    let held = permission == Permission::AllowedHeld;
    let qr = qr_data_url(&link).map_err(WebError::Internal)?;
    let minutes = ttl.div_ceil(60);
    let extra = html! {
        section.card aria-labelledby="setup-title" {
            h2 id="setup-title" { "Set up your Authenticator app" }
            ol {
                li { "Install the Authenticator app on your phone and open it." }
                li { "Choose " strong { "Add account" } ", then scan this QR code:" }
            }
            div.qr {
                img id="qr" src=(qr) alt="QR code of the registration link shown below";
            }
            p id="link-label" { "Can't scan it? Enter this link in the app:" }
            code.link id="registration-link" aria-labelledby="link-label" { (link) }
            p.hint { "The link works once and expires in " (minutes) " minutes. Keep it to yourself." }
            @if held {
                p.notice id="held-notice" role="status" {
                    "You signed in with a password or a verification code, so if you already \
                     have a phone registered, the new one waits until one of your other phones \
                     approves it (it is asked now), your administrator does, or "
                    (trust::RECOVERY_WAIT_SECS / 3600) " hours pass without a denial."
                }
            }
            p { "Then, in the app, choose " strong { "Enable phone sign-in" } " for this account." }
            p { a href="/me/security-info" id="done" { "Done" } }
        }
    };
    Ok(security_page(&session, &user, Notice::None, table, extra))
}

pub const SIGN_OUT_EVERYWHERE_PATH: &str = "/me/security-info/sign-out-everywhere";

/// `POST /me/security-info/sign-out-everywhere`: ends every session and token of the user
/// (`trust::end_sessions`), this browser's too.
pub async fn sign_out_everywhere(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<CsrfForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = signed_in(&state, &session).await?;
    trust::end_sessions(&state.pool, &user.upn, trust::EndReason::SignOutEverywhere).await?;
    let mut r = axum::response::Redirect::to("/signin").into_response();
    r.headers_mut()
        .append(axum::http::header::SET_COOKIE, session.clear_cookie());
    Ok(r)
}

#[cfg(test)]
mod tests {
    #[test]
    fn standard_base64_of_data_urls() {
        assert_eq!(super::standard_b64(b"\xfb\xff"), "+/8=");
        assert_eq!(super::standard_b64(b"abc"), "YWJj");
        assert_eq!(super::standard_b64(b"a"), "YQ==");
    }
}
