//! JSON bodies and query strings whose rejections answer in the protocol's error shape.
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{AppError, HttpError};

/// `axum::Json`, but a body that is not the expected JSON answers `invalid_request` with the
/// `ErrorBody` shape instead of axum's plain-text rejection.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(AppJson(v)),
            Err(rejection) => Err(AppError::InvalidRequest(match rejection {
                JsonRejection::MissingJsonContentType(_) => {
                    "expected Content-Type: application/json"
                }
                JsonRejection::JsonSyntaxError(_) => "malformed JSON body",
                JsonRejection::JsonDataError(_) => "JSON body has missing or malformed fields",
                JsonRejection::BytesRejection(_) => "could not read the request body",
                _ => "invalid JSON body",
            })
            .into()),
        }
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with the same error shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|e: QueryRejection| {
                let _ = e;
                AppError::InvalidRequest("malformed query parameters").into()
            })
    }
}
