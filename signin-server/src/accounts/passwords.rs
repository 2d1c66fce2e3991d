//! Optional user passwords: Argon2id (argon2 crate defaults, OWASP's minimum: m=19 MiB, t=2,
//! p=1), stored as PHC strings. Only the hash is stored; passwords are never logged.
use anyhow::{bail, Context};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::audit::{self, Event};
use crate::store::{users, Pool, StoreResult};

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_BYTES: usize = 1024;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        bail!("the password must have at least {MIN_PASSWORD_CHARS} characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        bail!("the password must be at most {MAX_PASSWORD_BYTES} bytes");
    }
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// A fixed hash to verify against when the user has no password, so that the answer takes
/// about as long whether or not the account (or its password) exists.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("no such password: dummy").unwrap_or_else(|_| String::new()))
}

/// Sets (or replaces) the password of an existing user. Audited without the password.
pub async fn set_password(pool: &Pool, upn: &str, password: &str) -> anyhow::Result<()> {
    let upn = upn.trim();
    let phc = hash_password(password)?;
    if !users::exists(pool, upn).await? {
        bail!("no user {upn}");
    }
    users::set_password_hash(pool, upn, &phc)
        .await
        .context("storing the password hash")?;
    audit::record(
        pool,
        Event::PasswordSet,
        audit::Entry {
            upn: Some(upn),
            outcome: "ok",
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

pub async fn has_password(pool: &Pool, upn: &str) -> StoreResult<bool> {
    Ok(users::password_hash(pool, upn).await?.is_some())
}

/// Whether `password` is the password of `upn`. Unknown users and users without a password
/// are checked against a dummy hash and fail. Argon2 runs on a blocking thread.
pub async fn verify_password(pool: &Pool, upn: &str, password: &str) -> anyhow::Result<bool> {
    let phc = users::password_hash(pool, upn).await?;
    let known = phc.is_some();
    let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        match PasswordHash::new(&phc) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        }
    })
    .await
    .context("password check task")?;
    Ok(known && ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_phc_and_minimum_length() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains("correct horse"));
        assert!(hash_password("short").is_err());
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"correct horsf", &parsed)
            .is_err());
    }
}
