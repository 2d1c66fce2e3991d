//! Records and enums crossing the FFI. They are separate from the protocol types (which carry
//! no uniffi derives) and built from them with `From`.
use authenticator_protocol::push::PushChannelKind;
use authenticator_protocol::sign_in::{Decision as WireDecision, RequestKind as WireKind};

/// One enrolled account on this device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountSummary {
    pub account_id: String,
    pub upn: String,
    pub display_name: String,
    pub server_name: String,
    pub server_url: String,
    pub phone_sign_in_enabled: bool,
    pub enrolled_at_ms: u64,
}

/// How the server reaches this device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum PushKind {
    /// No push service: the app calls `poll`.
    LongPoll,
    Apns,
    Fcm,
    /// Web Push (RFC 8030), e.g. through a UnifiedPush distributor on a phone without Google
    /// services. The token is the subscription, `<p256dh>.<auth>.<endpoint>` (see
    /// `web_push_token`); the app decrypts each message (RFC 8291) and passes its text to
    /// `handle_push_json`.
    WebPush,
}

/// The one conversion between the FFI enum and the protocol's `PushChannelKind` (whose wire
/// strings are `longpoll`, `apns`, `fcm`, `webpush`).
impl From<PushKind> for PushChannelKind {
    fn from(k: PushKind) -> Self {
        match k {
            PushKind::LongPoll => PushChannelKind::LongPoll,
            PushKind::Apns => PushChannelKind::Apns,
            PushKind::Fcm => PushChannelKind::Fcm,
            PushKind::WebPush => PushChannelKind::WebPush,
        }
    }
}

impl From<PushChannelKind> for PushKind {
    fn from(k: PushChannelKind) -> Self {
        match k {
            PushChannelKind::LongPoll => PushKind::LongPoll,
            PushChannelKind::Apns => PushKind::Apns,
            PushChannelKind::Fcm => PushKind::Fcm,
            PushChannelKind::WebPush => PushKind::WebPush,
        }
    }
}

/// The push channel registered at enrollment. `token` is empty for `LongPoll`.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct PushRegistration {
    pub kind: PushKind,
    pub token: String,
}

impl std::fmt::Debug for PushRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Push tokens stay out of logs.
        f.debug_struct("PushRegistration")
            .field("kind", &self.kind)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// What became of one account's push rotation (`update_push_registration`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PushUpdateOutcome {
    /// The server pushes to the new registration from now on.
    Updated,
    /// Not done now (no network, a server fault, the key store failed): call
    /// `update_push_registration` again later, e.g. when the app next starts.
    RetryLater { reason: String },
    /// The server refused it; `code` is a stable code of PROTOCOL.md §8 (`unknown_account`:
    /// the account was removed there; `too_many_push_channels`: the user has too many phones
    /// with push). Calling again will not help.
    Refused {
        status: u16,
        code: String,
        detail: String,
    },
}

/// One account's result of `update_push_registration`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PushUpdateResult {
    pub account_id: String,
    pub upn: String,
    pub server_name: String,
    pub outcome: PushUpdateOutcome,
}

/// Which request a push refers to (opaque ids only).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PushTarget {
    pub account_id: String,
    pub request_id: String,
}

impl From<authenticator_protocol::push::PushEnvelope> for PushTarget {
    fn from(e: authenticator_protocol::push::PushEnvelope) -> Self {
        PushTarget {
            account_id: e.account_id.to_string(),
            request_id: e.request_id.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum RequestKind {
    /// Phone sign-in: the approval replaces the password.
    Passwordless,
    /// Second factor after a password.
    Push,
    /// A device was added to the account (`PendingRequest::device_name`): "was this you?".
    /// Approve if it was; deny (or report) removes it from the account.
    NewDevice,
}

impl From<WireKind> for RequestKind {
    fn from(k: WireKind) -> Self {
        match k {
            WireKind::Passwordless => RequestKind::Passwordless,
            WireKind::Push => RequestKind::Push,
            WireKind::NewDevice => RequestKind::NewDevice,
        }
    }
}

/// A verified sign-in request waiting for the user. It never carries the number: the user
/// reads it on the sign-in screen and types it here. A request is identified by
/// (`account_id`, `request_id`): answer it with both. The text fields come from the server:
/// details whose names hold a control, newline, bidirectional, invisible, private-use or
/// unassigned character are refused before they become a `PendingRequest`
/// (`AuthenticatorError::UnsafeServerText`; `authenticator_protocol::text::check_plain`), and
/// the fields are escaped all the same (`text::escape`: such a character would show as a
/// visible `\u{…}`), so no field can fake a line of another or pass for another name.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingRequest {
    pub request_id: String,
    pub account_id: String,
    pub upn: String,
    pub server_name: String,
    pub kind: RequestKind,
    pub app_name: Option<String>,
    pub location: Option<String>,
    /// On a `NewDevice` request: the added device's name.
    pub device_name: Option<String>,
    pub number_matching: bool,
    /// How many digits the number has (2 to 6): the input to show.
    pub number_length: u8,
    /// A phishing-resistant sign-in (§5.9): the origin its page must be at. It can be
    /// approved only on the device showing that page (the browser listener saw it there).
    pub browser_origin: Option<String>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

impl From<&authenticator_protocol::sign_in::RequestDetails> for PendingRequest {
    fn from(d: &authenticator_protocol::sign_in::RequestDetails) -> Self {
        PendingRequest {
            request_id: d.request_id.to_string(),
            account_id: d.account_id.to_string(),
            upn: shown(&d.upn),
            server_name: shown(&d.server_name),
            kind: d.kind.into(),
            app_name: d.app_name.as_deref().map(shown),
            location: d.location.as_deref().map(shown),
            device_name: d.device_name.as_deref().map(shown),
            number_matching: d.number_matching,
            number_length: d.number_length,
            browser_origin: d.browser.as_ref().map(|b| shown(&b.origin)),
            created_at_ms: d.created_at.millis(),
            expires_at_ms: d.expires_at.millis(),
        }
    }
}

/// Server text as the phone shows it.
fn shown(server_text: &str) -> String {
    authenticator_protocol::text::escape(server_text).into_owned()
}

/// What a push turned into. Only real failures (network, forged data, storage) are errors.
// By value: uniffi lowers enum fields by value (a `Box` is not an FFI type), and one push
// outcome at a time is no memory concern.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum PushOutcome {
    /// Verified details to show to the user.
    ShowRequest {
        request: PendingRequest,
    },
    Expired,
    AlreadyAnswered,
    /// The push names an account that is not (or no longer) on this device.
    UnknownAccount,
}

/// The final state the server confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Decision {
    Approved,
    Denied,
    Reported,
}

impl From<WireDecision> for Decision {
    fn from(d: WireDecision) -> Self {
        match d {
            WireDecision::Approve => Decision::Approved,
            WireDecision::Deny => Decision::Denied,
            WireDecision::Report => Decision::Reported,
        }
    }
}

/// Result of a user-verification prompt (`UserVerifier`, Rust key stores only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationOutcome {
    Verified,
    /// Verification failed or was refused (wrong biometric, lockout).
    Denied,
    /// The user dismissed the prompt.
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_kinds_convert_to_the_protocol_kinds_and_back() {
        for kind in [
            PushKind::LongPoll,
            PushKind::Apns,
            PushKind::Fcm,
            PushKind::WebPush,
        ] {
            assert_eq!(PushKind::from(PushChannelKind::from(kind)), kind);
        }
        for kind in PushChannelKind::ALL {
            assert_eq!(PushChannelKind::from(PushKind::from(kind)), kind);
        }
        assert_eq!(
            PushChannelKind::from(PushKind::LongPoll).as_str(),
            "longpoll"
        );
        assert_eq!(PushChannelKind::from(PushKind::Apns).as_str(), "apns");
        assert_eq!(PushChannelKind::from(PushKind::Fcm).as_str(), "fcm");
        assert_eq!(PushChannelKind::from(PushKind::WebPush).as_str(), "webpush");
    }
}

/// A TOTP account on this device (RFC 6238): the offline-fallback secret an enrollment
/// brought, or an `otpauth://totp/` import. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TotpAccount {
    /// Identifies it to `totp_code` and `remove_totp_account`.
    pub totp_id: String,
    /// Who issued it (the sign-in service's name for an enrollment's secret); may be empty.
    pub issuer: String,
    /// The account it is for (the UPN for an enrollment's secret).
    pub account_name: String,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    pub digits: u32,
    /// Seconds per code.
    pub period: u32,
    /// The phone sign-in account whose enrollment brought it (removed with that account);
    /// `None` for an import.
    pub account_id: Option<String>,
}

/// The current code of a TOTP account.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct TotpCode {
    pub code: String,
    /// How long this code stays current (1 to `period`).
    pub seconds_remaining: u32,
    pub period: u32,
}

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Codes stay out of logs.
        f.debug_struct("TotpCode")
            .field("seconds_remaining", &self.seconds_remaining)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

/// A move started on the old phone (`move_out`): show `link` as one QR code (or share it) to
/// the new phone. It holds move codes and a one-time key: show it only to the new phone.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct MoveOut {
    /// `phonesignin://move?...`
    pub link: String,
    /// When the first of its move codes expires (Unix ms).
    pub expires_at_ms: u64,
    /// Accounts and TOTP accounts it carries.
    pub accounts: u32,
    pub totp_accounts: u32,
}

impl std::fmt::Debug for MoveOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MoveOut")
            .field("link", &"<redacted>")
            .field("expires_at_ms", &self.expires_at_ms)
            .field("accounts", &self.accounts)
            .field("totp_accounts", &self.totp_accounts)
            .finish()
    }
}

/// What a move brought to the new phone (`move_in`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct MoveIn {
    pub accounts: Vec<AccountSummary>,
    pub totp_accounts: Vec<TotpAccount>,
}
