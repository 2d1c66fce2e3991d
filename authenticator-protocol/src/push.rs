//! Push envelopes. A push carries only opaque IDs: never the number, never personal data, no
//! authority. The phone uses it only to know which request to fetch over the signed channel.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{AccountId, ProtocolError, RequestId, PROTOCOL_VERSION};

/// Key of the envelope object inside an APNs payload (outside `aps`, as Apple requires).
pub const APNS_KEY: &str = "psi";
/// Keys in an FCM data map.
pub const FCM_VERSION_KEY: &str = "psi_v";
pub const FCM_ACCOUNT_KEY: &str = "psi_aid";
pub const FCM_REQUEST_KEY: &str = "psi_rid";

/// How the server reaches a device: the `push.kind` a phone registers at enrollment
/// (`EnrollCompleteRequest.push`, PROTOCOL.md §5.2) and the `push_kind` field its enrollment
/// proof signs (§2). On the wire it is one of the lowercase strings `longpoll`, `apns`, `fcm`,
/// `webpush`, matched exactly (no trimming, no case folding).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PushChannelKind {
    /// No push service: the device long-polls `GET /api/v1/device/poll` (§5.4).
    #[serde(rename = "longpoll")]
    LongPoll,
    /// Apple Push Notification service; the token is the APNs device token.
    #[serde(rename = "apns")]
    Apns,
    /// Firebase Cloud Messaging; the token is the FCM registration token.
    #[serde(rename = "fcm")]
    Fcm,
    /// Web Push (RFC 8030, e.g. a UnifiedPush distributor); the token is the subscription in
    /// the compact form of [`crate::webpush::WebPushSubscription`].
    #[serde(rename = "webpush")]
    WebPush,
}

/// A `push.kind` that is not `longpoll`, `apns`, `fcm` or `webpush`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("push channel kind must be longpoll, apns, fcm or webpush")]
pub struct UnknownPushChannelKind;

impl PushChannelKind {
    /// Every kind, in wire order of PROTOCOL.md.
    pub const ALL: [PushChannelKind; 4] = [
        PushChannelKind::LongPoll,
        PushChannelKind::Apns,
        PushChannelKind::Fcm,
        PushChannelKind::WebPush,
    ];

    /// The wire string (also the bytes of the enrollment proof's `push_kind` field).
    pub const fn as_str(self) -> &'static str {
        match self {
            PushChannelKind::LongPoll => "longpoll",
            PushChannelKind::Apns => "apns",
            PushChannelKind::Fcm => "fcm",
            PushChannelKind::WebPush => "webpush",
        }
    }

    /// The kind named by exactly `text` (case-sensitive, no surrounding whitespace).
    pub fn parse(text: &str) -> Result<Self, UnknownPushChannelKind> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or(UnknownPushChannelKind)
    }
}

impl std::fmt::Display for PushChannelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PushChannelKind {
    type Err = UnknownPushChannelKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PushEnvelope {
    pub v: u32,
    #[serde(rename = "aid")]
    pub account_id: AccountId,
    #[serde(rename = "rid")]
    pub request_id: RequestId,
}

impl PushEnvelope {
    pub fn new(account_id: AccountId, request_id: RequestId) -> Self {
        PushEnvelope {
            v: PROTOCOL_VERSION,
            account_id,
            request_id,
        }
    }

    /// Parses JSON text: an APNs `userInfo` (`{"aps": …, "psi": {…}}`) or a bare envelope
    /// (`{"v":1,"aid":…,"rid":…}`, as in a long-poll result).
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        let value: Value =
            serde_json::from_str(text).map_err(|_| ProtocolError::MalformedPush("not JSON"))?;
        let obj = value
            .as_object()
            .ok_or(ProtocolError::MalformedPush("not a JSON object"))?;
        let inner = match obj.get(APNS_KEY) {
            Some(v) => v,
            None => &value,
        };
        Self::from_value(inner)
    }

    fn from_value(value: &Value) -> Result<Self, ProtocolError> {
        let obj = value
            .as_object()
            .ok_or(ProtocolError::MalformedPush("envelope is not an object"))?;
        let v = obj
            .get("v")
            .and_then(Value::as_u64)
            .ok_or(ProtocolError::MalformedPush("missing v"))?;
        let aid = obj
            .get("aid")
            .and_then(Value::as_str)
            .ok_or(ProtocolError::MalformedPush("missing aid"))?;
        let rid = obj
            .get("rid")
            .and_then(Value::as_str)
            .ok_or(ProtocolError::MalformedPush("missing rid"))?;
        Self::checked(v, aid, rid)
    }

    /// Parses an FCM data message (`RemoteMessage.data`).
    pub fn from_data_map(map: &HashMap<String, String>) -> Result<Self, ProtocolError> {
        let get = |k: &'static str| map.get(k).ok_or(ProtocolError::MalformedPush(k));
        let v = get(FCM_VERSION_KEY)?
            .parse()
            .map_err(|_| ProtocolError::MalformedPush("psi_v"))?;
        Self::checked(v, get(FCM_ACCOUNT_KEY)?, get(FCM_REQUEST_KEY)?)
    }

    fn checked(v: u64, aid: &str, rid: &str) -> Result<Self, ProtocolError> {
        if v != u64::from(PROTOCOL_VERSION) {
            return Err(ProtocolError::UnsupportedVersion(v));
        }
        let account_id = AccountId::parse(aid).map_err(|_| ProtocolError::MalformedPush("aid"))?;
        let request_id = RequestId::parse(rid).map_err(|_| ProtocolError::MalformedPush("rid"))?;
        Ok(PushEnvelope {
            v: PROTOCOL_VERSION,
            account_id,
            request_id,
        })
    }

    /// The APNs payload: a generic alert the Notification Service Extension replaces after it
    /// fetched and verified the details.
    pub fn to_apns_json(&self) -> Value {
        serde_json::json!({
            "aps": { "alert": { "title": "Sign-in request", "body": "Open to review" }, "mutable-content": 1 },
            APNS_KEY: self,
        })
    }

    /// The plaintext of a Web Push message (encrypted by the server with RFC 8291): the bare
    /// envelope as JSON text, which [`PushEnvelope::from_json`] reads back.
    pub fn to_webpush_json(&self) -> String {
        serde_json::json!({"v": self.v, "aid": self.account_id, "rid": self.request_id}).to_string()
    }

    pub fn to_fcm_data(&self) -> HashMap<String, String> {
        HashMap::from([
            (FCM_VERSION_KEY.to_owned(), self.v.to_string()),
            (FCM_ACCOUNT_KEY.to_owned(), self.account_id.to_string()),
            (FCM_REQUEST_KEY.to_owned(), self.request_id.to_string()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> PushEnvelope {
        PushEnvelope::new(AccountId::random(), RequestId::random())
    }

    #[test]
    fn all_three_transports_round_trip() {
        let e = env();
        assert_eq!(
            PushEnvelope::from_json(&e.to_apns_json().to_string()).unwrap(),
            e
        );
        assert_eq!(
            PushEnvelope::from_json(&serde_json::to_string(&e).unwrap()).unwrap(),
            e
        );
        assert_eq!(PushEnvelope::from_data_map(&e.to_fcm_data()).unwrap(), e);
        assert_eq!(PushEnvelope::from_json(&e.to_webpush_json()).unwrap(), e);
    }

    #[test]
    fn malformed_payloads_are_typed_errors() {
        let e = env();
        let cases = [
            "".to_string(),
            "[]".into(),
            "{}".into(),
            r#"{"aps":{}}"#.into(),
            r#"{"psi":"x"}"#.into(),
            format!(
                r#"{{"v":2,"aid":"{}","rid":"{}"}}"#,
                e.account_id, e.request_id
            ),
            format!(r#"{{"v":1,"aid":"x","rid":"{}"}}"#, e.request_id),
            format!(r#"{{"v":1,"aid":"{}"}}"#, e.account_id),
        ];
        for c in cases {
            assert!(PushEnvelope::from_json(&c).is_err(), "{c}");
        }
        let mut m = e.to_fcm_data();
        m.remove(FCM_REQUEST_KEY);
        assert_eq!(
            PushEnvelope::from_data_map(&m),
            Err(ProtocolError::MalformedPush("psi_rid"))
        );
        let mut m = e.to_fcm_data();
        m.insert(FCM_VERSION_KEY.into(), "one".into());
        assert_eq!(
            PushEnvelope::from_data_map(&m),
            Err(ProtocolError::MalformedPush("psi_v"))
        );
    }

    #[test]
    fn push_channel_kinds_are_the_four_lowercase_wire_strings() {
        let texts: Vec<&str> = PushChannelKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(texts, ["longpoll", "apns", "fcm", "webpush"]);
        for kind in PushChannelKind::ALL {
            // serde, as_str, Display, parse and FromStr agree.
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, Value::String(kind.as_str().into()));
            assert_eq!(
                serde_json::from_value::<PushChannelKind>(json).unwrap(),
                kind
            );
            assert_eq!(kind.to_string(), kind.as_str());
            assert_eq!(PushChannelKind::parse(kind.as_str()), Ok(kind));
            assert_eq!(kind.as_str().parse::<PushChannelKind>(), Ok(kind));
        }
    }

    #[test]
    fn unknown_push_channel_kinds_are_a_typed_error() {
        for bad in [
            "",
            "LongPoll",
            "longPoll",
            "APNS",
            "Fcm",
            " fcm",
            "fcm ",
            "long-poll",
            "poll",
            "gcm",
            "WebPush",
            "web-push",
            "unifiedpush",
        ] {
            assert_eq!(
                PushChannelKind::parse(bad),
                Err(UnknownPushChannelKind),
                "{bad:?}"
            );
            assert_eq!(bad.parse::<PushChannelKind>(), Err(UnknownPushChannelKind));
            assert!(serde_json::from_value::<PushChannelKind>(Value::String(bad.into())).is_err());
        }
        assert_eq!(
            UnknownPushChannelKind.to_string(),
            "push channel kind must be longpoll, apns, fcm or webpush"
        );
    }

    #[test]
    fn push_payloads_carry_no_personal_data() {
        let text = env().to_apns_json().to_string();
        // Only the fixed alert strings, the version and two opaque IDs.
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v[APNS_KEY].as_object().unwrap().len(), 3);
        assert_eq!(env().to_fcm_data().len(), 3);
        let web: Value = serde_json::from_str(&env().to_webpush_json()).unwrap();
        assert_eq!(web.as_object().unwrap().len(), 3);
    }
}
