//! The one error type of the server and its one mapping to HTTP (`ErrorBody` with the stable
//! `ErrorCode` of PROTOCOL.md §8).
use std::sync::Arc;

use authenticator_protocol::wire::{ErrorBody, ErrorCode};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Every failure a handler can answer with. Messages are static and never contain user data,
/// so they are safe to log and to send.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    #[error("enrollment code unknown, used or expired")]
    InvalidCode,
    #[error("no such account")]
    UnknownAccount,
    #[error("missing or malformed device authentication")]
    Unauthorized,
    /// The sign-in start API without the credential of a registered application.
    #[error("a registered application's client id and secret are required (HTTP Basic)")]
    UnauthorizedApplication,
    #[error("a signature or binding does not verify")]
    BadSignature,
    #[error("signed timestamp too far from server time")]
    StaleTimestamp,
    #[error("no such request for this account")]
    UnknownRequest,
    #[error("request expired")]
    RequestExpired,
    #[error("request is no longer pending")]
    RequestNotPending,
    #[error("wrong number")]
    WrongNumber { attempts_left: u32 },
    #[error("too many wrong numbers: request failed")]
    RequestFailed,
    #[error("response timestamp is not newer than a previous response")]
    Replay,
    #[error("the key required for this response is not registered")]
    KeyNotAllowed,
    #[error("the Authenticator method is disabled for this user")]
    PolicyDisabled,
    #[error("the user has no phone with phone sign-in enabled")]
    NotPasswordlessCapable,
    #[error("no such endpoint")]
    NotFound,
    #[error("too many sign-in attempts: try again later")]
    RateLimited { retry_after_secs: u64 },
    #[error("sign-ins are paused for this user after a report: try again later")]
    Paused { retry_after_secs: u64 },
    /// §5.9: an approval of a browser-bound sign-in without the origin of the real sign-in
    /// page (the Authenticator did not see the page, or saw it somewhere else).
    #[error("this sign-in must be approved by the Authenticator on the device that shows the sign-in page")]
    BrowserNotBound,
    /// The phishing-resistant option is on but the server does not know its own origin.
    #[error("the phishing-resistant sign-in needs the server's public URL (serve --public-url)")]
    PublicUrlRequired,
    /// A server fault. The client sees a generic message; the cause is logged once.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn code(&self) -> ErrorCode {
        match self {
            AppError::InvalidRequest(_) | AppError::NotFound => ErrorCode::InvalidRequest,
            AppError::InvalidCode => ErrorCode::InvalidCode,
            AppError::UnknownAccount => ErrorCode::UnknownAccount,
            AppError::Unauthorized | AppError::UnauthorizedApplication => ErrorCode::Unauthorized,
            AppError::BadSignature => ErrorCode::BadSignature,
            AppError::StaleTimestamp => ErrorCode::StaleTimestamp,
            AppError::UnknownRequest => ErrorCode::UnknownRequest,
            AppError::RequestExpired => ErrorCode::RequestExpired,
            AppError::RequestNotPending => ErrorCode::RequestNotPending,
            AppError::WrongNumber { .. } => ErrorCode::WrongNumber,
            AppError::RequestFailed => ErrorCode::RequestFailed,
            AppError::Replay => ErrorCode::Replay,
            AppError::KeyNotAllowed => ErrorCode::KeyNotAllowed,
            AppError::PolicyDisabled => ErrorCode::PolicyDisabled,
            AppError::NotPasswordlessCapable => ErrorCode::NotPasswordlessCapable,
            AppError::RateLimited { .. } => ErrorCode::RateLimited,
            AppError::Paused { .. } => ErrorCode::Paused,
            AppError::BrowserNotBound => ErrorCode::BrowserNotBound,
            AppError::Internal(_) | AppError::PublicUrlRequired => ErrorCode::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::InvalidRequest(_)
            | AppError::InvalidCode
            | AppError::WrongNumber { .. }
            | AppError::RequestFailed => StatusCode::BAD_REQUEST,
            AppError::UnknownAccount | AppError::UnknownRequest | AppError::NotFound => {
                StatusCode::NOT_FOUND
            }
            AppError::Unauthorized
            | AppError::UnauthorizedApplication
            | AppError::BadSignature
            | AppError::StaleTimestamp => StatusCode::UNAUTHORIZED,
            AppError::RequestExpired => StatusCode::GONE,
            AppError::RequestNotPending | AppError::Replay | AppError::NotPasswordlessCapable => {
                StatusCode::CONFLICT
            }
            AppError::KeyNotAllowed
            | AppError::PolicyDisabled
            | AppError::Paused { .. }
            | AppError::BrowserNotBound => StatusCode::FORBIDDEN,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Internal(_) | AppError::PublicUrlRequired => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::Internal(e.into())
    }
}

/// Attached to 500 responses so that the logging middleware records the cause once, inside
/// the request span.
#[derive(Clone)]
pub struct InternalCause(pub Arc<anyhow::Error>);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = ErrorBody {
            error: self.code(),
            message: match &self {
                AppError::InvalidRequest(m) => (*m).to_owned(),
                other => other.to_string(),
            },
            attempts_left: match self {
                AppError::WrongNumber { attempts_left } => Some(attempts_left),
                _ => None,
            },
        };
        let retry_after = match &self {
            AppError::RateLimited { retry_after_secs } | AppError::Paused { retry_after_secs } => {
                Some(*retry_after_secs)
            }
            _ => None,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        if matches!(self, AppError::UnauthorizedApplication) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"sign-in API\""),
            );
        }
        if let AppError::Internal(cause) = self {
            response
                .extensions_mut()
                .insert(InternalCause(Arc::new(cause)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_the_protocol_status() {
        let cases = [
            (AppError::InvalidRequest("x"), 400, "invalid_request"),
            (AppError::InvalidCode, 400, "invalid_code"),
            (AppError::UnknownAccount, 404, "unknown_account"),
            (AppError::Unauthorized, 401, "unauthorized"),
            (AppError::BadSignature, 401, "bad_signature"),
            (AppError::StaleTimestamp, 401, "stale_timestamp"),
            (AppError::UnknownRequest, 404, "unknown_request"),
            (AppError::RequestExpired, 410, "request_expired"),
            (AppError::RequestNotPending, 409, "request_not_pending"),
            (
                AppError::WrongNumber { attempts_left: 1 },
                400,
                "wrong_number",
            ),
            (AppError::RequestFailed, 400, "request_failed"),
            (AppError::Replay, 409, "replay"),
            (AppError::KeyNotAllowed, 403, "key_not_allowed"),
            (AppError::PolicyDisabled, 403, "policy_disabled"),
            (
                AppError::NotPasswordlessCapable,
                409,
                "not_passwordless_capable",
            ),
            (
                AppError::RateLimited {
                    retry_after_secs: 60,
                },
                429,
                "rate_limited",
            ),
            (
                AppError::Paused {
                    retry_after_secs: 60,
                },
                403,
                "paused",
            ),
            (AppError::internal(anyhow::anyhow!("boom")), 500, "internal"),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
            assert_eq!(err.code().as_str(), code);
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let resp = AppError::internal(anyhow::anyhow!("secret detail")).into_response();
        assert!(resp.extensions().get::<InternalCause>().is_some());
        let msg = AppError::internal(anyhow::anyhow!("secret detail")).to_string();
        assert!(!msg.contains("secret"));
    }
}
