//! The admin page of registered applications (members of `admins`): each application with its
//! client id, and for OpenID Connect clients their type, redirect URIs and CIBA mode; removing
//! one stops its credential and its codes at once. Registering is `admin app add` (the secret
//! is printed once, on the administrator's terminal, never in a page).
use axum::extract::State;
use axum::response::Response;
use axum::Form;
use maud::{html, Markup};
use serde::Deserialize;

use super::pages::{admin_nav, csrf, layout, notice, Notice};
use super::{admin_user, page, Session, User, WebError};
use signin_domain::accounts::applications;
use signin_domain::oidc::clients;
use signin_domain::state::AppState;

pub const APPS_PATH: &str = "/admin/apps";
pub const REMOVE_APP_PATH: &str = "/admin/apps/remove";

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
        p.hint {
            "Register applications with "
            code { "signin-server admin app add --name NAME [--redirect-uri URI [--public] [--post-logout-redirect-uri URI] [--backchannel-logout-uri URI]]" }
            " (the secret is shown once, there). The phone shows the name."
        }
        table id="apps" {
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
                        td { (l.application.name) }
                        td { code { (l.application.client_id) } }
                        td {
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
                        td {
                            @if let Some(c) = &l.client {
                                @for uri in &c.redirect_uris { code { (uri) } br; }
                            }
                        }
                        td {
                            @if let Some(c) = &l.client {
                                @for uri in &c.post_logout_redirect_uris { code { (uri) } br; }
                            }
                        }
                        td {
                            @if !l.application.builtin {
                                form.inline method="post" action=(REMOVE_APP_PATH) {
                                    (csrf(session))
                                    input type="hidden" name="client_id" value=(l.application.client_id);
                                    button.secondary type="submit"
                                        aria-label=(format!("Remove {}", l.application.name)) { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
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
}

/// `POST /admin/apps/remove`
pub async fn remove_app(
    State(state): State<AppState>,
    session: Session,
    Form(f): Form<RemoveAppForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&f.csrf)?;
    let user = admin_user(&state, &session).await?;
    let message;
    let n = match applications::remove(&state.pool, &f.client_id).await {
        Ok(()) => {
            message = format!("Removed {}.", f.client_id.trim());
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
