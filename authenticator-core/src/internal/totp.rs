//! TOTP accounts (RFC 6238): the offline-fallback secret each enrollment brings (PROTOCOL.md
//! §5.2, `totp_uri`) and plain `otpauth://totp/…` imports from other services. Parsing and
//! codes are `totp-rs`'s. The secret is sealed by the platform's `SecretStore` before it is
//! stored and unsealed only to compute a code; it never reaches a log, an error or `Debug`.
use std::sync::Arc;

use authenticator_protocol::{text, AccountId, UnixMillis};
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use super::store::StoredTotp;
use super::{bounded, new_alias, Core};
use crate::error::{Error, Result};
use crate::platform::SecretStore;
use crate::types::{TotpAccount, TotpCode};

/// Longest URI accepted (a QR code holds at most about 4 KB).
const MAX_URI_BYTES: usize = 4096;
/// Longest issuer or account name (characters).
const MAX_LABEL_CHARS: usize = 128;
/// Shortest secret accepted: 80 bits, what many services still issue (RFC 4226 asks for 128).
const MIN_SECRET_BYTES: usize = 10;
const MAX_SECRET_BYTES: usize = 128;

/// A parsed `otpauth://totp/` URI; the secret is zeroized on drop and never printed.
pub(crate) struct ParsedTotp {
    pub issuer: String,
    pub account_name: String,
    pub algorithm: Algorithm,
    pub digits: u32,
    pub period: u32,
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ParsedTotp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedTotp")
            .field("issuer", &self.issuer)
            .field("account_name", &self.account_name)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

pub(crate) fn algorithm_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::SHA1 => "SHA1",
        Algorithm::SHA256 => "SHA256",
        Algorithm::SHA512 => "SHA512",
    }
}

pub(crate) fn parse_algorithm(name: &str) -> Result<Algorithm> {
    match name {
        "SHA1" => Ok(Algorithm::SHA1),
        "SHA256" => Ok(Algorithm::SHA256),
        "SHA512" => Ok(Algorithm::SHA512),
        _ => Err(Error::Internal("unknown stored TOTP algorithm".into())),
    }
}

fn check_label(what: &'static str, value: &str) -> Result<()> {
    if value.chars().count() > MAX_LABEL_CHARS || text::check_plain(value).is_err() {
        return Err(Error::InvalidTotpUri(what));
    }
    Ok(())
}

/// Parses an `otpauth://totp/ISSUER:ACCOUNT?secret=…` URI (Key Uri Format). Errors name the
/// part that is wrong, never its value (the URI holds the secret).
pub(crate) fn parse_uri(uri: &str) -> Result<ParsedTotp> {
    let uri = uri.trim();
    if uri.len() > MAX_URI_BYTES {
        return Err(Error::InvalidTotpUri("the URI is too long"));
    }
    if !uri.to_ascii_lowercase().starts_with("otpauth://totp/") {
        return Err(Error::InvalidTotpUri("not an otpauth://totp/ URI"));
    }
    let mut totp = TOTP::from_url_unchecked(uri)
        .map_err(|_| Error::InvalidTotpUri("malformed otpauth URI"))?;
    let secret = Zeroizing::new(std::mem::take(&mut totp.secret));
    if secret.len() < MIN_SECRET_BYTES || secret.len() > MAX_SECRET_BYTES {
        return Err(Error::InvalidTotpUri(
            "the secret must be 80 to 1024 bits of base32",
        ));
    }
    if !(6..=8).contains(&totp.digits) {
        return Err(Error::InvalidTotpUri("digits must be 6, 7 or 8"));
    }
    if !(1..=300).contains(&totp.step) {
        return Err(Error::InvalidTotpUri("the period must be 1 to 300 seconds"));
    }
    let issuer = totp.issuer.take().unwrap_or_default();
    let account_name = std::mem::take(&mut totp.account_name);
    check_label(
        "the issuer is too long or holds control characters",
        &issuer,
    )?;
    check_label(
        "the account name is too long or holds control characters",
        &account_name,
    )?;
    Ok(ParsedTotp {
        issuer,
        account_name,
        algorithm: totp.algorithm,
        digits: totp.digits as u32,
        period: totp.step as u32,
        secret,
    })
}

/// The code at Unix time `secs` and the seconds it stays valid.
pub(crate) fn code_at(
    algorithm: Algorithm,
    digits: u32,
    period: u32,
    secret: &[u8],
    secs: u64,
) -> (Zeroizing<String>, u32) {
    let totp = TOTP::new_unchecked(
        algorithm,
        digits as usize,
        0,
        u64::from(period),
        secret.to_vec(),
        None,
        String::new(),
    );
    let code = Zeroizing::new(totp.generate(secs));
    let remaining = period - (secs % u64::from(period)) as u32;
    (code, remaining)
}

/// What a secret is sealed under: the platform binds it to this context (associated data).
pub(crate) fn seal_context(totp_id: &str) -> String {
    format!("totp/{totp_id}")
}

pub(crate) fn secret_store(core: &Core) -> Result<&Arc<dyn SecretStore>> {
    core.secrets.as_ref().ok_or(Error::NoSecretStore)
}

impl StoredTotp {
    pub(crate) fn summary(&self) -> TotpAccount {
        TotpAccount {
            totp_id: self.totp_id.clone(),
            issuer: self.issuer.clone(),
            account_name: self.account_name.clone(),
            algorithm: self.algorithm.clone(),
            digits: self.digits,
            period: self.period,
            account_id: self.account_id.as_ref().map(|a| a.to_string()),
        }
    }
}

/// Seals `parsed`'s secret for a new TOTP account and returns the row to store.
pub(crate) async fn seal(
    core: &Core,
    parsed: &ParsedTotp,
    linked: Option<&AccountId>,
) -> Result<StoredTotp> {
    let secrets = secret_store(core)?;
    let totp_id = new_alias("totp")?;
    let sealed = bounded(
        "seal a secret",
        secrets.seal(seal_context(&totp_id), parsed.secret.to_vec()),
    )
    .await
    .map_err(Error::SecretStore)?;
    Ok(StoredTotp {
        totp_id,
        account_id: linked.cloned(),
        issuer: parsed.issuer.clone(),
        account_name: parsed.account_name.clone(),
        algorithm: algorithm_name(parsed.algorithm).to_owned(),
        digits: parsed.digits,
        period: parsed.period,
        sealed_secret: sealed,
        created_at: UnixMillis::now(),
    })
}

/// Adds a TOTP account from an `otpauth://totp/` URI (an import from another service).
pub(crate) async fn add(core: &Core, uri: &str) -> Result<TotpAccount> {
    let parsed = parse_uri(uri)?;
    let row = seal(core, &parsed, None).await?;
    core.store.insert_totp(&row)?;
    tracing::info!("TOTP account added");
    Ok(row.summary())
}

/// The TOTP secret an enrollment brought (`totp_uri`), linked to its account: removing the
/// account removes it. A failure leaves the enrollment as it is (it is logged): the account
/// works, only its offline fallback is missing.
pub(crate) async fn add_enrollment_secret(core: &Core, account: &AccountId, uri: &str) {
    let result = async {
        let parsed = parse_uri(uri)?;
        let row = seal(core, &parsed, Some(account)).await?;
        core.store.insert_totp(&row)
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "the enrollment's TOTP secret was not stored");
    }
}

pub(crate) fn list(core: &Core) -> Result<Vec<TotpAccount>> {
    Ok(core
        .store
        .totp_accounts()?
        .iter()
        .map(StoredTotp::summary)
        .collect())
}

/// The current code of a TOTP account, by its id.
pub(crate) async fn code(core: &Core, totp_id: &str) -> Result<TotpCode> {
    let row = core.store.totp(totp_id)?.ok_or(Error::UnknownTotpAccount)?;
    let secrets = secret_store(core)?;
    let secret = Zeroizing::new(
        bounded(
            "unseal a secret",
            secrets.unseal(seal_context(&row.totp_id), row.sealed_secret.clone()),
        )
        .await
        .map_err(Error::SecretStore)?,
    );
    let now = UnixMillis::now().millis() / 1000;
    let (code, seconds_remaining) = code_at(
        parse_algorithm(&row.algorithm)?,
        row.digits,
        row.period,
        &secret,
        now,
    );
    Ok(TotpCode {
        code: code.to_string(),
        seconds_remaining,
        period: row.period,
    })
}

pub(crate) fn remove(core: &Core, totp_id: &str) -> Result<()> {
    if !core.store.delete_totp(totp_id)? {
        return Err(Error::UnknownTotpAccount);
    }
    tracing::info!("TOTP account removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, every time and algorithm (8 digits; the seeds are the ASCII
    /// strings of 20, 32 and 64 bytes the RFC's reference code uses).
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let sha1 = b"12345678901234567890".to_vec();
        let sha256 = b"12345678901234567890123456789012".to_vec();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let table: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        for (t, c1, c256, c512) in table {
            assert_eq!(
                *code_at(Algorithm::SHA1, 8, 30, &sha1, t).0,
                c1,
                "SHA1 T={t}"
            );
            assert_eq!(
                *code_at(Algorithm::SHA256, 8, 30, &sha256, t).0,
                c256,
                "SHA256 T={t}"
            );
            assert_eq!(
                *code_at(Algorithm::SHA512, 8, 30, &sha512, t).0,
                c512,
                "SHA512 T={t}"
            );
        }
    }

    #[test]
    fn seconds_remaining_count_down_within_the_period() {
        let secret = [1u8; 20];
        assert_eq!(code_at(Algorithm::SHA1, 6, 30, &secret, 60).1, 30);
        assert_eq!(code_at(Algorithm::SHA1, 6, 30, &secret, 89).1, 1);
        assert_eq!(code_at(Algorithm::SHA1, 6, 60, &secret, 61).1, 59);
        assert_eq!(code_at(Algorithm::SHA1, 6, 30, &secret, 61).0.len(), 6);
    }

    #[test]
    fn uris_from_other_services_parse() {
        // Google's 80-bit secrets, a label without issuer, SHA256 and 8 digits.
        let p = parse_uri(
            "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
        )
        .unwrap();
        assert_eq!(
            (p.issuer.as_str(), p.account_name.as_str()),
            ("Example", "alice@google.com")
        );
        assert_eq!((p.digits, p.period), (6, 30));
        assert_eq!(p.secret.as_slice(), b"Hello!\xde\xad\xbe\xef");
        let p = parse_uri(
            "otpauth://totp/bob?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&algorithm=SHA256&digits=8&period=60",
        )
        .unwrap();
        assert_eq!(p.issuer, "");
        assert_eq!(p.account_name, "bob");
        assert_eq!(algorithm_name(p.algorithm), "SHA256");
        assert_eq!((p.digits, p.period), (8, 60));
    }

    #[test]
    fn bad_uris_are_refused_without_echoing_the_secret() {
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DP";
        for (uri, why) in [
            (
                format!("otpauth://hotp/x?secret={secret}&counter=1"),
                "not an otpauth://totp/",
            ),
            (
                format!("https://totp/x?secret={secret}"),
                "not an otpauth://totp/",
            ),
            ("otpauth://totp/x?issuer=y".to_owned(), "malformed"),
            (
                "otpauth://totp/x?secret=JBSWY3DP".to_owned(),
                "80 to 1024 bits",
            ),
            (
                format!("otpauth://totp/x?secret={secret}&digits=9"),
                "digits",
            ),
            (
                format!("otpauth://totp/x?secret={secret}&digits=5"),
                "digits",
            ),
            (
                format!("otpauth://totp/x?secret={secret}&period=0"),
                "period",
            ),
            (
                format!("otpauth://totp/x?secret={secret}&period=301"),
                "period",
            ),
            (
                format!("otpauth://totp/a%0Ab?secret={secret}"),
                "account name",
            ),
            (
                format!("otpauth://totp/x?secret={secret}&issuer=%E2%80%AEevil"),
                "issuer",
            ),
            (
                format!("otpauth://totp/x?secret={secret}&{}", "a".repeat(5000)),
                "too long",
            ),
            (format!("otpauth://totp/x?secret=!!{secret}"), "malformed"),
        ] {
            let e = parse_uri(&uri).unwrap_err();
            let text = format!("{e} {e:?}");
            assert!(text.contains(why), "{uri}: {text}");
            assert!(
                !text.contains(secret) && !text.contains("JBSWY3DP"),
                "{text}"
            );
        }
    }
}
