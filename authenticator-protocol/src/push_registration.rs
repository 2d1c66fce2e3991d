//! Push-token rotation (PROTOCOL.md §5.10): a device tells its server that its push channel
//! changed (FCM `onNewToken`, a new APNs device token, a UnifiedPush endpoint change). The
//! account's device key signs the new channel, the account and the time; the server accepts
//! only a registration newer than the last one it stored, so a replayed one cannot bring an
//! old token back.
use serde::{Deserialize, Serialize};

use crate::canonical::{Canonical, PUSH_REGISTRATION_TAG};
use crate::wire::PushChannel;
use crate::{AccountId, UnixMillis};

/// `POST /api/v1/device/push`
pub const PUSH_REGISTRATION_PATH: &str = "/api/v1/device/push";

/// What the device key signs: the account, the channel exactly as sent (`kind` and `token`
/// as text, nothing trimmed) and the time.
#[derive(Clone, PartialEq, Eq)]
pub struct PushRegistrationUpdate {
    pub account_id: AccountId,
    pub push_kind: String,
    /// A push service credential: never logged (`Debug` hides it).
    pub push_token: String,
    pub timestamp: UnixMillis,
}

impl std::fmt::Debug for PushRegistrationUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRegistrationUpdate")
            .field("account_id", &self.account_id)
            .field("push_kind", &self.push_kind)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl PushRegistrationUpdate {
    pub fn signed_bytes(&self) -> Vec<u8> {
        Canonical::new(PUSH_REGISTRATION_TAG)
            .str(self.account_id.as_str())
            .str(&self.push_kind)
            .str(&self.push_token)
            .u64(self.timestamp.millis())
            .finish()
    }

    /// The body that carries this update with the device key's `signature` (base64url).
    pub fn to_wire(&self, signature: &crate::Signature) -> PushRegistrationRequest {
        PushRegistrationRequest {
            account_id: self.account_id.clone(),
            push: PushChannel {
                kind: self.push_kind.clone(),
                token: self.push_token.clone(),
            },
            timestamp: self.timestamp,
            signature: signature.to_b64(),
        }
    }
}

/// `POST /api/v1/device/push`: answered `204 No Content`.
#[derive(Clone, Serialize, Deserialize)]
pub struct PushRegistrationRequest {
    pub account_id: AccountId,
    pub push: PushChannel,
    pub timestamp: UnixMillis,
    /// The account's device key over [`PushRegistrationUpdate::signed_bytes`].
    pub signature: String,
}

impl std::fmt::Debug for PushRegistrationRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushRegistrationRequest")
            .field("account_id", &self.account_id)
            .field("kind", &self.push.kind)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

impl PushRegistrationRequest {
    /// The signed message this body claims, rebuilt from its fields as received.
    pub fn update(&self) -> PushRegistrationUpdate {
        PushRegistrationUpdate {
            account_id: self.account_id.clone(),
            push_kind: self.push.kind.clone(),
            push_token: self.push.token.clone(),
            timestamp: self.timestamp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EcdsaSigner;

    fn update() -> PushRegistrationUpdate {
        PushRegistrationUpdate {
            // Fixed, so that each changed field below is the only difference.
            account_id: AccountId::parse("EBESExQVFhcYGRobHB0eHw").unwrap(),
            push_kind: "fcm".into(),
            push_token: "new-token".into(),
            timestamp: UnixMillis(7),
        }
    }

    #[test]
    fn the_body_round_trips_to_the_signed_message() {
        let (key, _) = EcdsaSigner::generate().unwrap();
        let public = key.public_key();
        let u = update();
        let body = u.to_wire(&key.sign(&u.signed_bytes()));
        let json = serde_json::to_string(&body).unwrap();
        let back: PushRegistrationRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.update(), u);
        let sig = crate::Signature::from_b64("signature", &back.signature).unwrap();
        assert_eq!(public.verify(&back.update().signed_bytes(), &sig), Ok(()));
    }

    #[test]
    fn every_field_is_signed() {
        let base = update().signed_bytes();
        let mut changed = Vec::new();
        let mut u = update();
        u.push_kind = "apns".into();
        changed.push(u);
        let mut u = update();
        u.push_token = "old-token".into();
        changed.push(u);
        let mut u = update();
        u.timestamp = UnixMillis(8);
        changed.push(u);
        let mut u = update();
        u.account_id = AccountId::random();
        changed.push(u);
        for u in changed {
            assert_ne!(u.signed_bytes(), base, "{u:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let u = update();
        assert!(!format!("{u:?}").contains("new-token"));
        let (key, _) = EcdsaSigner::generate().unwrap();
        let body = u.to_wire(&key.sign(&u.signed_bytes()));
        assert!(!format!("{body:?}").contains("new-token"));
    }
}
