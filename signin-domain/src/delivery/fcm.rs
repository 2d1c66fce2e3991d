//! FCM HTTP v1 client: a service account's OAuth2 access token (JWT-bearer grant, RS256,
//! cached until shortly before it expires) and data-only, high-priority messages.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;
use url::Url;

use super::jwt::Rs256Key;
use super::push::{http_error_reason, retry_after, safe_reason, PushError, PushTarget, Transport};

pub const PRODUCTION_ENDPOINT: &str = "https://fcm.googleapis.com";
pub const MESSAGING_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// An access token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

/// Built by the server's configuration (which defaults `endpoint` to [`PRODUCTION_ENDPOINT`]).
#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// The service-account JSON key file of the Firebase project.
    pub service_account_path: PathBuf,
    /// Default: the service account's `project_id`.
    pub project_id: Option<String>,
    /// `https://fcm.googleapis.com` (default) or a local test endpoint.
    pub endpoint: Url,
    /// Default: the service account's `token_uri`.
    pub token_uri: Option<Url>,
}

/// The fields of a service-account key file that the client uses.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: String,
    client_email: String,
    token_uri: Option<String>,
}

pub struct FcmClient {
    http: reqwest::Client,
    send_url: Url,
    token_uri: Url,
    client_email: String,
    key_id: Option<String>,
    key: Rs256Key,
    access: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for FcmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FcmClient")
            .field("send_url", &self.send_url.as_str())
            .field("token_uri", &self.token_uri.as_str())
            .field("client_email", &self.client_email)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl FcmClient {
    pub fn new(config: &FcmConfig) -> anyhow::Result<Self> {
        let path = &config.service_account_path;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the FCM service account {}", path.display()))?;
        let sa: ServiceAccount = serde_json::from_str(&text)
            .with_context(|| format!("the FCM service account {} is not valid", path.display()))?;
        let key = Rs256Key::from_pkcs8_pem(&sa.private_key)
            .with_context(|| format!("the private key in {}", path.display()))?;
        let project = config
            .project_id
            .clone()
            .or(sa.project_id)
            .filter(|p| !p.trim().is_empty())
            .context("no FCM project id (set it or use a service account with project_id)")?;
        anyhow::ensure!(
            project
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "FCM project id has unexpected characters"
        );
        let token_uri = match &config.token_uri {
            Some(u) => u.clone(),
            None => Url::parse(
                sa.token_uri
                    .as_deref()
                    .unwrap_or("https://oauth2.googleapis.com/token"),
            )
            .context("service account token_uri")?,
        };
        let mut send_url = config.endpoint.clone();
        send_url.set_path(&format!("/v1/projects/{project}/messages:send"));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the FCM HTTP client")?;
        Ok(FcmClient {
            http,
            send_url,
            token_uri,
            client_email: sa.client_email,
            key_id: sa.private_key_id,
            key,
            access: Mutex::new(None),
        })
    }

    /// A cached OAuth2 access token, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, PushError> {
        let mut cached = self.access.lock().await;
        if let Some((token, valid_until)) = cached.as_ref() {
            if Instant::now() + TOKEN_MARGIN < *valid_until {
                return Ok(token.clone());
            }
        }
        let iat = authenticator_protocol::UnixMillis::now().millis() / 1000;
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = Value::String(kid.clone());
        }
        let assertion = self
            .key
            .sign_jwt(
                &header,
                &serde_json::json!({
                    "iss": self.client_email,
                    "scope": MESSAGING_SCOPE,
                    "aud": self.token_uri.as_str(),
                    "iat": iat,
                    "exp": iat + 3600,
                }),
            )
            .map_err(|_| PushError::Rejected("signing_failed".into()))?;
        let response = self
            .http
            .post(self.token_uri.clone())
            .form(&[("grant_type", JWT_BEARER_GRANT), ("assertion", &assertion)])
            .send()
            .await
            .map_err(|e| PushError::retryable(format!("oauth_{}", http_error_reason(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let hint = retry_after(response.headers());
            let reason = format!("oauth_http_{}", status.as_u16());
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    PushError::Retryable {
                        reason,
                        retry_after: hint,
                    }
                } else {
                    PushError::Rejected(reason)
                },
            );
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|_| PushError::retryable("oauth_bad_response"))?;
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600).min(24 * 3600));
        *cached = Some((body.access_token.clone(), Instant::now() + lifetime));
        Ok(body.access_token)
    }

    async fn forget_token(&self) {
        *self.access.lock().await = None;
    }
}

/// `errorCode` of an `FcmError` detail, and whether a `BadRequest` detail blames the token.
fn classify(body: &Value) -> (Option<String>, bool) {
    let details = body["error"]["details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut code = None;
    let mut token_field = false;
    for d in &details {
        if let Some(c) = d["errorCode"].as_str() {
            code = Some(safe_reason(c));
        }
        if let Some(violations) = d["fieldViolations"].as_array() {
            token_field |= violations
                .iter()
                .any(|v| v["field"].as_str().is_some_and(|f| f.contains("token")));
        }
    }
    (code, token_field)
}

#[async_trait::async_trait]
impl Transport for FcmClient {
    fn kind(&self) -> &'static str {
        super::push::KIND_FCM
    }

    async fn send(&self, target: &PushTarget) -> Result<(), PushError> {
        if target.token.is_empty() || target.token.len() > 4096 {
            return Err(PushError::InvalidToken("INVALID_ARGUMENT".into()));
        }
        let ttl_secs = target
            .expires_at
            .millis()
            .saturating_sub(authenticator_protocol::UnixMillis::now().millis())
            .div_ceil(1000)
            .max(1);
        let message = serde_json::json!({
            "message": {
                "token": target.token,
                "data": target.envelope.to_fcm_data(),
                "android": { "priority": "HIGH", "ttl": format!("{ttl_secs}s") },
            }
        });
        let token = self.access_token().await?;
        let response = self
            .http
            .post(self.send_url.clone())
            .bearer_auth(token)
            .json(&message)
            .send()
            .await
            .map_err(|e| PushError::retryable(http_error_reason(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let hint = retry_after(response.headers());
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let (code, token_field) = classify(&body);
        let status_text = body["error"]["status"]
            .as_str()
            .map(safe_reason)
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        let reason = code.clone().unwrap_or_else(|| status_text.clone());
        Err(match (status.as_u16(), code.as_deref()) {
            (_, Some("UNREGISTERED")) => PushError::InvalidToken(reason),
            (400, _) if token_field => PushError::InvalidToken("INVALID_ARGUMENT".into()),
            (401, _) => {
                self.forget_token().await;
                PushError::retryable(reason)
            }
            (429 | 500 | 502 | 503 | 504, _) => PushError::Retryable {
                reason,
                retry_after: hint,
            },
            _ => PushError::Rejected(reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_are_classified() {
        let unreg = serde_json::json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
        assert_eq!(classify(&unreg), (Some("UNREGISTERED".into()), false));
        let bad = serde_json::json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "INVALID_ARGUMENT"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
                {"field": "message.token", "description": "Invalid registration token"}]}]}});
        assert_eq!(classify(&bad), (Some("INVALID_ARGUMENT".into()), true));
        assert_eq!(classify(&Value::Null), (None, false));
    }
}
