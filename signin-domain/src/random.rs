//! Randomness from the OS CSPRNG.
use crate::error::AppError;

/// `N` bytes from the OS CSPRNG (nonces, challenges, credentials).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| AppError::internal(anyhow::anyhow!("random source failed")))?;
    Ok(bytes)
}
