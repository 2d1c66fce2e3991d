//! The offline fallback's TOTP (RFC 6238): every enrolled device gets its own secret at
//! enrollment (PROTOCOL.md §5.2, `totp_uri` in the enroll-complete answer), so the phone shows
//! codes without a network, and removing a lost phone removes its secret.
//!
//! Secrets are stored sealed (AES-256-GCM under the fallback key kept in `settings`, bound to
//! the account id), never logged, and the code computation is `totp-rs`'s. A code is accepted
//! for the current 30 s step and one step either side (clock drift), once: the newest step that
//! signed someone in is stored, and a code of that step or an older one is refused.
use authenticator_protocol::encoding::{b64, ct_eq, unb64};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use totp_rs::{Algorithm, TOTP};
use zeroize::Zeroizing;

use crate::error::AppError;
use crate::random::random_bytes;
use crate::store::fallback::{self as db, TOTP_KEY_SETTING};
use crate::store::Pool;

/// RFC 6238 parameters every server secret uses (what every authenticator app supports).
pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// Steps accepted on either side of the current one.
pub const SKEW_STEPS: u64 = 1;
/// 160 bits, RFC 4226's recommendation.
pub const SECRET_BYTES: usize = 20;

const AAD_PREFIX: &[u8] = b"signin-server/totp-secret/v1\0";

/// A TOTP generator whose secret never reaches `Debug` or a log.
pub struct Totp(TOTP);

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Totp { .. }")
    }
}

/// Text for an otpauth label part: `:` separates issuer and account there, so it is replaced.
fn label_part(text: &str) -> String {
    text.replace(':', "-")
}

impl Totp {
    pub fn new(secret: Vec<u8>, issuer: &str, account: &str) -> Self {
        Totp(TOTP::new_unchecked(
            Algorithm::SHA1,
            DIGITS,
            SKEW_STEPS as u8,
            STEP_SECS,
            secret,
            Some(label_part(issuer)),
            label_part(account),
        ))
    }

    /// The code of the step that holds Unix time `secs`.
    pub fn code_at(&self, secs: u64) -> String {
        self.0.generate(secs)
    }

    /// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…` (Key Uri Format).
    pub fn uri(&self) -> Zeroizing<String> {
        Zeroizing::new(self.0.get_url())
    }

    /// The steps (newest first) among `step - SKEW ..= step + SKEW` whose code is `code`,
    /// compared in constant time, every step computed.
    fn matching_steps(&self, code: &str, now_secs: u64) -> Vec<u64> {
        let step = now_secs / STEP_SECS;
        let mut found = Vec::new();
        for s in (step.saturating_sub(SKEW_STEPS)..=step + SKEW_STEPS).rev() {
            let expected = Zeroizing::new(self.0.generate(s * STEP_SECS));
            if ct_eq(expected.as_bytes(), code.as_bytes()) {
                found.push(s);
            }
        }
        found
    }
}

async fn sealing_key(pool: &Pool) -> Result<LessSafeKey, AppError> {
    let fresh = Zeroizing::new(b64(&random_bytes::<32>()?));
    let stored = Zeroizing::new(db::get_or_init_setting(pool, TOTP_KEY_SETTING, &fresh).await?);
    let bytes = Zeroizing::new(
        unb64("fallback_totp_key", &stored)
            .map_err(|_| AppError::internal(anyhow::anyhow!("stored fallback key is corrupt")))?,
    );
    let key = UnboundKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| AppError::internal(anyhow::anyhow!("stored fallback key is corrupt")))?;
    Ok(LessSafeKey::new(key))
}

fn aad(account_id: &str) -> Vec<u8> {
    [AAD_PREFIX, account_id.as_bytes()].concat()
}

fn seal(key: &LessSafeKey, account_id: &str, secret: &[u8]) -> Result<String, AppError> {
    let nonce = random_bytes::<NONCE_LEN>()?;
    let mut sealed = secret.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(account_id)),
        &mut sealed,
    )
    .map_err(|_| AppError::internal(anyhow::anyhow!("sealing a TOTP secret failed")))?;
    Ok(b64(&[nonce.as_slice(), &sealed].concat()))
}

fn unseal(
    key: &LessSafeKey,
    account_id: &str,
    stored: &str,
) -> Result<Zeroizing<Vec<u8>>, AppError> {
    let corrupt = || AppError::internal(anyhow::anyhow!("stored TOTP secret does not open"));
    let mut bytes = Zeroizing::new(unb64("secret_enc", stored).map_err(|_| corrupt())?);
    if bytes.len() < NONCE_LEN {
        return Err(corrupt());
    }
    let (nonce, rest) = bytes.split_at_mut(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| corrupt())?;
    let plain = key
        .open_in_place(nonce, Aad::from(aad(account_id)), rest)
        .map_err(|_| corrupt())?;
    Ok(Zeroizing::new(plain.to_vec()))
}

/// Creates, seals and stores a new secret for the device `account_id` of `upn`; returns its
/// `otpauth://` URI for the phone (sent once, in the enroll-complete answer).
pub async fn provision(
    pool: &Pool,
    server_name: &str,
    account_id: &str,
    upn: &str,
    now_ms: i64,
) -> Result<Zeroizing<String>, AppError> {
    let key = sealing_key(pool).await?;
    let secret = Zeroizing::new(random_bytes::<SECRET_BYTES>()?);
    let sealed = seal(&key, account_id, secret.as_slice())?;
    db::insert_totp_secret(pool, account_id, upn, &sealed, now_ms).await?;
    Ok(Totp::new(secret.to_vec(), server_name, upn).uri())
}

/// What a TOTP code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TotpCheck {
    /// The code of this device, of a step not used before: that step is now used.
    Accepted { account_id: String },
    /// A correct code of a step that already signed someone in (or an older one).
    Replayed,
    /// No current device of the user has this code now.
    Wrong,
}

/// Checks `code` against the TOTP of each of the user's current devices at `now_secs`.
pub async fn check(
    pool: &Pool,
    upn: &str,
    code: &str,
    now_secs: u64,
) -> Result<TotpCheck, AppError> {
    let stored = db::totp_secrets_of(pool, upn).await?;
    if stored.is_empty() {
        return Ok(TotpCheck::Wrong);
    }
    let key = sealing_key(pool).await?;
    let mut replayed = false;
    for s in stored {
        let secret = unseal(&key, &s.account_id, &s.secret_enc)?;
        let totp = Totp::new(secret.to_vec(), "", "");
        for step in totp.matching_steps(code, now_secs) {
            let step = i64::try_from(step).map_err(AppError::internal)?;
            if s.last_step.is_some_and(|last| step <= last) {
                replayed = true;
                continue;
            }
            if db::use_totp_step(pool, &s.account_id, step).await? {
                return Ok(TotpCheck::Accepted {
                    account_id: s.account_id,
                });
            }
            // Another request used this step (or a later one) first.
            replayed = true;
        }
    }
    Ok(if replayed {
        TotpCheck::Replayed
    } else {
        TotpCheck::Wrong
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the SHA-1 secret is the ASCII "12345678901234567890"; 8 digits.
    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let totp = TOTP::new(
            Algorithm::SHA1,
            8,
            1,
            30,
            b"12345678901234567890".to_vec(),
            None,
            String::new(),
        )
        .unwrap();
        for (t, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(t), code, "T = {t}");
        }
        // Our 6-digit codes are the last 6 digits of the same truncation (RFC 4226 §5.3).
        let six = Totp::new(b"12345678901234567890".to_vec(), "x", "y");
        assert_eq!(six.code_at(59), "287082");
        assert_eq!(six.code_at(1_111_111_109), "081804");
    }

    #[test]
    fn a_code_matches_its_step_and_one_either_side_only() {
        let totp = Totp::new(vec![7; SECRET_BYTES], "Contoso", "bobby@contoso.test");
        let now = 1_700_000_015;
        let step = now / STEP_SECS;
        let code = totp.code_at(now);
        assert_eq!(totp.matching_steps(&code, now), vec![step]);
        assert_eq!(totp.matching_steps(&code, now + STEP_SECS), vec![step]);
        assert_eq!(totp.matching_steps(&code, now - STEP_SECS), vec![step]);
        assert!(totp.matching_steps(&code, now + 2 * STEP_SECS).is_empty());
        assert!(totp.matching_steps("", now).is_empty());
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_key() {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[3; 32]).unwrap());
        let other = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[4; 32]).unwrap());
        let sealed = seal(&key, "acct-1", b"twenty bytes secret!").unwrap();
        assert!(!sealed.contains(&b64(b"twenty bytes secret!")));
        assert_eq!(
            unseal(&key, "acct-1", &sealed).unwrap().as_slice(),
            b"twenty bytes secret!"
        );
        assert!(unseal(&key, "acct-2", &sealed).is_err());
        assert!(unseal(&other, "acct-1", &sealed).is_err());
        assert!(unseal(&key, "acct-1", "AAAA").is_err());
    }

    #[test]
    fn uris_name_issuer_and_account_without_colons_and_never_debug_the_secret() {
        let totp = Totp::new(
            vec![1; SECRET_BYTES],
            "Contoso: Sign-in",
            "bobby@contoso.test",
        );
        let uri = totp.uri();
        assert!(
            uri.starts_with("otpauth://totp/Contoso-%20Sign-in:bobby%40contoso.test?"),
            "{}",
            *uri
        );
        let parsed = TOTP::from_url(uri.as_str()).unwrap();
        assert_eq!(parsed.secret, vec![1; SECRET_BYTES]);
        assert_eq!(format!("{totp:?}"), "Totp { .. }");
    }
}
