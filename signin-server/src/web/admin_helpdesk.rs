//! The helpdesk's user page (members of `admins`, with a console session, `admin_user`): one
//! user's methods (devices, offline fallback, temporary passes, sessions), risk and pause, and
//! the actions a helpdesk takes — issue a temporary access pass (shown once), resume a paused
//! user, unlock the fallback, set a password, sign out everywhere, remove a device, set
//! attributes. Each destructive action is a confirmation page first (a second form post, no
//! script), each result names what it acted on, and each runs as the acting administrator
//! (`audit::acting_as`), so the audit log names them.
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::admin::admin_page;
use super::pages::{csrf, notice, Notice};
use super::{admin_user, Session, User, WebError};
use signin_domain::accounts::{self, attributes::AttributesUpdate, devices::Remover};
use signin_domain::audit::{self, Actor};
use signin_domain::state::AppState;
use signin_domain::store::{self, devices::DeviceSummary, now_ms, risk::RiskKey, users};
use signin_domain::trust::{self, EndReason, Method};

pub const USER_PATH: &str = "/admin/user";

/// A moment in the viewer's time zone, as on the other pages (`pages::local_time`).
pub fn when(ms: i64) -> Markup {
    super::pages::local_time(ms)
}

/// What a device's push channel means, in words (the same words as the device tables).
pub fn push_channel(d: &DeviceSummary) -> Markup {
    html! {
        (super::devices::platform(&d.push_kind))
        @if let Some(at) = d.push_stale_at {
            ", not reachable since " (when(at)) " ("
            (d.push_stale_reason.as_deref().unwrap_or("refused")) ")"
        }
    }
}

/// How a session was made, in words.
fn method_words(method: Option<&str>) -> &'static str {
    match method.and_then(Method::parse) {
        Some(Method::PhoneSignIn) => "Phone sign-in",
        Some(Method::PhoneSignInBound) => "Phone sign-in (bound to the browser)",
        Some(Method::PasswordAndPush) => "Password and phone approval",
        Some(Method::PasswordAndPushBound) => "Password and phone approval (bound to the browser)",
        Some(Method::Password) => "Password alone",
        Some(Method::TemporaryPass) => "Temporary access pass",
        Some(Method::Totp) => "Verification code",
        Some(Method::BackupCode) => "Backup code",
        None => "Unknown",
    }
}

fn name_of(upn: &str) -> String {
    signin_domain::upn::Upn::parse(upn).map_or_else(|_| upn.trim().to_owned(), |u| u.to_string())
}

fn user_link(upn: &str) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("upn", upn)
        .finish();
    format!("{USER_PATH}?{q}")
}

/// A button that posts `action` for `upn` (and `extra` fields).
fn action_button(
    session: &Session,
    upn: &str,
    action: &str,
    label: &str,
    aria: &str,
    extra: &[(&str, &str)],
) -> Markup {
    html! {
        form.inline method="post" action=(USER_PATH) {
            (csrf(session))
            input type="hidden" name="upn" value=(upn);
            input type="hidden" name="action" value=(action);
            @for (k, v) in extra { input type="hidden" name=(k) value=(v); }
            button.secondary type="submit" id=(format!("action-{action}")) aria-label=(aria) { (label) }
        }
    }
}

/// The user page's content, or `None` when there is no such user.
async fn user_body(
    state: &AppState,
    session: &Session,
    upn: &str,
    n: Notice<'_>,
    shown_once: Option<Markup>,
) -> Result<Option<Markup>, WebError> {
    let pool = &state.pool;
    let Some(record) = users::find(pool, upn).await? else {
        return Ok(None);
    };
    let upn = record.upn.as_str();
    let now = now_ms();
    let attributes = users::attributes(pool, upn).await?.unwrap_or_default();
    let risk = store::risk::load(pool, RiskKey::User(upn))
        .await?
        .map(|r| r.0);
    let paused_until = risk.as_ref().map(|r| r.paused_until).filter(|&p| p > now);
    let fallback = accounts::fallback::status_line(pool, upn)
        .await
        .map_err(WebError::internal)?;
    let has_password = accounts::passwords::has_password(pool, upn).await?;
    let devices = store::devices::of_user(pool, upn).await?;
    let passes = store::passes::of_user(pool, upn, now).await?;
    let sessions = store::sessions::signed_in_of(pool, upn, now).await?;
    let device_name = |id: &str| {
        devices
            .iter()
            .find(|d| d.account_id == id)
            .map_or_else(|| "a removed device".to_owned(), |d| d.device_name.clone())
    };
    Ok(Some(html! {
        (notice(n))
        @if let Some(once) = shown_once { (once) }
        dl.facts id="user-facts" {
            dt { "User (UPN)" } dd { (upn) }
            dt { "Display name" } dd { (record.display_name) }
            dt { "Groups" } dd { @if record.groups.is_empty() { "None" } @else { (record.groups.join(", ")) } }
            dt { "Email" } dd {
                @match &attributes.email {
                    Some(e) => { (e) @if attributes.email_verified { " (verified)" } @else { " (not verified)" } }
                    None => "None",
                }
            }
            dt { "Given name" } dd { (attributes.given_name.as_deref().unwrap_or("None")) }
            dt { "Family name" } dd { (attributes.family_name.as_deref().unwrap_or("None")) }
            dt { "Password" } dd { @if has_password { "Set" } @else { "None" } }
            dt { "Risk" } dd id="risk" {
                @match &risk {
                    Some(r) => {
                        (r.level()) " (" (r.reports) " \u{201c}this wasn\u{2019}t me\u{201d} reports"
                        @if let Some(at) = r.last_report_at { ", last " (when(at)) }
                        ")"
                    }
                    None => "low (no reports)",
                }
            }
            dt { "Sign-ins" } dd id="pause" {
                @match paused_until {
                    Some(until) => { strong { "Paused until " (when(until)) } " after a report. " }
                    None => "Not paused",
                }
            }
            dt { "Offline fallback" } dd id="fallback" { (fallback.trim_start_matches("offline fallback: ")) }
        }
        div.actions {
            @if paused_until.is_some() {
                (action_button(session, upn, "resume", "Resume sign-ins", &format!("Resume sign-ins for {upn}"), &[]))
            }
            (action_button(session, upn, "unlock_fallback", "Unlock the offline fallback", &format!("Unlock the offline fallback of {upn}"), &[]))
            (action_button(session, upn, "issue_pass", "Issue a temporary access pass\u{2026}", &format!("Issue a temporary access pass for {upn}"), &[]))
            (action_button(session, upn, "set_password", "Set a password\u{2026}", &format!("Set a password for {upn}"), &[]))
            (action_button(session, upn, "sign_out_everywhere", "Sign out everywhere\u{2026}", &format!("Sign out everywhere for {upn}"), &[]))
        }

        h2 { "Authenticator apps" }
        @if devices.is_empty() {
            p id="no-devices" { "No devices." }
        } @else {
            table.stack id="user-devices" {
                thead { tr {
                    th scope="col" { "Device" } th scope="col" { "Push channel" } th scope="col" { "Added" }
                    th scope="col" { "Last used" } th scope="col" { "Phone sign-in" } th scope="col" { "Action" }
                } }
                tbody {
                    @for d in &devices {
                        tr data-account=(d.account_id) {
                            td data-label="Device" { (d.device_name) }
                            td data-label="Push channel" { (push_channel(d)) }
                            td data-label="Added" { (when(d.enrolled_at)) }
                            td data-label="Last used" { @if let Some(at) = d.last_used_at { (when(at)) } @else { "Never" } }
                            td data-label="Phone sign-in" {
                                @if d.awaiting_approval { strong { "Awaiting approval" } br; }
                                @if d.passwordless_enabled_at.is_some() { "Enabled" } @else { "Not enabled" }
                            }
                            td data-label="Action" {
                                (action_button(session, upn, "remove_device", "Remove\u{2026}",
                                    &format!("Remove {}", d.device_name), &[("account_id", &d.account_id)]))
                            }
                        }
                    }
                }
            }
        }

        h2 { "Temporary access passes" }
        @if passes.is_empty() {
            p id="no-passes" { "None in the last day." }
        } @else {
            table.stack id="user-passes" {
                thead { tr { th scope="col" { "Issued" } th scope="col" { "State" } } }
                tbody {
                    @for p in &passes {
                        tr {
                            td data-label="Issued" { (when(p.created_at)) }
                            td data-label="State" {
                                @match p.used_at {
                                    Some(at) => { "Used " (when(at)) }
                                    None if p.expires_at > now => { "Usable until " (when(p.expires_at)) }
                                    None => { "Expired " (when(p.expires_at)) }
                                }
                            }
                        }
                    }
                }
            }
        }

        h2 { "Signed-in sessions (these pages)" }
        @if sessions.is_empty() {
            p id="no-sessions" { "None." }
        } @else {
            table.stack id="user-sessions" {
                thead { tr { th scope="col" { "Signed in" } th scope="col" { "How" } th scope="col" { "Ends" } } }
                tbody {
                    @for s in &sessions {
                        tr {
                            td data-label="Signed in" { (when(s.created_at)) }
                            td data-label="How" {
                                (method_words(s.method.as_deref()))
                                @if let Some(d) = &s.device { " (" (device_name(d)) ")" }
                            }
                            td data-label="Ends" { (when(s.expires_at)) }
                        }
                    }
                }
            }
        }

        h2 { "Attributes" }
        p.hint { "What applications receive (OpenID Connect scopes email and profile). An empty field clears the value." }
        form method="post" action=(USER_PATH) {
            (csrf(session))
            input type="hidden" name="upn" value=(upn);
            input type="hidden" name="action" value="set_attributes";
            label for="attr-email" { "Email" }
            input type="email" id="attr-email" name="email" value=(attributes.email.as_deref().unwrap_or("")) autocomplete="off";
            label.choice for="attr-email-verified" {
                input type="checkbox" id="attr-email-verified" name="email_verified" value="on" checked[attributes.email_verified];
                span { "The email address is verified" }
            }
            label for="attr-given" { "Given name" }
            input type="text" id="attr-given" name="given_name" value=(attributes.given_name.as_deref().unwrap_or("")) autocomplete="off";
            label for="attr-family" { "Family name" }
            input type="text" id="attr-family" name="family_name" value=(attributes.family_name.as_deref().unwrap_or("")) autocomplete="off";
            div.actions { button type="submit" id="save-attributes" { "Save attributes" } }
        }
    }))
}

fn user_page_of(session: &Session, admin: &User, upn: &str, body: Markup) -> Response {
    admin_page(
        session,
        admin,
        &format!("User {upn}"),
        "/admin/users",
        html! { p { a href="/admin/users" { "\u{2190} All users" } } (body) },
    )
}

async fn render(
    state: &AppState,
    session: &Session,
    admin: &User,
    upn: &str,
    n: Notice<'_>,
    shown_once: Option<Markup>,
) -> Result<Response, WebError> {
    match user_body(state, session, upn, n, shown_once).await? {
        Some(body) => Ok(user_page_of(session, admin, upn, body)),
        None => {
            let mut r = admin_page(
                session,
                admin,
                "No such user",
                "/admin/users",
                html! {
                    (notice(Notice::Error("There is no such user.")))
                    p { a href="/admin/users" { "Search users" } }
                },
            );
            *r.status_mut() = StatusCode::NOT_FOUND;
            Ok(r)
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct UserQuery {
    #[serde(default)]
    pub upn: String,
}

/// `GET /admin/user?upn=U`
pub async fn user_page(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<UserQuery>,
) -> Result<Response, WebError> {
    let admin = admin_user(&state, &session).await?;
    render(
        &state,
        &session,
        &admin,
        &name_of(&q.upn),
        Notice::None,
        None,
    )
    .await
}

#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    pub csrf: String,
    pub upn: String,
    pub action: String,
    /// `yes` on the confirmation page's form.
    #[serde(default)]
    pub confirmed: String,
    #[serde(default)]
    pub account_id: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub ttl_secs: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub email_verified: Option<String>,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
}

/// What a confirmation page asks: its title, what the action does to whom, the extra form
/// fields it needs (a password, a lifetime) and the confirming button's label.
struct Confirm<'a> {
    title: &'a str,
    what: Markup,
    fields: Markup,
    button: &'a str,
}

/// The confirmation page of a destructive action: what it does to whom, a form that posts it
/// again with `confirmed=yes` (and the fields), and a way back.
fn confirmation(
    session: &Session,
    admin: &User,
    f: &ActionForm,
    upn: &str,
    c: Confirm<'_>,
) -> Response {
    let Confirm {
        title,
        what,
        fields,
        button,
    } = c;
    admin_page(
        session,
        admin,
        title,
        "/admin/users",
        html! {
            div.confirm id="confirm" { (what) }
            form method="post" action=(USER_PATH) {
                (csrf(session))
                input type="hidden" name="upn" value=(upn);
                input type="hidden" name="action" value=(f.action);
                input type="hidden" name="account_id" value=(f.account_id);
                input type="hidden" name="confirmed" value="yes";
                (fields)
                div.actions {
                    button type="submit" id="confirm-action" { (button) }
                    a id="cancel" href=(user_link(upn)) { "Cancel" }
                }
            }
        },
    )
}

/// `POST /admin/user`: one action on one user, confirmed first when it is destructive, run
/// as the acting administrator.
pub async fn user_action(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<ActionForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let admin = admin_user(&state, &session).await?;
    let upn = name_of(&f.upn);
    if !users::exists(&state.pool, &upn).await? {
        return render(&state, &session, &admin, &upn, Notice::None, None).await;
    }
    let confirmed = f.confirmed == "yes";
    let device = if f.action == "remove_device" {
        store::devices::of_user(&state.pool, &upn)
            .await?
            .into_iter()
            .find(|d| d.account_id == f.account_id.trim())
    } else {
        None
    };
    // The confirmation pages.
    if !confirmed {
        let asked = match f.action.as_str() {
            "remove_device" => device.as_ref().map(|d| Confirm {
                title: "Remove a device?",
                what: html! {
                    p { "Remove " strong { "\u{201c}" (d.device_name) "\u{201d}" } " of " strong { (upn) } "?" }
                    p { "It stops approving sign-ins at once, and the sessions it signed in end. This cannot be undone: the user adds the app again to use it." }
                },
                fields: html! {},
                button: "Remove the device",
            }),
            "sign_out_everywhere" => Some(Confirm {
                title: "Sign out everywhere?",
                what: html! {
                    p { "Sign " strong { (upn) } " out everywhere?" }
                    p { "Every session on these pages, and every token applications hold for them, ends at once." }
                },
                fields: html! {},
                button: "Sign out everywhere",
            }),
            "issue_pass" => Some(Confirm {
                title: "Issue a temporary access pass?",
                what: html! {
                    p { "Issue a temporary access pass for " strong { (upn) } "?" }
                    p { "Whoever holds it signs in as this user once, and can add a phone. Issue it only after checking who is asking, and hand it over yourself." }
                },
                fields: html! {
                    label for="ttl" { "Valid for" }
                    select id="ttl" name="ttl_secs" {
                        option value="3600" selected { "1 hour" }
                        option value="14400" { "4 hours" }
                        option value="28800" { "8 hours" }
                    }
                },
                button: "Issue the pass",
            }),
            "set_password" => Some(Confirm {
                title: "Set a password?",
                what: html! {
                    p { "Set a new password for " strong { (upn) } "?" }
                    p { "The current password, if any, stops working." }
                },
                fields: html! {
                    label for="new-password" { "New password" }
                    input type="password" id="new-password" name="password" required autocomplete="new-password" aria-describedby="new-password-hint";
                    p.hint id="new-password-hint" { "At least 8 characters." }
                },
                button: "Set the password",
            }),
            _ => None,
        };
        if let Some(c) = asked {
            return Ok(confirmation(&session, &admin, &f, &upn, c));
        }
    }
    let acting = Actor::Admin(admin.upn.clone());
    let message: Result<String, String>;
    let mut shown_once = None;
    match f.action.as_str() {
        "remove_device" => {
            message = match &device {
                None => Err("Not removed: that device is not one of this user's.".to_owned()),
                Some(d) => audit::acting_as(
                    acting,
                    accounts::devices::remove_as(&state.pool, &d.account_id, Remover::Admin),
                )
                .await
                .map(|()| format!("Removed \u{201c}{}\u{201d} of {upn}.", d.device_name))
                .map_err(|e| format!("Not removed: {e}")),
            };
        }
        "sign_out_everywhere" => {
            let ended = audit::acting_as(
                acting,
                trust::end_sessions(&state.pool, &upn, EndReason::SignOutEverywhere),
            )
            .await
            .map_err(WebError::internal)?;
            message = Ok(format!(
                "Signed {upn} out everywhere: {} sessions and {} access tokens ended.",
                ended.web_sessions, ended.access_tokens
            ));
        }
        "issue_pass" => {
            use accounts::temporary_pass::{DEFAULT_TTL_SECS, MAX_TTL_SECS};
            // The form offers 1, 4 or 8 hours; anything else posted is refused in words
            // (the domain's message names the command line's flag).
            let ttl = match f.ttl_secs.trim() {
                "" => Some(DEFAULT_TTL_SECS),
                t => t.parse().ok().filter(|t| (1..=MAX_TTL_SECS).contains(t)),
            };
            let issued = match ttl {
                Some(ttl) => {
                    audit::acting_as(
                        acting,
                        accounts::temporary_pass::issue(&state.pool, &upn, ttl),
                    )
                    .await
                }
                None => Err(anyhow::anyhow!(
                    "a pass is valid for 1 second to {} hours",
                    MAX_TTL_SECS / 3600
                )),
            };
            let ttl = ttl.unwrap_or_default();
            match issued {
                Ok(pass) => {
                    message = Ok(format!(
                        "Issued a temporary access pass for {upn}, valid for {} minutes.",
                        ttl / 60
                    ));
                    shown_once = Some(html! {
                        section.confirm aria-labelledby="pass-heading" {
                            h2 id="pass-heading" { "The pass (shown only this once)" }
                            p.once id="temporary-pass" { code { (pass) } }
                            p.hint { "Hand it to the user yourself. It signs them in once, on the sign-in page under \u{201c}Use a temporary access pass\u{201d}." }
                        }
                    });
                }
                Err(e) => message = Err(format!("Not issued: {e}")),
            }
        }
        "set_password" => {
            message = audit::acting_as(
                acting,
                accounts::passwords::set_password(&state.pool, &upn, &f.password),
            )
            .await
            .map(|()| format!("Set a new password for {upn}."))
            .map_err(|e| format!("Not set: {e}"));
        }
        "resume" => {
            message = match audit::acting_as(
                acting,
                signin_domain::rules::risk::resume(&state.pool, &upn),
            )
            .await
            {
                Ok(true) => Ok(format!("Resumed sign-ins for {upn}.")),
                Ok(false) => Err(format!("{upn} was not paused.")),
                Err(e) => return Err(WebError::internal(e)),
            };
        }
        "unlock_fallback" => {
            message = match audit::acting_as(
                acting,
                accounts::fallback::unlock(&state.pool, &upn),
            )
            .await
            {
                Ok(true) => Ok(format!("Unlocked the offline fallback of {upn}.")),
                Ok(false) => Ok(format!(
                    "The offline fallback of {upn} was not locked; its count of wrong codes is zero."
                )),
                Err(e) => Err(format!("Not unlocked: {e}")),
            };
        }
        "set_attributes" => {
            let update = AttributesUpdate {
                email: Some(f.email.clone()),
                email_verified: Some(f.email_verified.is_some()),
                given_name: Some(f.given_name.clone()),
                family_name: Some(f.family_name.clone()),
            };
            message = audit::acting_as(
                acting,
                accounts::attributes::set_attributes(&state.pool, &upn, update),
            )
            .await
            .map(|()| format!("Saved the attributes of {upn}."))
            .map_err(|e| format!("Not saved: {}", e.to_string().replace("--", "")));
        }
        _ => message = Err("Choose an action.".to_owned()),
    }
    let n = match &message {
        Ok(m) => Notice::Info(m),
        Err(m) => Notice::Error(m),
    };
    render(&state, &session, &admin, &upn, n, shown_once).await
}

/// The users page's search: users whose name contains `q`, each linking to their page.
pub async fn search_results(state: &AppState, q: &str) -> Result<Markup, WebError> {
    let found = users::search(&state.pool, q, 200).await?;
    Ok(html! {
        @if found.is_empty() {
            p id="no-users" { "No user\u{2019}s name contains \u{201c}" (q) "\u{201d}." }
        } @else {
            p { (found.len()) " found" @if found.len() == 200 { " (the first 200)" } "." }
        }
        (users_table(&found, &[]))
    })
}

/// Users as a table, each linking to their page.
pub fn users_table(list: &[users::UserOverview], memberships: &[(String, String)]) -> Markup {
    html! {
        @if !list.is_empty() {
            table.stack id="users" {
                thead { tr {
                    th scope="col" { "User (UPN)" } th scope="col" { "Name" } th scope="col" { "Groups" }
                    th scope="col" { "Password" } th scope="col" { "Authenticator apps" } th scope="col" { "Phone sign-in" }
                } }
                tbody {
                    @for u in list {
                        tr {
                            td data-label="User" { a href=(user_link(&u.upn)) { (u.upn) } }
                            td data-label="Name" { (u.display_name) }
                            td data-label="Groups" { (memberships.iter().filter(|(m, _)| *m == u.upn).map(|(_, g)| g.as_str()).collect::<Vec<_>>().join(", ")) }
                            td data-label="Password" { @if u.has_password { "Set" } @else { "None" } }
                            td data-label="Apps" { (u.devices) }
                            td data-label="Phone sign-in" { @if u.phone_sign_in_devices > 0 { "Enabled" } @else { "Not enabled" } }
                        }
                    }
                }
            }
        }
    }
}
