//! The one error type of the domain. It knows nothing of HTTP: `signin-server` maps it to a
//! response (status, `ErrorBody` with the stable `ErrorCode` of PROTOCOL.md §8) in one place.

/// Every failure a handler can answer with. Messages are static and never contain user data
/// (a refused name's message names the code point, `U+200B`, never the text), so they are safe
/// to log and to send.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// A name shown to people (a user, group, application or device name) holds a character
    /// names may not hold (`authenticator_protocol::text::check_plain`, the one gate every way
    /// a name comes in uses): `field` says which (`device_name`, `--name`, …). A 400
    /// `invalid_request` on the API; the admin CLI and pages print the message.
    #[error("{field} {error}")]
    UnsafeText {
        field: &'static str,
        error: authenticator_protocol::text::UnsafeText,
    },
    #[error("enrollment code unknown, used or expired")]
    InvalidCode,
    #[error("no such account")]
    UnknownAccount,
    #[error("missing or malformed device authentication")]
    Unauthorized,
    /// The sign-in start API without the credential of a registered application.
    #[error("a registered application's client id and secret are required (HTTP Basic)")]
    UnauthorizedApplication,
    #[error("a signature or binding does not verify")]
    BadSignature,
    #[error("signed timestamp too far from server time")]
    StaleTimestamp,
    #[error("no such request for this account")]
    UnknownRequest,
    #[error("request expired")]
    RequestExpired,
    #[error("request is no longer pending")]
    RequestNotPending,
    #[error("wrong number")]
    WrongNumber { attempts_left: u32 },
    #[error("too many wrong numbers: request failed")]
    RequestFailed,
    #[error("response timestamp is not newer than a previous response")]
    Replay,
    #[error("the key required for this response is not registered")]
    KeyNotAllowed,
    #[error("the Authenticator method is disabled for this user")]
    PolicyDisabled,
    #[error("the user has no phone with phone sign-in enabled")]
    NotPasswordlessCapable,
    #[error("no such endpoint")]
    NotFound,
    #[error("too many sign-in attempts: try again later")]
    RateLimited { retry_after_secs: u64 },
    #[error("sign-ins are paused for this user after a report: try again later")]
    Paused { retry_after_secs: u64 },
    /// A capacity limit of this server instance (OPERATIONS.md, "Resource limits").
    #[error("{}: try again later", .limit.describe())]
    AtCapacity {
        limit: Capacity,
        retry_after_secs: u64,
    },
    /// §5.9: an approval of a browser-bound sign-in without the origin of the real sign-in
    /// page (the Authenticator did not see the page, or saw it somewhere else).
    #[error("this sign-in must be approved by the Authenticator on the device that shows the sign-in page")]
    BrowserNotBound,
    /// The phishing-resistant option is on but the server does not know its own origin.
    #[error("the phishing-resistant sign-in needs the server's public URL (serve --public-url)")]
    PublicUrlRequired,
    /// A URL the server would call (a Web Push endpoint) that the outbound policy refuses.
    #[error("the push endpoint is refused: {0}")]
    EndpointRefused(#[source] crate::outbound::OutboundError),
    /// The user already has the most devices with a push channel the server allows
    /// (`[outbound] max_push_channels_per_user`).
    #[error(
        "the user already has {max} devices with a push channel: remove one, or enroll this \
         one with long-poll"
    )]
    TooManyPushChannels { max: u32 },
    /// A move code (PROTOCOL.md §5.11) that was already used: a move link works once.
    #[error("this move was already used: start a new move on the old phone")]
    MoveUsed,
    /// A move code past its expiry.
    #[error("this move has expired: start a new move on the old phone")]
    MoveExpired,
    /// A move code whose vouching device was removed (or may no longer act).
    #[error("the phone that started this move was removed: start a new move")]
    MoveVoucherRemoved,
    /// A server fault. The client sees a generic message; the cause is logged once.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Which capacity limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capacity {
    /// Long-polls waiting for one device's requests.
    DeviceLongPolls,
    /// Long-polls waiting for one sign-in's outcome.
    SignInLongPolls,
    /// Long-polls waiting in this instance.
    LongPolls,
    /// Argon2 checks (passwords, backup codes, passes) running and queued in this instance.
    PasswordChecks,
}

impl Capacity {
    pub fn describe(self) -> &'static str {
        match self {
            Capacity::DeviceLongPolls => "too many requests are waiting for this device",
            Capacity::SignInLongPolls => "too many requests are waiting for this sign-in",
            Capacity::LongPolls => "the server has too many waiting requests",
            Capacity::PasswordChecks => "the server is busy checking other passwords",
        }
    }

    /// A limit on one client's share (429) rather than on the server as a whole (503).
    pub fn per_client(self) -> bool {
        matches!(self, Capacity::DeviceLongPolls | Capacity::SignInLongPolls)
    }
}

impl AppError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        AppError::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_name_names_the_field_and_the_code_point_never_the_text() {
        let error = authenticator_protocol::text::check_plain("Pix\u{200B}el").unwrap_err();
        let msg = AppError::UnsafeText {
            field: "device_name",
            error,
        }
        .to_string();
        assert!(msg.starts_with("device_name holds U+200B"), "{msg}");
        assert!(!msg.contains("Pix"), "{msg}");
    }

    #[test]
    fn internal_errors_do_not_show_their_cause() {
        let msg = AppError::internal(anyhow::anyhow!("secret detail")).to_string();
        assert!(!msg.contains("secret"));
    }
}
