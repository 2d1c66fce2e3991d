//! Enrollment: the URL in the QR code, the server-signed challenge and the device's proof of
//! possession.
use std::fmt;

use url::Url;

use crate::canonical::{Canonical, ENROLL_CHALLENGE_TAG, ENROLL_TAG, PASSWORDLESS_KEY_TAG};
use crate::encoding::{sha256, unb64};
use crate::{AccountId, ProtocolError, PublicKey, UnixMillis, PROTOCOL_VERSION};

pub const ENROLLMENT_SCHEME: &str = "phonesignin";

/// `phonesignin://enroll?v=1&server=<URL>&code=<one-time code>&fp=<server key fingerprint>`
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentUrl {
    pub server: Url,
    /// One-time enrollment code (secret: never logged).
    pub code: String,
    /// `PublicKey::fingerprint` of the server's signing key, pinned by the phone.
    pub server_fingerprint: String,
}

impl fmt::Debug for EnrollmentUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentUrl")
            .field("server", &self.server.as_str())
            .field("code", &"<redacted>")
            .field("server_fingerprint", &self.server_fingerprint)
            .finish()
    }
}

/// The server's base URL must be https, or http on a loopback address (development, tests).
pub fn check_server_url(url: &Url) -> Result<(), ProtocolError> {
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => {
            return Err(ProtocolError::InvalidEnrollmentUrl(
                "server URL has no host",
            ))
        }
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(ProtocolError::InsecureServerUrl),
        _ => Err(ProtocolError::InvalidEnrollmentUrl(
            "server URL must be http(s)",
        )),
    }
}

impl EnrollmentUrl {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let url = Url::parse(text.trim())
            .map_err(|_| ProtocolError::InvalidEnrollmentUrl("not a URL"))?;
        if url.scheme() != ENROLLMENT_SCHEME || url.host_str() != Some("enroll") {
            return Err(ProtocolError::InvalidEnrollmentUrl(
                "not a phonesignin://enroll link",
            ));
        }
        let (mut v, mut server, mut code, mut fp) = (None, None, None, None);
        for (k, val) in url.query_pairs() {
            let slot = match k.as_ref() {
                "v" => &mut v,
                "server" => &mut server,
                "code" => &mut code,
                "fp" => &mut fp,
                _ => continue, // later versions may add optional parameters
            };
            if slot.replace(val.into_owned()).is_some() {
                return Err(ProtocolError::InvalidEnrollmentUrl("repeated parameter"));
            }
        }
        let v = v.ok_or(ProtocolError::InvalidEnrollmentUrl("missing v"))?;
        let v: u64 = v
            .parse()
            .map_err(|_| ProtocolError::InvalidEnrollmentUrl("bad v"))?;
        if v != u64::from(PROTOCOL_VERSION) {
            return Err(ProtocolError::UnsupportedVersion(v));
        }
        let server = server.ok_or(ProtocolError::InvalidEnrollmentUrl("missing server"))?;
        let server = Url::parse(&server)
            .map_err(|_| ProtocolError::InvalidEnrollmentUrl("server is not a URL"))?;
        check_server_url(&server)?;
        let code = code.ok_or(ProtocolError::InvalidEnrollmentUrl("missing code"))?;
        if code.len() != 22 || unb64("code", &code).is_err() {
            return Err(ProtocolError::InvalidEnrollmentUrl("malformed code"));
        }
        let fp = fp.ok_or(ProtocolError::InvalidEnrollmentUrl("missing fp"))?;
        if fp.len() != 43 || unb64("fp", &fp).is_err() {
            return Err(ProtocolError::InvalidEnrollmentUrl("malformed fp"));
        }
        Ok(EnrollmentUrl {
            server,
            code,
            server_fingerprint: fp,
        })
    }

    pub fn to_url_string(&self) -> String {
        // The query as `Url::query_pairs_mut` writes it (application/x-www-form-urlencoded),
        // after the fixed scheme and host: no URL to parse, so nothing that can fail.
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("v", &PROTOCOL_VERSION.to_string())
            .append_pair("server", self.server.as_str())
            .append_pair("code", &self.code)
            .append_pair("fp", &self.server_fingerprint)
            .finish();
        format!("{ENROLLMENT_SCHEME}://enroll?{query}")
    }

    /// Joins an API path (`/api/v1/...`) onto the server base URL, keeping any base path.
    pub fn endpoint(server: &Url, path: &str) -> Url {
        let mut base = server.clone();
        let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
        base.set_path(&joined);
        base.set_query(None);
        base
    }
}

/// What the server signs when it answers an enrollment code: binds the code, the fresh
/// challenge and the account the phone is about to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollChallenge {
    pub challenge: [u8; 32],
    pub upn: String,
    pub display_name: String,
    pub server_name: String,
    pub expires_at: UnixMillis,
}

impl EnrollChallenge {
    /// The names the phone stores and shows (user name, display name, server name) through the
    /// one gate for names ([`crate::text::check_plain`]).
    pub fn check_text(&self) -> Result<(), ProtocolError> {
        for (field, value) in [
            ("upn", &self.upn),
            ("display_name", &self.display_name),
            ("server_name", &self.server_name),
        ] {
            crate::text::check_plain(value)
                .map_err(|error| ProtocolError::UnsafeText { field, error })?;
        }
        Ok(())
    }

    pub fn signed_bytes(&self, code: &str) -> Vec<u8> {
        Canonical::new(ENROLL_CHALLENGE_TAG)
            .field(&sha256(code.as_bytes()))
            .field(&self.challenge)
            .str(&self.upn)
            .str(&self.display_name)
            .str(&self.server_name)
            .u64(self.expires_at.millis())
            .finish()
    }
}

/// The device's proof of possession of its new account key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollProof {
    pub challenge: [u8; 32],
    pub device_public_key: PublicKey,
    pub push_kind: String,
    pub push_token: String,
    pub device_name: String,
    pub timestamp: UnixMillis,
}

impl EnrollProof {
    pub fn signed_bytes(&self) -> Vec<u8> {
        Canonical::new(ENROLL_TAG)
            .field(&self.challenge)
            .field(self.device_public_key.as_bytes())
            .str(&self.push_kind)
            .str(&self.push_token)
            .str(&self.device_name)
            .u64(self.timestamp.millis())
            .finish()
    }
}

/// Registration of the user-verification-bound key that signs phone sign-in approvals.
/// Signed by the account's device key *and* by the new key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordlessKeyRegistration {
    pub account_id: AccountId,
    pub passwordless_public_key: PublicKey,
    pub timestamp: UnixMillis,
}

impl PasswordlessKeyRegistration {
    pub fn signed_bytes(&self) -> Vec<u8> {
        Canonical::new(PASSWORDLESS_KEY_TAG)
            .str(self.account_id.as_str())
            .field(self.passwordless_public_key.as_bytes())
            .u64(self.timestamp.millis())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA";
    const CODE: &str = "AAECAwQFBgcICQoLDA0ODw";

    fn url(server: &str) -> String {
        EnrollmentUrl {
            server: Url::parse(server).unwrap(),
            code: CODE.into(),
            server_fingerprint: FP.into(),
        }
        .to_url_string()
    }

    /// Issue 20, finding 5: the names the phone stores at enrollment pass the one gate.
    #[test]
    fn a_challenge_with_a_look_alike_name_is_refused_naming_the_field() {
        let challenge = EnrollChallenge {
            challenge: [1; 32],
            upn: "bobby@contoso.test".into(),
            display_name: "Bobby Smith".into(),
            server_name: "Contoso".into(),
            expires_at: UnixMillis(1),
        };
        assert_eq!(challenge.check_text(), Ok(()));
        for field in ["upn", "display_name", "server_name"] {
            let mut bad = challenge.clone();
            let value = match field {
                "upn" => &mut bad.upn,
                "display_name" => &mut bad.display_name,
                _ => &mut bad.server_name,
            };
            value.insert(3, '\u{200B}');
            match bad.check_text() {
                Err(ProtocolError::UnsafeText { field: f, error }) => {
                    assert_eq!((f, error.code_point()), (field, 0x200B));
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn round_trips() {
        let text = url("http://127.0.0.1:8080/");
        let parsed = EnrollmentUrl::parse(&text).unwrap();
        assert_eq!(parsed.code, CODE);
        assert_eq!(parsed.server_fingerprint, FP);
        assert_eq!(parsed.server.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(parsed.to_url_string(), text);
    }

    /// The text is what `Url::query_pairs_mut` on `phonesignin://enroll` wrote before, byte
    /// for byte, also for servers whose URL needs escaping in a query.
    #[test]
    fn the_url_text_is_the_form_encoded_query_after_the_fixed_prefix() {
        for server in [
            "http://127.0.0.1:8080/",
            "https://id.example/tenant a/?x=1&y=ü#frag",
            "https://[::1]:9/+%2F",
        ] {
            let link = EnrollmentUrl {
                server: Url::parse(server).unwrap(),
                code: CODE.into(),
                server_fingerprint: FP.into(),
            };
            let mut expected = Url::parse("phonesignin://enroll").unwrap();
            expected
                .query_pairs_mut()
                .append_pair("v", "1")
                .append_pair("server", link.server.as_str())
                .append_pair("code", CODE)
                .append_pair("fp", FP);
            assert_eq!(link.to_url_string(), expected.as_str(), "{server}");
        }
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        assert_eq!(
            EnrollmentUrl::parse(&url("http://example.com/")),
            Err(ProtocolError::InsecureServerUrl)
        );
        assert!(EnrollmentUrl::parse(&url("https://example.com/")).is_ok());
        assert!(EnrollmentUrl::parse(&url("http://localhost:1/")).is_ok());
        assert!(EnrollmentUrl::parse(&url("http://[::1]:1/")).is_ok());
    }

    #[test]
    fn malformed_urls_are_typed_errors() {
        let good = url("http://127.0.0.1:1/");
        let cases = [
            "".to_string(),
            "hello".into(),
            "https://enroll?v=1".into(),
            good.replace("v=1", "v=2"),
            good.replace("v=1", "v=x"),
            good.replace(CODE, "short"),
            good.replace(FP, "nope"),
            good.replace("&fp=", "&xx="),
            format!("{good}&code={CODE}"),
            good.replace("server=http", "server=ftp"),
        ];
        for case in cases {
            assert!(EnrollmentUrl::parse(&case).is_err(), "{case}");
        }
        assert_eq!(
            EnrollmentUrl::parse(&good.replace("v=1", "v=2")),
            Err(ProtocolError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn endpoints_keep_the_base_path() {
        let base = Url::parse("https://id.example/tenant/").unwrap();
        assert_eq!(
            EnrollmentUrl::endpoint(&base, "/api/v1/enroll").as_str(),
            "https://id.example/tenant/api/v1/enroll"
        );
        let base = Url::parse("http://127.0.0.1:9").unwrap();
        assert_eq!(
            EnrollmentUrl::endpoint(&base, "/api/v1/x").as_str(),
            "http://127.0.0.1:9/api/v1/x"
        );
    }
}
