//! Devices on the pages: the user's own on the security-info page (see them, remove one) and
//! every device on the admin's devices page (filter by user, remove any). A removed device's
//! requests go with it: its answers, fetches and polls are refused at once
//! (`accounts::devices::remove_as`, audited with who removed it).
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{admin_nav, csrf, layout, notice, Notice};
use super::{admin_user, may_change, page, signed_in, Session, User, WebError};
use signin_domain::accounts::devices::{remove_as, Remover};
use signin_domain::audit::{self, Actor};
use signin_domain::state::AppState;
use signin_domain::store::devices::{self, DeviceSummary};
use signin_domain::trust::{AccountChange, Permission};

pub const USER_REMOVE_PATH: &str = "/me/security-info/devices/remove";
pub const ADMIN_PATH: &str = "/admin/devices";
pub const ADMIN_REMOVE_PATH: &str = "/admin/devices/remove";

/// A moment in the viewer's time zone (`pages::local_time`), or `none`.
fn when(at: Option<i64>, none: &'static str) -> Markup {
    match at {
        Some(ms) => super::pages::local_time(ms),
        None => html! { (none) },
    }
}

/// The devices as a table with a remove button each, posting to `remove_action`. The names
/// were chosen on the phones: maud escapes them for HTML.
pub fn table(
    session: &Session,
    list: &[DeviceSummary],
    remove_action: &str,
    show_user: bool,
) -> Markup {
    html! {
        table.stack id="devices" {
            caption.muted { "Authenticator apps" }
            thead { tr {
                @if show_user { th scope="col" { "User" } }
                th scope="col" { "Device" }
                th scope="col" { "Notifications" }
                th scope="col" { "Added" }
                th scope="col" { "Last used" }
                th scope="col" { "Last push delivered" }
                th scope="col" { "Last seen" }
                th scope="col" { "Phone sign-in" }
                th scope="col" { "Action" }
            } }
            tbody {
                @for d in list {
                    tr data-account=(d.account_id) {
                        @if show_user { td data-label="User" { (d.upn) } }
                        td data-label="Device" { (d.device_name) }
                        td data-label="Notifications" { (platform(&d.push_kind)) }
                        td data-label="Added" { (super::pages::local_time(d.enrolled_at)) }
                        td data-label="Last used" { (when(d.last_used_at, "Never")) }
                        // Delivery health (PROTOCOL.md §5.10): pushes delivered while the
                        // phone is not seen point to a dead push token.
                        td.last-push data-label="Last push delivered" { (last_push(d)) }
                        td.last-seen data-label="Last seen" { (when(d.last_seen_at, "Never")) }
                        td data-label="Phone sign-in" {
                            @if d.awaiting_approval { strong { "Awaiting approval" } br; }
                            @if d.passwordless_enabled_at.is_some() { "Enabled" } @else { "Not enabled" }
                        }
                        td data-label="Action" {
                            form.inline method="post" action=(remove_action) {
                                (csrf(session))
                                input type="hidden" name="account_id" value=(d.account_id);
                                button.secondary type="submit"
                                    aria-label=(format!("Remove {}", d.device_name)) { "Remove" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "Last push delivered": a long-poll phone gets no pushes; a channel the push service
/// called invalid says so.
fn last_push(d: &DeviceSummary) -> Markup {
    if d.push_kind == "longpoll" {
        return html! { "No push channel" };
    }
    html! {
        (when(d.last_push_at, "Never"))
        @if d.push_stale_at.is_some() {
            " (push token no longer valid: the phone must open the app)"
        }
    }
}

/// How the phone hears of a sign-in, in words (its push channel).
pub fn platform(push_kind: &str) -> &'static str {
    match push_kind {
        "apns" => "iPhone notifications",
        "fcm" => "Android notifications",
        "webpush" => "Web Push notifications",
        _ => "No notifications: the app checks when opened",
    }
}

#[derive(Debug, Deserialize)]
pub struct RemoveDeviceForm {
    pub csrf: String,
    pub account_id: String,
    /// `yes` from the admin's confirmation page.
    #[serde(default)]
    pub confirmed: String,
}

/// `POST /me/security-info/devices/remove`: the signed-in user removes one of their own
/// devices. Another user's device, or one that does not exist, is the same "not found".
pub async fn remove_own(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<RemoveDeviceForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = signed_in(&state, &session).await?;
    let owner = devices::owner_of(&state.pool, f.account_id.trim()).await?;
    let removed = match owner {
        // Another user's device gets the answer of no device at all, whatever the session.
        Some(upn) if upn == user.upn => {
            if may_change(&state, &session, AccountChange::RemovePhone).await?
                == Permission::Refused
            {
                let n = Notice::Error(super::TOO_WEAK_TO_CHANGE);
                let mut r = super::account::security_info_with(&state, &session, &user, n).await?;
                *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
                return Ok(r);
            }
            remove_as(&state.pool, &f.account_id, Remover::User)
                .await
                .map_err(WebError::Internal)?;
            true
        }
        _ => false,
    };
    let n = if removed {
        Notice::Info("Device removed. It can no longer approve sign-ins.")
    } else {
        Notice::Error("No such device.")
    };
    super::account::security_info_with(&state, &session, &user, n).await
}

#[derive(Debug, Deserialize)]
pub struct DevicesQuery {
    /// Only this user's devices.
    #[serde(default)]
    pub upn: Option<String>,
}

async fn admin_body(
    state: &AppState,
    session: &Session,
    upn: Option<&str>,
    n: Notice<'_>,
) -> Result<Markup, WebError> {
    let upn = upn.map(str::trim).filter(|u| !u.is_empty()).map(|u| {
        signin_domain::upn::Upn::parse(u).map_or_else(|_| u.to_owned(), |u| u.to_string())
    });
    let upn = upn.as_deref();
    let list = match upn {
        Some(upn) => devices::of_user(&state.pool, upn).await?,
        None => devices::all(&state.pool).await?,
    };
    Ok(html! {
        (notice(n))
        form method="get" action=(ADMIN_PATH) {
            label for="upn" { "User" }
            input type="email" id="upn" name="upn" value=(upn.unwrap_or_default())
                placeholder="All users";
            div.actions { button.secondary type="submit" id="filter" { "Show" } }
        }
        @if list.is_empty() {
            p id="no-devices" { "No devices." }
        } @else {
            (table(session, &list, ADMIN_REMOVE_PATH, true))
        }
    })
}

fn admin_devices_page(session: &Session, user: &User, body: Markup) -> Response {
    page(
        session,
        layout(
            "Devices",
            Some((user, session)),
            html! {
                (admin_nav(ADMIN_PATH))
                section.card { h1 { "Devices" } (body) }
            },
        ),
    )
}

/// `GET /admin/devices[?upn=U]`
pub async fn admin_page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<DevicesQuery>,
) -> Result<Response, WebError> {
    let user = admin_user(&state, &session).await?;
    let body = admin_body(&state, &session, q.upn.as_deref(), Notice::None).await?;
    Ok(admin_devices_page(&session, &user, body))
}

/// `POST /admin/devices/remove`: first a confirmation page naming the device and its user,
/// then (`confirmed=yes`) the removal, run as the acting administrator and reported by name.
pub async fn admin_remove(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<RemoveDeviceForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = admin_user(&state, &session).await?;
    let account_id = f.account_id.trim();
    let device = match devices::owner_of(&state.pool, account_id).await? {
        Some(owner) => devices::of_user(&state.pool, &owner)
            .await?
            .into_iter()
            .find(|d| d.account_id == account_id),
        None => None,
    };
    let Some(device) = device else {
        let body = admin_body(
            &state,
            &session,
            None,
            Notice::Error("Not removed: there is no such device."),
        )
        .await?;
        return Ok(admin_devices_page(&session, &user, body));
    };
    if f.confirmed != "yes" {
        let body = html! {
            div.confirm id="confirm" {
                p { "Remove " strong { "\u{201c}" (device.device_name) "\u{201d}" } " of " strong { (device.upn) } "?" }
                p { "It stops approving sign-ins at once, and the sessions it signed in end. This cannot be undone: the user adds the app again to use it." }
            }
            form method="post" action=(ADMIN_REMOVE_PATH) {
                (csrf(&session))
                input type="hidden" name="account_id" value=(device.account_id);
                input type="hidden" name="confirmed" value="yes";
                div.actions {
                    button type="submit" id="confirm-action" { "Remove the device" }
                    a id="cancel" href=(ADMIN_PATH) { "Cancel" }
                }
            }
        };
        return Ok(admin_devices_page(&session, &user, body));
    }
    let message;
    let removed = audit::acting_as(
        Actor::Admin(user.upn.clone()),
        remove_as(&state.pool, &device.account_id, Remover::Admin),
    )
    .await;
    let n = match removed {
        Ok(()) => {
            message = format!(
                "Removed \u{201c}{}\u{201d} of {}.",
                device.device_name, device.upn
            );
            Notice::Info(&message)
        }
        Err(e) => {
            message = format!("Not removed: {e}");
            Notice::Error(&message)
        }
    };
    let body = admin_body(&state, &session, None, n).await?;
    Ok(admin_devices_page(&session, &user, body))
}
