//! One error funnel: the rich internal `Error` becomes the public `AuthenticatorError` in
//! exactly one place (`impl From<Error> for AuthenticatorError`). Display texts never contain
//! enrollment codes, numbers, keys, tokens or nonces.
use authenticator_protocol::wire::ErrorCode;
use authenticator_protocol::ProtocolError;

use crate::platform::PlatformError;

/// Public error of every exported method. Shells match on the variant, never on the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum AuthenticatorError {
    #[error("this is not a valid enrollment link: {reason}")]
    InvalidEnrollmentUrl { reason: String },
    #[error("this is not a valid sign-in notification: {reason}")]
    InvalidPushPayload { reason: String },
    #[error("invalid input: {reason}")]
    InvalidInput { reason: String },
    #[error("the number must have as many digits as the sign-in screen shows")]
    InvalidNumber,
    #[error("could not reach the sign-in service: {reason}")]
    Network { reason: String },
    /// `detail` is the server's human-readable text (not called `message`: that name clashes
    /// with `Throwable.message` in Kotlin).
    #[error("the sign-in service refused the request (HTTP {status}): {detail}")]
    ServerRejected {
        status: u16,
        code: String,
        detail: String,
    },
    #[error("the server's key does not match the one in the enrollment link")]
    ServerKeyMismatch,
    #[error("the server's answer is not validly signed")]
    BadServerSignature,
    #[error("this account is not enrolled on this device")]
    NotEnrolled,
    #[error("this account is already enrolled on this device")]
    AlreadyEnrolled,
    #[error("phone sign-in is not enabled for this account")]
    PhoneSignInNotEnabled,
    /// "Not your request": no request with this id for this account, on this device or at its
    /// server (the server's `unknown_request` arrives as this too, never as `ServerRejected`).
    #[error("unknown sign-in request")]
    UnknownRequest,
    #[error("the sign-in request has expired")]
    RequestExpired,
    #[error("the sign-in request was already answered")]
    AlreadyAnswered,
    #[error("wrong number; {attempts_left} attempt(s) left")]
    WrongNumber { attempts_left: u32 },
    #[error("too many wrong numbers: the sign-in request failed")]
    RequestFailed,
    #[error("the user cancelled")]
    UserCancelled,
    #[error("user verification failed")]
    VerificationFailed,
    /// The key store cannot verify the user: no biometric or device passcode is set up
    /// (`PlatformError::NotAvailable`). Nothing was signed; the app should ask the user to set
    /// up a screen lock.
    #[error("this device has no biometric or passcode set up to verify the user")]
    VerificationUnavailable,
    #[error("key store failure: {reason}")]
    KeyStore { reason: String },
    #[error("storage failure: {reason}")]
    Storage { reason: String },
    /// Not a usable `otpauth://totp/` URI; `reason` names the part, never the secret.
    #[error("this is not a valid TOTP link: {reason}")]
    InvalidTotpUri { reason: String },
    #[error("unknown TOTP account")]
    UnknownTotpAccount,
    /// A phishing-resistant sign-in (PROTOCOL.md §5.9) whose page this Authenticator has not
    /// seen: it must be approved on the device that shows the sign-in page, with the browser
    /// listener running (`start_browser_listener`), and the browser must let the page reach
    /// it (Chrome's Local Network Access permission: a user who clicked Block once is never
    /// asked again until they allow "Apps on device" in the site's settings).
    #[error(
        "the sign-in page has not reached the Authenticator on this device: open it on this \
         device, and let the browser allow it to reach apps on this device (if Chrome blocked \
         it, set \u{201c}Apps on device\u{201d} to Allow in the site's settings)"
    )]
    BrowserNotSeen,
    /// The sign-in page the user has open is served from `seen_origin`, not from the
    /// server's `expected_origin`: someone is relaying it (phishing). Nothing was signed; the
    /// app should tell the user not to sign in there, and offer "this wasn't me".
    #[error(
        "the sign-in page is at {seen_origin}, not {expected_origin}: someone may be relaying it"
    )]
    BrowserOriginMismatch {
        seen_origin: String,
        expected_origin: String,
    },
    /// The server sent a name to show (the user name, display name or server name of an
    /// enrollment; the user, server, application or device name or the location of a sign-in
    /// request) that holds a character names may not hold: an invisible or formatting
    /// character (U+200B…), a private-use, unassigned or control character. It could look
    /// like another name, so it is refused, never shown: nothing was stored or signed.
    /// `field` names the field, `code_point` the first such character (0x200B).
    #[error("the sign-in service sent a {field} that could pass for another name: {detail}")]
    UnsafeServerText {
        field: String,
        code_point: u32,
        detail: String,
    },
    /// Not a usable `phonesignin://move` link (or its TOTP accounts do not open under its
    /// key); `reason` names the part, never its value.
    #[error("this is not a valid move link: {reason}")]
    InvalidMoveLink { reason: String },
    /// This move link was used already: a move works once. Start a new move on the old phone.
    #[error("this move was already used: start a new move on the old phone")]
    MoveAlreadyUsed,
    /// The move link expired (ten minutes). Start a new move on the old phone.
    #[error("this move has expired: start a new move on the old phone")]
    MoveExpired,
    /// The phone that started the move was removed from its account (or may not act now).
    #[error("the phone that started this move was removed: start a new move")]
    MoveVoucherRemoved,
    /// The export file's passphrase is not this one.
    #[error("wrong passphrase for this export file")]
    WrongPassphrase,
    /// Not a TOTP export file, or one that was changed; `reason` says which.
    #[error("this is not a usable TOTP export file: {reason}")]
    InvalidExportFile { reason: String },
    /// The app opened the core without a `SecretStore`: TOTP secrets cannot be kept.
    #[error("no secret store: open the authenticator with one to keep TOTP accounts")]
    SecretStoreUnavailable,
    /// The object was closed (Kotlin `close()`): it takes no more calls. Raised by the
    /// generated Kotlin bindings in place of uniffi's untyped `IllegalStateException`
    /// (`cargo xtask bindings` sets this up), never by the core itself.
    #[error("this authenticator was closed")]
    Closed,
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

/// `ServerRejected.code` of an answer over the body limit (`http::MAX_RESPONSE_BODY_BYTES`).
pub const RESPONSE_TOO_LARGE: &str = "response_too_large";

/// Internal error of the core. Converted once, below.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("enrollment URL: {0}")]
    EnrollmentUrl(ProtocolError),
    #[error("push payload: {0}")]
    PushPayload(ProtocolError),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("invalid number")]
    InvalidNumber,
    #[error("network: {0}")]
    Network(String),
    #[error("server error {status} {}", code.as_str())]
    Server {
        status: u16,
        code: ErrorCode,
        message: String,
        attempts_left: Option<u32>,
    },
    /// The server answered something that is not what the protocol says (bad JSON, wrong
    /// shape, unexpected status). Never trusted, never a panic.
    #[error("invalid server response: {0}")]
    InvalidResponse(String),
    /// The answer is larger than `http::MAX_RESPONSE_BODY_BYTES`; reading stopped at the limit.
    #[error("server response over {limit} bytes (HTTP {status})")]
    ResponseTooLarge { status: u16, limit: usize },
    #[error("server key mismatch")]
    ServerKeyMismatch,
    #[error("bad server signature: {0}")]
    BadServerSignature(&'static str),
    /// A name the server sent fails the one gate for names (`text::check_plain`).
    #[error("server text: field `{field}` {error}")]
    UnsafeServerText {
        field: &'static str,
        error: authenticator_protocol::text::UnsafeText,
    },
    #[error("not enrolled")]
    NotEnrolled,
    #[error("already enrolled")]
    AlreadyEnrolled,
    #[error("phone sign-in not enabled")]
    PhoneSignInNotEnabled,
    #[error("unknown request")]
    UnknownRequest,
    #[error("request expired")]
    RequestExpired,
    #[error("already answered")]
    AlreadyAnswered,
    #[error("user cancelled")]
    UserCancelled,
    #[error("verification failed")]
    VerificationFailed,
    #[error("no user verification set up")]
    VerificationUnavailable,
    #[error("key store: {0}")]
    KeyStore(PlatformError),
    #[error("key store returned an unusable {0}")]
    KeyFormat(&'static str),
    #[error("storage: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    #[error("TOTP URI: {0}")]
    InvalidTotpUri(&'static str),
    #[error("unknown TOTP account")]
    UnknownTotpAccount,
    #[error("no secret store")]
    NoSecretStore,
    #[error("the sign-in page was not seen on this device")]
    BrowserNotSeen,
    #[error("the sign-in page was seen at another origin")]
    BrowserOriginMismatch { seen: String, expected: String },
    #[error("secret store: {0}")]
    SecretStore(PlatformError),
    #[error("move link: {0}")]
    MoveLink(ProtocolError),
    #[error("move already used")]
    MoveUsed,
    #[error("the move's TOTP accounts do not open under the link's key")]
    MoveTotpUnreadable,
    #[error("wrong passphrase")]
    WrongPassphrase,
    #[error("export file: {0}")]
    InvalidExportFile(&'static str),
    #[error("internal: {0}")]
    Internal(String),
}

impl From<Error> for AuthenticatorError {
    fn from(e: Error) -> Self {
        use AuthenticatorError as A;
        match e {
            Error::EnrollmentUrl(p) => A::InvalidEnrollmentUrl {
                reason: p.to_string(),
            },
            Error::PushPayload(p) => A::InvalidPushPayload {
                reason: p.to_string(),
            },
            Error::InvalidInput(reason) => A::InvalidInput { reason },
            Error::InvalidNumber => A::InvalidNumber,
            Error::Network(reason) => A::Network { reason },
            Error::Server {
                status,
                code,
                message,
                attempts_left,
            } => match code {
                ErrorCode::UnknownAccount => A::NotEnrolled,
                ErrorCode::RequestExpired => A::RequestExpired,
                ErrorCode::RequestNotPending => A::AlreadyAnswered,
                ErrorCode::WrongNumber => A::WrongNumber {
                    attempts_left: attempts_left.unwrap_or(0),
                },
                ErrorCode::RequestFailed => A::RequestFailed,
                ErrorCode::BrowserNotBound => A::BrowserNotSeen,
                ErrorCode::MoveUsed => A::MoveAlreadyUsed,
                ErrorCode::MoveExpired => A::MoveExpired,
                ErrorCode::MoveVoucherRemoved => A::MoveVoucherRemoved,
                ErrorCode::UnknownRequest => A::UnknownRequest,
                _ => A::ServerRejected {
                    status,
                    code: code.as_str().to_owned(),
                    detail: message,
                },
            },
            Error::InvalidResponse(reason) => A::ServerRejected {
                status: 200,
                code: "invalid_response".into(),
                detail: format!("the server's answer is malformed ({reason})"),
            },
            Error::ResponseTooLarge { status, limit } => A::ServerRejected {
                status,
                code: RESPONSE_TOO_LARGE.into(),
                detail: format!("the server's answer is larger than {} KiB", limit / 1024),
            },
            Error::ServerKeyMismatch => A::ServerKeyMismatch,
            Error::BadServerSignature(_) => A::BadServerSignature,
            Error::UnsafeServerText { field, error } => A::UnsafeServerText {
                field: field.to_owned(),
                code_point: error.code_point(),
                detail: error.to_string(),
            },
            Error::NotEnrolled => A::NotEnrolled,
            Error::AlreadyEnrolled => A::AlreadyEnrolled,
            Error::PhoneSignInNotEnabled => A::PhoneSignInNotEnabled,
            Error::UnknownRequest => A::UnknownRequest,
            Error::RequestExpired => A::RequestExpired,
            Error::AlreadyAnswered => A::AlreadyAnswered,
            Error::UserCancelled | Error::KeyStore(PlatformError::Cancelled) => A::UserCancelled,
            Error::VerificationFailed | Error::KeyStore(PlatformError::VerificationFailed) => {
                A::VerificationFailed
            }
            Error::VerificationUnavailable | Error::KeyStore(PlatformError::NotAvailable) => {
                A::VerificationUnavailable
            }
            Error::KeyStore(p) => A::KeyStore {
                reason: p.to_string(),
            },
            Error::KeyFormat(what) => A::KeyStore {
                reason: format!("the key store returned an unusable {what}"),
            },
            Error::Storage(e) => A::Storage {
                reason: e.to_string(),
            },
            Error::Io(e) => A::Storage {
                reason: e.to_string(),
            },
            Error::InvalidTotpUri(reason) => A::InvalidTotpUri {
                reason: reason.to_owned(),
            },
            Error::UnknownTotpAccount => A::UnknownTotpAccount,
            Error::NoSecretStore => A::SecretStoreUnavailable,
            Error::BrowserNotSeen => A::BrowserNotSeen,
            Error::BrowserOriginMismatch { seen, expected } => A::BrowserOriginMismatch {
                seen_origin: seen,
                expected_origin: expected,
            },
            Error::SecretStore(p) => A::KeyStore {
                reason: format!("secret store: {p}"),
            },
            Error::MoveLink(p) => A::InvalidMoveLink {
                reason: p.to_string(),
            },
            Error::MoveUsed => A::MoveAlreadyUsed,
            Error::MoveTotpUnreadable => A::InvalidMoveLink {
                reason: "its TOTP accounts do not open under its key".into(),
            },
            Error::WrongPassphrase => A::WrongPassphrase,
            Error::InvalidExportFile(reason) => A::InvalidExportFile {
                reason: reason.to_owned(),
            },
            Error::Internal(reason) => A::Internal { reason },
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: ErrorCode, attempts_left: Option<u32>) -> AuthenticatorError {
        Error::Server {
            status: 400,
            code,
            message: "m".into(),
            attempts_left,
        }
        .into()
    }

    #[test]
    fn server_codes_map_per_protocol_section_8() {
        assert_eq!(
            server(ErrorCode::UnknownAccount, None),
            AuthenticatorError::NotEnrolled
        );
        assert_eq!(
            server(ErrorCode::RequestExpired, None),
            AuthenticatorError::RequestExpired
        );
        assert_eq!(
            server(ErrorCode::RequestNotPending, None),
            AuthenticatorError::AlreadyAnswered
        );
        assert_eq!(
            server(ErrorCode::WrongNumber, Some(2)),
            AuthenticatorError::WrongNumber { attempts_left: 2 }
        );
        assert_eq!(
            server(ErrorCode::RequestFailed, None),
            AuthenticatorError::RequestFailed
        );
        assert_eq!(
            server(ErrorCode::BrowserNotBound, None),
            AuthenticatorError::BrowserNotSeen
        );
        assert_eq!(
            server(ErrorCode::MoveUsed, None),
            AuthenticatorError::MoveAlreadyUsed
        );
        assert_eq!(
            server(ErrorCode::MoveExpired, None),
            AuthenticatorError::MoveExpired
        );
        assert_eq!(
            server(ErrorCode::MoveVoucherRemoved, None),
            AuthenticatorError::MoveVoucherRemoved
        );
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::InvalidCode,
            ErrorCode::Unauthorized,
            ErrorCode::BadSignature,
            ErrorCode::StaleTimestamp,
            ErrorCode::Replay,
            ErrorCode::KeyNotAllowed,
            ErrorCode::RateLimited,
            ErrorCode::ServerBusy,
            ErrorCode::Internal,
            ErrorCode::Unknown,
        ] {
            assert_eq!(
                server(code, None),
                AuthenticatorError::ServerRejected {
                    status: 400,
                    code: code.as_str().into(),
                    detail: "m".into()
                }
            );
        }
    }

    #[test]
    fn not_your_request_is_one_error_whether_the_device_or_the_server_says_so() {
        assert_eq!(
            AuthenticatorError::from(Error::UnknownRequest),
            AuthenticatorError::UnknownRequest
        );
        assert_eq!(
            server(ErrorCode::UnknownRequest, None),
            AuthenticatorError::UnknownRequest
        );
        let at_404: AuthenticatorError = Error::Server {
            status: 404,
            code: ErrorCode::UnknownRequest,
            message: "unknown request".into(),
            attempts_left: None,
        }
        .into();
        assert_eq!(at_404, AuthenticatorError::UnknownRequest);
    }

    #[test]
    fn a_key_store_without_user_verification_is_its_own_error() {
        assert_eq!(
            AuthenticatorError::from(Error::KeyStore(PlatformError::NotAvailable)),
            AuthenticatorError::VerificationUnavailable
        );
        assert_eq!(
            AuthenticatorError::from(Error::VerificationUnavailable),
            AuthenticatorError::VerificationUnavailable
        );
        assert_ne!(
            AuthenticatorError::VerificationUnavailable,
            AuthenticatorError::VerificationFailed
        );
    }

    #[test]
    fn a_look_alike_server_name_becomes_its_own_typed_error() {
        let error = authenticator_protocol::text::check_plain("Con\u{200B}toso").unwrap_err();
        let public = AuthenticatorError::from(Error::UnsafeServerText {
            field: "app_name",
            error,
        });
        match &public {
            AuthenticatorError::UnsafeServerText {
                field,
                code_point,
                detail,
            } => {
                assert_eq!((field.as_str(), *code_point), ("app_name", 0x200B));
                assert!(detail.contains("U+200B"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!public.to_string().contains('\u{200B}'));
    }

    #[test]
    fn refused_prompts_and_key_store_failures_are_distinguished() {
        assert_eq!(
            AuthenticatorError::from(Error::KeyStore(PlatformError::Cancelled)),
            AuthenticatorError::UserCancelled
        );
        assert_eq!(
            AuthenticatorError::from(Error::KeyStore(PlatformError::VerificationFailed)),
            AuthenticatorError::VerificationFailed
        );
        assert!(matches!(
            AuthenticatorError::from(Error::KeyStore(PlatformError::KeyNotFound)),
            AuthenticatorError::KeyStore { .. }
        ));
    }
}
