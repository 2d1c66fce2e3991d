//! Backup codes: a user creates a set on the security-info page, sees it once, and each code
//! signs in once (the offline fallback, when the phone is lost or dead). A code is 12
//! characters from a 32-letter alphabet (60 random bits), shown as `abcd-efgh-jkmn`. Only
//! Argon2id hashes are stored, all codes of a set under the set's random salt, so checking a
//! code costs one hash (then one conditional `UPDATE` uses it). A new set replaces the old.
use argon2::Argon2;
use zeroize::Zeroizing;

use super::passwords::PasswordGuard;
use crate::error::AppError;
use crate::random::random_bytes;
use crate::store::fallback as db;
use crate::store::Pool;
use authenticator_protocol::encoding::{b64, unb64};

/// Codes in a set.
pub const COUNT: usize = 10;
/// Characters of a code (without the dash).
pub const LEN: usize = 12;
/// No `0`/`o`, `1`/`l`: codes are read off paper.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A code in its canonical form (lowercase, no dash or spaces), or `None` if `text` cannot
/// be a backup code.
pub fn normalize(text: &str) -> Option<Zeroizing<String>> {
    let code: Zeroizing<String> = Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect(),
    );
    (code.len() == LEN && code.bytes().all(|b| ALPHABET.contains(&b))).then_some(code)
}

/// Whether `text` has the shape of a backup code (else it may be a TOTP code).
pub fn looks_like_backup_code(text: &str) -> bool {
    normalize(text).is_some()
}

fn random_code() -> Result<Zeroizing<String>, AppError> {
    let bytes = Zeroizing::new(random_bytes::<LEN>()?);
    Ok(Zeroizing::new(
        bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect(),
    ))
}

/// Argon2id (crate defaults: m = 19 MiB, t = 2) of a normalized code under the set's salt.
fn hash(code: &str, salt: &[u8]) -> Result<String, AppError> {
    let mut out = Zeroizing::new([0u8; 32]);
    super::hash_pool::hash_into(
        &Argon2::default(),
        code.as_bytes(),
        salt,
        out.as_mut_slice(),
    )
    .map_err(|e| AppError::internal(anyhow::anyhow!("argon2: {e}")))?;
    Ok(b64(out.as_slice()))
}

async fn hash_blocking(
    codes: Vec<Zeroizing<String>>,
    salt: Vec<u8>,
) -> Result<Vec<String>, AppError> {
    tokio::task::spawn_blocking(move || codes.iter().map(|c| hash(c, &salt)).collect())
        .await
        .map_err(AppError::internal)?
}

/// Replaces the user's backup codes with `COUNT` new ones and returns them for display, as
/// `abcd-efgh-jkmn` (they are not stored).
pub async fn create(
    pool: &Pool,
    upn: &str,
    now_ms: i64,
    created_by_device: Option<&str>,
) -> Result<Vec<Zeroizing<String>>, AppError> {
    let salt = random_bytes::<16>()?;
    let codes = (0..COUNT)
        .map(|_| random_code())
        .collect::<Result<Vec<_>, _>>()?;
    let hashes = hash_blocking(codes.clone(), salt.to_vec()).await?;
    db::replace_backup_codes(pool, upn, &b64(&salt), &hashes, now_ms, created_by_device).await?;
    Ok(codes
        .iter()
        .map(|c| Zeroizing::new(format!("{}-{}-{}", &c[..4], &c[4..8], &c[8..])))
        .collect())
}

/// (unused, total) codes of the user's set.
pub async fn counts(pool: &Pool, upn: &str) -> Result<(i64, i64), AppError> {
    Ok(db::backup_code_counts(pool, upn).await?)
}

/// Uses `text` if it is one of the user's unused backup codes. The Argon2 hash runs under
/// `argon2`'s bound, with the password checks (`PasswordGuard::run_argon2`).
pub async fn redeem(
    pool: &Pool,
    argon2: &PasswordGuard,
    upn: &str,
    text: &str,
    now_ms: i64,
) -> Result<bool, AppError> {
    let Some(code) = normalize(text) else {
        return Ok(false);
    };
    // An unknown user, or one without codes, costs the same Argon2 work under a dummy salt:
    // the time does not tell who has some.
    let salt = match db::backup_code_salt(pool, upn).await? {
        None => None,
        Some(salt) => Some(unb64("backup_code_salt", &salt).map_err(|_| {
            AppError::internal(anyhow::anyhow!("stored backup-code salt is corrupt"))
        })?),
    };
    let known = salt.is_some();
    let salt = salt.unwrap_or_else(|| vec![0; 16]);
    let hashed = argon2.run_argon2(move || hash(&code, &salt)).await??;
    if !known {
        return Ok(false);
    }
    Ok(db::use_backup_code(pool, upn, &hashed, now_ms).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_sixty_bits_and_normalize_from_what_people_type() {
        let code = random_code().unwrap();
        assert_eq!(code.len(), LEN);
        assert_eq!(
            normalize(&code).as_deref().map(String::as_str),
            Some(code.as_str())
        );
        let typed = format!(
            " {}-{} {}",
            code[..4].to_uppercase(),
            &code[4..8],
            &code[8..]
        );
        assert_eq!(
            normalize(&typed).as_deref().map(String::as_str),
            Some(code.as_str())
        );
        // A TOTP code, too short, or with letters outside the alphabet: not a backup code.
        for not in [
            "123456",
            "abcd-efgh-jkm",
            "abcd-efgh-jkml",
            "abcd-efgh-jk0n",
            "",
        ] {
            assert!(!looks_like_backup_code(not), "{not}");
        }
        assert_ne!(random_code().unwrap(), random_code().unwrap());
    }

    #[test]
    fn hashes_depend_on_code_and_salt() {
        let a = hash("abcdefghjkmn", &[1; 16]).unwrap();
        assert_eq!(a, hash("abcdefghjkmn", &[1; 16]).unwrap());
        assert_ne!(a, hash("abcdefghjkmp", &[1; 16]).unwrap());
        assert_ne!(a, hash("abcdefghjkmn", &[2; 16]).unwrap());
        assert!(!a.contains("abcdefghjkmn"));
    }
}
