//! What the server's surfaces carry towards a response: the domain error on its way to the
//! JSON API's answer, and the cause of an internal error. `crate::error` turns them (and the
//! pages' and OpenID Connect's errors) into responses; this module depends on no other.
use std::sync::Arc;

use signin_domain::AppError;

/// A domain error on its way to becoming an HTTP response (`crate::error`).
#[derive(Debug)]
pub struct HttpError(pub AppError);

impl<E: Into<AppError>> From<E> for HttpError {
    fn from(e: E) -> Self {
        HttpError(e.into())
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Attached to 500 responses so that the logging middleware records the cause once, inside
/// the request span.
#[derive(Clone)]
pub struct InternalCause(pub Arc<anyhow::Error>);
