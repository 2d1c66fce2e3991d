//! Request extractors: device authentication (§4) and the client address.
use std::net::{IpAddr, SocketAddr};

use authenticator_protocol::sign_in::DeviceAuth;
use authenticator_protocol::UnixMillis;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::AppError;
use crate::state::AppState;
use crate::store::{load_device, Device};
use crate::verify::{check_fresh, verify_device_auth};

/// A device whose `Authorization: PSI-Device …` header verified for this exact method and
/// path-with-query.
#[derive(Debug, Clone)]
pub struct AuthenticatedDevice(pub Device);

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AppError::Unauthorized)?;
        let auth = DeviceAuth::parse_header(header).map_err(|_| AppError::Unauthorized)?;
        let device = load_device(&state.pool, &auth.account_id)
            .await?
            .ok_or(AppError::UnknownAccount)?;
        check_fresh(auth.timestamp, UnixMillis::now())?;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or_else(|| parts.uri.path());
        verify_device_auth(
            parts.method.as_str(),
            path_and_query,
            &auth,
            &device.keys.device,
        )?;
        Ok(AuthenticatedDevice(device))
    }
}

/// The peer address of the connection, when the server runs with connect info (not in
/// `oneshot` tests). Forwarded-for headers are not trusted.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}
