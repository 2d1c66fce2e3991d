//! The one place the domain's error ([`AppError`]) becomes HTTP, for each of the server's
//! three surfaces: the JSON API ([`HttpError`]: status, `ErrorBody` with the stable
//! `ErrorCode` of PROTOCOL.md §8, and the `Retry-After`/`WWW-Authenticate` headers), the pages
//! (`web::WebError`) and OpenID Connect (`oidc::OAuthError`, RFC 6749 errors). Handlers return
//! one of these (the orphan rule keeps `IntoResponse for AppError` out of this crate); `?`
//! converts every domain error into it. The carrier types live in `http_error`, below the
//! surfaces, so that this module may name them all.
use std::sync::Arc;

pub use crate::http_error::{HttpError, InternalCause};
use crate::oidc::logout::LogoutRefusal;
use crate::oidc::OAuthError;
use crate::web::WebError;

use authenticator_protocol::wire::{ErrorBody, ErrorCode};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use signin_domain::AppError;

/// The protocol's error code of a domain error.
pub fn code(e: &AppError) -> ErrorCode {
    match e {
        AppError::InvalidRequest(_)
        | AppError::UnsafeText { .. }
        | AppError::NotFound
        | AppError::EndpointRefused(_) => ErrorCode::InvalidRequest,
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
        AppError::AtCapacity { limit, .. } if limit.per_client() => ErrorCode::RateLimited,
        AppError::AtCapacity { .. } => ErrorCode::ServerBusy,
        AppError::Paused { .. } => ErrorCode::Paused,
        AppError::BrowserNotBound => ErrorCode::BrowserNotBound,
        AppError::TooManyPushChannels { .. } => ErrorCode::TooManyPushChannels,
        AppError::MoveUsed => ErrorCode::MoveUsed,
        AppError::MoveExpired => ErrorCode::MoveExpired,
        AppError::MoveVoucherRemoved => ErrorCode::MoveVoucherRemoved,
        AppError::Internal(_) | AppError::PublicUrlRequired => ErrorCode::Internal,
    }
}

/// The HTTP status of a domain error.
pub fn status(e: &AppError) -> StatusCode {
    match e {
        AppError::InvalidRequest(_)
        | AppError::EndpointRefused(_)
        | AppError::UnsafeText { .. }
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
        AppError::RequestExpired | AppError::MoveExpired => StatusCode::GONE,
        AppError::MoveUsed => StatusCode::CONFLICT,
        AppError::MoveVoucherRemoved => StatusCode::FORBIDDEN,
        AppError::RequestNotPending
        | AppError::Replay
        | AppError::NotPasswordlessCapable
        | AppError::TooManyPushChannels { .. } => StatusCode::CONFLICT,
        AppError::KeyNotAllowed
        | AppError::PolicyDisabled
        | AppError::Paused { .. }
        | AppError::BrowserNotBound => StatusCode::FORBIDDEN,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::AtCapacity { limit, .. } if limit.per_client() => StatusCode::TOO_MANY_REQUESTS,
        AppError::AtCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Internal(_) | AppError::PublicUrlRequired => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let HttpError(error) = self;
        let status = status(&error);
        let body = ErrorBody {
            error: code(&error),
            message: match &error {
                AppError::InvalidRequest(m) => (*m).to_owned(),
                other => other.to_string(),
            },
            attempts_left: match error {
                AppError::WrongNumber { attempts_left } => Some(attempts_left),
                _ => None,
            },
        };
        let retry_after = match &error {
            AppError::RateLimited { retry_after_secs }
            | AppError::Paused { retry_after_secs }
            | AppError::AtCapacity {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        if matches!(error, AppError::UnauthorizedApplication) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"sign-in API\""),
            );
        }
        if let AppError::Internal(cause) = error {
            response
                .extensions_mut()
                .insert(InternalCause(Arc::new(cause)));
        }
        response
    }
}
/// The pages show a domain refusal they did not handle where it can happen as a fault.
impl From<signin_domain::AppError> for WebError {
    fn from(e: signin_domain::AppError) -> Self {
        match e {
            signin_domain::AppError::Internal(cause) => WebError::Internal(cause),
            signin_domain::AppError::AtCapacity {
                retry_after_secs, ..
            } => WebError::Busy { retry_after_secs },
            other => WebError::Internal(anyhow::anyhow!("unexpected: {other}")),
        }
    }
}

/// A storage failure is a fault on every surface.
impl From<signin_domain::store::StoreError> for WebError {
    fn from(e: signin_domain::store::StoreError) -> Self {
        WebError::Internal(e.into())
    }
}

impl From<signin_domain::store::StoreError> for OAuthError {
    fn from(e: signin_domain::store::StoreError) -> Self {
        OAuthError::Internal(e.into())
    }
}

/// A refused end-session request is a page (400), never a redirect: nothing is sent to an
/// address the request did not prove it may use (RP-Initiated Logout 1.0 §3).
impl IntoResponse for LogoutRefusal {
    fn into_response(self) -> Response {
        let text = match self {
            LogoutRefusal::RepeatedParameter => "The sign-out request repeats a parameter.",
            LogoutRefusal::Hint(_) => {
                "The application's sign-out request names a sign-in this service did not make \
                 for it. You have not been signed out."
            }
            LogoutRefusal::UnknownClient => {
                "The application that sent you here is not registered with this sign-in service."
            }
            LogoutRefusal::RedirectWithoutClient | LogoutRefusal::UnregisteredRedirect => {
                "The application asked to return to an address that is not registered for it. \
                 You have not been signed out."
            }
            LogoutRefusal::StateTooLong => "The sign-out request is too long.",
        };
        (
            StatusCode::BAD_REQUEST,
            crate::web::html(crate::web::pages::message_page(
                "Sign-out request refused",
                text,
            )),
        )
            .into_response()
    }
}

/// OpenID Connect answers RFC 6749 / CIBA errors.
impl From<signin_domain::AppError> for OAuthError {
    fn from(e: signin_domain::AppError) -> Self {
        use signin_domain::AppError;
        match e {
            AppError::Internal(cause) => OAuthError::Internal(cause),
            AppError::UnknownAccount => OAuthError::UnknownUserId,
            AppError::NotPasswordlessCapable => {
                OAuthError::AccessDenied("the user has no phone with phone sign-in")
            }
            AppError::PolicyDisabled => {
                OAuthError::AccessDenied("the Authenticator is not enabled for this user")
            }
            AppError::RateLimited { .. } | AppError::Paused { .. } => {
                OAuthError::TemporarilyUnavailable("too many sign-ins for this user: try later")
            }
            AppError::AtCapacity { .. } => {
                OAuthError::TemporarilyUnavailable("the server is busy: try later")
            }
            AppError::InvalidRequest(d) => OAuthError::InvalidRequest(d),
            AppError::UnsafeText { .. } => OAuthError::InvalidRequest(
                "a name holds a control, format, private-use or unassigned character",
            ),
            other => OAuthError::Internal(anyhow::anyhow!("unexpected: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_the_protocol_status() {
        let cases = [
            (AppError::InvalidRequest("x"), 400, "invalid_request"),
            (
                AppError::UnsafeText {
                    field: "device_name",
                    error: authenticator_protocol::text::check_plain("\u{200B}").unwrap_err(),
                },
                400,
                "invalid_request",
            ),
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
            (
                AppError::EndpointRefused(signin_domain::outbound::OutboundError::NotHttps),
                400,
                "invalid_request",
            ),
            (
                AppError::TooManyPushChannels { max: 10 },
                409,
                "too_many_push_channels",
            ),
            (AppError::MoveUsed, 409, "move_used"),
            (AppError::MoveExpired, 410, "move_expired"),
            (AppError::MoveVoucherRemoved, 403, "move_voucher_removed"),
            (AppError::internal(anyhow::anyhow!("boom")), 500, "internal"),
        ];
        for (err, status_code, error_code) in cases {
            assert_eq!(status(&err).as_u16(), status_code, "{err}");
            assert_eq!(code(&err).as_str(), error_code);
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let resp = HttpError(AppError::internal(anyhow::anyhow!("secret detail"))).into_response();
        assert!(resp.extensions().get::<InternalCause>().is_some());
        let msg = AppError::internal(anyhow::anyhow!("secret detail")).to_string();
        assert!(!msg.contains("secret"));
    }
}
