//! §5.3–§5.6: the device's endpoints.
use authenticator_protocol::enroll::PasswordlessKeyRegistration;
use authenticator_protocol::push::PushEnvelope;
use authenticator_protocol::sign_in::{Decision, SignedRequestDetails};
use authenticator_protocol::wire::{
    PasswordlessRequest, PollResponse, ResponseAccepted, ResponseBody, MAX_WRONG_NUMBERS,
};
use authenticator_protocol::{AccountId, PublicKey, RequestId, UnixMillis};
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::api::extract::AuthenticatedDevice;
use crate::api::WaitQuery;
use crate::audit::{self, Event};
use crate::error::{AppError, AppJson, AppQuery};
use crate::sign_in::verify::{
    check_fresh, check_response_time, number_matches, verify_passwordless_registration,
    verify_response,
};
use crate::state::AppState;
use crate::store::requests::{expire_if_due, load_device, load_request, Status, StoredRequest};
use crate::store::{now_ms, to_db_ms};

/// `POST /api/v1/device/passwordless`
pub async fn passwordless(
    State(state): State<AppState>,
    AppJson(body): AppJson<PasswordlessRequest>,
) -> Result<StatusCode, AppError> {
    let key = PublicKey::from_b64("passwordless_public_key", &body.passwordless_public_key)
        .map_err(|_| AppError::InvalidRequest("passwordless_public_key is not a P-256 SEC1 key"))?;
    let device = load_device(&state.pool, &body.account_id)
        .await?
        .ok_or(AppError::UnknownAccount)?;
    let reg = PasswordlessKeyRegistration {
        account_id: body.account_id.clone(),
        passwordless_public_key: key,
        timestamp: body.timestamp,
    };
    verify_passwordless_registration(
        &reg,
        &device.keys.device,
        &body.device_signature,
        &body.key_signature,
    )?;
    check_fresh(body.timestamp, UnixMillis::now())?;
    let ts = to_db_ms(body.timestamp);
    // A replayed older registration must not bring back an earlier key.
    let updated = sqlx::query(
        "UPDATE devices SET passwordless_public_key = $1, passwordless_enabled_at = $2, \
         passwordless_timestamp = $3 WHERE account_id = $4 \
         AND (passwordless_timestamp IS NULL OR passwordless_timestamp < $3)",
    )
    .bind(reg.passwordless_public_key.to_b64())
    .bind(now_ms())
    .bind(ts)
    .bind(body.account_id.as_str())
    .execute(&state.pool)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(AppError::Replay);
    }
    audit::record(
        &state.pool,
        Event::PasswordlessEnabled,
        audit::Entry {
            upn: Some(&device.upn),
            account_id: Some(body.account_id.as_str()),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    tracing::info!(account_id = %body.account_id, "phone sign-in enabled");
    Ok(StatusCode::NO_CONTENT)
}

async fn pending_envelopes(
    state: &AppState,
    account_id: &AccountId,
) -> Result<Vec<PushEnvelope>, AppError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM signin_requests WHERE account_id = $1 AND status = 'pending' \
         AND expires_at > $2 ORDER BY created_at",
    )
    .bind(account_id.as_str())
    .bind(now_ms())
    .fetch_all(&state.pool)
    .await?;
    ids.iter()
        .map(|id| {
            RequestId::parse(id)
                .map(|rid| PushEnvelope::new(account_id.clone(), rid))
                .map_err(|e| AppError::internal(anyhow::anyhow!("stored request id: {e}")))
        })
        .collect()
}

/// `GET /api/v1/device/poll?wait=N`
pub async fn poll(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    AppQuery(q): AppQuery<WaitQuery>,
) -> Result<AppJson<PollResponse>, AppError> {
    let account_id = device.account_id;
    let pushes = state
        .longpoll
        .accounts
        .wait_for(
            account_id.as_str(),
            q.duration(),
            &state.shutdown,
            || async {
                let p = pending_envelopes(&state, &account_id).await?;
                Ok((!p.is_empty()).then_some(p))
            },
        )
        .await?;
    Ok(AppJson(PollResponse { pushes }))
}

/// The request `id` if it exists and belongs to `account_id`; `unknown_request` otherwise.
async fn owned_request(
    state: &AppState,
    id: &str,
    account_id: &AccountId,
) -> Result<StoredRequest, AppError> {
    let req = load_request(&state.pool, id)
        .await?
        .ok_or(AppError::UnknownRequest)?;
    if req.account_id != *account_id {
        return Err(AppError::UnknownRequest);
    }
    Ok(req)
}

/// §5.6 step 2: expired (also stored as expired) or no longer pending.
async fn check_pending(state: &AppState, req: &StoredRequest) -> Result<(), AppError> {
    let now = UnixMillis::now();
    match req.status {
        Status::Pending if req.is_expired_at(now) => {
            if expire_if_due(&state.pool, &req.id, to_db_ms(now)).await? {
                state.request_waiters.wake(req.id.as_str());
            }
            Err(AppError::RequestExpired)
        }
        Status::Pending => Ok(()),
        // Expired by time (not superseded by a newer sign-in).
        Status::Expired if req.is_expired_at(now) => Err(AppError::RequestExpired),
        _ => Err(AppError::RequestNotPending),
    }
}

/// `GET /api/v1/device/requests/{id}`
pub async fn request_details(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    Path(id): Path<String>,
) -> Result<AppJson<SignedRequestDetails>, AppError> {
    let req = owned_request(&state, &id, &device.account_id).await?;
    check_pending(&state, &req).await?;
    Ok(AppJson(SignedRequestDetails {
        details: req.details,
        signature: req.signature,
    }))
}

/// `POST /api/v1/device/requests/{id}/response`: the checks of §5.6, in its order.
pub async fn respond(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(body): AppJson<ResponseBody>,
) -> Result<AppJson<ResponseAccepted>, AppError> {
    // 1. exists and belongs to the account.
    let req = owned_request(&state, &id, &body.account_id).await?;
    let device = load_device(&state.pool, &body.account_id)
        .await?
        .ok_or(AppError::UnknownRequest)?;
    // 2. not expired, still pending.
    check_pending(&state, &req).await?;
    // 3. signature under the §6.3 key; 4. nonce and context binding.
    let response = verify_response(&req, &device.keys, &body)?;
    // 4. fresh and newer than any earlier response.
    check_response_time(response.timestamp, UnixMillis::now(), req.last_response_ts)?;
    let ts = to_db_ms(response.timestamp);
    let entry = |outcome| audit::Entry {
        upn: Some(&req.upn),
        account_id: Some(req.account_id.as_str()),
        request_id: Some(req.id.as_str()),
        outcome,
    };

    // 5. number matching.
    if !number_matches(&req, &response) {
        let row: Option<(i64, String)> = sqlx::query_as(
            "UPDATE signin_requests SET wrong_attempts = wrong_attempts + 1, \
             last_response_ts = $2, \
             status = CASE WHEN wrong_attempts + 1 >= $3 THEN 'failed' ELSE status END, \
             decided_at = CASE WHEN wrong_attempts + 1 >= $3 THEN $4 ELSE decided_at END \
             WHERE id = $1 AND status = 'pending' \
             AND (last_response_ts IS NULL OR last_response_ts < $2) \
             RETURNING wrong_attempts, status",
        )
        .bind(req.id.as_str())
        .bind(ts)
        .bind(i64::from(MAX_WRONG_NUMBERS))
        .bind(now_ms())
        .fetch_optional(&state.pool)
        .await?;
        let Some((attempts, status)) = row else {
            return Err(lost_race(&state, &req).await?);
        };
        audit::record(&state.pool, Event::WrongNumber, entry("wrong_number")).await?;
        tracing::info!(request_id = %req.id, "wrong number");
        if status == Status::Failed.as_str() {
            audit::record(&state.pool, Event::SignInFailed, entry("failed")).await?;
            state.request_waiters.wake(req.id.as_str());
            return Err(AppError::RequestFailed);
        }
        let left = i64::from(MAX_WRONG_NUMBERS).saturating_sub(attempts);
        return Err(AppError::WrongNumber {
            attempts_left: u32::try_from(left).unwrap_or(0),
        });
    }

    let new_status = match response.decision {
        Decision::Approve => Status::Approved,
        Decision::Deny => Status::Denied,
        Decision::Report => Status::Reported,
    };
    let done = sqlx::query(
        "UPDATE signin_requests SET status = $2, last_response_ts = $3, decided_at = $4 \
         WHERE id = $1 AND status = 'pending' AND expires_at > $4 \
         AND (last_response_ts IS NULL OR last_response_ts < $3)",
    )
    .bind(req.id.as_str())
    .bind(new_status.as_str())
    .bind(ts)
    .bind(now_ms())
    .execute(&state.pool)
    .await?;
    if done.rows_affected() != 1 {
        return Err(lost_race(&state, &req).await?);
    }
    state.request_waiters.wake(req.id.as_str());
    audit::record(
        &state.pool,
        Event::SignInDecision,
        entry(new_status.as_str()),
    )
    .await?;
    if new_status == Status::Reported {
        crate::sign_in::risk::record_report(
            &state.pool,
            &state.risk,
            &req.upn,
            req.account_id.as_str(),
            req.id.as_str(),
        )
        .await?;
    }
    tracing::info!(request_id = %req.id, decision = response.decision.as_str(), "sign-in answered");
    Ok(AppJson(ResponseAccepted {
        status: new_status.as_str().to_owned(),
    }))
}

/// The conditional update changed nothing: someone else answered, the request expired, or
/// a response with a later timestamp came first.
async fn lost_race(state: &AppState, before: &StoredRequest) -> Result<AppError, AppError> {
    let now = load_request(&state.pool, before.id.as_str())
        .await?
        .ok_or(AppError::UnknownRequest)?;
    Ok(match check_pending(state, &now).await {
        Err(e) => e,
        Ok(()) => AppError::Replay,
    })
}
