//! Web Push client (RFC 8030) for phones without Google or Apple services: a UnifiedPush
//! distributor on a de-Googled Android phone, or any push service that speaks RFC 8030.
//!
//! The message is the same envelope the other channels carry (`{v, aid, rid}`, only ids),
//! encrypted to the subscription's key with RFC 8291 (`Content-Encoding: aes128gcm`, by the
//! `web-push-native` crate) and sent with a VAPID token (RFC 8292): an ES256 JWT (`aud` = the
//! endpoint's origin, `exp` = 12 h, `sub` = the configured contact) signed by the server's VAPID
//! key, which is created once and kept in the database (`store::webpush`).
//!
//! 404 and 410 mean the subscription is gone: the channel is marked stale (and audited) like
//! an invalid APNs/FCM token. 429 and 5xx are retried (honouring `Retry-After`); other
//! refusals are not. Every push goes through the outbound policy (`crate::outbound`): https
//! only, every address the endpoint's host resolves to checked, no redirect followed, short
//! timeouts, a bounded answer. The endpoint URL is a capability and the `auth` secret a
//! secret: neither is logged; errors carry only the HTTP status or the rule that refused.
use std::time::Duration;

use anyhow::Context;
use authenticator_protocol::encoding::{b64, unb64};
use authenticator_protocol::webpush::WebPushSubscription;
use authenticator_protocol::{EcdsaSigner, UnixMillis};
use serde::Deserialize;
use web_push_native::p256;

use super::jwt::Es256Key;
use super::push::{retry_after, PushError, PushTarget, Transport, KIND_WEBPUSH};
use crate::outbound::{OutboundError, OutboundPolicy};
use crate::store::webpush::{self as stored, StoredVapidKey};
use crate::store::{now_ms, Pool};

/// Lifetime of a VAPID token (RFC 8292 §2: at most 24 hours).
pub const VAPID_TOKEN_SECS: u64 = 12 * 3600;

/// `[delivery.webpush]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebPushConfig {
    /// The VAPID `sub` claim: how the push service's operator reaches you, `mailto:` or
    /// `https:` (RFC 8292 §2.1).
    pub subject: String,
}

/// Why a VAPID subject is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("the VAPID subject must be a mailto: or https: URL")]
    Scheme,
    #[error("the VAPID subject must be one line of printable ASCII")]
    Characters,
}

impl WebPushConfig {
    /// Checks the subject: `mailto:someone@host` or an `https://` URL.
    pub fn check(&self) -> Result<(), SubjectError> {
        check_subject(&self.subject)
    }
}

/// RFC 8292 §2.1: the `sub` claim is a `mailto:` or `https:` URI.
pub fn check_subject(subject: &str) -> Result<(), SubjectError> {
    if subject.is_empty() || subject.len() > 512 || !subject.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SubjectError::Characters);
    }
    let url = url::Url::parse(subject).map_err(|_| SubjectError::Scheme)?;
    match url.scheme() {
        "mailto" if url.path().contains('@') => Ok(()),
        "https" if url.host().is_some() => Ok(()),
        _ => Err(SubjectError::Scheme),
    }
}

/// The server's VAPID key pair.
pub struct VapidKey {
    key: Es256Key,
    public_b64: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public_key", &self.public_b64)
            .finish_non_exhaustive()
    }
}

/// A fresh key pair as the database keeps it.
pub fn new_stored_key() -> anyhow::Result<StoredVapidKey> {
    let (signer, pkcs8) = EcdsaSigner::generate().context("generating the VAPID key")?;
    Ok(StoredVapidKey {
        private_key: b64(&pkcs8),
        public_key: signer.public_key().to_b64(),
        created_at: now_ms(),
    })
}

impl VapidKey {
    /// The key stored in the database, created (and stored) on first use.
    pub async fn load_or_create(pool: &Pool) -> anyhow::Result<Self> {
        let stored = match stored::vapid_key(pool).await? {
            Some(k) => k,
            None => {
                let key = stored::vapid_key_or_init(pool, &new_stored_key()?).await?;
                tracing::info!(vapid_public_key = %key.public_key, "created the Web Push VAPID key");
                key
            }
        };
        Self::from_stored(&stored)
    }

    pub fn from_stored(stored: &StoredVapidKey) -> anyhow::Result<Self> {
        let der = unb64("vapid_private_key", &stored.private_key).context("stored VAPID key")?;
        let key = Es256Key::from_pkcs8_der(&der).context("stored VAPID key")?;
        let public_b64 = b64(&key.public_key_sec1());
        anyhow::ensure!(
            public_b64 == stored.public_key,
            "the stored VAPID public key does not match its private key"
        );
        Ok(VapidKey { key, public_b64 })
    }

    /// The public key, uncompressed P-256, base64url: the `k=` parameter and the
    /// `applicationServerKey` a subscription may be restricted to.
    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// `vapid t=<JWT>, k=<public key>` for a push to `audience` (an origin).
    pub fn authorization(&self, audience: &str, subject: &str, now_secs: u64) -> String {
        let token = self.key.sign_jwt(
            &serde_json::json!({"typ": "JWT", "alg": "ES256"}),
            &serde_json::json!({
                "aud": audience,
                "exp": now_secs + VAPID_TOKEN_SECS,
                "sub": subject,
            }),
        );
        format!("vapid t={token}, k={}", self.public_b64)
    }
}

/// `signin-server admin webpush-key …`
#[derive(Debug, clap::Subcommand)]
pub enum AdminCommand {
    /// Print the VAPID public key (base64url, uncompressed P-256; created if there is none yet),
    /// for distributors that restrict subscriptions to it.
    Show,
    /// Replace the VAPID key with a new one; restart the servers afterwards. Subscriptions
    /// restricted to the old key are refused by their push services (those phones re-enroll).
    Rotate,
}

/// Runs an `admin webpush-key` command.
pub async fn run_admin(pool: &Pool, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Show => {
            let key = VapidKey::load_or_create(pool).await?;
            println!("{}", key.public_key());
        }
        AdminCommand::Rotate => {
            let fresh = new_stored_key()?;
            stored::replace_vapid_key(pool, &fresh).await?;
            crate::audit::record(
                pool,
                crate::audit::Event::PolicyChanged,
                crate::audit::Entry {
                    upn: None,
                    account_id: None,
                    request_id: None,
                    outcome: "webpush_vapid_key=rotated",
                    actor: None,
                },
            )
            .await?;
            println!("{}", fresh.public_key);
            eprintln!("Restart the servers: they sign with the new key from their next start.");
        }
    }
    Ok(())
}

pub struct WebPushClient {
    outbound: OutboundPolicy,
    vapid: VapidKey,
    config: WebPushConfig,
}

impl std::fmt::Debug for WebPushClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebPushClient")
            .field("vapid", &self.vapid)
            .field("subject", &self.config.subject)
            .finish_non_exhaustive()
    }
}

impl WebPushClient {
    /// The client with the database's VAPID key (created on first use), sending under
    /// `outbound` (`http://` endpoints only with its development setting).
    pub async fn open(
        pool: &Pool,
        config: &WebPushConfig,
        outbound: &OutboundPolicy,
    ) -> anyhow::Result<Self> {
        config.check()?;
        let vapid = VapidKey::load_or_create(pool).await?;
        Ok(WebPushClient {
            outbound: outbound.clone(),
            vapid,
            config: config.clone(),
        })
    }

    pub fn vapid_public_key(&self) -> &str {
        self.vapid.public_key()
    }
}

/// Encrypts `plaintext` to the subscription (RFC 8291, one aes128gcm record).
pub fn encrypt(subscription: &WebPushSubscription, plaintext: &[u8]) -> Result<Vec<u8>, PushError> {
    let ua_public = p256::PublicKey::from_sec1_bytes(&subscription.p256dh)
        .map_err(|_| PushError::InvalidToken("invalid_subscription".into()))?;
    let auth = web_push_native::Auth::from(subscription.auth);
    web_push_native::encrypt(plaintext.to_vec(), &ua_public, &auth)
        .map_err(|_| PushError::Rejected("encryption_failed".into()))
}

/// What an outbound refusal or failure means for a push: plain http without the development
/// setting marks the channel stale (`insecure_endpoint`, as before the policy); an address the
/// policy refuses, or an oversized answer, is a rejection (not retried, not stale: allowing the
/// network in the configuration makes the channel work again); the network's failures are
/// retried.
pub fn outbound_push_error(e: &OutboundError) -> PushError {
    match e {
        OutboundError::NotHttps => PushError::InvalidToken("insecure_endpoint".into()),
        OutboundError::Malformed | OutboundError::UserInfo => {
            PushError::InvalidToken("invalid_subscription".into())
        }
        OutboundError::Address(_) | OutboundError::ResponseTooLarge { .. } => {
            PushError::Rejected(e.reason().into())
        }
        OutboundError::Resolve
        | OutboundError::Connect
        | OutboundError::Timeout
        | OutboundError::Network => PushError::retryable(e.reason()),
    }
}

/// What a push service's answer means (RFC 8030 §5, §8.3; RFC 8292 §4).
pub fn classify(status: reqwest::StatusCode, hint: Option<Duration>) -> Result<(), PushError> {
    let code = status.as_u16();
    match code {
        200..=299 => Ok(()),
        404 | 410 => Err(PushError::InvalidToken(format!("http_{code}"))),
        429 | 500..=599 => Err(PushError::Retryable {
            reason: format!("http_{code}"),
            retry_after: hint,
        }),
        _ => Err(PushError::Rejected(format!("http_{code}"))),
    }
}

#[async_trait::async_trait]
impl Transport for WebPushClient {
    fn kind(&self) -> &'static str {
        KIND_WEBPUSH
    }

    async fn send(&self, target: &PushTarget) -> Result<(), PushError> {
        let subscription = WebPushSubscription::parse(&target.token)
            .map_err(|_| PushError::InvalidToken("invalid_subscription".into()))?;
        let now = UnixMillis::now().millis();
        let ttl_secs = target
            .expires_at
            .millis()
            .saturating_sub(now)
            .div_ceil(1000)
            .max(1);
        let body = encrypt(&subscription, target.envelope.to_webpush_json().as_bytes())?;
        let authorization =
            self.vapid
                .authorization(&subscription.audience(), &self.config.subject, now / 1000);
        let answer = self
            .outbound
            .send(reqwest::Method::POST, &subscription.endpoint, |request| {
                request
                    .header("TTL", ttl_secs.to_string())
                    .header("Urgency", "high")
                    .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::AUTHORIZATION, authorization)
                    .body(body)
            })
            .await
            .map_err(|e| outbound_push_error(&e))?;
        classify(answer.status, retry_after(&answer.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn d(text: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(text).unwrap()
    }

    /// RFC 8291 Appendix A: the decryption this crate pairs with is the standard one, so a
    /// message our encryption produces and the local push service decrypts is RFC 8291.
    #[test]
    fn the_rfc_8291_example_decrypts() {
        let ua_private =
            p256::SecretKey::from_slice(&d("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
        let auth =
            web_push_native::Auth::from(<[u8; 16]>::try_from(d("BTBZMqHH6r4Tts7J_aSIgg")).unwrap());
        let message = d(
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
        );
        let plain = web_push_native::decrypt(message.clone(), &ua_private, &auth).unwrap();
        assert_eq!(plain, b"When I grow up, I want to be a watermelon");
        // A changed byte, or another secret, does not decrypt.
        let mut broken = message.clone();
        *broken.last_mut().unwrap() ^= 1;
        assert!(web_push_native::decrypt(broken, &ua_private, &auth).is_err());
        let other = web_push_native::Auth::from([0u8; 16]);
        assert!(web_push_native::decrypt(message, &ua_private, &other).is_err());
    }

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(reqwest::StatusCode::CREATED, None), Ok(()));
        assert_eq!(
            classify(reqwest::StatusCode::GONE, None),
            Err(PushError::InvalidToken("http_410".into()))
        );
        assert_eq!(
            classify(reqwest::StatusCode::NOT_FOUND, None),
            Err(PushError::InvalidToken("http_404".into()))
        );
        let hint = Some(Duration::from_secs(3));
        assert_eq!(
            classify(reqwest::StatusCode::TOO_MANY_REQUESTS, hint),
            Err(PushError::Retryable {
                reason: "http_429".into(),
                retry_after: hint
            })
        );
        assert!(matches!(
            classify(reqwest::StatusCode::BAD_GATEWAY, None),
            Err(PushError::Retryable { .. })
        ));
        for s in [400, 401, 403, 413, 301] {
            let status = reqwest::StatusCode::from_u16(s).unwrap();
            assert_eq!(
                classify(status, None),
                Err(PushError::Rejected(format!("http_{s}")))
            );
        }
    }

    #[test]
    fn subjects_are_mailto_or_https() {
        for good in [
            "mailto:ops@contoso.test",
            "https://signin.contoso.test/contact",
        ] {
            assert_eq!(check_subject(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "ops@contoso.test",
            "mailto:",
            "http://signin.contoso.test/",
            "https://",
            "mailto:ops@contoso.test\nX: y",
            "mailto:ops @contoso.test",
        ] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }
}
