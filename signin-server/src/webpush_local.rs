//! A local Web Push service for tests (feature `testing`): an axum server on 127.0.0.1 that
//! hands out subscriptions (a fresh P-256 key pair and authentication secret each, endpoint
//! `http://127.0.0.1:PORT/push/ID`; a server enrolls and pushes to such plain-http loopback
//! endpoints only under the outbound policy's development setting, `allow_http_loopback`) and,
//! for every message, does what a real push service and the phone's UnifiedPush connector do
//! together:
//! - checks the VAPID header (RFC 8292): `Authorization: vapid t=<JWT>, k=<key>`, the JWT is
//!   ES256 and verifies under `k`, `aud` is this service's origin, `exp` is in the future and
//!   at most 24 hours away, `sub` is a `mailto:` or `https:` URL, and `k` is the key the
//!   subscription was restricted to (if it was);
//! - checks `Content-Encoding: aes128gcm`, a numeric `TTL` and the `Urgency`;
//! - decrypts the body (RFC 8291) with the subscription's private key and auth secret.
//!
//! It answers 404 for an unknown subscription, 410 for one the phone dropped, 401/403 for a
//! bad VAPID header, 400 for a body that does not decrypt, and otherwise a scripted status or
//! 201 Created (a scripted 3xx carries `Location:` back to the same subscription, so a client
//! that followed redirects would be seen). Everything it received is recorded for the tests.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authenticator_protocol::encoding::{b64, unb64};
use authenticator_protocol::webpush::WebPushSubscription;
use authenticator_protocol::{EcdsaSigner, UnixMillis};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use p256::ecdsa::signature::Verifier;
use serde_json::Value;

use signin_domain::delivery::jwt::decode;

/// One subscription's private half (what the phone keeps).
struct Sub {
    secret: web_push_native::p256::SecretKey,
    auth: [u8; 16],
    gone: bool,
    /// The VAPID public key (base64url) the subscription was restricted to.
    restricted_to: Option<String>,
}

/// A subscription handed to a phone: its id here and the `webpush` push token.
#[derive(Clone)]
pub struct LocalSubscription {
    pub id: String,
    pub token: String,
}

impl std::fmt::Debug for LocalSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSubscription")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The checked VAPID header of one message.
#[derive(Debug, Clone)]
pub struct Vapid {
    pub header: Value,
    pub claims: Value,
    /// `k=`: the public key the JWT verified under.
    pub key: String,
}

/// One message as the service received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub subscription: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The VAPID check: the verified header and claims, or why it failed.
    pub vapid: Result<Vapid, String>,
    /// The decrypted message, or why it did not decrypt (not tried when VAPID failed).
    pub plaintext: Result<String, String>,
    /// What the service answered.
    pub status: u16,
}

#[derive(Default)]
struct Shared {
    origin: String,
    subs: Mutex<HashMap<String, Sub>>,
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<u16>>,
    arrived: tokio::sync::Notify,
}

/// The running service.
#[derive(Clone)]
pub struct LocalPushService {
    shared: Arc<Shared>,
}

impl LocalPushService {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            origin: format!("http://{addr}"),
            ..Default::default()
        });
        let router = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(LocalPushService { shared })
    }

    /// `http://127.0.0.1:PORT`: the `aud` every VAPID token must name.
    pub fn origin(&self) -> &str {
        &self.shared.origin
    }

    /// A new subscription that accepts any VAPID key.
    pub fn subscribe(&self) -> LocalSubscription {
        self.subscribe_with(None)
    }

    /// A new subscription restricted to one VAPID public key (an `applicationServerKey`).
    pub fn subscribe_restricted(&self, vapid_public_key: &str) -> LocalSubscription {
        self.subscribe_with(Some(vapid_public_key.to_owned()))
    }

    fn subscribe_with(&self, restricted_to: Option<String>) -> LocalSubscription {
        let (_, pkcs8) = EcdsaSigner::generate().expect("a fresh P-256 key");
        use p256::pkcs8::DecodePrivateKey;
        let secret = web_push_native::p256::SecretKey::from_pkcs8_der(&pkcs8).expect("PKCS#8");
        let mut auth = [0u8; 16];
        let mut idb = [0u8; 12];
        use rand::RngCore;
        rand::rngs::OsRng.fill_bytes(&mut auth);
        rand::rngs::OsRng.fill_bytes(&mut idb);
        let id = b64(&idb);
        let point = {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            secret.public_key().to_encoded_point(false)
        };
        let subscription = WebPushSubscription {
            endpoint: url::Url::parse(&format!("{}/push/{id}", self.shared.origin)).expect("a URL"),
            p256dh: point.as_bytes().try_into().expect("65 bytes"),
            auth,
        };
        self.shared.subs.lock().unwrap().insert(
            id.clone(),
            Sub {
                secret,
                auth,
                gone: false,
                restricted_to,
            },
        );
        LocalSubscription {
            id,
            token: subscription.to_token(),
        }
    }

    /// The phone dropped this subscription: later messages get 410 Gone.
    pub fn unsubscribe(&self, id: &str) {
        if let Some(s) = self.shared.subs.lock().unwrap().get_mut(id) {
            s.gone = true;
        }
    }

    /// The next answers to accepted messages (e.g. 429, 503), before the default 201.
    pub fn script(&self, statuses: &[u16]) {
        self.shared
            .script
            .lock()
            .unwrap()
            .extend(statuses.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until more than `seen` messages arrived; the first new one.
    pub async fn next_after(&self, seen: usize, timeout: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.shared.received.lock().unwrap().get(seen) {
                return Some(r.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Decrypts `body` with the keys of subscription `id` (e.g. another phone's: it must fail).
    pub fn decrypt_as(&self, id: &str, body: &[u8]) -> Result<String, String> {
        let subs = self.shared.subs.lock().unwrap();
        let sub = subs.get(id).ok_or("unknown subscription")?;
        decrypt(sub, body)
    }
}

fn decrypt(sub: &Sub, body: &[u8]) -> Result<String, String> {
    let auth = web_push_native::Auth::from(sub.auth);
    let plain = web_push_native::decrypt(body.to_vec(), &sub.secret, &auth)
        .map_err(|e| format!("does not decrypt: {e}"))?;
    String::from_utf8(plain).map_err(|_| "not UTF-8".to_owned())
}

/// Checks `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292 §3).
pub fn check_vapid(headers: &HeaderMap, origin: &str, now_secs: u64) -> Result<Vapid, String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("no Authorization header")?;
    let params = auth.strip_prefix("vapid ").ok_or("not the vapid scheme")?;
    let (mut t, mut k) = (None, None);
    for part in params.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.trim()),
            Some(("k", v)) => k = Some(v.trim()),
            _ => return Err(format!("unexpected parameter {part:?}")),
        }
    }
    let (t, k) = (t.ok_or("no t=")?, k.ok_or("no k=")?);
    let key_bytes = unb64("k", k).map_err(|_| "k is not base64url")?;
    if key_bytes.len() != 65 || key_bytes[0] != 4 {
        return Err("k is not an uncompressed P-256 point".into());
    }
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&key_bytes)
        .map_err(|_| "k is not a P-256 key")?;
    let jwt = decode(t).map_err(|e| format!("t is not a JWT: {e}"))?;
    if jwt.header["alg"] != "ES256" {
        return Err("alg is not ES256".into());
    }
    let signature = p256::ecdsa::Signature::from_slice(&jwt.signature)
        .map_err(|_| "the signature is not r||s")?;
    key.verify(jwt.signing_input.as_bytes(), &signature)
        .map_err(|_| "the JWT does not verify under k")?;
    if jwt.claims["aud"] != origin {
        return Err(format!("aud {} is not {origin}", jwt.claims["aud"]));
    }
    let exp = jwt.claims["exp"].as_u64().ok_or("no numeric exp")?;
    if exp <= now_secs || exp > now_secs + 24 * 3600 {
        return Err(format!("exp {exp} is not within 24 h of {now_secs}"));
    }
    let sub = jwt.claims["sub"].as_str().ok_or("no sub")?;
    if !(sub.starts_with("mailto:") || sub.starts_with("https://")) {
        return Err("sub is not mailto: or https:".into());
    }
    Ok(Vapid {
        header: jwt.header,
        claims: jwt.claims,
        key: k.to_owned(),
    })
}

fn check_headers(headers: &HeaderMap) -> Result<(), String> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if get("content-encoding") != Some("aes128gcm") {
        return Err("Content-Encoding is not aes128gcm".into());
    }
    get("ttl")
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or("no numeric TTL")?;
    match get("urgency") {
        None | Some("very-low" | "low" | "normal" | "high") => Ok(()),
        Some(_) => Err("bad Urgency".into()),
    }
}

async fn receive(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let now_secs = UnixMillis::now().millis() / 1000;
    let mut record = Received {
        subscription: id.clone(),
        headers: headers.clone(),
        body: body.to_vec(),
        vapid: Err("not checked".into()),
        plaintext: Err("not tried".into()),
        status: 0,
    };
    let status = {
        let subs = s.subs.lock().unwrap();
        match subs.get(&id) {
            None => StatusCode::NOT_FOUND,
            Some(sub) if sub.gone => StatusCode::GONE,
            Some(sub) => {
                record.vapid = check_vapid(&headers, &s.origin, now_secs);
                match &record.vapid {
                    Err(_) => StatusCode::UNAUTHORIZED,
                    Ok(v) if sub.restricted_to.as_ref().is_some_and(|r| *r != v.key) => {
                        StatusCode::FORBIDDEN
                    }
                    Ok(_) => {
                        record.plaintext =
                            check_headers(&headers).and_then(|()| decrypt(sub, &body));
                        if record.plaintext.is_err() {
                            StatusCode::BAD_REQUEST
                        } else {
                            s.script
                                .lock()
                                .unwrap()
                                .pop_front()
                                .and_then(|c| StatusCode::from_u16(c).ok())
                                .unwrap_or(StatusCode::CREATED)
                        }
                    }
                }
            }
        }
    };
    record.status = status.as_u16();
    s.received.lock().unwrap().push(record);
    s.arrived.notify_waiters();
    if status.is_redirection() {
        let location = format!("{}/push/{id}", s.origin);
        return (status, [(header::LOCATION, location)]).into_response();
    }
    status.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use signin_domain::delivery::webpush::{new_stored_key, VapidKey};

    const ORIGIN: &str = "http://127.0.0.1:9";
    const SUBJECT: &str = "mailto:ops@contoso.test";

    fn key() -> VapidKey {
        VapidKey::from_stored(&new_stored_key().unwrap()).unwrap()
    }

    fn headers(authorization: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", authorization.parse().unwrap());
        h
    }

    /// The checker the tests rely on refuses each kind of bad VAPID header.
    #[test]
    fn the_vapid_check_refuses_what_a_push_service_refuses() {
        let now = 1_800_000_000u64;
        let (a, b) = (key(), key());
        let good = a.authorization(ORIGIN, SUBJECT, now);
        let v = check_vapid(&headers(&good), ORIGIN, now).unwrap();
        assert_eq!(v.key, a.public_key());
        assert_eq!(v.claims["sub"], SUBJECT);

        let token = good
            .strip_prefix("vapid t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        let mut bad: Vec<(String, &str)> = vec![
            // Signed by one key, advertised with another.
            (
                format!("vapid t={token}, k={}", b.public_key()),
                "does not verify",
            ),
            (a.authorization("http://127.0.0.1:10", SUBJECT, now), "aud"),
            (a.authorization(ORIGIN, "ops@contoso.test", now), "sub"),
            (format!("Bearer {token}"), "not the vapid scheme"),
            (format!("vapid t={token}"), "no k="),
            (format!("vapid k={}", a.public_key()), "no t="),
        ];
        // Expired, and valid for more than 24 hours.
        bad.push((a.authorization(ORIGIN, SUBJECT, now - 13 * 3600), "exp"));
        bad.push((a.authorization(ORIGIN, SUBJECT, now + 13 * 3600), "exp"));
        for (header, why) in bad {
            let err = check_vapid(&headers(&header), ORIGIN, now).unwrap_err();
            assert!(err.contains(why), "{header}: {err}");
        }
        assert!(check_vapid(&HeaderMap::new(), ORIGIN, now).is_err());
    }
}
