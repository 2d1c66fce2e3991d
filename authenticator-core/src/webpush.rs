//! Web Push (UnifiedPush) registration: the compact subscription token of PROTOCOL.md §6.1.
use authenticator_protocol::webpush::WebPushSubscription;

use crate::error::AuthenticatorError;

/// The `PushRegistration.token` for `PushKind::WebPush`: a Web Push subscription as the push
/// service (e.g. the UnifiedPush distributor) gave it — the endpoint URL, the `p256dh` public
/// key (65-byte uncompressed P-256) and the 16-byte `auth` secret, both base64url (padding is
/// accepted). Checked as the server checks it: the endpoint must be https (http only on a
/// loopback address, for local test push services).
#[uniffi::export]
pub fn web_push_token(
    endpoint: String,
    p256dh: String,
    auth: String,
) -> Result<String, AuthenticatorError> {
    let unpad = |s: &str| s.trim().trim_end_matches('=').to_owned();
    let token = format!("{}.{}.{}", unpad(&p256dh), unpad(&auth), endpoint.trim());
    WebPushSubscription::parse(&token)
        .map(|s| s.to_token())
        .map_err(|e| AuthenticatorError::InvalidInput {
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use authenticator_protocol::encoding::b64;
    use base64::Engine;

    #[test]
    fn tokens_are_built_from_the_subscription_parts() {
        let (signer, _) = authenticator_protocol::EcdsaSigner::generate().unwrap();
        let key = signer.public_key();
        let padded_auth = base64::engine::general_purpose::URL_SAFE.encode([3u8; 16]);
        assert!(padded_auth.ends_with("=="));
        let token = web_push_token(
            " https://up.example.net/push/abc ".into(),
            key.to_b64(),
            padded_auth,
        )
        .unwrap();
        assert_eq!(
            token,
            format!(
                "{}.{}.https://up.example.net/push/abc",
                key.to_b64(),
                b64(&[3u8; 16])
            )
        );
        for (endpoint, p256dh, auth) in [
            ("http://up.example.net/push", key.to_b64(), b64(&[3u8; 16])),
            (
                "https://up.example.net/push",
                b64(&[4u8; 65]),
                b64(&[3u8; 16]),
            ),
            ("https://up.example.net/push", key.to_b64(), b64(&[3u8; 8])),
            ("not a url", key.to_b64(), b64(&[3u8; 16])),
        ] {
            assert!(matches!(
                web_push_token(endpoint.into(), p256dh, auth),
                Err(AuthenticatorError::InvalidInput { .. })
            ));
        }
    }
}
