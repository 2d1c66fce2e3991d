//! §7: the sign-in page API (`POST /api/v1/signin`, `GET /api/v1/signin/{id}`).
use authenticator_protocol::sign_in::RequestKind;
use authenticator_protocol::RequestId;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use super::json::{AppJson, AppQuery};
use super::WaitQuery;
use crate::error::{AppError, HttpError};
use crate::extract::{AuthenticatedApplication, ClientIp};
use signin_domain::sign_in::{self, StartSignIn};
use signin_domain::state::AppState;
use signin_domain::store::to_db_ms;

#[derive(Debug, Deserialize)]
pub struct StartSignInBody {
    pub upn: String,
    /// No longer accepted: the phone shows the calling application's registered name.
    #[serde(default)]
    pub app: Option<serde_json::Value>,
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

/// `POST /api/v1/signin`: phone sign-in for `upn`, started by a registered application
/// (HTTP Basic `client_id:secret`), whose registered name the phone shows.
pub async fn start(
    State(state): State<AppState>,
    AuthenticatedApplication(application): AuthenticatedApplication,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<StartSignInBody>,
) -> Result<AppJson<SignInStarted>, HttpError> {
    if body.app.is_some() {
        return Err(AppError::InvalidRequest(
            "app is not accepted: the phone shows the registered application's name",
        )
        .into());
    }
    let started = sign_in::start(
        &state,
        StartSignIn {
            upn: &body.upn,
            application: &application,
            kind: RequestKind::Passwordless,
            client_ip: ip,
            replaces: None,
            browser: false,
            lifetime_secs: None,
        },
    )
    .await?;
    Ok(AppJson(SignInStarted {
        id: started.id,
        number: started.number,
        expires_at: signin_domain::format::rfc3339(to_db_ms(started.expires_at)),
    }))
}

/// `GET /api/v1/signin/{id}[?wait=N]`
pub async fn status(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppQuery(q): AppQuery<WaitQuery>,
) -> Result<AppJson<SignInStatus>, HttpError> {
    let req = sign_in::wait(&state, &id, q.duration()).await?;
    Ok(AppJson(SignInStatus {
        status: req.status.as_str().to_owned(),
        expires_at: signin_domain::format::rfc3339(to_db_ms(req.expires_at)),
    }))
}
