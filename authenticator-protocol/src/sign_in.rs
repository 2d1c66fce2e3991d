//! Sign-in requests: the server-signed details the phone shows, and the phone's signed answer.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::canonical::{
    Canonical, BOUND_RESPONSE_TAG, DEVICE_AUTH_TAG, REQUEST_DETAILS_TAG, RESPONSE_TAG,
};
use crate::encoding::{sha256, unb64_fixed};
use crate::{AccountId, ProtocolError, PublicKey, RequestId, Signature, TypedNumber, UnixMillis};

/// Which ceremony a request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestKind {
    /// Phone sign-in: the approval replaces the password; signed by the passwordless key.
    Passwordless,
    /// Second factor after a password.
    Push,
    /// A device was added to the user's account (`device_name` says which): the user's other
    /// devices are asked "was this you?". Approve confirms it (and activates the device when
    /// the policy holds new devices for approval); deny or report removes it (§5.8).
    #[serde(rename = "new_device")]
    NewDevice,
}

/// The details of a sign-in request, exactly as the server serializes and signs them. The phone
/// shows these fields and hashes the *received bytes* (`context_sha256`), never a re-encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestDetails {
    pub v: u32,
    pub request_id: RequestId,
    pub account_id: AccountId,
    pub kind: RequestKind,
    pub upn: String,
    pub server_name: String,
    /// Present only when the policy shows the application name.
    pub app_name: Option<String>,
    /// Present only when the policy shows the location.
    pub location: Option<String>,
    /// The added device's name, on a `new_device` request only (omitted otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    /// Whether the user must type the number shown on the sign-in screen.
    pub number_matching: bool,
    /// How many digits that number has (2 to 6: the policy's length, raised with the user's
    /// risk). Omitted when 2, the v1 default, so such details are the bytes they always were;
    /// a parser that does not know the field refuses longer numbers' details (fails closed).
    #[serde(
        default = "default_number_length",
        skip_serializing_if = "is_default_number_length"
    )]
    pub number_length: u8,
    /// Browser binding (§5.9, the policy's phishing-resistant option): an approval counts only
    /// when the authenticator saw the sign-in page itself, at this origin. Omitted otherwise
    /// (a parser that does not know the field refuses such details: fails closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<BrowserBinding>,
    /// 32 random bytes, base64url: binds the answer to this request instance.
    pub nonce: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
}

/// What the sign-in page and the authenticator on the same device share (§5.9).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserBinding {
    /// 16 random bytes, base64url: the page hands it to the authenticator's loopback listener.
    pub challenge: String,
    /// The origin the page must be served from (`https://signin.example.com`), as a browser
    /// writes it in the `Origin` header.
    pub origin: String,
}

/// The loopback port the Authenticator listens on for sign-in pages (§5.9), unless the
/// deployment chose another.
pub const DEFAULT_BROWSER_LISTENER_PORT: u16 = 47813;

/// The path of the listener that the sign-in page posts the challenge to (§5.9).
pub const BROWSER_LISTENER_PATH: &str = "/v1/browser-binding";

/// Length in bytes of a browser-binding challenge.
pub const BROWSER_CHALLENGE_BYTES: usize = 16;

impl BrowserBinding {
    /// The challenge's 16 bytes, and the origin in its serialized form (scheme, host, port
    /// only; `https`, or `http` on a loopback host).
    pub fn check(&self) -> Result<[u8; BROWSER_CHALLENGE_BYTES], ProtocolError> {
        if web_origin(&self.origin).as_deref() != Some(self.origin.as_str()) {
            return Err(ProtocolError::MalformedField("browser.origin"));
        }
        unb64_fixed::<BROWSER_CHALLENGE_BYTES>("browser.challenge", &self.challenge)
    }
}

/// The serialized origin of `url` (`scheme://host[:port]`, as a browser's `Origin` header
/// writes it), for `https` URLs and `http` ones on a loopback host; `None` for anything else
/// (other schemes, opaque origins, `null`).
pub fn web_origin(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let secure = match parsed.scheme() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let loopback = match parsed.host()? {
        url::Host::Domain(name) => name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    if !secure && !loopback {
        return None;
    }
    Some(parsed.origin().ascii_serialization())
}

fn default_number_length() -> u8 {
    crate::number::DEFAULT_NUMBER_DIGITS
}

fn is_default_number_length(digits: &u8) -> bool {
    *digits == crate::number::DEFAULT_NUMBER_DIGITS
}

impl RequestDetails {
    pub fn nonce_bytes(&self) -> Result<[u8; 32], ProtocolError> {
        unb64_fixed::<32>("nonce", &self.nonce)
    }

    /// Whether `typed` has as many digits as the number the sign-in screen shows.
    pub fn number_fits(&self, typed: &TypedNumber) -> bool {
        typed.digits() == self.number_length
    }

    /// The text the phone shows (user name, server, application, location, device name)
    /// through the one gate for names ([`crate::text::check_plain`]): details that would show
    /// an invisible, private-use or unassigned character are refused, not shown.
    pub fn check_text(&self) -> Result<(), ProtocolError> {
        let fields = [
            ("upn", Some(&self.upn)),
            ("server_name", Some(&self.server_name)),
            ("app_name", self.app_name.as_ref()),
            ("location", self.location.as_ref()),
            ("device_name", self.device_name.as_ref()),
        ];
        for (field, value) in fields {
            if let Some(value) = value {
                crate::text::check_plain(value)
                    .map_err(|error| ProtocolError::UnsafeText { field, error })?;
            }
        }
        Ok(())
    }
}

/// Details as they travel: the exact JSON text and the server's signature over it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequestDetails {
    pub details: String,
    pub signature: String,
}

impl fmt::Debug for SignedRequestDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SignedRequestDetails(..)")
    }
}

pub fn request_details_signed_bytes(details_json: &str) -> Vec<u8> {
    Canonical::new(REQUEST_DETAILS_TAG)
        .str(details_json)
        .finish()
}

impl SignedRequestDetails {
    /// Serializes `details` and signs the text with the server key.
    pub fn try_sign(
        details: &RequestDetails,
        server: &crate::EcdsaSigner,
    ) -> Result<Self, ProtocolError> {
        let json = serde_json::to_string(details)?;
        let signature = server
            .try_sign(&request_details_signed_bytes(&json))?
            .to_b64();
        Ok(SignedRequestDetails {
            details: json,
            signature,
        })
    }

    /// [`Self::try_sign`] that panics when serializing or signing fails: for tests, benches
    /// and test fakes only. Product code (signin-domain) calls `try_sign`.
    #[allow(clippy::expect_used)]
    pub fn sign(details: &RequestDetails, server: &crate::EcdsaSigner) -> Self {
        Self::try_sign(details, server).expect("details serialize and sign")
    }

    /// Checks the server signature over the received bytes, then parses them.
    pub fn verify(&self, server_key: &PublicKey) -> Result<RequestDetails, ProtocolError> {
        let sig = Signature::from_b64("signature", &self.signature)?;
        server_key.verify(&request_details_signed_bytes(&self.details), &sig)?;
        let details: RequestDetails = serde_json::from_str(&self.details)?;
        if details.v != crate::PROTOCOL_VERSION {
            return Err(ProtocolError::UnsupportedVersion(details.v.into()));
        }
        details.nonce_bytes()?;
        if !crate::number::NUMBER_DIGITS.contains(&details.number_length) {
            return Err(ProtocolError::InvalidNumberLength);
        }
        if let Some(binding) = &details.browser {
            binding.check()?;
        }
        details.check_text()?;
        Ok(details)
    }

    /// SHA-256 of the exact details text: what the approval says the user saw.
    pub fn context_sha256(&self) -> [u8; 32] {
        sha256(self.details.as_bytes())
    }
}

/// The user's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Deny,
    /// "This wasn't me": deny and report fraud.
    Report,
}

impl Decision {
    pub fn wire_byte(self) -> u8 {
        match self {
            Decision::Approve => 1,
            Decision::Deny => 2,
            Decision::Report => 3,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
            Decision::Report => "report",
        }
    }
}

impl RequestKind {
    pub const ALL: [RequestKind; 3] = [
        RequestKind::Passwordless,
        RequestKind::Push,
        RequestKind::NewDevice,
    ];
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Approve, Decision::Deny, Decision::Report];
}

/// Which of an account's two keys signs a response (PROTOCOL.md §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRole {
    /// The account's device key, registered at enrollment (§5.2).
    Device,
    /// The user-verification-bound key registered to enable phone sign-in (§5.3).
    Passwordless,
}

/// The response needs the account's passwordless key and the account has none (an approval
/// of a `passwordless` request before phone sign-in is enabled). The server answers
/// `key_not_allowed` (§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this response must be signed by the passwordless key, which is not registered")]
pub struct KeyNotAllowed;

/// PROTOCOL.md §6.3, the one rule both sides apply: the key that signs `decision` on a request
/// of `kind`, for an account that has (`has_passwordless_key`) or lacks a passwordless key.
///
/// | decision  | kind           | key                                                    |
/// |-----------|----------------|--------------------------------------------------------|
/// | `approve` | `passwordless` | passwordless; [`KeyNotAllowed`] when there is none     |
/// | `approve` | `push`, `new_device` | passwordless when the account has one, else device |
/// | `deny`, `report` | either  | device                                                 |
pub fn response_key_role(
    kind: RequestKind,
    decision: Decision,
    has_passwordless_key: bool,
) -> Result<KeyRole, KeyNotAllowed> {
    match (decision, kind, has_passwordless_key) {
        (Decision::Approve, _, true) => Ok(KeyRole::Passwordless),
        (Decision::Approve, RequestKind::Passwordless, false) => Err(KeyNotAllowed),
        (Decision::Approve, RequestKind::Push | RequestKind::NewDevice, false) => {
            Ok(KeyRole::Device)
        }
        (Decision::Deny | Decision::Report, _, _) => Ok(KeyRole::Device),
    }
}

/// [`response_key_role`], then picks that key out of an account's keys (public keys on the
/// server, key aliases on the phone).
pub fn select_response_key<K>(
    kind: RequestKind,
    decision: Decision,
    device: K,
    passwordless: Option<K>,
) -> Result<K, KeyNotAllowed> {
    match (
        response_key_role(kind, decision, passwordless.is_some())?,
        passwordless,
    ) {
        (KeyRole::Passwordless, Some(key)) => Ok(key),
        (KeyRole::Passwordless, None) => Err(KeyNotAllowed),
        (KeyRole::Device, _) => Ok(device),
    }
}

/// The phone's signed answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInResponse {
    pub request_id: RequestId,
    pub account_id: AccountId,
    pub nonce: [u8; 32],
    pub decision: Decision,
    /// What the user typed; `None` for deny/report and when number matching is off.
    pub typed_number: Option<TypedNumber>,
    pub context_sha256: [u8; 32],
    pub timestamp: UnixMillis,
    /// The origin of the sign-in page the authenticator saw (§5.9), on an approval of a
    /// browser-bound request only. Its presence selects the `response-bound` layout.
    pub browser_origin: Option<String>,
}

impl SignInResponse {
    /// §6.2: the `response` layout, or, when a browser origin is carried, the
    /// `response-bound` layout: the same fields under its own tag, then the origin.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let tag = match self.browser_origin {
            None => RESPONSE_TAG,
            Some(_) => BOUND_RESPONSE_TAG,
        };
        let message = Canonical::new(tag)
            .str(self.request_id.as_str())
            .str(self.account_id.as_str())
            .field(&self.nonce)
            .field(&[self.decision.wire_byte()])
            .str(self.typed_number.as_ref().map_or("", |n| n.as_str()))
            .field(&self.context_sha256)
            .u64(self.timestamp.millis());
        match &self.browser_origin {
            None => message.finish(),
            Some(origin) => message.str(origin).finish(),
        }
    }
}

/// Authentication of a device's read requests (poll, fetch details):
/// `Authorization: PSI-Device <account_id>.<timestamp>.<signature>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    pub account_id: AccountId,
    pub timestamp: UnixMillis,
    pub signature: Signature,
}

pub const DEVICE_AUTH_SCHEME: &str = "PSI-Device";

impl DeviceAuth {
    /// Bytes the device key signs for `METHOD path?query` at `timestamp`.
    pub fn signed_bytes(
        method: &str,
        path_and_query: &str,
        account_id: &AccountId,
        timestamp: UnixMillis,
    ) -> Vec<u8> {
        Canonical::new(DEVICE_AUTH_TAG)
            .str(method)
            .str(path_and_query)
            .str(account_id.as_str())
            .u64(timestamp.millis())
            .finish()
    }

    pub fn to_header(&self) -> String {
        format!(
            "{DEVICE_AUTH_SCHEME} {}.{}.{}",
            self.account_id,
            self.timestamp.millis(),
            self.signature.to_b64()
        )
    }

    pub fn parse_header(value: &str) -> Result<Self, ProtocolError> {
        let rest = value
            .strip_prefix(DEVICE_AUTH_SCHEME)
            .and_then(|r| r.strip_prefix(' '))
            .ok_or(ProtocolError::MalformedField("authorization"))?;
        let mut parts = rest.split('.');
        let (Some(a), Some(t), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ProtocolError::MalformedField("authorization"));
        };
        Ok(DeviceAuth {
            account_id: AccountId::parse(a)?,
            timestamp: UnixMillis::parse_decimal(t)
                .ok_or(ProtocolError::MalformedField("authorization"))?,
            signature: Signature::from_b64("signature", s)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64;
    use crate::EcdsaSigner;

    fn details() -> RequestDetails {
        RequestDetails {
            v: 1,
            request_id: RequestId::random(),
            account_id: AccountId::random(),
            kind: RequestKind::Passwordless,
            upn: "bobby@contoso.test".into(),
            server_name: "Contoso".into(),
            app_name: Some("My Apps".into()),
            location: None,
            device_name: None,
            number_matching: true,
            number_length: 2,
            browser: None,
            nonce: b64(&[7u8; 32]),
            created_at: UnixMillis(1),
            expires_at: UnixMillis(2),
        }
    }

    #[test]
    fn signed_details_verify_only_under_the_server_key() {
        let (server, _) = EcdsaSigner::generate().unwrap();
        let (other, _) = EcdsaSigner::generate().unwrap();
        let signed = SignedRequestDetails::try_sign(&details(), &server).unwrap();
        assert_eq!(
            signed.verify(&server.public_key()).unwrap(),
            details_with(&signed)
        );
        assert_eq!(
            signed.verify(&other.public_key()),
            Err(ProtocolError::BadSignature)
        );
        let mut tampered = signed.clone();
        tampered.details = tampered.details.replace("My Apps", "Your Apps");
        assert_eq!(
            tampered.verify(&server.public_key()),
            Err(ProtocolError::BadSignature)
        );
    }

    fn details_with(signed: &SignedRequestDetails) -> RequestDetails {
        serde_json::from_str(&signed.details).unwrap()
    }

    #[test]
    fn the_number_length_is_omitted_at_two_signed_otherwise_and_checked() {
        let (server, _) = EcdsaSigner::generate().unwrap();
        let two = SignedRequestDetails::sign(&details(), &server);
        assert!(!two.details.contains("number_length"), "v1 bytes unchanged");
        assert_eq!(two.verify(&server.public_key()).unwrap().number_length, 2);
        let four = RequestDetails {
            number_length: 4,
            ..details()
        };
        let signed = SignedRequestDetails::sign(&four, &server);
        assert!(signed.details.contains(r#""number_length":4"#));
        let back = signed.verify(&server.public_key()).unwrap();
        assert!(back.number_fits(&TypedNumber::parse("4821").unwrap()));
        assert!(!back.number_fits(&TypedNumber::parse("48").unwrap()));
        for out_of_range in [0, 1, 7, 255] {
            let bad = RequestDetails {
                number_length: out_of_range,
                ..details()
            };
            assert_eq!(
                SignedRequestDetails::sign(&bad, &server).verify(&server.public_key()),
                Err(ProtocolError::InvalidNumberLength),
                "{out_of_range}"
            );
        }
    }

    fn bound(origin: &str) -> RequestDetails {
        RequestDetails {
            browser: Some(BrowserBinding {
                challenge: b64(&[9u8; BROWSER_CHALLENGE_BYTES]),
                origin: origin.into(),
            }),
            ..details()
        }
    }

    #[test]
    fn browser_binding_is_omitted_when_absent_signed_when_present_and_checked() {
        let (server, _) = EcdsaSigner::generate().unwrap();
        let plain = SignedRequestDetails::sign(&details(), &server);
        assert!(!plain.details.contains("browser"), "v1 bytes unchanged");
        let signed = SignedRequestDetails::sign(&bound("https://id.contoso.test"), &server);
        assert!(signed.details.contains(
            r#""browser":{"challenge":"CQkJCQkJCQkJCQkJCQkJCQ","origin":"https://id.contoso.test"}"#
        ));
        assert_eq!(
            signed.verify(&server.public_key()).unwrap().browser,
            bound("https://id.contoso.test").browser
        );
        // Not an origin as a browser writes it: a path, a trailing slash, another scheme,
        // plain http off loopback, `null`.
        for origin in [
            "https://id.contoso.test/",
            "https://id.contoso.test/signin",
            "HTTPS://id.contoso.test",
            "http://id.contoso.test",
            "ftp://id.contoso.test",
            "null",
            "",
        ] {
            assert_eq!(
                SignedRequestDetails::sign(&bound(origin), &server).verify(&server.public_key()),
                Err(ProtocolError::MalformedField("browser.origin")),
                "{origin:?}"
            );
        }
        let short = RequestDetails {
            browser: Some(BrowserBinding {
                challenge: b64(&[9u8; 15]),
                origin: "https://id.contoso.test".into(),
            }),
            ..details()
        };
        assert!(matches!(
            SignedRequestDetails::sign(&short, &server).verify(&server.public_key()),
            Err(ProtocolError::InvalidLength { .. })
        ));
        // An unknown member inside the binding fails closed.
        let json = signed.details.replace(
            r#""origin":"https://id.contoso.test"}"#,
            r#""origin":"https://id.contoso.test","extra":1}"#,
        );
        let extra = SignedRequestDetails {
            signature: server.sign(&request_details_signed_bytes(&json)).to_b64(),
            details: json,
        };
        assert!(matches!(
            extra.verify(&server.public_key()),
            Err(ProtocolError::InvalidJson(_))
        ));
    }

    #[test]
    fn web_origin_is_what_a_browser_puts_in_the_origin_header() {
        for (url, origin) in [
            ("https://id.contoso.test/", Some("https://id.contoso.test")),
            (
                "https://ID.Contoso.test:443/x?y",
                Some("https://id.contoso.test"),
            ),
            (
                "https://id.contoso.test:8443",
                Some("https://id.contoso.test:8443"),
            ),
            ("http://127.0.0.1:8080/", Some("http://127.0.0.1:8080")),
            ("http://localhost:3000", Some("http://localhost:3000")),
            ("http://[::1]:80/", Some("http://[::1]")),
            ("http://id.contoso.test/", None),
            ("file:///etc/passwd", None),
            ("null", None),
        ] {
            assert_eq!(web_origin(url).as_deref(), origin, "{url}");
        }
    }

    #[test]
    fn a_browser_origin_selects_the_bound_layout_and_is_signed() {
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
        let plain = response.signed_bytes();
        assert_eq!(&plain[4..4 + RESPONSE_TAG.len()], RESPONSE_TAG);
        let bound = SignInResponse {
            browser_origin: Some("https://id.contoso.test".into()),
            ..response.clone()
        };
        let bytes = bound.signed_bytes();
        assert_eq!(&bytes[4..4 + BOUND_RESPONSE_TAG.len()], BOUND_RESPONSE_TAG);
        assert!(bytes.ends_with(b"\0\0\0\x17https://id.contoso.test"));
        let (key, _) = EcdsaSigner::generate().unwrap();
        let signature = key.sign(&bytes);
        let other_origin = SignInResponse {
            browser_origin: Some("https://id.contoso.test.evil".into()),
            ..response.clone()
        };
        assert!(key.public_key().verify(&bytes, &signature).is_ok());
        assert!(key
            .public_key()
            .verify(&other_origin.signed_bytes(), &signature)
            .is_err());
        assert!(key.public_key().verify(&plain, &signature).is_err());
    }

    /// Issue 20, finding 5: signed details whose names hold an invisible, private-use or
    /// unassigned character are refused with the field and the character, not shown.
    #[test]
    fn signed_details_with_a_look_alike_name_are_refused_naming_the_field() {
        let (server, _) = EcdsaSigner::generate().unwrap();
        type Set = fn(&mut RequestDetails, String);
        let cases: [(&str, Set); 5] = [
            ("upn", |d, v| d.upn = v),
            ("server_name", |d, v| d.server_name = v),
            ("app_name", |d, v| d.app_name = Some(v)),
            ("location", |d, v| d.location = Some(v)),
            ("device_name", |d, v| d.device_name = Some(v)),
        ];
        for (field, set) in cases {
            for c in ['\u{200B}', '\u{FEFF}', '\u{E000}', '\u{0378}', '\n'] {
                let mut d = details();
                set(&mut d, format!("My{c}Apps"));
                let signed = SignedRequestDetails::sign(&d, &server);
                match signed.verify(&server.public_key()) {
                    Err(ProtocolError::UnsafeText { field: f, error }) => {
                        assert_eq!((f, error.character), (field, c));
                    }
                    other => panic!("{field} U+{:04X}: {other:?}", u32::from(c)),
                }
            }
        }
    }

    #[test]
    fn signed_but_malformed_details_are_typed_errors() {
        let (server, _) = EcdsaSigner::generate().unwrap();
        for json in ["{}", "[]", "not json", r#"{"v":1}"#] {
            let sig = server.sign(&request_details_signed_bytes(json)).to_b64();
            let signed = SignedRequestDetails {
                details: json.into(),
                signature: sig,
            };
            assert!(
                matches!(
                    signed.verify(&server.public_key()),
                    Err(ProtocolError::InvalidJson(_))
                ),
                "{json}"
            );
        }
    }

    /// §6.3 row by row, over every combination of kind, decision and key presence.
    #[test]
    fn response_key_role_follows_the_section_6_3_table_for_every_combination() {
        use Decision::*;
        use KeyRole::*;
        let expected = |kind: RequestKind, decision: Decision, has_passwordless: bool| match (
            kind,
            decision,
            has_passwordless,
        ) {
            (RequestKind::Passwordless, Approve, true) => Ok(Passwordless),
            (RequestKind::Passwordless, Approve, false) => Err(KeyNotAllowed),
            (RequestKind::Push | RequestKind::NewDevice, Approve, true) => Ok(Passwordless),
            (RequestKind::Push | RequestKind::NewDevice, Approve, false) => Ok(Device),
            (_, Deny | Report, _) => Ok(Device),
        };
        let mut combinations = 0;
        for kind in RequestKind::ALL {
            for decision in Decision::ALL {
                for has_passwordless in [false, true] {
                    combinations += 1;
                    assert_eq!(
                        response_key_role(kind, decision, has_passwordless),
                        expected(kind, decision, has_passwordless),
                        "{kind:?} {decision:?} has_passwordless={has_passwordless}"
                    );
                }
            }
        }
        assert_eq!(combinations, 18);
        // The rows spelled out once more, as the table reads.
        assert_eq!(
            response_key_role(RequestKind::Passwordless, Approve, false),
            Err(KeyNotAllowed)
        );
        assert_eq!(
            response_key_role(RequestKind::Push, Approve, false),
            Ok(Device)
        );
        assert_eq!(
            response_key_role(RequestKind::Push, Approve, true),
            Ok(Passwordless)
        );
        for kind in RequestKind::ALL {
            for decision in [Deny, Report] {
                for has in [false, true] {
                    assert_eq!(response_key_role(kind, decision, has), Ok(Device));
                }
            }
        }
    }

    #[test]
    fn select_response_key_picks_the_key_of_the_role() {
        for kind in RequestKind::ALL {
            for decision in Decision::ALL {
                for passwordless in [None, Some("pl")] {
                    let picked = select_response_key(kind, decision, "dev", passwordless);
                    let want =
                        response_key_role(kind, decision, passwordless.is_some()).map(|role| {
                            match role {
                                KeyRole::Device => "dev",
                                KeyRole::Passwordless => "pl",
                            }
                        });
                    assert_eq!(picked, want, "{kind:?} {decision:?} {passwordless:?}");
                }
            }
        }
    }

    #[test]
    fn device_auth_header_round_trips() {
        let (key, _) = EcdsaSigner::generate().unwrap();
        let account_id = AccountId::random();
        let ts = UnixMillis(1_700_000_000_000);
        let signature = key.sign(&DeviceAuth::signed_bytes(
            "GET",
            "/api/v1/device/poll?wait=5",
            &account_id,
            ts,
        ));
        let auth = DeviceAuth {
            account_id,
            timestamp: ts,
            signature,
        };
        assert_eq!(DeviceAuth::parse_header(&auth.to_header()).unwrap(), auth);
        for bad in ["", "Bearer x", "PSI-Device a.b", "PSI-Device a.1.c.d"] {
            assert!(DeviceAuth::parse_header(bad).is_err(), "{bad}");
        }
        // One header per signed message: the time has one spelling, the id and the signature
        // are taken as written (issue 20, finding 4).
        let sig = auth.signature.to_b64();
        let (id, ms) = (auth.account_id.as_str(), auth.timestamp.millis());
        for bad in [
            format!("PSI-Device {id}.+{ms}.{sig}"),
            format!("PSI-Device {id}.0{ms}.{sig}"),
            format!("PSI-Device {id}. {ms}.{sig}"),
            format!("PSI-Device {id} .{ms}.{sig}"),
            format!("PSI-Device  {id}.{ms}.{sig}"),
            format!("PSI-Device {id}.{ms}.{sig} "),
        ] {
            assert!(DeviceAuth::parse_header(&bad).is_err(), "{bad:?}");
        }
    }
}
