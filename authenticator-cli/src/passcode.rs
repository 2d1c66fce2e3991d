//! User verification on the desktop: a local passcode, set on first use and stored only as an
//! Argon2id hash. It plays the part of the phone's biometric/passcode prompt.
use std::io::IsTerminal;
use std::path::PathBuf;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use authenticator_core::{PlatformError, UserVerifier, VerificationOutcome};

const MIN_LEN: usize = 4;

pub struct PasscodeVerifier {
    hash_file: PathBuf,
    /// From `--passcode` / `AUTHENTICATOR_PASSCODE`; otherwise the terminal is asked.
    supplied: Option<String>,
}

impl PasscodeVerifier {
    pub fn new(home: &std::path::Path, supplied: Option<String>) -> Self {
        PasscodeVerifier {
            hash_file: home.join("passcode.argon2"),
            supplied,
        }
    }

    pub fn is_set(&self) -> bool {
        self.hash_file.exists()
    }

    fn ask(&self, prompt: &str) -> Result<String, PlatformError> {
        if let Some(p) = &self.supplied {
            eprintln!("{prompt}{}", "•".repeat(p.chars().count()));
            return Ok(p.clone());
        }
        if !std::io::stdin().is_terminal() {
            return Err(PlatformError::NotAvailable);
        }
        rpassword::prompt_password(prompt).map_err(|_| PlatformError::Cancelled)
    }

    /// Sets the passcode on first use (asked twice on a terminal).
    pub fn ensure_set(&self) -> Result<(), PlatformError> {
        if self.is_set() {
            return Ok(());
        }
        eprintln!("No passcode is set on this desktop phone yet: choose one (it stands in for the phone's biometric/passcode).");
        let first = self.ask("New passcode: ")?;
        if first.chars().count() < MIN_LEN {
            return Err(PlatformError::Failed {
                reason: format!("the passcode must have at least {MIN_LEN} characters"),
            });
        }
        if self.supplied.is_none() && self.ask("Repeat passcode: ")? != first {
            return Err(PlatformError::Failed {
                reason: "the passcodes differ".into(),
            });
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(first.as_bytes(), &salt)
            .map_err(|e| PlatformError::Failed {
                reason: format!("hashing the passcode failed: {e}"),
            })?
            .to_string();
        write_private(&self.hash_file, hash.as_bytes()).map_err(|e| PlatformError::Failed {
            reason: format!("cannot store the passcode hash: {e}"),
        })
    }

    fn check(&self, reason: &str) -> Result<VerificationOutcome, PlatformError> {
        self.ensure_set()?;
        let stored =
            std::fs::read_to_string(&self.hash_file).map_err(|e| PlatformError::Failed {
                reason: format!("cannot read the passcode hash: {e}"),
            })?;
        let parsed = PasswordHash::new(stored.trim()).map_err(|_| PlatformError::Failed {
            reason: "the stored passcode hash is corrupt".into(),
        })?;
        eprintln!("🔒 {reason}");
        let typed = self.ask("Passcode: ")?;
        Ok(
            match Argon2::default().verify_password(typed.as_bytes(), &parsed) {
                Ok(()) => VerificationOutcome::Verified,
                Err(_) => VerificationOutcome::Denied,
            },
        )
    }
}

#[async_trait::async_trait]
impl UserVerifier for PasscodeVerifier {
    async fn verify(&self, reason: String) -> Result<VerificationOutcome, PlatformError> {
        // Argon2 and terminal input block: keep them off the async workers.
        let this = PasscodeVerifier {
            hash_file: self.hash_file.clone(),
            supplied: self.supplied.clone(),
        };
        tokio::task::spawn_blocking(move || this.check(&reason))
            .await
            .map_err(|_| PlatformError::Failed {
                reason: "verification task failed".into(),
            })?
    }
}

/// Writes a file readable only by its owner, atomically (temp file + rename).
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or_else(|| std::path::Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_passcode_is_set_then_checked() {
        let home = tempfile::tempdir().unwrap();
        let setter = PasscodeVerifier::new(home.path(), Some("2468".into()));
        assert!(!setter.is_set());
        assert_eq!(
            setter.verify("x".into()).await.unwrap(),
            VerificationOutcome::Verified
        );
        assert!(setter.is_set());
        let stored = std::fs::read_to_string(home.path().join("passcode.argon2")).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains("2468"));

        let wrong = PasscodeVerifier::new(home.path(), Some("1357".into()));
        assert_eq!(
            wrong.verify("x".into()).await.unwrap(),
            VerificationOutcome::Denied
        );
    }

    #[tokio::test]
    async fn a_too_short_first_passcode_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let v = PasscodeVerifier::new(home.path(), Some("12".into()));
        assert!(matches!(
            v.verify("x".into()).await,
            Err(PlatformError::Failed { .. })
        ));
        assert!(!v.is_set());
    }
}
