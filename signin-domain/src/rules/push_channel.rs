//! The one check of a push channel a device registers, at enrollment (PROTOCOL.md §5.2) and
//! when it rotates its token (§5.10).
use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::webpush::WebPushSubscription;
use authenticator_protocol::wire::PushChannel;

use crate::error::AppError;
use crate::outbound::OutboundPolicy;

/// The longest push token accepted (an FCM token is ~160 bytes, a Web Push subscription with
/// a long endpoint under 1 KiB).
pub const MAX_PUSH_TOKEN_BYTES: usize = 4096;

/// The channel's kind, once its token is one the server may push to: at most
/// [`MAX_PUSH_TOKEN_BYTES`]; for Web Push a real P-256 key, a 16-byte secret (§6.1) and an
/// endpoint the outbound policy accepts (https to a host that is not an internal address; its
/// name is resolved and checked again at every push).
pub fn check(outbound: &OutboundPolicy, push: &PushChannel) -> Result<PushChannelKind, AppError> {
    let kind = push.parsed_kind().map_err(|_| {
        AppError::InvalidRequest("push.kind must be longpoll, apns, fcm or webpush")
    })?;
    if push.token.len() > MAX_PUSH_TOKEN_BYTES {
        return Err(AppError::InvalidRequest("push token too long"));
    }
    if kind == PushChannelKind::WebPush {
        let subscription = WebPushSubscription::parse(&push.token).map_err(|_| {
            AppError::InvalidRequest("a webpush token is <p256dh>.<auth>.<https endpoint>")
        })?;
        outbound
            .check_url(&subscription.endpoint)
            .map_err(AppError::EndpointRefused)?;
    }
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lengths_and_web_push_endpoints_are_checked() {
        let policy = OutboundPolicy::default();
        let channel = |kind: &str, token: &str| PushChannel {
            kind: kind.into(),
            token: token.into(),
        };
        assert_eq!(
            check(&policy, &channel("fcm", "t")).unwrap(),
            PushChannelKind::Fcm
        );
        assert!(matches!(
            check(&policy, &channel("gcm", "t")),
            Err(AppError::InvalidRequest(_))
        ));
        assert!(matches!(
            check(&policy, &channel("apns", &"a".repeat(4097))),
            Err(AppError::InvalidRequest(_))
        ));
        assert!(matches!(
            check(&policy, &channel("webpush", "not-a-subscription")),
            Err(AppError::InvalidRequest(_))
        ));
    }
}
