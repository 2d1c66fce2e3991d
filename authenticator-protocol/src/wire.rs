//! JSON bodies of the device endpoints (`/api/v1/...`). See docs/PROTOCOL.md for each route.
use serde::{Deserialize, Serialize};

use crate::encoding::b64;
use crate::push::{PushChannelKind, PushEnvelope, UnknownPushChannelKind};
use crate::sign_in::{Decision, SignInResponse, SignedRequestDetails};
use crate::{AccountId, Signature, UnixMillis};

pub const ENROLL_CHALLENGE_PATH: &str = "/api/v1/enroll/challenge";
pub const ENROLL_COMPLETE_PATH: &str = "/api/v1/enroll/complete";
pub const PASSWORDLESS_PATH: &str = "/api/v1/device/passwordless";
pub const POLL_PATH: &str = "/api/v1/device/poll";
/// `GET /api/v1/device/requests/{request_id}` and `POST …/{request_id}/response`.
pub const REQUESTS_PATH: &str = "/api/v1/device/requests";
/// `DELETE`: the phone removed the account; the server forgets the device (§5.7).
pub const DEVICE_PATH: &str = "/api/v1/device";

/// `POST /api/v1/enroll/challenge`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollChallengeRequest {
    pub code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollChallengeResponse {
    pub challenge: String,
    pub upn: String,
    pub display_name: String,
    pub server_name: String,
    pub expires_at: UnixMillis,
    pub server_public_key: String,
    /// Server signature over `EnrollChallenge::signed_bytes(code)`.
    pub signature: String,
}

/// How the server reaches the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushChannel {
    /// `longpoll`, `apns` or `fcm`: a [`PushChannelKind`] as text. Kept a string so that a
    /// server can answer an unknown kind with its own `invalid_request` message;
    /// [`PushChannel::parsed_kind`] types it.
    pub kind: String,
    /// Device token for APNs/FCM; empty for long-poll.
    #[serde(default)]
    pub token: String,
}

impl PushChannel {
    pub fn new(kind: PushChannelKind, token: impl Into<String>) -> Self {
        PushChannel {
            kind: kind.as_str().to_owned(),
            token: token.into(),
        }
    }

    /// The typed kind, or the error for a kind that is not `longpoll`, `apns` or `fcm`.
    pub fn parsed_kind(&self) -> Result<PushChannelKind, UnknownPushChannelKind> {
        PushChannelKind::parse(&self.kind)
    }
}

/// `POST /api/v1/enroll/complete`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollCompleteRequest {
    pub code: String,
    pub challenge: String,
    pub device_public_key: String,
    pub push: PushChannel,
    pub device_name: String,
    pub timestamp: UnixMillis,
    /// Device-key signature over `EnrollProof::signed_bytes()`.
    pub signature: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct EnrollCompleteResponse {
    pub account_id: AccountId,
    /// The account's offline-fallback TOTP secret as an `otpauth://totp/…` URI (RFC 6238,
    /// Key Uri Format), given once, here (PROTOCOL.md §5.2). Absent from servers without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_uri: Option<String>,
}

impl std::fmt::Debug for EnrollCompleteResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollCompleteResponse")
            .field("account_id", &self.account_id)
            .field("totp_uri", &self.totp_uri.as_ref().map(|_| ".."))
            .finish()
    }
}

/// `POST /api/v1/device/passwordless`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordlessRequest {
    pub account_id: AccountId,
    pub passwordless_public_key: String,
    pub timestamp: UnixMillis,
    /// Signature by the account's device key.
    pub device_signature: String,
    /// Signature by the new passwordless key (proof of possession).
    pub key_signature: String,
}

/// `GET /api/v1/device/poll?wait=SECONDS` (device-authenticated long-poll).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PollResponse {
    pub pushes: Vec<PushEnvelope>,
}

/// `GET /api/v1/device/requests/{request_id}` answers with this.
pub type RequestDetailsResponse = SignedRequestDetails;

/// `POST /api/v1/device/requests/{request_id}/response`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseBody {
    pub account_id: AccountId,
    pub decision: Decision,
    pub typed_number: Option<String>,
    pub nonce: String,
    pub context_sha256: String,
    pub timestamp: UnixMillis,
    /// On an approval of a browser-bound request only (§5.9): the sign-in page's origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_origin: Option<String>,
    pub signature: String,
}

// The conversion lives here, above `sign_in`, so that `sign_in` (the signed messages) does not
// import the JSON bodies that carry them: `wire` → `sign_in`, never back.
impl SignInResponse {
    pub fn to_wire(&self, signature: &Signature) -> ResponseBody {
        ResponseBody {
            account_id: self.account_id.clone(),
            decision: self.decision,
            typed_number: self.typed_number.as_ref().map(|n| n.as_str().to_owned()),
            nonce: b64(&self.nonce),
            context_sha256: b64(&self.context_sha256),
            timestamp: self.timestamp,
            browser_origin: self.browser_origin.clone(),
            signature: signature.to_b64(),
        }
    }
}

/// Final state after an accepted response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseAccepted {
    /// `approved`, `denied` or `reported`.
    pub status: String,
}

/// Every error response: `{"error": "<code>", "message": "...", "attempts_left": n?}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
}

/// Stable machine-readable error codes. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidCode,
    UnknownAccount,
    Unauthorized,
    BadSignature,
    StaleTimestamp,
    UnknownRequest,
    RequestExpired,
    RequestNotPending,
    WrongNumber,
    RequestFailed,
    Replay,
    KeyNotAllowed,
    PolicyDisabled,
    NotPasswordlessCapable,
    RateLimited,
    /// Sign-ins for this user are paused after a "this wasn't me" report.
    Paused,
    /// An approval of a browser-bound request (§5.9) without the origin of the real sign-in
    /// page: the authenticator did not see it, or saw another one (a relaying proxy's).
    BrowserNotBound,
    /// The server is at a capacity limit (connections, waiting long-polls, password checks);
    /// `Retry-After` says when to retry.
    ServerBusy,
    /// Enrollment with a push channel refused: the user already has the most devices with a
    /// push channel the server allows.
    TooManyPushChannels,
    /// A move code (§5.11) that was already used.
    MoveUsed,
    /// A move code (§5.11) past its expiry.
    MoveExpired,
    /// A move code (§5.11) whose vouching device was removed (or is not active).
    MoveVoucherRemoved,
    Internal,
    /// A code this client version does not know.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidCode => "invalid_code",
            ErrorCode::UnknownAccount => "unknown_account",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::BadSignature => "bad_signature",
            ErrorCode::StaleTimestamp => "stale_timestamp",
            ErrorCode::UnknownRequest => "unknown_request",
            ErrorCode::RequestExpired => "request_expired",
            ErrorCode::RequestNotPending => "request_not_pending",
            ErrorCode::WrongNumber => "wrong_number",
            ErrorCode::RequestFailed => "request_failed",
            ErrorCode::Replay => "replay",
            ErrorCode::KeyNotAllowed => "key_not_allowed",
            ErrorCode::PolicyDisabled => "policy_disabled",
            ErrorCode::NotPasswordlessCapable => "not_passwordless_capable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Paused => "paused",
            ErrorCode::BrowserNotBound => "browser_not_bound",
            ErrorCode::ServerBusy => "server_busy",
            ErrorCode::TooManyPushChannels => "too_many_push_channels",
            ErrorCode::MoveUsed => "move_used",
            ErrorCode::MoveExpired => "move_expired",
            ErrorCode::MoveVoucherRemoved => "move_voucher_removed",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// How far a signed timestamp may be from the server clock (phones' clocks drift).
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Default lifetime of a sign-in request.
pub const DEFAULT_REQUEST_TTL_SECS: u64 = 90;
/// Default lifetime of an enrollment code.
pub const DEFAULT_ENROLLMENT_TTL_SECS: u64 = 600;
/// Wrong numbers allowed before a request fails.
pub const MAX_WRONG_NUMBERS: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EcdsaSigner, RequestId, TypedNumber};

    #[test]
    fn error_codes_serialize_as_their_stable_strings() {
        for code in [
            ErrorCode::WrongNumber,
            ErrorCode::RequestNotPending,
            ErrorCode::NotPasswordlessCapable,
            ErrorCode::BrowserNotBound,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let unknown: ErrorCode = serde_json::from_str("\"from_the_future\"").unwrap();
        assert_eq!(unknown, ErrorCode::Unknown);
    }

    #[test]
    fn push_channels_carry_the_kind_as_its_wire_string() {
        for kind in PushChannelKind::ALL {
            let channel = PushChannel::new(kind, "t");
            assert_eq!(
                serde_json::to_value(&channel).unwrap(),
                serde_json::json!({"kind": kind.as_str(), "token": "t"})
            );
            assert_eq!(channel.parsed_kind(), Ok(kind));
        }
        let channel: PushChannel = serde_json::from_str(r#"{"kind": "carrier-pigeon"}"#).unwrap();
        assert_eq!(channel.token, "");
        assert_eq!(channel.parsed_kind(), Err(UnknownPushChannelKind));
    }

    #[test]
    fn a_response_body_carries_the_browser_origin_of_bound_approvals_only() {
        let response = SignInResponse {
            request_id: RequestId::random(),
            account_id: AccountId::random(),
            nonce: [1; 32],
            decision: Decision::Approve,
            typed_number: Some(TypedNumber::parse("42").unwrap()),
            context_sha256: [2; 32],
            timestamp: UnixMillis(3),
            browser_origin: None,
        };
        let bound = SignInResponse {
            browser_origin: Some("https://id.contoso.test".into()),
            ..response.clone()
        };
        let (key, _) = EcdsaSigner::generate().unwrap();
        let signature = key.sign(&bound.signed_bytes());
        let wire = bound.to_wire(&signature);
        assert_eq!(
            wire.browser_origin.as_deref(),
            Some("https://id.contoso.test")
        );
        let unbound_wire = serde_json::to_string(&response.to_wire(&signature)).unwrap();
        assert!(
            !unbound_wire.contains("browser_origin"),
            "v1 body unchanged"
        );
    }
}
