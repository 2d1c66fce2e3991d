//! §5.11: moving to a new phone (thin handlers over `signin_domain::moving`).
use authenticator_protocol::moving::{
    MoveClaimRequest, MoveClaimResponse, MoveVouchRequest, MoveVouchResponse,
};
use axum::extract::State;

use super::json::AppJson;
use crate::error::HttpError;
use signin_domain::moving;
use signin_domain::state::AppState;

/// `POST /api/v1/move/vouch`
pub async fn vouch(
    State(state): State<AppState>,
    AppJson(body): AppJson<MoveVouchRequest>,
) -> Result<AppJson<MoveVouchResponse>, HttpError> {
    Ok(AppJson(moving::vouch(&state, &body).await?))
}

/// `POST /api/v1/move/claim`
pub async fn claim(
    State(state): State<AppState>,
    AppJson(body): AppJson<MoveClaimRequest>,
) -> Result<AppJson<MoveClaimResponse>, HttpError> {
    Ok(AppJson(moving::claim(&state, &body).await?))
}
