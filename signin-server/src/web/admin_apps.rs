//! The admin page of registered applications (members of `admins`): each application with its
//! client id, and for OpenID Connect clients their type, redirect URIs and CIBA mode; removing
//! one stops its credential and its codes at once (after a confirmation page). Registering is
//! the form here or `admin app add`: the secret is shown once, on the page that answers the
//! form (never stored, never logged), or on the administrator's terminal.
use axum::extract::State;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{admin_nav, csrf, layout, notice, Notice};
use super::{admin_user, page, Session, User, WebError};
use signin_domain::accounts::applications;
use signin_domain::audit::{self, Actor};
use signin_domain::oidc::clients;
use signin_domain::state::AppState;

pub const APPS_PATH: &str = "/admin/apps";
pub const REMOVE_APP_PATH: &str = "/admin/apps/remove";
pub const ADD_APP_PATH: &str = "/admin/apps/add";

fn apps_page_of(session: &Session, user: &User, body: Markup) -> Response {
    page(
        session,
        layout(
            "Applications",
            Some((user, session)),
            html! {
                (admin_nav(APPS_PATH))
                section.card { h1 { "Applications" } (body) }
            },
        ),
    )
}

async fn apps_body(state: &AppState, session: &Session, n: Notice<'_>) -> Result<Markup, WebError> {
    let listed = clients::list(&state.pool)
        .await
        .map_err(WebError::Internal)?;
    Ok(html! {
        (notice(n))
        table.stack id="apps" {
            thead { tr {
                th scope="col" { "Name" }
                th scope="col" { "Client id" }
                th scope="col" { "Kind" }
                th scope="col" { "Redirect URIs" }
                th scope="col" { "After sign-out" }
                th scope="col" { "Action" }
            } }
            tbody {
                @for l in &listed {
                    tr {
                        td data-label="Name" { (l.application.name) }
                        td data-label="Client id" { code { (l.application.client_id) } }
                        td data-label="Kind" {
                            @if l.application.builtin {
                                "Built-in (this server's pages)"
                            } @else if let Some(c) = &l.client {
                                @if c.public { "OpenID Connect, public" } @else { "OpenID Connect, confidential" }
                                @if c.ciba_notification_endpoint.is_some() { ", CIBA ping" }
                                @if c.backchannel_logout_uri.is_some() { ", back-channel logout" }
                            } @else {
                                "Sign-in API"
                            }
                        }
                        td data-label="Redirect URIs" {
                            @if let Some(c) = &l.client {
                                @for uri in &c.redirect_uris { code { (uri) } br; }
                            }
                        }
                        td data-label="After sign-out" {
                            @if let Some(c) = &l.client {
                                @for uri in &c.post_logout_redirect_uris { code { (uri) } br; }
                            }
                        }
                        td data-label="Action" {
                            @if !l.application.builtin {
                                form.inline method="post" action=(REMOVE_APP_PATH) {
                                    (csrf(session))
                                    input type="hidden" name="client_id" value=(l.application.client_id);
                                    button.secondary type="submit"
                                        aria-label=(format!("Remove {}", l.application.name)) { "Remove\u{2026}" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Add an application" }
        form method="post" action=(ADD_APP_PATH) {
            (csrf(session))
            label for="app-name" { "Name (the phone shows it)" }
            input type="text" id="app-name" name="name" required maxlength="128" autocomplete="off";
            label for="app-redirects" { "Redirect URIs, one a line (an OpenID Connect client; none: a sign-in API application)" }
            textarea id="app-redirects" name="redirect_uris" rows="3" spellcheck="false" {}
            label.choice for="app-public" {
                input type="checkbox" id="app-public" name="public" value="on" aria-describedby="app-public-hint";
                span { "Public client (no secret: a phone or single-page app, with PKCE)" }
            }
            p.hint id="app-public-hint" {
                "Sign-out settings, CIBA and refresh token lifetimes: "
                code { "signin-server admin app add --help" } "."
            }
            div.actions { button type="submit" id="add-app" { "Add application" } }
        }
    })
}

/// `GET /admin/apps`
pub async fn apps_page(
    State(state): State<AppState>,
    session: Session,
) -> Result<Response, WebError> {
    let user = admin_user(&state, &session).await?;
    let body = apps_body(&state, &session, Notice::None).await?;
    Ok(apps_page_of(&session, &user, body))
}

#[derive(Debug, Deserialize)]
pub struct RemoveAppForm {
    pub csrf: String,
    pub client_id: String,
    /// `yes` from the confirmation page.
    #[serde(default)]
    pub confirmed: String,
}

/// `POST /admin/apps/remove`: a confirmation page naming the application, then
/// (`confirmed=yes`) the removal, run as the acting administrator and reported by name.
pub async fn remove_app(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<RemoveAppForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = admin_user(&state, &session).await?;
    let client_id = f.client_id.trim();
    let app = applications::list(&state.pool)
        .await
        .map_err(WebError::Internal)?
        .into_iter()
        .find(|a| a.client_id == client_id && !a.builtin);
    let Some(app) = app else {
        let body = apps_body(
            &state,
            &session,
            Notice::Error("Not removed: there is no such application."),
        )
        .await?;
        return Ok(apps_page_of(&session, &user, body));
    };
    if f.confirmed != "yes" {
        let body = html! {
            div.confirm id="confirm" {
                p { "Remove the application " strong { "\u{201c}" (app.name) "\u{201d}" } " (" code { (app.client_id) } ")?" }
                p { "Its secret, its codes and the tokens it holds stop working at once; its users can no longer sign in to it. This cannot be undone: registering it again gives a new client id and secret." }
            }
            form method="post" action=(REMOVE_APP_PATH) {
                (csrf(&session))
                input type="hidden" name="client_id" value=(app.client_id);
                input type="hidden" name="confirmed" value="yes";
                div.actions {
                    button type="submit" id="confirm-action" { "Remove the application" }
                    a id="cancel" href=(APPS_PATH) { "Cancel" }
                }
            }
        };
        return Ok(apps_page_of(&session, &user, body));
    }
    let message;
    let removed = audit::acting_as(
        Actor::Admin(user.upn.clone()),
        applications::remove(&state.pool, &app.client_id),
    )
    .await;
    let n = match removed {
        Ok(()) => {
            message = format!("Removed the application \u{201c}{}\u{201d}.", app.name);
            Notice::Info(&message)
        }
        Err(e) => {
            message = format!("Not removed: {e}");
            Notice::Error(&message)
        }
    };
    let body = apps_body(&state, &session, n).await?;
    Ok(apps_page_of(&session, &user, body))
}

#[derive(Deserialize)]
pub struct AddAppForm {
    pub csrf: String,
    pub name: String,
    #[serde(default)]
    pub redirect_uris: String,
    pub public: Option<String>,
}

/// `POST /admin/apps/add`: registers an application (an OpenID Connect client when it has
/// redirect URIs) as the acting administrator; the answer shows its secret this once.
pub async fn add_app(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<AddAppForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = admin_user(&state, &session).await?;
    let uris: Vec<String> = f
        .redirect_uris
        .lines()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let public = f.public.is_some() && !uris.is_empty();
    let acting = Actor::Admin(user.upn.clone());
    let registered = if uris.is_empty() {
        audit::acting_as(acting, applications::add(&state.pool, &f.name)).await
    } else {
        audit::acting_as(
            acting,
            clients::add(&state.pool, &f.name, &uris, public, None),
        )
        .await
    };
    let name = f.name.trim();
    let (message, once) = match &registered {
        Ok(r) => (
            Ok(format!("Added the application \u{201c}{name}\u{201d}.")),
            Some(html! {
                section.confirm aria-labelledby="secret-heading" {
                    h2 id="secret-heading" {
                        @if public { "Its client id" } @else { "Its client id and secret (the secret is shown only this once)" }
                    }
                    dl.facts {
                        dt { "Client id" } dd { code id="client-id" { (r.client_id) } }
                        @if !public {
                            dt { "Client secret" } dd.once { code id="client-secret" { (r.client_secret) } }
                        }
                    }
                    @if !public {
                        p.hint { "Store the secret in the application\u{2019}s settings now: it is not kept here and cannot be shown again." }
                    }
                }
            }),
        ),
        Err(e) => (Err(format!("Not added: {e}")), None),
    };
    let n = match &message {
        Ok(m) => Notice::Info(m),
        Err(m) => Notice::Error(m),
    };
    let body = apps_body(&state, &session, n).await?;
    let body = html! { @if let Some(once) = once { (once) } (body) };
    let mut r = apps_page_of(&session, &user, body);
    // The secret is on this page only: no cache may keep it.
    r.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}
