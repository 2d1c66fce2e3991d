//! CIBA (OpenID Connect Client-Initiated Backchannel Authentication Core 1.0), poll and ping
//! modes, over the phone sign-in.
//!
//! `POST /oauth2/bc-authorize` (a confidential client, authenticated) starts a phone sign-in
//! for `login_hint` (a UPN) exactly as the JSON API does: the phone names the client and asks
//! for the number. **The number is the binding message** (docs/PROTOCOL.md, "CIBA"): the
//! server chooses it (two random digits, as for every sign-in) and returns it as
//! `binding_message` in the response; the client must show it on the consumption device, and
//! the user types it on the phone. A client cannot choose it: a request carrying a
//! `binding_message` is refused with `invalid_binding_message`.
//!
//! The token endpoint's CIBA grant answers `authorization_pending` while the phone has not
//! answered, `slow_down` to a poll sooner than `interval` after the previous one (and the
//! interval grows by 5 seconds), `expired_token` after `expires_in`, `access_denied` when the
//! user denied, reported or failed the number, and the tokens once on approval. In ping mode
//! (a client registered with `--ciba-ping-endpoint`) the server also POSTs
//! `{"auth_req_id"}` with `Authorization: Bearer <client_notification_token>` to that
//! endpoint when the sign-in is decided or expires, under the outbound policy
//! (`signin_domain::outbound`).
use std::time::Duration;

use authenticator_protocol::sign_in::RequestKind;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::clients::{self, AuthMethod, Client};
use super::token::{issue_tokens, Authenticated, Offline};
use super::{no_store, random_secret, secret_hash, OAuthError, Params};
use signin_domain::outbound::OutboundError;
use signin_domain::sign_in::{self, StartSignIn};
use signin_domain::state::AppState;
use signin_domain::store::oidc::{self as store, CibaRow};
use signin_domain::store::requests::Status;
use signin_domain::store::{now_ms, to_db_ms};
use signin_domain::trust::Method;

/// The least time between two polls, to start with (CIBA §7.3: default 5 seconds).
pub const DEFAULT_INTERVAL_SECS: i64 = 5;
/// `slow_down` adds this to the interval (RFC 8628 §3.5).
pub const SLOW_DOWN_STEP_SECS: i64 = 5;
/// Longest `client_notification_token` accepted.
const MAX_NOTIFICATION_TOKEN_LEN: usize = 1024;

#[derive(Debug, Serialize)]
struct Started {
    auth_req_id: String,
    expires_in: i64,
    interval: i64,
    /// The number the user types on the phone: show it on the consumption device.
    binding_message: String,
}

/// `POST /oauth2/bc-authorize`
pub async fn backchannel_authorize(
    State(state): State<AppState>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let p = Params::parse(&body)?;
    let (client, method) = clients::authenticate(&state.pool, &parts.headers, &p).await?;
    if method == AuthMethod::None {
        return Err(OAuthError::UnauthorizedClient(
            "CIBA is for confidential clients",
        ));
    }
    if !p
        .get("scope")
        .unwrap_or("")
        .split(' ')
        .any(|s| s == "openid")
    {
        return Err(OAuthError::InvalidScope("scope must include openid"));
    }
    if p.get("login_hint_token").is_some() || p.get("id_token_hint").is_some() {
        return Err(OAuthError::InvalidRequest(
            "only login_hint (the user's UPN) is supported",
        ));
    }
    if p.get("request").is_some() || p.get("user_code").is_some() {
        return Err(OAuthError::InvalidRequest(
            "signed requests and user codes are not supported",
        ));
    }
    if p.get("binding_message").is_some() {
        return Err(OAuthError::InvalidBindingMessage(
            "the binding message is the sign-in number, which the server chooses: \
             show the binding_message of the response",
        ));
    }
    // The user in the one form of a user name (`Upn`); what is not one is no user.
    let upn = signin_domain::upn::Upn::parse(p.require("login_hint", "login_hint is required")?)
        .map_err(|_| OAuthError::from(signin_domain::AppError::UnknownAccount))?;
    let upn = upn.as_str();
    let ttl = i64::try_from(state.settings.request_ttl_secs).unwrap_or(i64::MAX);
    let expires_in = match p.get("requested_expiry") {
        None => ttl,
        Some(e) => match e.parse::<i64>() {
            Ok(secs) if secs > 0 => secs.min(ttl),
            _ => {
                return Err(OAuthError::InvalidRequest(
                    "requested_expiry must be a positive number of seconds",
                ))
            }
        },
    };
    let notification_token = match (
        &client.ciba_notification_endpoint,
        p.get("client_notification_token"),
    ) {
        (Some(_), Some(t)) if t.len() <= MAX_NOTIFICATION_TOKEN_LEN => Some(t.to_owned()),
        (Some(_), Some(_)) => {
            return Err(OAuthError::InvalidRequest(
                "client_notification_token is too long",
            ))
        }
        (Some(_), None) => {
            return Err(OAuthError::InvalidRequest(
                "client_notification_token is required (ping mode)",
            ))
        }
        (None, _) => None,
    };
    let started = sign_in::start(
        &state,
        StartSignIn {
            upn,
            application: &client.application,
            kind: RequestKind::Passwordless,
            client_ip: None,
            replaces: None,
            browser: false,
            lifetime_secs: u64::try_from(expires_in).ok(),
        },
    )
    .await?;
    let auth_req_id = random_secret()?;
    let req_hash = secret_hash(&auth_req_id);
    let now = now_ms();
    // The sign-in was started to live `expires_in` (finding 7 of issue 20): the auth_req_id
    // and the phone's request end together.
    let expires_at = to_db_ms(started.expires_at);
    let row = CibaRow {
        req_hash: req_hash.clone(),
        client_id: client.client_id().to_owned(),
        upn: upn.trim().to_owned(),
        scope: super::authorize::SUPPORTED_SCOPES
            .iter()
            .filter(|s| p.get("scope").unwrap_or("").split(' ').any(|r| r == **s))
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
        signin_id: started.id.as_str().to_owned(),
        notification_token,
        interval_secs: DEFAULT_INTERVAL_SECS,
        last_poll_at: None,
        created_at: now,
        expires_at,
        redeemed_at: None,
    };
    store::insert_ciba(&state.pool, &row).await?;
    tracing::info!(client_id = %client.client_id(), signin_id = %started.id, "CIBA request started");
    if let (Some(endpoint), Some(token)) =
        (&client.ciba_notification_endpoint, &row.notification_token)
    {
        spawn_ping(
            state.clone(),
            endpoint.clone(),
            token.clone(),
            auth_req_id.clone(),
            row.signin_id.clone(),
            expires_at,
        );
    }
    Ok(no_store(
        axum::Json(Started {
            auth_req_id,
            expires_in: (expires_at - now + 999).max(0) / 1000,
            interval: DEFAULT_INTERVAL_SECS,
            binding_message: started.number.clone(),
        })
        .into_response(),
    ))
}

/// Ping mode: once the sign-in leaves `pending` (or the request expires), tells the client.
fn spawn_ping(
    state: AppState,
    endpoint: String,
    token: String,
    auth_req_id: String,
    signin_id: String,
    expires_at: i64,
) {
    tokio::spawn(async move {
        let wait = Duration::from_millis(u64::try_from(expires_at - now_ms()).unwrap_or(0));
        if let Err(e) = sign_in::wait(&state, &signin_id, wait).await {
            tracing::warn!(error = %e, "CIBA ping: waiting for the sign-in failed");
        }
        // Under the outbound policy (as Web Push): https, the endpoint's addresses checked
        // again now (its DNS may have changed since registration), no redirect followed (the
        // client's endpoint could otherwise send the server's POST, or a GET, to any address
        // the server reaches), short timeouts, a bounded answer.
        let sent = match url::Url::parse(&endpoint) {
            Ok(url) => {
                state
                    .outbound
                    .send(reqwest::Method::POST, &url, |request| {
                        request
                            .bearer_auth(&token)
                            .json(&serde_json::json!({ "auth_req_id": auth_req_id }))
                    })
                    .await
            }
            Err(_) => Err(OutboundError::Malformed),
        };
        match sent {
            Ok(answer) => tracing::info!(
                status = answer.status.as_u16(),
                signin_id = %signin_id,
                "CIBA ping sent"
            ),
            Err(e) if e.is_refusal() => tracing::warn!(
                reason = e.reason(),
                error = %e,
                signin_id = %signin_id,
                "CIBA ping refused by the outbound policy"
            ),
            Err(e) => tracing::warn!(
                reason = e.reason(),
                error = %e,
                signin_id = %signin_id,
                "CIBA ping failed"
            ),
        }
    });
}

/// The token endpoint's CIBA grant.
pub async fn redeem(
    state: &AppState,
    iss: &str,
    client: &Client,
    p: &Params,
) -> Result<Response, OAuthError> {
    let auth_req_id = p.require("auth_req_id", "auth_req_id is required")?;
    let req_hash = secret_hash(auth_req_id);
    let row = store::find_ciba(&state.pool, &req_hash)
        .await?
        .filter(|r| r.client_id == client.client_id())
        .ok_or(OAuthError::InvalidGrant("unknown auth_req_id"))?;
    if row.redeemed_at.is_some() {
        return Err(OAuthError::InvalidGrant("auth_req_id already redeemed"));
    }
    let now = now_ms();
    if signin_domain::store::is_expired(row.expires_at, now) {
        return Err(OAuthError::ExpiredToken);
    }
    // No faster than the interval, in poll mode and in ping mode alike (a ping-mode client
    // polls once, after the ping; one that polls anyway is slowed down like any other).
    let too_soon = row
        .last_poll_at
        .is_some_and(|t| now - t < row.interval_secs * 1000);
    let interval = if too_soon {
        row.interval_secs + SLOW_DOWN_STEP_SECS
    } else {
        row.interval_secs
    };
    let recorded =
        store::record_ciba_poll(&state.pool, &req_hash, row.last_poll_at, now, interval).await?;
    if too_soon || !recorded {
        return Err(OAuthError::SlowDown);
    }
    // The sign-in is gone when the device that held it was removed.
    let req = sign_in::current(state, &row.signin_id)
        .await?
        .ok_or(OAuthError::AccessDenied(
            "the sign-in ended: its device was removed",
        ))?;
    match req.status {
        Status::Pending => Err(OAuthError::AuthorizationPending),
        Status::Expired => Err(OAuthError::ExpiredToken),
        Status::Denied | Status::Reported | Status::Failed | Status::Closed => Err(
            OAuthError::AccessDenied("the user did not approve the sign-in"),
        ),
        Status::Approved => {
            if !store::redeem_ciba(&state.pool, &req_hash, now).await? {
                return Err(OAuthError::InvalidGrant("auth_req_id already redeemed"));
            }
            let auth_time = req
                .last_response_ts
                .and_then(|t| i64::try_from(t).ok())
                .unwrap_or(now);
            issue_tokens(
                state,
                iss,
                Authenticated {
                    client,
                    upn: &row.upn,
                    scope: &row.scope,
                    nonce: None,
                    auth_time,
                    amr: &Method::PhoneSignIn.amr().join(" "),
                    grant_hash: &req_hash,
                    method: Some(Method::PhoneSignIn),
                    device: Some(req.account_id.as_str()),
                    offline: Offline::New { pkce: false },
                    sid: None,
                },
            )
            .await
        }
    }
}
