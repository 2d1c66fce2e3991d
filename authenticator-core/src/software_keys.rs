//! `SoftwareKeyStore`: a `DeviceKeyStore` in Rust for the desktop CLI and tests. P-256 keys
//! (ring) whose PKCS#8 documents are encrypted at rest with AES-256-GCM under a 32-byte
//! wrapping key (random nonce per write, `magic || alias` as associated data), one file per
//! key, written atomically (temp file + fsync + rename).
//!
//! It cannot bind a key to user verification the way Android Keystore or the Secure Enclave
//! do (`require_user_verification` is accepted and ignored), so it verifies the user itself:
//! every signature that carries a prompt is made only after its `UserVerifier` answered
//! `Verified` for that prompt.
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use authenticator_protocol::EcdsaSigner;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use std::sync::Arc;

use crate::platform::{verify_for_signature, DeviceKeyStore, PlatformError, UserVerifier};

const MAGIC: &[u8; 4] = b"PSK1";
const MAX_ALIAS_BYTES: usize = 128;
const KEYRING_USER: &str = "software-key-store-wrapping-key";

/// Where the 32-byte wrapping key comes from. Chosen explicitly by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WrappingKeySource {
    /// The OS secret store via `keyring-core` (on Linux the kernel keyutils store, entry
    /// `service` / `software-key-store-wrapping-key`), created on first use. Kernel keyrings
    /// live only as long as the login session: after a reboot the key files can no longer be
    /// decrypted. Use `File` where keys must survive reboots on a headless machine.
    Keyring { service: String },
    /// A file holding the raw key, created with mode 0600 on first use. WEAKER: anyone who can
    /// read this file and the key directory has the keys. For headless desktops only.
    File(PathBuf),
    /// A fresh random key held only in memory (tests): keys die with the process.
    Memory,
}

/// See the module documentation.
pub struct SoftwareKeyStore {
    dir: PathBuf,
    key: LessSafeKey,
    rng: SystemRandom,
    verifier: Arc<dyn UserVerifier>,
}

impl std::fmt::Debug for SoftwareKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareKeyStore")
            .field("dir", &self.dir)
            .field("key", &"<redacted>")
            .finish()
    }
}

fn failed(reason: impl Into<String>) -> PlatformError {
    PlatformError::Failed {
        reason: reason.into(),
    }
}

fn io_failed(what: &str, e: std::io::Error) -> PlatformError {
    failed(format!("{what}: {}", e.kind()))
}

impl SoftwareKeyStore {
    /// Opens (creating if needed) a key directory protected by the chosen wrapping key;
    /// `verifier` is asked before every signature that carries a prompt.
    pub fn open(
        dir: impl Into<PathBuf>,
        source: WrappingKeySource,
        verifier: Arc<dyn UserVerifier>,
    ) -> Result<Self, PlatformError> {
        let dir = dir.into();
        create_private_dir(&dir)?;
        remove_leftover_temporaries(&dir, TEMPORARY_PREFIX);
        let rng = SystemRandom::new();
        let wrapping = match source {
            WrappingKeySource::Memory => random_key(&rng)?,
            WrappingKeySource::File(path) => file_key(&path, &rng)?,
            WrappingKeySource::Keyring { service } => keyring_key(&service, &rng)?,
        };
        let unbound = UnboundKey::new(&AES_256_GCM, &wrapping[..])
            .map_err(|_| failed("invalid wrapping key"))?;
        Ok(SoftwareKeyStore {
            dir,
            key: LessSafeKey::new(unbound),
            rng,
            verifier,
        })
    }

    fn path(&self, alias: &str) -> Result<PathBuf, PlatformError> {
        if alias.is_empty() || alias.len() > MAX_ALIAS_BYTES {
            return Err(failed("invalid key alias"));
        }
        // Hex file names: no alias can escape the directory.
        Ok(self.dir.join(format!("{}.key", hex::encode(alias))))
    }

    fn aad(alias: &str) -> Vec<u8> {
        [&MAGIC[..], alias.as_bytes()].concat()
    }

    pub(crate) fn seal(&self, alias: &str, pkcs8: &[u8]) -> Result<Vec<u8>, PlatformError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| failed("random source failed"))?;
        let mut buf = pkcs8.to_vec();
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(Self::aad(alias)),
            &mut buf,
        );
        if sealed.is_err() {
            zeroize::Zeroize::zeroize(&mut buf);
            return Err(failed("encryption failed"));
        }
        Ok([&MAGIC[..], &nonce[..], &buf[..]].concat())
    }

    pub(crate) fn open_sealed(
        &self,
        alias: &str,
        file: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, PlatformError> {
        let undecryptable =
            || failed("the stored key cannot be decrypted (wrong wrapping key or damaged file)");
        if file.len() < MAGIC.len() + NONCE_LEN || &file[..MAGIC.len()] != MAGIC {
            return Err(undecryptable());
        }
        let nonce: [u8; NONCE_LEN] = file[MAGIC.len()..MAGIC.len() + NONCE_LEN]
            .try_into()
            .map_err(|_| undecryptable())?;
        let mut buf = Zeroizing::new(file[MAGIC.len() + NONCE_LEN..].to_vec());
        let len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(Self::aad(alias)),
                &mut buf,
            )
            .map_err(|_| undecryptable())?
            .len();
        buf.truncate(len);
        Ok(buf)
    }

    fn load(&self, alias: &str) -> Result<EcdsaSigner, PlatformError> {
        let bytes = match fs::read(self.path(alias)?) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(PlatformError::KeyNotFound),
            Err(e) => return Err(io_failed("reading the key file", e)),
        };
        let pkcs8 = self.open_sealed(alias, &bytes)?;
        EcdsaSigner::from_pkcs8(&pkcs8).map_err(|_| failed("the stored key is not a P-256 key"))
    }
}

#[async_trait::async_trait]
impl DeviceKeyStore for SoftwareKeyStore {
    async fn generate(
        &self,
        alias: String,
        _require_user_verification: bool,
    ) -> Result<Vec<u8>, PlatformError> {
        let path = self.path(&alias)?;
        if path.exists() {
            return Err(failed("a key with this alias already exists"));
        }
        let (signer, pkcs8) =
            EcdsaSigner::generate().map_err(|_| failed("could not create a key"))?;
        let pkcs8 = Zeroizing::new(pkcs8);
        let sealed = self.seal(&alias, &pkcs8)?;
        write_atomically(&self.dir, &path, &sealed, &self.rng)?;
        Ok(signer.public_key().as_bytes().to_vec())
    }

    async fn sign(
        &self,
        alias: String,
        message: Vec<u8>,
        prompt: Option<String>,
    ) -> Result<Vec<u8>, PlatformError> {
        // The key must exist before the user is asked anything.
        let key = self.load(&alias)?;
        verify_for_signature(self.verifier.as_ref(), prompt).await?;
        // DER, as Android and iOS return it: the core normalizes.
        key.try_sign(&message)
            .map(|signature| signature.to_der())
            .map_err(|_| failed("could not sign"))
    }

    async fn delete(&self, alias: String) -> Result<(), PlatformError> {
        match fs::remove_file(self.path(&alias)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(PlatformError::KeyNotFound),
            Err(e) => Err(io_failed("deleting the key file", e)),
        }
    }
}

fn random_key(rng: &SystemRandom) -> Result<Zeroizing<[u8; 32]>, PlatformError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill(&mut key[..])
        .map_err(|_| failed("random source failed"))?;
    Ok(key)
}

fn create_private_dir(dir: &Path) -> Result<(), PlatformError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| io_failed("creating the key directory", e))
}

fn private_file_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn write_atomically(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    rng: &SystemRandom,
) -> Result<(), PlatformError> {
    let tmp = temporary_path(dir, TEMPORARY_PREFIX, rng)?;
    let result = (|| {
        let mut file = private_file_options().open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir);
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = fs::remove_file(&tmp);
        io_failed("writing the key file", e)
    })
}

/// A process killed while writing leaves its temporary file behind; the next `open` removes them.
const TEMPORARY_PREFIX: &str = ".tmp-";

fn temporary_path(dir: &Path, prefix: &str, rng: &SystemRandom) -> Result<PathBuf, PlatformError> {
    let mut suffix = [0u8; 8];
    rng.fill(&mut suffix)
        .map_err(|_| failed("random source failed"))?;
    Ok(dir.join(format!("{prefix}{}", hex::encode(suffix))))
}

/// Removes the temporary files named `prefix…` that a killed process left in `dir` (key
/// material that never became a key). One process per key directory, like one
/// `Authenticator` per data directory.
fn remove_leftover_temporaries(dir: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(prefix))
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Makes a rename or link in `dir` durable (best effort: not every platform can open a dir).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn file_key(path: &Path, rng: &SystemRandom) -> Result<Zeroizing<[u8; 32]>, PlatformError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| failed("the wrapping key path names no file"))?;
    // `wrapping.key.tmp-…`: only this file's own leftovers are touched in its directory.
    let tmp_prefix = format!("{file_name}{TEMPORARY_PREFIX}");
    remove_leftover_temporaries(parent, &tmp_prefix);
    match File::open(path) {
        Ok(mut file) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = file
                    .metadata()
                    .map_err(|e| io_failed("reading the wrapping key file", e))?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(failed(
                        "the wrapping key file is readable by other users (must be 0600)",
                    ));
                }
            }
            let mut bytes = Zeroizing::new(Vec::new());
            file.read_to_end(&mut bytes)
                .map_err(|e| io_failed("reading the wrapping key file", e))?;
            let key: [u8; 32] = bytes[..]
                .try_into()
                .map_err(|_| failed("the wrapping key file does not hold a 32-byte key"))?;
            Ok(Zeroizing::new(key))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let key = random_key(rng)?;
            create_private_dir(parent)?;
            // Written whole to a temporary file and linked into place: a process killed half-way
            // leaves no short key file (which would lock every key out), and of two processes
            // creating it at once, the second reads the first's key.
            let tmp = temporary_path(parent, &tmp_prefix, rng)?;
            let linked = (|| {
                let mut file = private_file_options().open(&tmp)?;
                file.write_all(&key[..])?;
                file.sync_all()?;
                fs::hard_link(&tmp, path)
            })();
            let _ = fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    sync_dir(parent);
                    Ok(key)
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => file_key(path, rng),
                Err(e) => Err(io_failed("writing the wrapping key file", e)),
            }
        }
        Err(e) => Err(io_failed("opening the wrapping key file", e)),
    }
}

#[cfg(target_os = "linux")]
fn keyring_key(service: &str, rng: &SystemRandom) -> Result<Zeroizing<[u8; 32]>, PlatformError> {
    let store: std::sync::Arc<keyring_core::CredentialStore> =
        linux_keyutils_keyring_store::Store::new()
            .map_err(|e| failed(format!("keyring unavailable: {e}")))?;
    keyring_key_in(&store, service, rng)
}

/// The wrapping key kept in `store` under `service` / `KEYRING_USER`: read it, or create it on
/// first use. Any store `keyring-core` supports works here; tests use its in-memory sample store.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn keyring_key_in(
    store: &std::sync::Arc<keyring_core::CredentialStore>,
    service: &str,
    rng: &SystemRandom,
) -> Result<Zeroizing<[u8; 32]>, PlatformError> {
    use keyring_core::{Entry, Error as KeyringError};

    let entry = Entry::new_in_store(store, service, KEYRING_USER)
        .map_err(|e| failed(format!("keyring entry: {e}")))?;
    match entry.get_secret() {
        Ok(secret) => {
            let secret = Zeroizing::new(secret);
            let key: [u8; 32] = secret[..]
                .try_into()
                .map_err(|_| failed("the keyring entry does not hold a 32-byte key"))?;
            Ok(Zeroizing::new(key))
        }
        Err(KeyringError::NoEntry) => {
            let key = random_key(rng)?;
            entry
                .set_secret(&key[..])
                .map_err(|e| failed(format!("could not store the wrapping key: {e}")))?;
            Ok(key)
        }
        Err(e) => Err(failed(format!("keyring: {e}"))),
    }
}

#[cfg(not(target_os = "linux"))]
fn keyring_key(_service: &str, _rng: &SystemRandom) -> Result<Zeroizing<[u8; 32]>, PlatformError> {
    // Phones use their hardware key stores through the foreign `DeviceKeyStore` instead.
    Err(PlatformError::NotAvailable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{AlwaysVerified, CountingVerifier};
    use crate::types::VerificationOutcome;
    use authenticator_protocol::{PublicKey, Signature};

    fn verified() -> Arc<dyn UserVerifier> {
        Arc::new(AlwaysVerified)
    }

    #[tokio::test]
    async fn a_signature_with_a_prompt_is_made_only_after_the_user_passes_it() {
        let dir = tempfile::tempdir().unwrap();
        let verifier = CountingVerifier::new(VerificationOutcome::Verified);
        let store = SoftwareKeyStore::open(dir.path(), WrappingKeySource::Memory, verifier.clone())
            .unwrap();
        let pk = store.generate("k".into(), true).await.unwrap();
        let pk = PublicKey::from_platform_bytes(&pk).unwrap();
        // No prompt: nothing is asked.
        store.sign("k".into(), b"m".to_vec(), None).await.unwrap();
        assert_eq!(verifier.calls(), 0);
        // A prompt is shown as given, and the signature follows a pass.
        let sig = store
            .sign("k".into(), b"m".to_vec(), Some("Approve sign-in".into()))
            .await
            .unwrap();
        pk.verify(b"m", &Signature::from_platform_bytes(&sig).unwrap())
            .unwrap();
        assert_eq!(verifier.reasons(), ["Approve sign-in"]);
        // A refused or dismissed prompt signs nothing and says which.
        verifier.set_answer(Ok(VerificationOutcome::Denied));
        assert_eq!(
            store
                .sign("k".into(), b"m".to_vec(), Some("p".into()))
                .await,
            Err(PlatformError::VerificationFailed)
        );
        verifier.set_answer(Ok(VerificationOutcome::Cancelled));
        assert_eq!(
            store
                .sign("k".into(), b"m".to_vec(), Some("p".into()))
                .await,
            Err(PlatformError::Cancelled)
        );
        // A missing key is reported before anyone is asked.
        assert_eq!(
            store
                .sign("gone".into(), b"m".to_vec(), Some("p".into()))
                .await,
            Err(PlatformError::KeyNotFound)
        );
        assert_eq!(verifier.calls(), 3);
    }

    async fn round_trip(store: &SoftwareKeyStore, alias: &str) {
        let pk = store.generate(alias.into(), true).await.unwrap();
        let pk = PublicKey::from_platform_bytes(&pk).unwrap();
        let sig = store
            .sign(alias.into(), b"message".to_vec(), None)
            .await
            .unwrap();
        let sig = Signature::from_platform_bytes(&sig).unwrap();
        pk.verify(b"message", &sig).unwrap();
        assert!(pk.verify(b"other", &sig).is_err());
    }

    #[tokio::test]
    async fn keys_round_trip_and_are_encrypted_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SoftwareKeyStore::open(dir.path(), WrappingKeySource::Memory, verified()).unwrap();
        round_trip(&store, "psi.a.device").await;
        let file = fs::read(store.path("psi.a.device").unwrap()).unwrap();
        let pkcs8 = store.open_sealed("psi.a.device", &file).unwrap();
        assert!(pkcs8.len() > 64);
        assert!(
            !file.windows(pkcs8.len()).any(|w| w == &pkcs8[..]),
            "the PKCS#8 document is not on disk in clear"
        );
        // Even the private scalar's neighbourhood is not there: no 16-byte window matches.
        assert!(!pkcs8.windows(16).any(|w| file.windows(16).any(|f| f == w)));
        // Only the key file is left (no temp files).
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // The alias is bound: a file renamed to another alias does not decrypt.
        assert!(store.open_sealed("psi.b.device", &file).is_err());
        // Duplicates, deletion, missing keys.
        assert!(matches!(
            store.generate("psi.a.device".into(), false).await,
            Err(PlatformError::Failed { .. })
        ));
        store.delete("psi.a.device".into()).await.unwrap();
        assert_eq!(
            store.sign("psi.a.device".into(), vec![1], None).await,
            Err(PlatformError::KeyNotFound)
        );
        assert_eq!(
            store.delete("psi.a.device".into()).await,
            Err(PlatformError::KeyNotFound)
        );
        assert!(store.generate(String::new(), false).await.is_err());
        // Path-like aliases stay inside the directory.
        round_trip(&store, "../../escape").await;
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn file_wrapping_key_persists_and_a_wrong_one_fails_typed() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let wrap = dir.path().join("secret/wrapping.key");
        let store =
            SoftwareKeyStore::open(&keys, WrappingKeySource::File(wrap.clone()), verified())
                .unwrap();
        round_trip(&store, "k").await;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&wrap).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(fs::read(&wrap).unwrap().len(), 32);
        drop(store);

        let reopened =
            SoftwareKeyStore::open(&keys, WrappingKeySource::File(wrap.clone()), verified())
                .unwrap();
        reopened
            .sign("k".into(), b"m".to_vec(), None)
            .await
            .unwrap();

        let wrong = SoftwareKeyStore::open(
            &keys,
            WrappingKeySource::File(dir.path().join("other.key")),
            verified(),
        )
        .unwrap();
        match wrong.sign("k".into(), b"m".to_vec(), None).await {
            Err(PlatformError::Failed { reason }) => {
                assert!(reason.contains("cannot be decrypted"))
            }
            other => panic!("{other:?}"),
        }
        let memory = SoftwareKeyStore::open(&keys, WrappingKeySource::Memory, verified()).unwrap();
        assert!(matches!(
            memory.sign("k".into(), b"m".to_vec(), None).await,
            Err(PlatformError::Failed { .. })
        ));

        // A group-readable wrapping key file is refused; a wrong-length one too.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&wrap, fs::Permissions::from_mode(0o644)).unwrap();
            assert!(SoftwareKeyStore::open(
                &keys,
                WrappingKeySource::File(wrap.clone()),
                verified()
            )
            .is_err());
            fs::set_permissions(&wrap, fs::Permissions::from_mode(0o600)).unwrap();
        }
        fs::write(&wrap, b"short").unwrap();
        assert!(SoftwareKeyStore::open(&keys, WrappingKeySource::File(wrap), verified()).is_err());
    }

    /// What a process killed mid-write leaves: temporary files, never a short key file.
    #[tokio::test]
    async fn temporaries_a_killed_process_left_are_removed_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let wrap = dir.path().join("wrapping.key");
        let open =
            || SoftwareKeyStore::open(&keys, WrappingKeySource::File(wrap.clone()), verified());
        let store = open().unwrap();
        round_trip(&store, "k").await;
        drop(store);
        fs::write(keys.join(".tmp-0011223344556677"), b"half a key").unwrap();
        fs::write(
            dir.path().join("wrapping.key.tmp-8899aabbccddeeff"),
            b"half",
        )
        .unwrap();
        // Someone else's file next to the wrapping key is not ours to remove.
        fs::write(dir.path().join(".tmp-not-ours"), b"x").unwrap();
        let store = open().unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .chain(fs::read_dir(&keys).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".tmp-not-ours", "6b.key", "keys", "wrapping.key"]);
        // The surviving key still signs with the wrapping key on disk.
        store.sign("k".into(), b"m".to_vec(), None).await.unwrap();
    }

    #[tokio::test]
    async fn debug_output_has_no_key_material() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            SoftwareKeyStore::open(dir.path(), WrappingKeySource::Memory, verified()).unwrap();
        let text = format!("{store:?}");
        assert!(text.contains("<redacted>"));
    }

    /// The keyring path: the wrapping key is created once, found again by a second open, and a
    /// wrong-sized entry is a typed error. Runs on keyring-core's in-memory sample store: the
    /// kernel keyutils store links keys into the user's persistent keyring, which CI containers
    /// refuse, and that OS store is keyring-core's to test.
    #[test]
    fn keyring_wrapping_key_is_created_once_and_reused() {
        let store: std::sync::Arc<keyring_core::CredentialStore> =
            keyring_core::sample::Store::new().unwrap();
        let rng = SystemRandom::new();
        let first = keyring_key_in(&store, "svc", &rng).unwrap();
        let again = keyring_key_in(&store, "svc", &rng).unwrap();
        assert_eq!(first[..], again[..]);
        let other = keyring_key_in(&store, "other-svc", &rng).unwrap();
        assert_ne!(first[..], other[..]);

        keyring_core::Entry::new_in_store(&store, "bad", KEYRING_USER)
            .unwrap()
            .set_secret(b"short")
            .unwrap();
        assert!(matches!(
            keyring_key_in(&store, "bad", &rng),
            Err(PlatformError::Failed { .. })
        ));
    }
}
