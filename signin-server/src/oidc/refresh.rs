//! Refresh tokens (RFC 6749 §6, OpenID Connect Core §12), revocation (RFC 7009) and token
//! introspection (RFC 7662).
//!
//! A refresh token is given for the `offline_access` scope (to a public client only when the
//! code came with PKCE, and never when the client is registered without refresh tokens). It is
//! 32 random bytes, stored as SHA-256 only, bound to its client, its user and the sign-in that
//! made it (method and device). Every use rotates it: the token presented is spent and the
//! answer carries the next one of its family; a spent token presented again is a sign of theft
//! and revokes the whole family (every refresh token and access token of the grant; audited
//! `tokens_revoked`). A family ends at its client's lifetime from its first token, and a token
//! unused for the client's idle limit ends too.
//!
//! Each refresh asks `trust::authenticate` again, so a removed or held device and a paused or
//! disabled user get `invalid_grant`; the trust rules also delete the tokens outright, with the
//! user's other sessions and tokens (`trust::end_sessions`, `store::devices::remove`).
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::clients::{self, AuthMethod, Client};
use super::token::{has_scope, issue_tokens, subject, Authenticated, Offline};
use super::{form_params, no_store, secret_hash, OAuthError, Params};
use signin_domain::audit::{self, Event};
use signin_domain::state::AppState;
use signin_domain::store::oidc::{self as store, RefreshTokenRow};
use signin_domain::store::{is_expired, now_ms};
use signin_domain::trust::Method;

/// Whether a refresh token may still be used at `now`: unspent, and neither at its family's end
/// nor past its idle limit.
fn usable(row: &RefreshTokenRow, now: i64) -> bool {
    row.used_at.is_none()
        && !is_expired(row.expires_at, now)
        && !row.idle_expires_at.is_some_and(|t| is_expired(t, now))
}

/// Ends a family (the grant `family` and every token refreshed from it), audited
/// `tokens_revoked` with `why`.
pub(crate) async fn end_family(
    state: &AppState,
    client: &Client,
    upn: &str,
    family: &str,
    why: &str,
) -> Result<(), OAuthError> {
    let revoked = store::revoke_grant(&state.pool, family).await?;
    let outcome = format!(
        "{why} client_id={} refresh_tokens={} access_tokens={}",
        client.client_id(),
        revoked.refresh_tokens,
        revoked.access_tokens
    );
    audit::record(
        &state.pool,
        Event::TokensRevoked,
        audit::Entry {
            upn: Some(upn),
            outcome: &outcome,
            // The client asked (RFC 7009), or the server found a spent token again.
            actor: (why == "revoked_by_client")
                .then(|| audit::Actor::Application(client.client_id().to_owned())),
            ..Default::default()
        },
    )
    .await?;
    tracing::warn!(
        client_id = %client.client_id(),
        why,
        refresh_tokens = revoked.refresh_tokens,
        access_tokens = revoked.access_tokens,
        "refresh token family revoked"
    );
    Ok(())
}

/// The token endpoint's `refresh_token` grant (RFC 6749 §6).
pub(crate) async fn grant(
    state: &AppState,
    iss: &str,
    client: &Client,
    p: &Params,
) -> Result<Response, OAuthError> {
    let presented = p.require("refresh_token", "refresh_token is required")?;
    let now = now_ms();
    // Bound to its client: another client learns nothing and spends nothing.
    let row = store::find_refresh_token(&state.pool, &secret_hash(presented))
        .await?
        .filter(|r| r.client_id == client.client_id())
        .ok_or(OAuthError::InvalidGrant("unknown refresh token"))?;
    if row.used_at.is_some() {
        // Two holders of one token: the client and a thief. Neither keeps the family.
        end_family(state, client, &row.upn, &row.family, "refresh_token_reused").await?;
        return Err(OAuthError::InvalidGrant("refresh token already used"));
    }
    if !usable(&row, now) {
        return Err(OAuthError::InvalidGrant("refresh token expired"));
    }
    // A narrower scope may be asked for the new access token (RFC 6749 §6); the family keeps
    // the scope it was granted.
    let scope = match p.get("scope") {
        None => row.scope.clone(),
        Some(asked) => {
            let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
            if asked.iter().any(|s| !has_scope(&row.scope, s)) {
                return Err(OAuthError::InvalidScope(
                    "scope asks for more than the refresh token was granted",
                ));
            }
            row.scope
                .split(' ')
                .filter(|s| asked.contains(s))
                .collect::<Vec<_>>()
                .join(" ")
        }
    };
    let Some(method) = Method::parse(&row.method) else {
        return Err(OAuthError::InvalidGrant("the sign-in is no longer valid"));
    };
    issue_tokens(
        state,
        iss,
        Authenticated {
            client,
            upn: &row.upn,
            scope: &scope,
            // OpenID Connect Core §12.2: a refreshed ID token carries no nonce.
            nonce: None,
            auth_time: row.auth_time,
            amr: &row.amr,
            grant_hash: &row.family,
            method: Some(method),
            device: row.device.as_deref(),
            offline: Offline::Rotate(&row),
            // Refresh rows do not keep the browser session's id: a refreshed ID token has no
            // `sid` (its session's back-channel logout still names the user's `sub`).
            sid: None,
        },
    )
    .await
}

/// `POST /oauth2/revoke` (RFC 7009): the client (authenticated as at the token endpoint)
/// revokes one of its tokens. A refresh token takes its family with it (every refresh and
/// access token of its grant); an access token goes alone. The answer is 200 whatever the
/// token was (unknown, expired, another client's: nothing happens, and nothing is told).
pub async fn revoke(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let p = form_params(&parts.headers, &body)?;
    let (client, _) = clients::authenticate(&state.pool, &parts.headers, &p).await?;
    let token = p.require("token", "token is required")?;
    // `token_type_hint` only orders the search (§2.1); both kinds are looked for.
    let hash = secret_hash(token);
    let refresh = store::find_refresh_token(&state.pool, &hash)
        .await?
        .filter(|r| r.client_id == client.client_id());
    if let Some(row) = refresh {
        end_family(&state, &client, &row.upn, &row.family, "revoked_by_client").await?;
    } else if let Some(upn) =
        store::revoke_access_token(&state.pool, &hash, client.client_id()).await?
    {
        let outcome = format!(
            "revoked_by_client client_id={} access_tokens=1",
            client.client_id()
        );
        audit::record(
            &state.pool,
            Event::TokensRevoked,
            audit::Entry {
                upn: Some(&upn),
                outcome: &outcome,
                actor: Some(audit::Actor::Application(client.client_id().to_owned())),
                ..Default::default()
            },
        )
        .await?;
        tracing::info!(client_id = %client.client_id(), "access token revoked");
    }
    Ok(no_store(StatusCode::OK.into_response()))
}

/// RFC 7662 §2.2. An inactive token is `{"active": false}` and nothing else.
#[derive(Debug, Serialize, Default)]
struct Introspection {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
}

/// `POST /oauth2/introspect` (RFC 7662): a resource server (a confidential client,
/// authenticated as at the token endpoint) asks whether an access token is active, and for
/// what. Active access tokens answer `scope`, `client_id`, `sub`, `exp`, `iat` and
/// `token_type`; a refresh token is active only to the client it was issued to. Anything
/// revoked, spent, expired or unknown is `{"active": false}`.
pub async fn introspect(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let p = form_params(&parts.headers, &body)?;
    let (client, method) = clients::authenticate(&state.pool, &parts.headers, &p).await?;
    if method == AuthMethod::None {
        // Anyone can name a public client: introspection would answer everybody.
        return Err(OAuthError::UnauthorizedClient(
            "token introspection is for confidential clients",
        ));
    }
    let token = p.require("token", "token is required")?;
    let hash = secret_hash(token);
    let now = now_ms();
    let mut answer = Introspection::default();
    if let Some(row) = store::find_access_token(&state.pool, &hash, now).await? {
        answer = Introspection {
            active: true,
            scope: Some(row.scope),
            client_id: Some(row.client_id),
            sub: Some(subject(&state.pool, &row.upn).await?),
            exp: Some(row.expires_at / 1000),
            iat: Some(row.created_at / 1000),
            token_type: Some("Bearer"),
        };
    } else if let Some(row) = store::find_refresh_token(&state.pool, &hash)
        .await?
        .filter(|r| r.client_id == client.client_id() && usable(r, now))
    {
        let ends = row
            .idle_expires_at
            .map_or(row.expires_at, |idle| idle.min(row.expires_at));
        answer = Introspection {
            active: true,
            scope: Some(row.scope),
            client_id: Some(row.client_id),
            sub: Some(subject(&state.pool, &row.upn).await?),
            exp: Some(ends / 1000),
            iat: Some(row.created_at / 1000),
            token_type: None,
        };
    }
    Ok(no_store(axum::Json(answer).into_response()))
}
