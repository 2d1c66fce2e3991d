//! The token endpoint (RFC 6749 §3.2, OpenID Connect Core §3.1.3; grant types
//! `authorization_code`, `refresh_token` ([`super::refresh`]) and CIBA's
//! `urn:openid:params:grant-type:ciba`) and the userinfo endpoint (§5.3). Access tokens are
//! opaque (32 random bytes, stored hashed) and open userinfo (and introspection); refresh
//! tokens, for the `offline_access` scope, are the same kind of secret, rotated on every use.
use authenticator_protocol::encoding::{b64, sha256};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::authorize::issuer;
use super::clients::{self, AuthMethod, Client};
use super::{
    acr_for, ciba, form_params, no_store, random_secret, refresh, secret_hash, OAuthError, Params,
    CIBA_GRANT_TYPE, OFFLINE_ACCESS,
};
use crate::web::session::public_base;
use signin_domain::audit::{self, Event};
use signin_domain::state::AppState;
use signin_domain::store::oidc::{
    self as store, AccessTokenRow, NewTokens, RefreshTokenRow, Stored,
};
use signin_domain::store::{now_ms, users};
use signin_domain::trust::{self, Method};

/// ID tokens live 5 minutes: a relying party validates one right after the token request.
pub const ID_TOKEN_TTL_SECS: i64 = 300;
/// Access tokens (userinfo only) live 10 minutes.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 600;

/// The claims of an ID token (OpenID Connect Core §2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    pub amr: Vec<String>,
    pub acr: String,
    /// Left half of SHA-256 of the access token (§3.1.3.6).
    pub at_hash: String,
    /// The provider's session the sign-in belongs to (Back-Channel Logout 1.0 §2.1): the
    /// `sid` of the logout token sent when it ends. Browser sign-ins only.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    /// The user's claims the granted scopes ask for ([`user_claims`]): the same as userinfo
    /// answers, in the ID token too (OpenID Connect Core §5.4 allows it), so that an
    /// application that reads only the ID token has them.
    #[serde(flatten, default)]
    pub user: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    scope: String,
}

/// Where the tokens of an issue come from, for the refresh token it gives.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Offline<'a> {
    /// A new grant (a code, a CIBA request): a new refresh token family when `offline_access`
    /// was asked for, the client has refresh tokens, and, for a public client, the code came
    /// with PKCE (`pkce`).
    New { pkce: bool },
    /// A refresh: the token presented, spent by this issue, is replaced by one of its family.
    Rotate(&'a RefreshTokenRow),
}

/// Who signed in, how and when: what the tokens say.
pub(crate) struct Authenticated<'a> {
    pub client: &'a Client,
    pub upn: &'a str,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    /// Milliseconds.
    pub auth_time: i64,
    /// Space-separated `amr` values.
    pub amr: &'a str,
    /// Hash of the code or `auth_req_id` the tokens come from.
    pub grant_hash: &'a str,
    /// How the user signed in and the device that proved it: `trust::authenticate` decides
    /// whether they may still act when the tokens are issued.
    pub method: Option<Method>,
    pub device: Option<&'a str>,
    pub offline: Offline<'a>,
    /// The browser session the code was issued in (none for CIBA).
    pub sid: Option<&'a str>,
}

/// Whether a space-separated scope holds `value`.
pub(crate) fn has_scope(scope: &str, value: &str) -> bool {
    scope.split(' ').any(|s| s == value)
}

/// `scope` without `value`.
fn without_scope(scope: &str, value: &str) -> String {
    scope
        .split(' ')
        .filter(|s| !s.is_empty() && *s != value)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The claims of user `upn` that `scope` asks for (OpenID Connect Core §5.4): `profile`
/// gives `name`, `preferred_username` (the UPN), and `given_name` and `family_name` when set;
/// `email` gives `email` and `email_verified` when the user has an address; `groups` gives
/// `groups`, the user's group names (possibly none). `None` when there is no such user.
pub(crate) async fn user_claims(
    pool: &signin_domain::store::Pool,
    upn: &str,
    scope: &str,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, OAuthError> {
    use serde_json::Value;
    let Some(user) = users::find(pool, upn).await? else {
        return Ok(None);
    };
    let attributes = users::attributes(pool, upn).await?.unwrap_or_default();
    let mut claims = serde_json::Map::new();
    if has_scope(scope, "profile") {
        claims.insert("name".into(), Value::String(user.display_name));
        claims.insert("preferred_username".into(), Value::String(user.upn));
        for (claim, value) in [
            ("given_name", attributes.given_name),
            ("family_name", attributes.family_name),
        ] {
            if let Some(value) = value {
                claims.insert(claim.into(), Value::String(value));
            }
        }
    }
    if has_scope(scope, "email") {
        if let Some(email) = attributes.email {
            claims.insert("email".into(), Value::String(email));
            claims.insert(
                "email_verified".into(),
                Value::Bool(attributes.email_verified),
            );
        }
    }
    if has_scope(scope, "groups") {
        claims.insert(
            "groups".into(),
            Value::Array(user.groups.into_iter().map(Value::String).collect()),
        );
    }
    Ok(Some(claims))
}

/// The stable, opaque `sub` of a user (random, stored on first use).
pub async fn subject(pool: &signin_domain::store::Pool, upn: &str) -> Result<String, OAuthError> {
    let fresh = random_secret()?;
    Ok(store::subject_for(pool, upn, &fresh).await?)
}

/// Issues an access token, an ID token and, for `offline_access`, a refresh token (a new
/// family, or the next of the family a refresh spends). The user and the device that signed
/// in must still be allowed to act (`trust::authenticate`); a refused refresh is
/// `invalid_grant` and ends its family.
pub(crate) async fn issue_tokens(
    state: &AppState,
    iss: &str,
    a: Authenticated<'_>,
) -> Result<Response, OAuthError> {
    let refreshing = matches!(a.offline, Offline::Rotate(_));
    let refused = || {
        if refreshing {
            OAuthError::InvalidGrant("the user or device may no longer sign in")
        } else {
            OAuthError::AccessDenied("the user or device may no longer sign in")
        }
    };
    // A session or sign-in from before the trust model, or whose method is unknown, is not
    // enough for tokens.
    let method = a
        .method
        .ok_or(OAuthError::InvalidGrant("the sign-in is no longer valid"))?;
    let who = match trust::authenticate(&state.pool, a.upn, method, a.device).await? {
        Ok(who) => who,
        Err(refusal) => {
            tracing::info!(refusal = refusal.as_str(), "tokens refused");
            if refreshing {
                refresh::end_family(state, a.client, a.upn, a.grant_hash, "refused").await?;
            }
            return Err(refused());
        }
    };
    let now = now_ms();
    let lifetimes = a.client.refresh;
    let refresh_token = match a.offline {
        Offline::New { pkce } => {
            (has_scope(a.scope, OFFLINE_ACCESS) && lifetimes.issued() && (pkce || !a.client.public))
                .then(random_secret)
                .transpose()?
        }
        Offline::Rotate(_) => Some(random_secret()?),
    };
    // `offline_access` is granted only with a refresh token (OpenID Connect Core §11).
    let scope = match (a.offline, &refresh_token) {
        (Offline::New { .. }, None) => without_scope(a.scope, OFFLINE_ACCESS),
        _ => a.scope.to_owned(),
    };
    let refresh_row = refresh_token.as_ref().map(|token| {
        // A token unused for the idle limit ends, never after its family.
        let idle_end = |family_end: i64| lifetimes.idle_ms().map(|i| (now + i).min(family_end));
        match a.offline {
            Offline::Rotate(old) => RefreshTokenRow {
                token_hash: secret_hash(token),
                created_at: now,
                idle_expires_at: idle_end(old.expires_at),
                used_at: None,
                ..old.clone()
            },
            Offline::New { .. } => {
                let expires_at = now + lifetimes.lifetime_ms();
                RefreshTokenRow {
                    token_hash: secret_hash(token),
                    family: a.grant_hash.to_owned(),
                    client_id: a.client.client_id().to_owned(),
                    upn: a.upn.to_owned(),
                    scope: scope.clone(),
                    auth_time: a.auth_time,
                    amr: a.amr.to_owned(),
                    method: method.as_str().to_owned(),
                    device: a.device.map(str::to_owned),
                    created_at: now,
                    expires_at,
                    idle_expires_at: idle_end(expires_at),
                    used_at: None,
                }
            }
        }
    });
    let access_token = random_secret()?;
    let access_row = AccessTokenRow {
        token_hash: secret_hash(&access_token),
        grant_hash: a.grant_hash.to_owned(),
        client_id: a.client.client_id().to_owned(),
        upn: a.upn.to_owned(),
        scope: scope.clone(),
        created_at: now,
        expires_at: now + ACCESS_TOKEN_TTL_SECS * 1000,
        device: a.device.map(str::to_owned),
    };
    let spends = match a.offline {
        Offline::Rotate(old) => Some(old.token_hash.as_str()),
        Offline::New { .. } => None,
    };
    let stored = trust::store_tokens(
        &state.pool,
        &who,
        NewTokens {
            access: &access_row,
            refresh: refresh_row.as_ref(),
            spends,
            now,
        },
    )
    .await?;
    match stored {
        Stored::Stored => {}
        // Spent by a concurrent refresh: a reuse like any other.
        Stored::AlreadySpent => {
            refresh::end_family(state, a.client, a.upn, a.grant_hash, "refresh_token_reused")
                .await?;
            return Err(OAuthError::InvalidGrant("refresh token already used"));
        }
        // Ended meanwhile (its device removed, its user signed out, revoked, expired).
        Stored::Gone => return Err(OAuthError::InvalidGrant("unknown refresh token")),
        Stored::Refused => {
            if refreshing {
                refresh::end_family(state, a.client, a.upn, a.grant_hash, "refused").await?;
            }
            return Err(refused());
        }
    }
    let amr: Vec<String> = a
        .amr
        .split(' ')
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .collect();
    let claims = IdTokenClaims {
        iss: iss.to_owned(),
        sub: subject(&state.pool, a.upn).await?,
        aud: a.client.client_id().to_owned(),
        exp: now / 1000 + ID_TOKEN_TTL_SECS,
        iat: now / 1000,
        auth_time: a.auth_time / 1000,
        nonce: a.nonce.map(str::to_owned),
        acr: acr_for(&amr).to_owned(),
        amr,
        at_hash: b64(&sha256(access_token.as_bytes())[..16]),
        sid: a.sid.map(str::to_owned),
        user: user_claims(&state.pool, a.upn, &scope)
            .await?
            .unwrap_or_default(),
    };
    let key = super::keys::current(&state.pool, a.client.id_token_alg)
        .await
        .map_err(OAuthError::Internal)?;
    let id_token = key.sign(&claims).map_err(OAuthError::Internal)?;
    let outcome = format!(
        "{} client_id={}{}",
        if refreshing {
            "tokens_refreshed"
        } else {
            "tokens_issued"
        },
        a.client.client_id(),
        if refresh_token.is_some() {
            " refresh_token"
        } else {
            ""
        }
    );
    audit::record(
        &state.pool,
        Event::WebSignIn,
        audit::Entry {
            upn: Some(a.upn),
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(
        client_id = %a.client.client_id(),
        kid = %key.kid,
        refreshing,
        refresh_token = refresh_token.is_some(),
        "tokens issued"
    );
    Ok(no_store(
        axum::Json(TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: ACCESS_TOKEN_TTL_SECS,
            id_token,
            refresh_token,
            scope,
        })
        .into_response(),
    ))
}

/// `POST /oauth2/token`
pub async fn token(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let headers: &HeaderMap = &parts.headers;
    let p = form_params(headers, &body)?;
    let (client, method) = clients::authenticate(&state.pool, headers, &p).await?;
    let base = public_base(&state.pool, &parts)
        .await
        .map_err(|e| OAuthError::Internal(anyhow::anyhow!("{e}")))?;
    let iss = issuer(&base);
    match p.require("grant_type", "grant_type is required")? {
        "authorization_code" => authorization_code(&state, &iss, &client, &p).await,
        "refresh_token" => refresh::grant(&state, &iss, &client, &p).await,
        CIBA_GRANT_TYPE => {
            if method == AuthMethod::None {
                return Err(OAuthError::UnauthorizedClient(
                    "CIBA is for confidential clients",
                ));
            }
            ciba::redeem(&state, &iss, &client, &p).await
        }
        _ => Err(OAuthError::UnsupportedGrantType),
    }
}

/// RFC 7636 §4.6: BASE64URL(SHA-256(ASCII(code_verifier))) == code_challenge, in constant
/// time; the verifier is 43 to 128 unreserved characters.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed
        && authenticator_protocol::encoding::ct_eq(
            b64(&sha256(verifier.as_bytes())).as_bytes(),
            challenge.as_bytes(),
        )
}

async fn authorization_code(
    state: &AppState,
    iss: &str,
    client: &Client,
    p: &Params,
) -> Result<Response, OAuthError> {
    let code = p.require("code", "code is required")?;
    let code_hash = secret_hash(code);
    let now = now_ms();
    let row = store::find_code(&state.pool, &code_hash)
        .await?
        .ok_or(OAuthError::InvalidGrant("unknown code"))?;
    // A code is bound to its client: another client learns nothing and spends nothing.
    if row.client_id != client.client_id() {
        tracing::info!(client_id = %client.client_id(), "code presented by another client");
        return Err(OAuthError::InvalidGrant("unknown code"));
    }
    if row.used_at.is_some() {
        // RFC 6749 §4.1.2: a code used twice revokes what it gave, refresh tokens included.
        let revoked = store::revoke_grant(&state.pool, &code_hash).await?;
        tracing::warn!(
            client_id = %client.client_id(),
            access_tokens = revoked.access_tokens,
            refresh_tokens = revoked.refresh_tokens,
            "authorization code reused"
        );
        audit::record(
            &state.pool,
            Event::WebSignIn,
            audit::Entry {
                upn: Some(&row.upn),
                outcome: "code_reused tokens_revoked",
                ..Default::default()
            },
        )
        .await?;
        return Err(OAuthError::InvalidGrant("code already used"));
    }
    if signin_domain::store::is_expired(row.expires_at, now) {
        return Err(OAuthError::InvalidGrant("code expired"));
    }
    // From here on the code is spent, whatever the outcome: one attempt per code.
    if !store::consume_code(&state.pool, &code_hash, now).await? {
        return Err(OAuthError::InvalidGrant("code already used"));
    }
    if p.get("redirect_uri") != Some(row.redirect_uri.as_str()) {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request",
        ));
    }
    match (row.code_challenge.as_deref(), p.get("code_verifier")) {
        (None, None) => {}
        (Some(challenge), Some(verifier)) if pkce_matches(verifier, challenge) => {}
        (Some(_), None) => return Err(OAuthError::InvalidGrant("code_verifier is required")),
        (None, Some(_)) => {
            return Err(OAuthError::InvalidGrant(
                "code_verifier without code_challenge",
            ))
        }
        (Some(_), Some(_)) => return Err(OAuthError::InvalidGrant("code_verifier does not match")),
    }
    issue_tokens(
        state,
        iss,
        Authenticated {
            client,
            upn: &row.upn,
            scope: &row.scope,
            nonce: row.nonce.as_deref(),
            auth_time: row.auth_time,
            amr: &row.amr,
            grant_hash: &code_hash,
            method: row.method.as_deref().and_then(Method::parse),
            device: row.device.as_deref(),
            offline: Offline::New {
                pkce: row.code_challenge.is_some(),
            },
            sid: row.sid.as_deref(),
        },
    )
    .await
}

/// The bearer access token of a userinfo request: in the `Authorization` header (RFC 6750
/// §2.1), or in a form-encoded `POST` body as `access_token` (§2.2). One method only (§2): a
/// request that uses both is `invalid_request`. Not in the query (§2.3: it ends up in logs).
fn bearer_token(parts: &Parts, body: &[u8]) -> Result<String, OAuthError> {
    let header = match parts.headers.get(AUTHORIZATION) {
        None => None,
        Some(value) => {
            let value = value.to_str().map_err(|_| OAuthError::InvalidToken)?;
            let (scheme, token) = value.split_once(' ').ok_or(OAuthError::InvalidToken)?;
            if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
                return Err(OAuthError::InvalidToken);
            }
            Some(token.trim().to_owned())
        }
    };
    let form = parts.method == axum::http::Method::POST
        && parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                t.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
    let in_body = if form {
        Params::parse(body)?.get("access_token").map(str::to_owned)
    } else {
        None
    };
    match (header, in_body) {
        (Some(_), Some(_)) => Err(OAuthError::InvalidRequest(
            "send the access token one way only (header or form body)",
        )),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(OAuthError::InvalidToken),
    }
}

/// `GET|POST /oauth2/userinfo`: `sub`, and the claims the token's scopes ask for
/// ([`user_claims`]).
pub async fn userinfo(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let token = bearer_token(&parts, &body)?;
    let row = store::find_access_token(&state.pool, &secret_hash(&token), now_ms())
        .await?
        .ok_or(OAuthError::InvalidToken)?;
    let Some(claims) = user_claims(&state.pool, &row.upn, &row.scope).await? else {
        return Err(OAuthError::InvalidToken);
    };
    let mut answer = serde_json::Map::new();
    answer.insert(
        "sub".into(),
        serde_json::Value::String(subject(&state.pool, &row.upn).await?),
    );
    answer.extend(claims);
    Ok(no_store(axum::Json(answer).into_response()))
}
