//! `SoftwareKeyStore` is also the desktop's and the tests' `SecretStore`: a secret is sealed
//! with AES-256-GCM under the same wrapping key as the key files (random nonce), with the
//! context as associated data in a namespace no key alias can name (`\0secret\0<context>`:
//! aliases hold no NUL), so a sealed secret never opens as a key or under another context.
use zeroize::Zeroizing;

use crate::platform::{PlatformError, SecretStore};
use crate::software_keys::SoftwareKeyStore;

/// Longest context accepted (the core's are `totp/<alias>`, about 40 bytes).
const MAX_CONTEXT_BYTES: usize = 256;

fn associated(context: &str) -> Result<String, PlatformError> {
    if context.is_empty() || context.len() > MAX_CONTEXT_BYTES || context.contains('\0') {
        return Err(PlatformError::Failed {
            reason: "invalid secret context".into(),
        });
    }
    Ok(format!("\0secret\0{context}"))
}

#[async_trait::async_trait]
impl SecretStore for SoftwareKeyStore {
    async fn seal(&self, context: String, plaintext: Vec<u8>) -> Result<Vec<u8>, PlatformError> {
        let plaintext = Zeroizing::new(plaintext);
        SoftwareKeyStore::seal(self, &associated(&context)?, &plaintext)
    }

    async fn unseal(&self, context: String, sealed: Vec<u8>) -> Result<Vec<u8>, PlatformError> {
        let opened = self.open_sealed(&associated(&context)?, &sealed)?;
        Ok(opened.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::software_keys::WrappingKeySource;
    use crate::testing::AlwaysVerified;

    fn store(dir: &std::path::Path, source: WrappingKeySource) -> SoftwareKeyStore {
        SoftwareKeyStore::open(dir, source, Arc::new(AlwaysVerified)).unwrap()
    }

    #[tokio::test]
    async fn secrets_open_only_under_their_context_and_wrapping_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = WrappingKeySource::File(dir.path().join("wrap.key"));
        let a = store(&dir.path().join("a"), file.clone());
        let sealed = SecretStore::seal(&a, "totp/1".into(), b"secret bytes".to_vec())
            .await
            .unwrap();
        assert!(!sealed.windows(12).any(|w| w == b"secret bytes"));
        assert_eq!(
            SecretStore::unseal(&a, "totp/1".into(), sealed.clone())
                .await
                .unwrap(),
            b"secret bytes"
        );
        // Same wrapping key (another instance): opens; other context, other key, a flipped
        // byte: refused.
        let again = store(&dir.path().join("b"), file);
        assert_eq!(
            SecretStore::unseal(&again, "totp/1".into(), sealed.clone())
                .await
                .unwrap(),
            b"secret bytes"
        );
        assert!(SecretStore::unseal(&a, "totp/2".into(), sealed.clone())
            .await
            .is_err());
        let other = store(&dir.path().join("c"), WrappingKeySource::Memory);
        assert!(SecretStore::unseal(&other, "totp/1".into(), sealed.clone())
            .await
            .is_err());
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(SecretStore::unseal(&a, "totp/1".into(), flipped)
            .await
            .is_err());
        assert!(SecretStore::seal(&a, String::new(), vec![1]).await.is_err());
        assert!(SecretStore::seal(&a, "a\0b".into(), vec![1]).await.is_err());
    }
}
