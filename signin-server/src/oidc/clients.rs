//! Client authentication at the token and backchannel endpoints (RFC 6749 §2.3.1): HTTP Basic
//! or the form. Registration and lookup are the domain's (`signin_domain::oidc::clients`).
use axum::http::HeaderMap;

use super::{OAuthError, Params};
pub use signin_domain::oidc::clients::*;
use signin_domain::store::Pool;

/// How a client authenticated at the token or backchannel endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: `client_id` only.
    None,
}

/// RFC 6749 §2.3.1: `client_id` and secret in HTTP Basic are form-encoded first.
fn form_decoded(s: &str) -> String {
    url::form_urlencoded::parse(s.as_bytes())
        .next()
        .map(|(k, v)| {
            if v.is_empty() {
                k.into_owned()
            } else {
                format!("{k}={v}")
            }
        })
        .unwrap_or_default()
}

/// Authenticates the client of a token or backchannel request: HTTP Basic, or `client_id` +
/// `client_secret` in the body, or (public clients only) `client_id` alone. Using two
/// methods at once is `invalid_request`; anything that does not authenticate a registered
/// client is `invalid_client`.
pub async fn authenticate(
    pool: &Pool,
    headers: &HeaderMap,
    params: &Params,
) -> Result<(Client, AuthMethod), OAuthError> {
    let has_auth_header = headers.contains_key(axum::http::header::AUTHORIZATION);
    let basic = crate::extract::basic_credentials(headers);
    if has_auth_header && basic.is_none() {
        return Err(OAuthError::InvalidClient { basic: true });
    }
    let body_id = params.get("client_id");
    let body_secret = params.get("client_secret");
    let (client_id, secret, method) = match basic {
        Some((id, secret)) => {
            if body_secret.is_some() {
                return Err(OAuthError::InvalidRequest(
                    "use one client authentication method",
                ));
            }
            let id = form_decoded(&id);
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::InvalidRequest(
                    "client_id differs from the authenticated client",
                ));
            }
            (
                id,
                Some(form_decoded(&secret)),
                AuthMethod::ClientSecretBasic,
            )
        }
        None => {
            let id = body_id
                .ok_or(OAuthError::InvalidClient { basic: false })?
                .to_owned();
            match body_secret {
                Some(s) => (id, Some(s.to_owned()), AuthMethod::ClientSecretPost),
                None => (id, None, AuthMethod::None),
            }
        }
    };
    let basic_used = method == AuthMethod::ClientSecretBasic;
    let client = find(pool, &client_id)
        .await?
        .ok_or(OAuthError::InvalidClient { basic: basic_used })?;
    match (client.public, secret) {
        (false, Some(secret)) if client.secret_matches(&secret) => Ok((client, method)),
        (true, None) => Ok((client, AuthMethod::None)),
        _ => Err(OAuthError::InvalidClient { basic: basic_used }),
    }
}
