//! §5.10: `POST /api/v1/device/push`, a device's new push channel (push-token rotation).
use authenticator_protocol::push_registration::PushRegistrationRequest;
use axum::extract::State;
use axum::http::StatusCode;

use super::json::AppJson;
use crate::error::HttpError;
use signin_domain::push_rotation;
use signin_domain::state::AppState;

/// `POST /api/v1/device/push`: 204 once the new channel is in force.
pub async fn update(
    State(state): State<AppState>,
    AppJson(body): AppJson<PushRegistrationRequest>,
) -> Result<StatusCode, HttpError> {
    push_rotation::update_push_registration(&state, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}
