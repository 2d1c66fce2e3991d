//! OpenID Provider metadata (OpenID Connect Discovery 1.0 §3, CIBA §4) and the JWKS.
use axum::extract::State;
use axum::http::header::{self, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::authorize::{issuer, SUPPORTED_SCOPES};
use super::{
    OAuthError, ACR_MFA, ACR_PHISHING_RESISTANT, ACR_SINGLE_FACTOR, AUTHORIZE_PATH,
    CIBA_GRANT_TYPE, CIBA_PATH, END_SESSION_PATH, INTROSPECTION_PATH, JWKS_PATH, REVOCATION_PATH,
    TOKEN_PATH, USERINFO_PATH,
};
use crate::web::session::public_base;
use signin_domain::state::AppState;

/// How clients authenticate at the token and revocation endpoints (`none`: public clients).
const CLIENT_AUTH_METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "none"];

#[derive(Debug, Serialize)]
struct Metadata {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    jwks_uri: String,
    backchannel_authentication_endpoint: String,
    revocation_endpoint: String,
    introspection_endpoint: String,
    end_session_endpoint: String,
    scopes_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    response_modes_supported: &'static [&'static str],
    grant_types_supported: &'static [&'static str],
    subject_types_supported: &'static [&'static str],
    id_token_signing_alg_values_supported: &'static [&'static str],
    token_endpoint_auth_methods_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: &'static [&'static str],
    code_challenge_methods_supported: &'static [&'static str],
    claims_supported: &'static [&'static str],
    acr_values_supported: &'static [&'static str],
    prompt_values_supported: &'static [&'static str],
    claims_parameter_supported: bool,
    request_parameter_supported: bool,
    request_uri_parameter_supported: bool,
    authorization_response_iss_parameter_supported: bool,
    backchannel_token_delivery_modes_supported: &'static [&'static str],
    backchannel_user_code_parameter_supported: bool,
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
}

/// `GET /.well-known/openid-configuration`
pub async fn configuration(
    State(state): State<AppState>,
    parts: Parts,
) -> Result<Response, OAuthError> {
    let base = public_base(&state.pool, &parts)
        .await
        .map_err(|e| OAuthError::Internal(anyhow::anyhow!("{e}")))?;
    let iss = issuer(&base);
    let at = |path: &str| format!("{iss}{path}");
    let metadata = Metadata {
        authorization_endpoint: at(AUTHORIZE_PATH),
        token_endpoint: at(TOKEN_PATH),
        userinfo_endpoint: at(USERINFO_PATH),
        jwks_uri: at(JWKS_PATH),
        backchannel_authentication_endpoint: at(CIBA_PATH),
        revocation_endpoint: at(REVOCATION_PATH),
        end_session_endpoint: at(END_SESSION_PATH),
        introspection_endpoint: at(INTROSPECTION_PATH),
        issuer: iss,
        scopes_supported: SUPPORTED_SCOPES,
        response_types_supported: &["code"],
        response_modes_supported: &["query", "form_post"],
        grant_types_supported: &["authorization_code", "refresh_token", CIBA_GRANT_TYPE],
        subject_types_supported: &["public"],
        id_token_signing_alg_values_supported: &["RS256", "ES256"],
        token_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: CLIENT_AUTH_METHODS,
        // Introspection answers confidential clients (resource servers) only.
        introspection_endpoint_auth_methods_supported: &[
            "client_secret_basic",
            "client_secret_post",
        ],
        code_challenge_methods_supported: &["S256"],
        claims_supported: &[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "acr",
            "at_hash",
            "name",
            "preferred_username",
            "given_name",
            "family_name",
            "email",
            "email_verified",
            "groups",
            "sid",
        ],
        acr_values_supported: &[ACR_PHISHING_RESISTANT, ACR_MFA, ACR_SINGLE_FACTOR],
        prompt_values_supported: &["none", "login", "consent", "select_account"],
        // Read for an essential `acr` (authorize::requested_acr); other claims requested
        // there are answered as their scopes say.
        claims_parameter_supported: true,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        authorization_response_iss_parameter_supported: true,
        backchannel_token_delivery_modes_supported: &["poll", "ping"],
        backchannel_user_code_parameter_supported: false,
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
    };
    Ok(cacheable(axum::Json(metadata).into_response()))
}

/// `GET /oauth2/jwks`
pub async fn jwks(State(state): State<AppState>) -> Result<Response, OAuthError> {
    let set = super::keys::jwks(&state.pool)
        .await
        .map_err(OAuthError::Internal)?;
    Ok(cacheable(axum::Json(set).into_response()))
}

/// Metadata and keys may be cached briefly (a rotated key shows up within 5 minutes).
fn cacheable(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}
