//! Moving to a new phone (PROTOCOL.md §5.11): the old phone's device key vouches for a
//! registration of a new kind (a move code), the new phone enrolls with it, and the TOTP
//! accounts travel end-to-end encrypted under a one-time key that only the move link holds.
use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::canonical::{Canonical, MOVE_VOUCH_TAG};
use crate::encoding::{b64, unb64, unb64_fixed};
use crate::enroll::{check_server_url, EnrollmentUrl, ENROLLMENT_SCHEME};
use crate::{AccountId, ProtocolError, UnixMillis, PROTOCOL_VERSION};

/// `POST /api/v1/move/vouch`: the old phone asks for a move code for one of its accounts.
pub const MOVE_VOUCH_PATH: &str = "/api/v1/move/vouch";
/// `POST /api/v1/move/claim`: the new phone checks a move code and takes the TOTP blob.
pub const MOVE_CLAIM_PATH: &str = "/api/v1/move/claim";
/// Lifetime of a move code: the two phones are side by side.
pub const MOVE_TTL_SECS: u64 = 600;
/// The largest encrypted TOTP blob a server keeps (base64url text, below the 64 KiB body limit).
pub const MAX_TOTP_BLOB_CHARS: usize = 48 * 1024;
/// Most accounts one move link carries.
pub const MAX_MOVE_ACCOUNTS: usize = 32;
/// Associated data of the TOTP blob's AEAD (AES-256-GCM, 12-byte nonce first).
pub const MOVE_TOTP_AAD: &[u8] = b"phonesignin/v1/move-totp";

/// What the old phone's device key signs to vouch for a move of `account_id`: the account,
/// the SHA-256 of the encrypted TOTP blob it leaves with this server (empty: none), and the
/// time. The signature is made after the user passed verification for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveVouch {
    pub account_id: AccountId,
    pub totp_blob_sha256: Option<[u8; 32]>,
    pub timestamp: UnixMillis,
}

impl MoveVouch {
    pub fn signed_bytes(&self) -> Vec<u8> {
        Canonical::new(MOVE_VOUCH_TAG)
            .str(self.account_id.as_str())
            .field(self.totp_blob_sha256.as_ref().map_or(&[][..], |h| &h[..]))
            .u64(self.timestamp.millis())
            .finish()
    }
}

/// `POST /api/v1/move/vouch`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveVouchRequest {
    pub account_id: AccountId,
    /// base64url of `nonce || AES-256-GCM ciphertext`, opaque to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_blob: Option<String>,
    pub timestamp: UnixMillis,
    /// The device key's signature over [`MoveVouch::signed_bytes`].
    pub signature: String,
}

/// The move code (a one-time enrollment code of kind "moved") and when it expires.
#[derive(Clone, Serialize, Deserialize)]
pub struct MoveVouchResponse {
    pub code: String,
    pub expires_at: UnixMillis,
}

impl fmt::Debug for MoveVouchResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MoveVouchResponse")
            .field("code", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /api/v1/move/claim`
#[derive(Clone, Serialize, Deserialize)]
pub struct MoveClaimRequest {
    pub code: String,
}

impl fmt::Debug for MoveClaimRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MoveClaimRequest { code: <redacted> }")
    }
}

/// The encrypted TOTP blob left with this code, handed out once (then deleted).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MoveClaimResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_blob: Option<String>,
}

/// The one QR code (or link) of a move:
/// `phonesignin://move?v=1&k=<one-time key>&a=<code>.<fp>.<server>&a=…&t=<index>&p=<index>…`.
/// Each `a` is one account's move code, the pinned fingerprint of its server's key and the
/// server's URL; `t` names the entry whose server keeps the encrypted TOTP accounts; each `p`
/// names an entry whose account had phone sign-in on (the new phone enables it with its own
/// key).
#[derive(Clone, PartialEq, Eq)]
pub struct MoveLink {
    /// The one-time AES-256-GCM key of the TOTP blob (secret: never logged).
    pub key: [u8; 32],
    pub accounts: Vec<EnrollmentUrl>,
    pub totp_at: Option<usize>,
    /// Indices of `accounts` whose account had phone sign-in on, ascending.
    pub phone_sign_in: Vec<usize>,
}

impl fmt::Debug for MoveLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MoveLink")
            .field("key", &"<redacted>")
            .field("accounts", &self.accounts)
            .field("totp_at", &self.totp_at)
            .field("phone_sign_in", &self.phone_sign_in)
            .finish()
    }
}

fn bad(reason: &'static str) -> ProtocolError {
    ProtocolError::InvalidMoveLink(reason)
}

impl MoveLink {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let url = Url::parse(text.trim()).map_err(|_| bad("not a URL"))?;
        if url.scheme() != ENROLLMENT_SCHEME || url.host_str() != Some("move") {
            return Err(bad("not a phonesignin://move link"));
        }
        let (mut v, mut k, mut t, mut accounts) = (None, None, None, Vec::new());
        let mut phone_sign_in: Vec<usize> = Vec::new();
        for (name, value) in url.query_pairs() {
            let slot = match name.as_ref() {
                "a" => {
                    if accounts.len() == MAX_MOVE_ACCOUNTS {
                        return Err(bad("too many accounts"));
                    }
                    accounts.push(parse_entry(&value)?);
                    continue;
                }
                "p" => {
                    let i: usize = value.parse().map_err(|_| bad("bad p"))?;
                    // Ascending and distinct: one way to write each link.
                    if phone_sign_in.last().is_some_and(|&last| last >= i) {
                        return Err(bad("p out of order"));
                    }
                    phone_sign_in.push(i);
                    continue;
                }
                "v" => &mut v,
                "k" => &mut k,
                "t" => &mut t,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(bad("repeated parameter"));
            }
        }
        let v: u64 = v
            .ok_or(bad("missing v"))?
            .parse()
            .map_err(|_| bad("bad v"))?;
        if v != u64::from(PROTOCOL_VERSION) {
            return Err(ProtocolError::UnsupportedVersion(v));
        }
        let key = unb64_fixed::<32>("k", &k.ok_or(bad("missing k"))?).map_err(|_| bad("bad k"))?;
        if accounts.is_empty() {
            return Err(bad("no account"));
        }
        let totp_at = t
            .map(|t| t.parse::<usize>().map_err(|_| bad("bad t")))
            .transpose()?;
        if totp_at.is_some_and(|i| i >= accounts.len()) {
            return Err(bad("t names no account"));
        }
        if phone_sign_in.last().is_some_and(|&i| i >= accounts.len()) {
            return Err(bad("p names no account"));
        }
        Ok(MoveLink {
            key,
            accounts,
            totp_at,
            phone_sign_in,
        })
    }

    pub fn to_url_string(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("v", &PROTOCOL_VERSION.to_string())
            .append_pair("k", &b64(&self.key));
        for a in &self.accounts {
            query.append_pair(
                "a",
                &format!("{}.{}.{}", a.code, a.server_fingerprint, a.server.as_str()),
            );
        }
        if let Some(t) = self.totp_at {
            query.append_pair("t", &t.to_string());
        }
        for p in &self.phone_sign_in {
            query.append_pair("p", &p.to_string());
        }
        format!("{ENROLLMENT_SCHEME}://move?{}", query.finish())
    }
}

/// `<code>.<fp>.<server URL>`: the code and fingerprint are base64url (no `.`).
fn parse_entry(value: &str) -> Result<EnrollmentUrl, ProtocolError> {
    let mut parts = value.splitn(3, '.');
    let (Some(code), Some(fp), Some(server)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("an account entry is <code>.<fp>.<server>"));
    };
    if code.len() != 22 || unb64("code", code).is_err() {
        return Err(bad("malformed code"));
    }
    if fp.len() != 43 || unb64("fp", fp).is_err() {
        return Err(bad("malformed fp"));
    }
    let server = Url::parse(server).map_err(|_| bad("server is not a URL"))?;
    check_server_url(&server)?;
    Ok(EnrollmentUrl {
        server,
        code: code.to_owned(),
        server_fingerprint: fp.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(server: &str, code: &str) -> EnrollmentUrl {
        EnrollmentUrl {
            server: Url::parse(server).unwrap(),
            code: code.into(),
            server_fingerprint: b64(&[7u8; 32]),
        }
    }

    #[test]
    fn a_move_link_round_trips() {
        let link = MoveLink {
            key: [9u8; 32],
            accounts: vec![
                entry("http://127.0.0.1:8080/", "AAECAwQFBgcICQoLDA0ODw"),
                entry("https://id.contoso.test/base/", "EBESExQVFhcYGRobHB0eHw"),
            ],
            totp_at: Some(1),
            phone_sign_in: vec![0, 1],
        };
        assert_eq!(MoveLink::parse(&link.to_url_string()).unwrap(), link);
        let without = MoveLink {
            totp_at: None,
            phone_sign_in: Vec::new(),
            ..link
        };
        assert_eq!(MoveLink::parse(&without.to_url_string()).unwrap(), without);
    }

    #[test]
    fn malformed_move_links_are_refused_by_name() {
        let good = MoveLink {
            key: [9u8; 32],
            accounts: vec![entry("http://127.0.0.1:8080/", "AAECAwQFBgcICQoLDA0ODw")],
            totp_at: Some(0),
            phone_sign_in: vec![0],
        }
        .to_url_string();
        for (text, why) in [
            (
                good.replace("://move", "://enroll"),
                "not a phonesignin://move",
            ),
            (good.replace("v=1", "v=2"), "version"),
            (good.replace("&t=0", "&t=1"), "t names no account"),
            (good.replace("&t=0", "&t=0&t=0"), "repeated"),
            (good.replace("&p=0", "&p=1"), "p names no account"),
            (good.replace("&p=0", "&p=0&p=0"), "p out of order"),
            (good.replace("&p=0", "&p=x"), "bad p"),
            (good.replace("k=CQkJ", "k=CQk"), "bad k"),
            (good.replace("AAECAwQF", "AAECAw"), "malformed code"),
            (good.replace("http%3A", "http%3X"), "server"),
            (
                "phonesignin://move?v=1&k=CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk".into(),
                "no account",
            ),
        ] {
            let e = MoveLink::parse(&text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
            assert!(!e.contains("AAECAwQFBgcICQoLDA0ODw"), "{e}");
        }
        let insecure = good.replace("http%3A%2F%2F127.0.0.1", "http%3A%2F%2Fexample.com");
        assert_eq!(
            MoveLink::parse(&insecure),
            Err(ProtocolError::InsecureServerUrl)
        );
    }

    #[test]
    fn the_vouch_covers_the_blob_hash_and_none_differs_from_some() {
        let v = MoveVouch {
            account_id: AccountId::parse("EBESExQVFhcYGRobHB0eHw").unwrap(),
            totp_blob_sha256: None,
            timestamp: UnixMillis(1),
        };
        let with = MoveVouch {
            totp_blob_sha256: Some([0u8; 32]),
            ..v.clone()
        };
        assert_ne!(v.signed_bytes(), with.signed_bytes());
        assert!(v.signed_bytes().starts_with(&[0, 0, 0, 25]));
    }
}
