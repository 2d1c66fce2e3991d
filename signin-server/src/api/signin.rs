//! §7: the sign-in page API.
use authenticator_protocol::encoding::b64;
use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::sign_in::{RequestDetails, RequestKind, SignedRequestDetails};
use authenticator_protocol::{AccountId, RequestId, UnixMillis, PROTOCOL_VERSION};
use axum::extract::{Path, State};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::api::extract::ClientIp;
use crate::api::WaitQuery;
use crate::audit::{self, Event};
use crate::error::{AppError, AppJson, AppQuery};
use crate::state::AppState;
use crate::store::requests::{expire_if_due, kind_str, load_request, Status};
use crate::store::to_db_ms;

#[derive(Debug, Deserialize)]
pub struct StartSignIn {
    pub upn: String,
    #[serde(default)]
    pub app: Option<String>,
}

/// The number is shown to the user on the sign-in page only: `Debug` hides it.
#[derive(Serialize)]
pub struct SignInStarted {
    pub id: RequestId,
    pub number: String,
    pub expires_at: String,
}

impl std::fmt::Debug for SignInStarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInStarted")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SignInStatus {
    pub status: String,
    pub expires_at: String,
}

/// A uniformly random two-digit number (10..=99) from the OS CSPRNG.
pub fn random_number() -> String {
    rand::rngs::OsRng.gen_range(10u8..=99).to_string()
}

fn random_nonce() -> Result<[u8; 32], AppError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| AppError::internal(anyhow::anyhow!("random source failed")))?;
    Ok(bytes)
}

/// `POST /api/v1/signin`
pub async fn start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<StartSignIn>,
) -> Result<AppJson<SignInStarted>, AppError> {
    create_request(
        &state,
        ip,
        &body.upn,
        body.app.as_deref(),
        RequestKind::Passwordless,
    )
    .await
    .map(AppJson)
}

/// Creates a sign-in request for `upn` and wakes its phone: phone sign-in
/// (`RequestKind::Passwordless`, always number matching) or a second factor after a password
/// (`RequestKind::Push`, number matching as the policy says). Used by the API and the web pages.
pub async fn create_request(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    upn: &str,
    app: Option<&str>,
    kind: RequestKind,
) -> Result<SignInStarted, AppError> {
    let upn = upn.trim();
    if upn.is_empty() || upn.len() > 256 {
        return Err(AppError::InvalidRequest("upn must be 1 to 256 characters"));
    }
    let app = app.map(str::trim).filter(|a| !a.is_empty());
    if app.is_some_and(|a| a.len() > 128) {
        return Err(AppError::InvalidRequest(
            "app must be at most 128 characters",
        ));
    }

    let exists: Option<String> = sqlx::query_scalar("SELECT upn FROM users WHERE upn = $1")
        .bind(upn)
        .fetch_optional(&state.pool)
        .await?;
    if exists.is_none() {
        return Err(AppError::UnknownAccount);
    }
    let groups: Vec<String> =
        sqlx::query_scalar("SELECT group_name FROM user_groups WHERE upn = $1")
            .bind(upn)
            .fetch_all(&state.pool)
            .await?;
    let policy = crate::sign_in::policy::load(&state.pool)
        .await
        .map_err(AppError::Internal)?;
    let allowed = match kind {
        RequestKind::Passwordless => policy.allows_passwordless_for(&groups),
        RequestKind::Push => policy.allows_push_for(&groups),
    };
    if !allowed {
        return Err(AppError::PolicyDisabled);
    }
    let account_query = match kind {
        RequestKind::Passwordless => {
            "SELECT account_id FROM devices WHERE upn = $1 AND passwordless_public_key IS NOT NULL \
             ORDER BY passwordless_enabled_at DESC LIMIT 1"
        }
        RequestKind::Push => {
            "SELECT account_id FROM devices WHERE upn = $1 ORDER BY enrolled_at DESC LIMIT 1"
        }
    };
    let account: Option<String> = sqlx::query_scalar(account_query)
        .bind(upn)
        .fetch_optional(&state.pool)
        .await?;
    let account_id = AccountId::parse(&account.ok_or(AppError::NotPasswordlessCapable)?)
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored account id: {e}")))?;
    // Anti-fatigue: a paused user gets no sign-in (so no push); starts are rate limited.
    crate::sign_in::risk::admit_signin(&state.pool, &state.risk, upn).await?;

    let request_id = RequestId::random();
    let number = random_number();
    let nonce = random_nonce()?;
    let created_at = UnixMillis::now();
    let expires_at = created_at.plus_secs(state.settings.request_ttl_secs);
    let details = RequestDetails {
        v: PROTOCOL_VERSION,
        request_id: request_id.clone(),
        account_id: account_id.clone(),
        kind,
        upn: upn.to_owned(),
        server_name: state.settings.server_name.clone(),
        app_name: if policy.show_app_name {
            app.map(str::to_owned)
        } else {
            None
        },
        location: policy.show_location.then(|| state.locator.locate(ip)),
        // Phone sign-in always uses number matching, whatever the policy says.
        number_matching: kind == RequestKind::Passwordless || policy.number_matching,
        nonce: b64(&nonce),
        created_at,
        expires_at,
    };
    let signed = SignedRequestDetails::sign(&details, &state.signer);

    // One pending request per user: the new one supersedes the old.
    let mut tx = state.pool.begin().await?;
    // Two concurrent sign-ins for one user must not both stay pending (PostgreSQL).
    crate::store::lock_user(&mut tx, upn).await?;
    let superseded: Vec<String> = sqlx::query_scalar(
        "UPDATE signin_requests SET status = 'expired', decided_at = $2 \
         WHERE upn = $1 AND status = 'pending' RETURNING id",
    )
    .bind(upn)
    .bind(to_db_ms(created_at))
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO signin_requests (id, account_id, upn, kind, details, signature, number, \
         nonce, number_matching, created_at, expires_at, status, wrong_attempts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0)",
    )
    .bind(request_id.as_str())
    .bind(account_id.as_str())
    .bind(upn)
    .bind(kind_str(details.kind))
    .bind(&signed.details)
    .bind(&signed.signature)
    .bind(&number)
    .bind(&details.nonce)
    .bind(i64::from(details.number_matching))
    .bind(to_db_ms(created_at))
    .bind(to_db_ms(expires_at))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    for old in &superseded {
        state.request_waiters.wake(old);
    }
    state
        .delivery
        .deliver(&PushEnvelope::new(account_id.clone(), request_id.clone()));
    audit::record(
        &state.pool,
        Event::SignInStarted,
        audit::Entry {
            upn: Some(upn),
            account_id: Some(account_id.as_str()),
            request_id: Some(request_id.as_str()),
            outcome: "pending",
        },
    )
    .await?;
    tracing::info!(request_id = %request_id, account_id = %account_id, "sign-in started");
    Ok(SignInStarted {
        id: request_id,
        number,
        expires_at: crate::rfc3339(to_db_ms(expires_at)),
    })
}

/// Current status; a pending request past its expiry is stored and reported as expired.
async fn current_status(state: &AppState, id: &str) -> Result<(Status, i64), AppError> {
    let req = load_request(&state.pool, id)
        .await?
        .ok_or(AppError::UnknownRequest)?;
    let now = UnixMillis::now();
    let mut status = req.status;
    if status == Status::Pending && req.is_expired_at(now) {
        expire_if_due(&state.pool, &req.id, to_db_ms(now)).await?;
        status = Status::Expired;
    }
    Ok((status, to_db_ms(req.expires_at)))
}

/// `GET /api/v1/signin/{id}[?wait=N]`
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<WaitQuery>,
) -> Result<AppJson<SignInStatus>, AppError> {
    let (mut status, expires_at) = current_status(&state, &id).await?;
    if status == Status::Pending && q.wait.unwrap_or(0) > 0 {
        // Wake up at the latest when the request expires, to report it promptly.
        let until_expiry = u64::try_from(expires_at.saturating_sub(crate::store::now_ms()))
            .unwrap_or(0)
            .saturating_add(50);
        let wait = q
            .duration()
            .min(std::time::Duration::from_millis(until_expiry));
        let final_status: Option<Status> = state
            .request_waiters
            .wait_for(&id, wait, &state.shutdown, || async {
                let (s, _) = current_status(&state, &id).await?;
                Ok((s != Status::Pending).then_some(Some(s)))
            })
            .await?;
        status = match final_status {
            Some(s) => s,
            None => current_status(&state, &id).await?.0,
        };
    }
    Ok(AppJson(SignInStatus {
        status: status.as_str().to_owned(),
        expires_at: crate::rfc3339(expires_at),
    }))
}
