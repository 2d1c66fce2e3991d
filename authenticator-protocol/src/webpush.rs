//! Web Push subscriptions (RFC 8030 push services, RFC 8291 message encryption): the `push.token`
//! of a `webpush` channel (PROTOCOL.md §6.1).
//!
//! A subscription is the push resource URL (`endpoint`), the user agent's P-256 public key
//! (`p256dh`, 65 bytes, uncompressed SEC1) and its authentication secret (`auth`, 16 bytes). In
//! `push.token` it has this compact form, with both keys base64url without padding:
//!
//! ```text
//! <p256dh: 87 characters>.<auth: 22 characters>.<endpoint URL>
//! ```
//!
//! base64url has no `.`, so the first two dots split it; the endpoint is the rest, verbatim.
//! The endpoint must be `https`; plain `http` is accepted only for a loopback host (a local
//! push service in tests), as for the server URL of an enrollment link.
use url::Url;

use crate::encoding::{b64, unb64_fixed};

/// The length of an uncompressed P-256 point (`0x04 || x || y`).
pub const P256DH_LEN: usize = 65;
/// The length of the authentication secret (RFC 8291 §3.2).
pub const AUTH_LEN: usize = 16;

/// What is wrong with a `webpush` token. Messages never carry the token (the authentication
/// secret is a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WebPushTokenError {
    #[error("a webpush token is <p256dh>.<auth>.<endpoint>")]
    Shape,
    #[error("p256dh must be a 65-byte uncompressed P-256 point in base64url")]
    PublicKey,
    #[error("auth must be 16 bytes in base64url")]
    Auth,
    #[error("the endpoint is not an absolute URL")]
    Endpoint,
    #[error("the endpoint must use https (http only on a loopback address)")]
    InsecureEndpoint,
}

/// A parsed Web Push subscription.
#[derive(Clone, PartialEq, Eq)]
pub struct WebPushSubscription {
    pub endpoint: Url,
    /// The user agent's ECDH public key, uncompressed SEC1.
    pub p256dh: [u8; P256DH_LEN],
    /// The authentication secret.
    pub auth: [u8; AUTH_LEN],
}

impl std::fmt::Debug for WebPushSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The endpoint is a capability URL and `auth` a secret: only the origin is shown.
        f.debug_struct("WebPushSubscription")
            .field("origin", &self.endpoint.origin().ascii_serialization())
            .finish_non_exhaustive()
    }
}

impl WebPushSubscription {
    /// Parses the compact form (exactly, no trimming) and checks every part.
    pub fn parse(token: &str) -> Result<Self, WebPushTokenError> {
        let mut parts = token.splitn(3, '.');
        let (Some(p256dh), Some(auth), Some(endpoint)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(WebPushTokenError::Shape);
        };
        let p256dh = unb64_fixed::<P256DH_LEN>("p256dh", p256dh)
            .map_err(|_| WebPushTokenError::PublicKey)?;
        if p256dh[0] != 0x04 || p256::PublicKey::from_sec1_bytes(&p256dh).is_err() {
            return Err(WebPushTokenError::PublicKey);
        }
        let auth = unb64_fixed::<AUTH_LEN>("auth", auth).map_err(|_| WebPushTokenError::Auth)?;
        // The URL parser would accept surrounding whitespace; the token must not have any.
        if endpoint.is_empty() || endpoint.trim() != endpoint {
            return Err(WebPushTokenError::Endpoint);
        }
        let endpoint = Url::parse(endpoint).map_err(|_| WebPushTokenError::Endpoint)?;
        check_endpoint(&endpoint)?;
        Ok(WebPushSubscription {
            endpoint,
            p256dh,
            auth,
        })
    }

    /// The compact form, as [`WebPushSubscription::parse`] reads it.
    pub fn to_token(&self) -> String {
        format!(
            "{}.{}.{}",
            b64(&self.p256dh),
            b64(&self.auth),
            self.endpoint
        )
    }

    /// The `aud` of a VAPID token for this endpoint (RFC 8292 §2): its origin.
    pub fn audience(&self) -> String {
        self.endpoint.origin().ascii_serialization()
    }

    /// Whether the endpoint is plain http (allowed only on loopback).
    pub fn is_insecure_loopback(&self) -> bool {
        self.endpoint.scheme() == "http"
    }
}

/// `https` with a host, or `http` on a loopback host; no user name or password.
pub fn check_endpoint(url: &Url) -> Result<(), WebPushTokenError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => return Err(WebPushTokenError::Endpoint),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(WebPushTokenError::Endpoint);
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(WebPushTokenError::InsecureEndpoint),
        _ => Err(WebPushTokenError::Endpoint),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::elliptic_curve::sec1::ToEncodedPoint;

    fn public_key() -> p256::PublicKey {
        let (signer, _) = crate::EcdsaSigner::generate().unwrap();
        p256::PublicKey::from_sec1_bytes(signer.public_key().as_bytes()).unwrap()
    }

    fn keys() -> (String, String) {
        let point = public_key().to_encoded_point(false);
        (b64(point.as_bytes()), b64(&[7u8; 16]))
    }

    #[test]
    fn the_compact_form_round_trips() {
        let (p, a) = keys();
        assert_eq!(p.len(), 87);
        assert_eq!(a.len(), 22);
        let token = format!("{p}.{a}.https://push.example.net/wpush/v2/gAAA.BB?x=1");
        let s = WebPushSubscription::parse(&token).unwrap();
        assert_eq!(
            s.endpoint.as_str(),
            "https://push.example.net/wpush/v2/gAAA.BB?x=1"
        );
        assert_eq!(s.auth, [7u8; 16]);
        assert_eq!(s.to_token(), token);
        assert_eq!(s.audience(), "https://push.example.net");
        assert!(!s.is_insecure_loopback());
        let debug = format!("{s:?}");
        assert!(!debug.contains("wpush") && !debug.contains(&a), "{debug}");

        let local = WebPushSubscription::parse(&format!("{p}.{a}.http://127.0.0.1:9/p/1")).unwrap();
        assert!(local.is_insecure_loopback());
        assert_eq!(local.audience(), "http://127.0.0.1:9");
    }

    #[test]
    fn bad_tokens_are_typed_errors() {
        let (p, a) = keys();
        let compressed = b64(public_key().to_encoded_point(true).as_bytes());
        let mut off_curve = [0u8; 65];
        off_curve[0] = 4;
        off_curve[1] = 1;
        use WebPushTokenError::*;
        for (token, want) in [
            (String::new(), Shape),
            (format!("{p}.{a}"), Shape),
            (format!("{p}.{a}."), Endpoint),
            (format!("{p}.{a}. https://push.example.net/x"), Endpoint),
            (format!("{p}.{a}.push.example.net/x"), Endpoint),
            (
                format!("{p}.{a}.http://push.example.net/x"),
                InsecureEndpoint,
            ),
            (format!("{p}.{a}.http://10.0.0.1/x"), InsecureEndpoint),
            (format!("{p}.{a}.ftp://push.example.net/x"), Endpoint),
            (format!("{p}.{a}.https://u:pw@push.example.net/x"), Endpoint),
            (
                format!("{compressed}.{a}.https://push.example.net/x"),
                PublicKey,
            ),
            (
                format!("{}.{a}.https://push.example.net/x", b64(&off_curve)),
                PublicKey,
            ),
            (format!("{p}=.{a}.https://push.example.net/x"), PublicKey),
            (
                format!("{p}.{}.https://push.example.net/x", b64(&[1u8; 15])),
                Auth,
            ),
            (format!("{a}.{p}.https://push.example.net/x"), PublicKey),
        ] {
            assert_eq!(WebPushSubscription::parse(&token), Err(want), "{token}");
        }
    }
}
