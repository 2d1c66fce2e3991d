//! §5.1 and §5.2: enrollment with a one-time code.
use authenticator_protocol::wire::{
    EnrollChallengeRequest, EnrollChallengeResponse, EnrollCompleteRequest, EnrollCompleteResponse,
};
use axum::extract::State;

use super::json::AppJson;
use crate::error::HttpError;
use signin_domain::enrollment;
use signin_domain::state::AppState;

/// `POST /api/v1/enroll/challenge`
pub async fn challenge(
    State(state): State<AppState>,
    AppJson(body): AppJson<EnrollChallengeRequest>,
) -> Result<AppJson<EnrollChallengeResponse>, HttpError> {
    Ok(AppJson(enrollment::challenge(&state, &body).await?))
}

/// `POST /api/v1/enroll/complete`
pub async fn complete(
    State(state): State<AppState>,
    AppJson(body): AppJson<EnrollCompleteRequest>,
) -> Result<AppJson<EnrollCompleteResponse>, HttpError> {
    Ok(AppJson(enrollment::complete(&state, &body).await?))
}
