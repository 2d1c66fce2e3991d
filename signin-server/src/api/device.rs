//! §5.3–§5.6: the device's endpoints.
use authenticator_protocol::sign_in::SignedRequestDetails;
use authenticator_protocol::wire::{
    PasswordlessRequest, PollResponse, ResponseAccepted, ResponseBody,
};
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::json::{AppJson, AppQuery};
use super::WaitQuery;
use crate::error::{AppError, HttpError};
use crate::extract::AuthenticatedDevice;
use signin_domain::enrollment;
use signin_domain::sign_in;
use signin_domain::state::AppState;

/// `POST /api/v1/device/passwordless`
pub async fn passwordless(
    State(state): State<AppState>,
    AppJson(body): AppJson<PasswordlessRequest>,
) -> Result<StatusCode, HttpError> {
    enrollment::enable_phone_sign_in(&state, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/device` (§5.7): the phone removed the account, so the server forgets the
/// device (audited `device_removed` `by_device`); its requests go with it.
pub async fn unregister(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
) -> Result<StatusCode, HttpError> {
    let removed = signin_domain::accounts::devices::remove_as(
        &state.pool,
        device.account_id.as_str(),
        signin_domain::accounts::devices::Remover::Device,
    )
    .await;
    match removed {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        // Removed meanwhile (an admin, the user, a retried notice): already forgotten.
        Err(_)
            if signin_domain::store::devices::owner_of(&state.pool, device.account_id.as_str())
                .await?
                .is_none() =>
        {
            Err(AppError::UnknownAccount.into())
        }
        Err(e) => Err(AppError::internal(e).into()),
    }
}

/// `GET /api/v1/device/poll?wait=N`
pub async fn poll(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    AppQuery(q): AppQuery<WaitQuery>,
) -> Result<AppJson<PollResponse>, HttpError> {
    let pushes = sign_in::wait_pending_for(&state, &device.account_id, q.duration()).await?;
    Ok(AppJson(PollResponse { pushes }))
}

/// `GET /api/v1/device/requests/{id}`
pub async fn request_details(
    State(state): State<AppState>,
    AuthenticatedDevice(device): AuthenticatedDevice,
    Path(id): Path<String>,
) -> Result<AppJson<SignedRequestDetails>, HttpError> {
    Ok(AppJson(
        sign_in::details_for(&state, &id, &device.account_id).await?,
    ))
}

/// `POST /api/v1/device/requests/{id}/response`: the checks of §5.6, in its order.
pub async fn respond(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(body): AppJson<ResponseBody>,
) -> Result<AppJson<ResponseAccepted>, HttpError> {
    let status = sign_in::answer(&state, &id, &body).await?;
    // The answer's signature proved the device's key: its "last seen".
    signin_domain::push_rotation::seen(&state, &body.account_id).await;
    Ok(AppJson(ResponseAccepted {
        status: status.as_str().to_owned(),
    }))
}
