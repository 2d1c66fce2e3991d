//! Request extractors: device authentication (§4) and the client address.
use std::net::{IpAddr, SocketAddr};

use authenticator_protocol::sign_in::DeviceAuth;
use authenticator_protocol::{AccountId, UnixMillis};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::http_error::HttpError;
use signin_domain::accounts::applications::{self, Application};
use signin_domain::rules::verify::{check_device_auth_fresh, verify_device_auth};
use signin_domain::state::AppState;
use signin_domain::AppError;

/// A device account whose key signed this request's `Authorization: PSI-Device …` header for
/// this exact method and path-with-query.
///
/// The key may be the cache's copy (`store::cache`: a device key never changes for its
/// account), so this does not say the device still exists: every handler that takes it reads
/// a row of the device in its own statement (its pending requests, its request, its removal)
/// and answers `unknown_account` when it is gone, so a removed device is refused at once.
#[derive(Debug, Clone)]
pub struct AuthenticatedDevice(pub ProvenDevice);

/// What [`AuthenticatedDevice`] proved: the account whose key signed.
#[derive(Debug, Clone)]
pub struct ProvenDevice {
    pub account_id: AccountId,
}

impl FromRequestParts<AppState> for AuthenticatedDevice {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(AppError::Unauthorized)?;
        let auth = DeviceAuth::parse_header(header).map_err(|_| AppError::Unauthorized)?;
        let key = state
            .cache
            .device_key(&state.pool, &auth.account_id)
            .await?
            .ok_or(AppError::UnknownAccount)?;
        check_device_auth_fresh(auth.timestamp, UnixMillis::now())?;
        let path_and_query = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or_else(|| parts.uri.path());
        verify_device_auth(parts.method.as_str(), path_and_query, &auth, &key)?;
        // Delivery health: the phone's last authenticated contact.
        signin_domain::push_rotation::seen(state, &auth.account_id).await;
        Ok(AuthenticatedDevice(ProvenDevice {
            account_id: auth.account_id,
        }))
    }
}

/// A registered application that presented its `client_id` and secret as HTTP Basic
/// credentials (`Authorization: Basic base64(client_id:secret)`, RFC 7617; the parts are not
/// form-encoded, as both are URL-safe base64 text). Anything else is
/// `unauthorized_application`.
#[derive(Debug, Clone)]
pub struct AuthenticatedApplication(pub Application);

impl FromRequestParts<AppState> for AuthenticatedApplication {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let (client_id, secret) =
            basic_credentials(&parts.headers).ok_or(AppError::UnauthorizedApplication)?;
        let app =
            applications::authenticate_for_start(&state.pool, &state.cache, &client_id, &secret)
                .await?;
        Ok(AuthenticatedApplication(app))
    }
}

/// `client_id` and secret of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine as _;
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    (!id.is_empty() && !secret.is_empty()).then(|| (id.to_owned(), secret.to_owned()))
}

/// The client's address: the peer of the connection (absent in `oneshot` tests), or, when the
/// peer is a configured trusted proxy (`--trusted-proxy`), the right-most `X-Forwarded-For`
/// entry that is not itself a trusted proxy. Without trusted proxies the header is ignored.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.trusted_proxies,
        )))
    }
}

/// See [`ClientIp`]. A malformed forwarded entry makes the address unknown.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        let ip = entry.parse::<IpAddr>().ok()?.to_canonical();
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn basic_credentials_need_the_basic_scheme_an_id_and_a_secret() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v.parse().unwrap());
            basic_credentials(&h)
        };
        // base64("app-1:s3cret") and base64("app-1:")
        assert_eq!(
            with("Basic YXBwLTE6czNjcmV0"),
            Some(("app-1".into(), "s3cret".into()))
        );
        assert_eq!(
            with("basic YXBwLTE6czNjcmV0").map(|c| c.0),
            Some("app-1".into())
        );
        assert_eq!(with("Bearer YXBwLTE6czNjcmV0"), None);
        assert_eq!(with("Basic YXBwLTE6"), None);
        assert_eq!(with("Basic !!!"), None);
        assert_eq!(basic_credentials(&HeaderMap::new()), None);
    }

    #[test]
    fn forwarded_for_is_trusted_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let h = headers(&["81.2.69.160, 10.0.0.7"]);
        // Not configured: the header is ignored.
        assert_eq!(client_ip(Some(proxy), &h, &[]), Some(proxy));
        // From an untrusted peer: ignored.
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(Some(other), &h, &trusted), Some(other));
        // From a trusted proxy: the right-most untrusted entry.
        assert_eq!(
            client_ip(Some(proxy), &h, &trusted),
            Some("81.2.69.160".parse().unwrap())
        );
        // A client cannot hide behind a prepended fake entry.
        let h = headers(&["1.1.1.1", "81.2.69.160"]);
        assert_eq!(
            client_ip(Some(proxy), &h, &trusted),
            Some("81.2.69.160".parse().unwrap())
        );
        // Garbage: unknown.
        assert_eq!(client_ip(Some(proxy), &headers(&["nope"]), &trusted), None);
        // No header: the proxy itself.
        assert_eq!(
            client_ip(Some(proxy), &HeaderMap::new(), &trusted),
            Some(proxy)
        );
        // IPv4-mapped IPv6 peers are compared as IPv4.
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().unwrap();
        assert_eq!(
            client_ip(Some(mapped), &headers(&["81.2.69.160"]), &trusted),
            Some("81.2.69.160".parse().unwrap())
        );
        assert_eq!(client_ip(None, &h, &trusted), None);
    }
}
