//! The offline fallback pages: `/signin/fallback` (sign in once with the TOTP code the phone
//! shows, or a backup code; reached from the password and waiting pages), and the backup codes
//! on `/me/security-info` (create a new set, shown once). The rules are in
//! `accounts::fallback`; codes are never logged.
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{csrf, layout, notice, Notice};
use super::signin::{signed_in, SignedIn};
use super::{page, Session, User, WebError};
use signin_domain::accounts::fallback::{self, Outcome};
use signin_domain::accounts::{backup_codes, fallback::Method};
use signin_domain::audit;
use signin_domain::state::AppState;
use signin_domain::trust::{self, AccountChange, Permission};

#[derive(Deserialize)]
pub struct CodeForm {
    pub csrf: String,
    pub code: String,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeForm { .. }")
    }
}

fn code_page(session: &Session, upn: &str, n: Notice<'_>) -> Response {
    page(
        session,
        layout(
            "Use a verification code",
            None,
            html! {
                section.card.narrow {
                    h1 { "Use a verification code" }
                    p.muted { "Signing in as " strong { (upn) } }
                    p { "Enter the 6-digit code your Authenticator app shows for this account, \
                         or one of your backup codes. Each code works once." }
                    (notice(n))
                    form method="post" action="/signin/fallback" {
                        (csrf(session))
                        label for="code" { "Code" }
                        input type="text" id="code" name="code" required autofocus
                            autocomplete="one-time-code" spellcheck="false" autocapitalize="none";
                        div.actions {
                            button type="submit" id="sign-in-code" { "Sign in" }
                            a href="/signin" { "Use another account" }
                        }
                    }
                }
            },
        ),
    )
}

/// `GET /signin/fallback`: only for a browser that has submitted a UPN.
pub async fn form(session: Session) -> Result<Response, WebError> {
    match session.pending_upn.as_deref() {
        Some(upn) if session.is_stored() => Ok(code_page(&session, upn, Notice::None)),
        _ => Ok(Redirect::to("/signin").into_response()),
    }
}

/// `POST /signin/fallback`: a TOTP code or a backup code signs the user in once (to register
/// a new phone, for instance), within the bounded tries of `accounts::fallback`.
pub async fn submit(
    State(state): State<AppState>,
    crate::extract::ClientIp(ip): crate::extract::ClientIp,
    mut session: Session,
    flow: super::flow::BrowserFlow,
    Form(f): Form<CodeForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let Some(upn) = session.pending_upn.clone() else {
        return Ok(Redirect::to("/signin").into_response());
    };
    if f.code.trim().is_empty() || f.code.len() > 64 {
        return Ok(code_page(&session, &upn, Notice::Error("Enter the code.")));
    }
    let outcome =
        fallback::sign_in_with_code(&state.pool, &state.passwords, &upn, &f.code, ip).await?;
    let refused = |text: &str, status: StatusCode| {
        let mut r = code_page(&session, &upn, Notice::Error(text));
        *r.status_mut() = status;
        r
    };
    match outcome {
        Outcome::SignedIn { method, device } => {
            session.pending_upn = None;
            let how = SignedIn {
                upn: &upn,
                method: match method {
                    Method::Totp => trust::Method::Totp,
                    Method::BackupCode => trust::Method::BackupCode,
                },
                device: device.as_deref(),
                answered: None,
                to: "/me/security-info",
            };
            signed_in(&state, &session, how, &flow).await
        }
        Outcome::Refused | Outcome::Replayed => Ok(refused(
            "This code is not valid: it may be used, expired or mistyped.",
            StatusCode::OK,
        )),
        Outcome::Throttled { retry_after_secs } => {
            let minutes = retry_after_secs.div_ceil(60);
            let text = format!(
                "Too many codes were tried. Wait {minutes} minute{} and try again.",
                if minutes == 1 { "" } else { "s" }
            );
            let mut r = refused(&text, StatusCode::TOO_MANY_REQUESTS);
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Ok(r)
        }
        Outcome::Locked => Ok(refused(
            "Too many wrong codes were tried for this account. Ask your administrator to \
             unlock verification codes, or for a temporary access pass.",
            StatusCode::FORBIDDEN,
        )),
        Outcome::Disabled => Ok(refused(
            "Your organization does not allow signing in with a verification code.",
            StatusCode::FORBIDDEN,
        )),
    }
}

/// The backup-codes card of the security-info page: how many are left, and a button that
/// creates a new set.
pub async fn backup_codes_card(
    state: &AppState,
    session: &Session,
    user: &User,
) -> Result<Markup, WebError> {
    let (unused, total) = backup_codes::counts(&state.pool, &user.upn).await?;
    Ok(html! {
        section.card aria-labelledby="backup-title" {
            h2 id="backup-title" { "Backup codes" }
            @if total == 0 {
                p id="backup-count" { "You have no backup codes." }
            } @else {
                p id="backup-count" { (unused) " of " (total) " backup codes unused." }
            }
            p.hint { "Backup codes sign you in when your phone is lost or offline. Each works \
                      once. Creating new codes replaces the old ones." }
            form method="post" action="/me/security-info/backup-codes" {
                (csrf(session))
                div.actions { button type="submit" id="create-backup-codes" { "Create new backup codes" } }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct BackupCodesForm {
    pub csrf: String,
    /// `yes` from the confirmation page (needed only while unused codes would be voided).
    #[serde(default)]
    pub confirmed: String,
}

/// `POST /me/security-info/backup-codes`: a new set, shown this once. While the user has
/// unused codes it asks first (a confirmation page: the new set voids them).
pub async fn create_backup_codes(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<BackupCodesForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = super::signed_in(&state, &session).await?;
    if super::may_change(&state, &session, AccountChange::CreateBackupCodes).await?
        == Permission::Refused
    {
        let n = Notice::Error(super::TOO_WEAK_TO_CHANGE);
        let mut r = super::account::security_info_with(&state, &session, &user, n).await?;
        *r.status_mut() = StatusCode::FORBIDDEN;
        return Ok(r);
    }
    let (unused, _) = backup_codes::counts(&state.pool, &user.upn).await?;
    if unused > 0 && f.confirmed != "yes" {
        let content = html! {
            section.card.narrow aria-labelledby="confirm-title" {
                h1 id="confirm-title" { "Create new backup codes?" }
                div.confirm id="confirm" {
                    p { "You have " strong { (unused) " unused backup codes" } ". A new set replaces them: "
                        "the codes you have now stop working at once." }
                }
                form method="post" action="/me/security-info/backup-codes" {
                    (csrf(&session))
                    input type="hidden" name="confirmed" value="yes";
                    div.actions {
                        button type="submit" id="confirm-action" { "Create new codes" }
                        a id="cancel" href="/me/security-info" { "Keep my codes" }
                    }
                }
            }
        };
        return Ok(page(
            &session,
            layout("Create new backup codes?", Some((&user, &session)), content),
        ));
    }
    let codes =
        fallback::create_backup_codes(&state.pool, &user.upn, session.device.as_deref()).await?;
    let content = html! {
        section.card aria-labelledby="codes-title" {
            h1 id="codes-title" { "Your backup codes" }
            p { "Keep these codes somewhere safe, away from your phone. Each works once. \
                 They are shown only now: your earlier codes no longer work." }
            ol id="backup-codes" {
                @for c in &codes { li { code { (c.as_str()) } } }
            }
            p { a href="/me/security-info" id="done" { "Done" } }
        }
    };
    Ok(page(
        &session,
        layout("Backup codes", Some((&user, &session)), content),
    ))
}

/// The offline-fallback card of the admin policy page: the switch and the limits.
pub async fn admin_card(state: &AppState, session: &Session) -> Result<Markup, WebError> {
    let on = fallback::enabled(&state.pool).await?;
    Ok(html! {
        section.card aria-labelledby="fallback-title" {
            h2 id="fallback-title" { "Offline fallback" }
            p id="fallback-state" {
                "Signing in with a verification code (the TOTP code of the Authenticator app, or a \
                 backup code) is "
                strong { @if on { "allowed" } @else { "not allowed" } } "."
            }
            p.hint {
                "Each code works once. Tries: " (fallback::TRIES_PER_WINDOW) " per "
                (fallback::WINDOW_SECS / 60) " minutes; after " (fallback::MAX_CONSECUTIVE_FAILURES)
                " wrong codes in a row a user's fallback is locked until an administrator unlocks \
                 it (signin-server admin fallback unlock --upn U)."
            }
            form method="post" action="/admin/policy/fallback" {
                (csrf(session))
                input type="hidden" name="enabled" value=(if on { "off" } else { "on" });
                div.actions {
                    button type="submit" id="toggle-fallback" {
                        @if on { "Turn off the offline fallback" } @else { "Allow the offline fallback" }
                    }
                }
            }
        }
    })
}

#[derive(Debug, Deserialize)]
pub struct FallbackSwitchForm {
    pub csrf: String,
    pub enabled: String,
}

/// `POST /admin/policy/fallback`: the policy switch (admins only; audited as a policy change).
pub async fn save_switch(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<FallbackSwitchForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let admin = super::admin_user(&state, &session).await?;
    let on = f.enabled == "on";
    audit::acting_as(
        audit::Actor::Admin(admin.upn.clone()),
        fallback::set_enabled(&state.pool, on),
    )
    .await
    .map_err(WebError::Internal)?;
    Ok(Redirect::to("/admin/policy").into_response())
}
