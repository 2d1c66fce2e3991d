//! User verification on the desktop: a local passcode, set on first use and stored only as an
//! Argon2id hash. It plays the part of the phone's biometric/passcode prompt.
//!
//! The core only learns "verified", "denied" or "not available"; what went wrong with the
//! passcode (wrong, not given, not set yet, too short, typed differently twice) is kept here
//! ([`PasscodeVerifier::problem`]) so the command can say which.
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use authenticator_core::{PlatformError, UserVerifier, VerificationOutcome};

pub const MIN_LEN: usize = 4;

/// Why a passcode did not verify the user. Each has its own stable `code` (the `error` of
/// `--json`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasscodeError {
    #[error("wrong passcode: nothing was approved or signed")]
    Wrong,
    #[error(
        "this needs the phone's passcode: run it on a terminal, or give it with --passcode or \
         AUTHENTICATOR_PASSCODE"
    )]
    Missing,
    #[error(
        "no passcode is set on this phone yet: run this on a terminal to choose one (it is asked \
         twice), or give it with --passcode or AUTHENTICATOR_PASSCODE"
    )]
    NotSet,
    #[error("the passcode must have at least {MIN_LEN} characters")]
    TooShort,
    #[error("the two passcodes differ: nothing was set")]
    Differ,
    #[error("the passcode prompt was cancelled")]
    Cancelled,
    #[error("cannot store the passcode: {0}")]
    Storage(String),
}

impl PasscodeError {
    pub fn code(&self) -> &'static str {
        match self {
            PasscodeError::Wrong => "wrong_passcode",
            PasscodeError::Missing => "passcode_required",
            PasscodeError::NotSet => "passcode_not_set",
            PasscodeError::TooShort => "passcode_too_short",
            PasscodeError::Differ => "passcodes_differ",
            PasscodeError::Cancelled => "user_cancelled",
            PasscodeError::Storage(_) => "passcode_storage",
        }
    }

    /// What the key store tells the core (which then signs nothing).
    fn platform(self) -> PlatformError {
        match self {
            PasscodeError::Wrong => PlatformError::VerificationFailed,
            PasscodeError::Missing | PasscodeError::NotSet => PlatformError::NotAvailable,
            PasscodeError::Cancelled => PlatformError::Cancelled,
            PasscodeError::TooShort | PasscodeError::Differ | PasscodeError::Storage(_) => {
                PlatformError::Failed {
                    reason: self.to_string(),
                }
            }
        }
    }
}

/// Reads a line without echo from the user's terminal: `None` when there is no terminal.
pub type Terminal = Arc<dyn Fn(&str) -> Option<std::io::Result<String>> + Send + Sync>;

/// The process's terminal (stdin), read with `rpassword`.
pub fn real_terminal() -> Terminal {
    Arc::new(|prompt: &str| {
        std::io::stdin()
            .is_terminal()
            .then(|| rpassword::prompt_password(prompt))
    })
}

/// No terminal: nothing is asked (`demo --auto`).
pub fn no_terminal() -> Terminal {
    Arc::new(|_: &str| None)
}

#[derive(Clone)]
pub struct PasscodeVerifier {
    hash_file: PathBuf,
    /// From `--passcode` / `AUTHENTICATOR_PASSCODE`; otherwise the terminal is asked.
    supplied: Option<String>,
    terminal: Terminal,
    /// The last problem, for the command's error message.
    problem: Arc<Mutex<Option<PasscodeError>>>,
}

impl PasscodeVerifier {
    pub fn new(home: &std::path::Path, supplied: Option<String>) -> Self {
        Self::with_terminal(home, supplied, real_terminal())
    }

    pub fn with_terminal(
        home: &std::path::Path,
        supplied: Option<String>,
        terminal: Terminal,
    ) -> Self {
        PasscodeVerifier {
            hash_file: home.join("passcode.argon2"),
            supplied,
            terminal,
            problem: Arc::new(Mutex::new(None)),
        }
    }

    pub fn is_set(&self) -> bool {
        self.hash_file.exists()
    }

    /// What went wrong with the passcode last (wrong, missing, …), if anything did.
    pub fn problem(&self) -> Option<PasscodeError> {
        self.problem.lock().ok().and_then(|p| p.clone())
    }

    fn fail(&self, e: PasscodeError) -> PasscodeError {
        if let Ok(mut p) = self.problem.lock() {
            *p = Some(e.clone());
        }
        e
    }

    /// From the terminal; `missing` when there is none.
    fn read(&self, prompt: &str, missing: PasscodeError) -> Result<String, PasscodeError> {
        match (self.terminal)(prompt) {
            None => Err(missing),
            Some(Ok(typed)) => Ok(typed),
            Some(Err(_)) => Err(PasscodeError::Cancelled),
        }
    }

    /// The given passcode, or the terminal's.
    fn ask(&self, prompt: &str, missing: PasscodeError) -> Result<String, PasscodeError> {
        if let Some(p) = &self.supplied {
            eprintln!("{prompt}{}", "•".repeat(p.chars().count()));
            return Ok(p.clone());
        }
        self.read(prompt, missing)
    }

    /// Sets the passcode on first use: asked twice on a terminal. A passcode given with
    /// `--passcode` is confirmed on the terminal when there is one; a script without one is
    /// told, on stderr, that its passcode is now the phone's.
    pub fn ensure_set(&self) -> Result<(), PasscodeError> {
        self.set_if_needed().map_err(|e| self.fail(e))
    }

    fn set_if_needed(&self) -> Result<(), PasscodeError> {
        if self.is_set() {
            return Ok(());
        }
        eprintln!("No passcode is set on this desktop phone yet: choose one (it stands in for the phone's biometric/passcode).");
        let first = self.ask("New passcode: ", PasscodeError::NotSet)?;
        if first.chars().count() < MIN_LEN {
            return Err(PasscodeError::TooShort);
        }
        match self.read("Repeat passcode: ", PasscodeError::NotSet) {
            Ok(again) if again == first => {}
            Ok(_) => return Err(PasscodeError::Differ),
            // A script: the passcode it gave is the phone's from now on, and it is told.
            Err(PasscodeError::NotSet) if self.supplied.is_some() => eprintln!(
                "The passcode given with --passcode / AUTHENTICATOR_PASSCODE is now this phone's passcode."
            ),
            Err(e) => return Err(e),
        }
        let salt = SaltString::generate(&mut OsRng);
        let hash = Argon2::default()
            .hash_password(first.as_bytes(), &salt)
            .map_err(|e| PasscodeError::Storage(format!("hashing failed: {e}")))?
            .to_string();
        write_private(&self.hash_file, hash.as_bytes())
            .map_err(|e| PasscodeError::Storage(e.to_string()))
    }

    fn check(&self, reason: &str) -> Result<VerificationOutcome, PlatformError> {
        if let Ok(mut p) = self.problem.lock() {
            *p = None;
        }
        self.ensure_set().map_err(PasscodeError::platform)?;
        let stored =
            std::fs::read_to_string(&self.hash_file).map_err(|e| PlatformError::Failed {
                reason: format!("cannot read the passcode hash: {e}"),
            })?;
        let parsed = PasswordHash::new(stored.trim()).map_err(|_| PlatformError::Failed {
            reason: "the stored passcode hash is corrupt".into(),
        })?;
        eprintln!("🔒 {reason}");
        let typed = self
            .ask("Passcode: ", PasscodeError::Missing)
            .map_err(|e| self.fail(e).platform())?;
        Ok(
            match Argon2::default().verify_password(typed.as_bytes(), &parsed) {
                Ok(()) => VerificationOutcome::Verified,
                Err(_) => {
                    self.fail(PasscodeError::Wrong);
                    VerificationOutcome::Denied
                }
            },
        )
    }
}

#[async_trait::async_trait]
impl UserVerifier for PasscodeVerifier {
    async fn verify(&self, reason: String) -> Result<VerificationOutcome, PlatformError> {
        // Argon2 and terminal input block: keep them off the async workers.
        let this = self.clone();
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
    use std::collections::VecDeque;

    use super::*;

    /// A terminal on which the user types `lines`, in order; records the prompts.
    fn typing(lines: &[&str]) -> (Terminal, Arc<Mutex<Vec<String>>>) {
        let lines = Mutex::new(lines.iter().map(|l| l.to_string()).collect::<VecDeque<_>>());
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let seen = prompts.clone();
        let terminal: Terminal = Arc::new(move |prompt: &str| {
            seen.lock().unwrap().push(prompt.to_owned());
            Some(Ok(lines
                .lock()
                .unwrap()
                .pop_front()
                .expect("asked once too often")))
        });
        (terminal, prompts)
    }

    #[tokio::test]
    async fn the_first_passcode_is_set_then_checked() {
        let home = tempfile::tempdir().unwrap();
        let setter =
            PasscodeVerifier::with_terminal(home.path(), Some("2468".into()), no_terminal());
        assert!(!setter.is_set());
        assert_eq!(
            setter.verify("x".into()).await.unwrap(),
            VerificationOutcome::Verified
        );
        assert!(setter.is_set());
        assert_eq!(setter.problem(), None);
        let stored = std::fs::read_to_string(home.path().join("passcode.argon2")).unwrap();
        assert!(stored.starts_with("$argon2id$") && !stored.contains("2468"));

        let wrong =
            PasscodeVerifier::with_terminal(home.path(), Some("1357".into()), no_terminal());
        assert_eq!(
            wrong.verify("x".into()).await.unwrap(),
            VerificationOutcome::Denied
        );
        assert_eq!(wrong.problem(), Some(PasscodeError::Wrong));
    }

    #[tokio::test]
    async fn on_a_terminal_the_first_passcode_is_asked_twice_and_must_match() {
        let home = tempfile::tempdir().unwrap();
        let (terminal, prompts) = typing(&["2468", "2467"]);
        let v = PasscodeVerifier::with_terminal(home.path(), None, terminal);
        assert_eq!(
            v.verify("x".into()).await,
            Err(PlatformError::Failed {
                reason: PasscodeError::Differ.to_string()
            })
        );
        assert_eq!(v.problem(), Some(PasscodeError::Differ));
        assert!(!v.is_set(), "two different passcodes set nothing");
        assert_eq!(
            *prompts.lock().unwrap(),
            ["New passcode: ", "Repeat passcode: "]
        );

        let (terminal, prompts) = typing(&["2468", "2468", "2468"]);
        let v = PasscodeVerifier::with_terminal(home.path(), None, terminal);
        assert_eq!(
            v.verify("x".into()).await,
            Ok(VerificationOutcome::Verified)
        );
        assert_eq!(
            *prompts.lock().unwrap(),
            ["New passcode: ", "Repeat passcode: ", "Passcode: "]
        );
    }

    #[tokio::test]
    async fn a_given_first_passcode_is_confirmed_on_the_terminal_when_there_is_one() {
        let home = tempfile::tempdir().unwrap();
        let (terminal, prompts) = typing(&["1357"]);
        let v = PasscodeVerifier::with_terminal(home.path(), Some("2468".into()), terminal);
        assert!(v.ensure_set().is_err());
        assert_eq!(v.problem(), Some(PasscodeError::Differ));
        assert!(!v.is_set(), "a mistyped --passcode is not adopted");
        assert_eq!(*prompts.lock().unwrap(), ["Repeat passcode: "]);

        let (terminal, _) = typing(&["2468"]);
        let v = PasscodeVerifier::with_terminal(home.path(), Some("2468".into()), terminal);
        assert_eq!(v.ensure_set(), Ok(()));
        assert!(v.is_set());
    }

    #[tokio::test]
    async fn a_missing_passcode_and_one_never_set_are_told_apart_from_a_wrong_one() {
        let home = tempfile::tempdir().unwrap();
        let none = PasscodeVerifier::with_terminal(home.path(), None, no_terminal());
        assert_eq!(
            none.verify("x".into()).await,
            Err(PlatformError::NotAvailable)
        );
        assert_eq!(none.problem(), Some(PasscodeError::NotSet));
        assert!(!none.is_set());

        PasscodeVerifier::with_terminal(home.path(), Some("2468".into()), no_terminal())
            .ensure_set()
            .unwrap();
        let none = PasscodeVerifier::with_terminal(home.path(), None, no_terminal());
        assert_eq!(
            none.verify("x".into()).await,
            Err(PlatformError::NotAvailable)
        );
        assert_eq!(none.problem(), Some(PasscodeError::Missing));

        let codes = [
            PasscodeError::Wrong,
            PasscodeError::Missing,
            PasscodeError::NotSet,
        ]
        .map(|e| e.code());
        assert_eq!(
            codes,
            ["wrong_passcode", "passcode_required", "passcode_not_set"]
        );
    }

    #[tokio::test]
    async fn a_too_short_first_passcode_is_refused() {
        let home = tempfile::tempdir().unwrap();
        let v = PasscodeVerifier::with_terminal(home.path(), Some("12".into()), no_terminal());
        assert!(matches!(
            v.verify("x".into()).await,
            Err(PlatformError::Failed { .. })
        ));
        assert_eq!(v.problem(), Some(PasscodeError::TooShort));
        assert!(!v.is_set());
    }
}
