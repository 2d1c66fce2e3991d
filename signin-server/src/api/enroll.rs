//! §5.1 and §5.2: enrollment with a one-time code.
use authenticator_protocol::wire::{
    EnrollChallengeRequest, EnrollChallengeResponse, EnrollCompleteRequest, EnrollCompleteResponse,
};
use axum::extract::State;

use super::json::AppJson;
use crate::accounts::enrollment;
use crate::error::AppError;
use crate::state::AppState;

/// `POST /api/v1/enroll/challenge`
pub async fn challenge(
    State(state): State<AppState>,
    AppJson(body): AppJson<EnrollChallengeRequest>,
) -> Result<AppJson<EnrollChallengeResponse>, AppError> {
    Ok(AppJson(enrollment::challenge(&state, &body).await?))
}

/// `POST /api/v1/enroll/complete`
pub async fn complete(
    State(state): State<AppState>,
    AppJson(body): AppJson<EnrollCompleteRequest>,
) -> Result<AppJson<EnrollCompleteResponse>, AppError> {
    Ok(AppJson(enrollment::complete(&state, &body).await?))
}
