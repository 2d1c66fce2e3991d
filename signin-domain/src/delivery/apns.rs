//! APNs provider API client: HTTP/2, token-based authentication (ES256 JWT with `kid`/`iss`,
//! reused and refreshed before Apple's 60-minute limit), alert pushes with `mutable-content`
//! so the Notification Service Extension fetches and shows the signed details.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use super::jwt::Es256Key;
use super::push::{http_error_reason, retry_after, safe_reason, PushError, PushTarget, Transport};

pub const PRODUCTION_ENDPOINT: &str = "https://api.push.apple.com";
pub const SANDBOX_ENDPOINT: &str = "https://api.sandbox.push.apple.com";
/// Apple rejects provider tokens older than one hour; refresh well before.
pub const TOKEN_REFRESH: Duration = Duration::from_secs(50 * 60);

/// Built by the server's configuration (which defaults `endpoint` to [`PRODUCTION_ENDPOINT`]).
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// The `.p8` signing key downloaded from the Apple developer account.
    pub key_path: PathBuf,
    /// Its 10-character key id (JWT header `kid`).
    pub key_id: String,
    /// The developer team id (JWT claim `iss`).
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// `https://api.push.apple.com` (default), the sandbox, or a local test endpoint.
    /// An `http://` endpoint is spoken to in HTTP/2 cleartext (prior knowledge).
    pub endpoint: Url,
}

pub struct ApnsClient {
    http: reqwest::Client,
    endpoint: Url,
    topic: String,
    key_id: String,
    team_id: String,
    key: Es256Key,
    token: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for ApnsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("topic", &self.topic)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct ApnsErrorBody {
    reason: Option<String>,
}

/// Device tokens are hex; anything else could not be one (and must not reach the URL path).
fn plausible_token(token: &str) -> bool {
    (16..=200).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_hexdigit())
}

impl ApnsClient {
    pub fn new(config: &ApnsConfig) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(&config.key_path)
            .with_context(|| format!("reading the APNs key {}", config.key_path.display()))?;
        let key = Es256Key::from_pkcs8_pem(&pem)
            .with_context(|| format!("the APNs key {}", config.key_path.display()))?;
        anyhow::ensure!(!config.key_id.trim().is_empty(), "APNs key id is empty");
        anyhow::ensure!(!config.team_id.trim().is_empty(), "APNs team id is empty");
        anyhow::ensure!(!config.topic.trim().is_empty(), "APNs topic is empty");
        anyhow::ensure!(
            matches!(config.endpoint.scheme(), "https" | "http"),
            "APNs endpoint must be https (or http for a local test endpoint)"
        );
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the APNs HTTP/2 client")?;
        Ok(ApnsClient {
            http,
            endpoint: config.endpoint.clone(),
            topic: config.topic.trim().to_owned(),
            key_id: config.key_id.trim().to_owned(),
            team_id: config.team_id.trim().to_owned(),
            key,
            token: Mutex::new(None),
        })
    }

    /// The provider token: reused while younger than [`TOKEN_REFRESH`].
    async fn provider_token(&self) -> String {
        let mut cached = self.token.lock().await;
        if let Some((token, made)) = cached.as_ref() {
            if made.elapsed() < TOKEN_REFRESH {
                return token.clone();
            }
        }
        let iat = authenticator_protocol::UnixMillis::now().millis() / 1000;
        let token = self.key.sign_jwt(
            &serde_json::json!({"alg": "ES256", "kid": self.key_id}),
            &serde_json::json!({"iss": self.team_id, "iat": iat}),
        );
        *cached = Some((token.clone(), Instant::now()));
        token
    }

    /// `authorization: bearer <provider token>`, as Apple documents it (marked sensitive).
    async fn authorization(&self) -> Result<reqwest::header::HeaderValue, PushError> {
        let mut v = reqwest::header::HeaderValue::from_str(&format!(
            "bearer {}",
            self.provider_token().await
        ))
        .map_err(|_| PushError::Rejected("bad_provider_token".into()))?;
        v.set_sensitive(true);
        Ok(v)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }
}

#[async_trait::async_trait]
impl Transport for ApnsClient {
    fn kind(&self) -> &'static str {
        super::push::KIND_APNS
    }

    async fn send(&self, target: &PushTarget) -> Result<(), PushError> {
        if !plausible_token(&target.token) {
            return Err(PushError::InvalidToken("BadDeviceToken".into()));
        }
        let mut url = self.endpoint.clone();
        url.set_path(&format!("/3/device/{}", target.token));
        let expiration = target.expires_at.millis() / 1000;
        let response = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, self.authorization().await?)
            .header("apns-push-type", "alert")
            .header("apns-topic", &self.topic)
            .header("apns-priority", "10")
            .header("apns-expiration", expiration.to_string())
            .json(&target.envelope.to_apns_json())
            .send()
            .await
            .map_err(|e| PushError::retryable(http_error_reason(&e)))?;
        let status = response.status();
        if status == StatusCode::OK {
            return Ok(());
        }
        let hint = retry_after(response.headers());
        let reason = response
            .json::<ApnsErrorBody>()
            .await
            .ok()
            .and_then(|b| b.reason)
            .map(|r| safe_reason(&r))
            .unwrap_or_else(|| format!("http_{}", status.as_u16()));
        Err(match (status.as_u16(), reason.as_str()) {
            (410, _) | (400, "BadDeviceToken") | (400, "Unregistered") => {
                PushError::InvalidToken(reason)
            }
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
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
    fn only_hex_tokens_reach_the_url() {
        assert!(plausible_token(&"ab".repeat(32)));
        assert!(!plausible_token("../../3/device/x"));
        assert!(!plausible_token("abc"));
        assert!(!plausible_token(&"a".repeat(201)));
    }
}
