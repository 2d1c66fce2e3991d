//! Moving to a new phone (PROTOCOL.md §5.11) and the passphrase-encrypted export file of TOTP
//! accounts.
//!
//! A move: the old phone encrypts its TOTP accounts under a fresh one-time key (AES-256-GCM,
//! `ring`), asks each account's server for a move code its device key vouches for (after the
//! user's verification), leaving the encrypted TOTP accounts with the first server, and shows
//! one link holding the codes and the key. The new phone claims every code (typed refusals
//! before anything is created), takes and decrypts the TOTP accounts, enrolls each account and
//! seals the TOTP secrets with its own `SecretStore`. Phone sign-in keys never leave a device:
//! the new phone makes its own.
//!
//! The export file holds only TOTP accounts the user added (not the enrollments' own
//! offline-fallback secrets, which belong to one device), encrypted under a key derived from
//! a passphrase with Argon2id.
use argon2::{Algorithm as Argon2Algorithm, Argon2, Params, Version};
use authenticator_protocol::canonical::Canonical;
use authenticator_protocol::encoding::{b64, ct_eq, sha256, unb64, unb64_fixed};
use authenticator_protocol::enroll::EnrollmentUrl;
use authenticator_protocol::moving::{
    MoveClaimRequest, MoveLink, MoveVouch, MoveVouchRequest, MAX_TOTP_BLOB_CHARS, MOVE_TOTP_AAD,
};
use authenticator_protocol::{text, UnixMillis};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use totp_rs::TOTP;
use zeroize::Zeroizing;

use super::sign_in::parse_account_id;
use super::store::StoredTotp;
use super::totp::{parse_algorithm, parse_uri, seal, seal_context, secret_store};
use super::{bounded, enroll, Core};
use crate::error::{Error, Result};
use crate::types::{AccountSummary, MoveIn, MoveOut, PushRegistration, TotpAccount};

/// Shortest passphrase an export accepts (characters).
pub(crate) const MIN_PASSPHRASE_CHARS: usize = 8;
/// The largest export file read (a file of thousands of TOTP accounts is far below it).
const MAX_EXPORT_BYTES: usize = 1024 * 1024;
/// The export file's `format` value.
const EXPORT_FORMAT: &str = "phonesignin-totp-export";
/// Argon2id parameters of new exports (OWASP's first recommendation: 19 MiB, 2 passes).
const EXPORT_M_KIB: u32 = 19 * 1024;
const EXPORT_T: u32 = 2;
const EXPORT_P: u32 = 1;
/// The most an export file may ask for (a hostile file must not exhaust the phone).
const MAX_M_KIB: u32 = 256 * 1024;
const MAX_T: u32 = 10;
const MAX_P: u32 = 4;
const EXPORT_AAD_TAG: &[u8] = b"phonesignin/v1/totp-export";

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| Error::Internal("the OS random source failed".into()))?;
    Ok(bytes)
}

/// `nonce || AES-256-GCM(key, nonce, aad, plaintext)`.
fn encrypt(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let sealing = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, key).map_err(|_| Error::Internal("AEAD key".into()))?,
    );
    let nonce = random::<NONCE_LEN>()?;
    let mut in_out = plaintext.to_vec();
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut in_out,
        )
        .map_err(|_| Error::Internal("AEAD seal failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&in_out);
    Ok(out)
}

/// The plaintext of [`encrypt`]'s output, or `None` if it does not authenticate.
fn decrypt(key: &[u8; 32], aad: &[u8], blob: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if blob.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let opening = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut in_out = Zeroizing::new(sealed.to_vec());
    let plain_len = opening
        .open_in_place(nonce, Aad::from(aad), &mut in_out)
        .ok()?
        .len();
    in_out.truncate(plain_len);
    Some(in_out)
}

/// The TOTP accounts the user added (not an enrollment's own secret), as `otpauth://` URIs.
async fn added_totp_uris(core: &Core) -> Result<Zeroizing<Vec<String>>> {
    let rows: Vec<StoredTotp> = core
        .store
        .totp_accounts()?
        .into_iter()
        .filter(|t| t.account_id.is_none())
        .collect();
    let mut uris = Zeroizing::new(Vec::with_capacity(rows.len()));
    if rows.is_empty() {
        return Ok(uris);
    }
    let secrets = secret_store(core)?;
    for row in rows {
        let secret = Zeroizing::new(
            bounded(
                "unseal a secret",
                secrets.unseal(seal_context(&row.totp_id), row.sealed_secret.clone()),
            )
            .await
            .map_err(Error::SecretStore)?,
        );
        let totp = TOTP::new_unchecked(
            parse_algorithm(&row.algorithm)?,
            row.digits as usize,
            1,
            u64::from(row.period),
            secret.to_vec(),
            (!row.issuer.is_empty()).then(|| row.issuer.clone()),
            row.account_name.clone(),
        );
        uris.push(totp.get_url());
    }
    Ok(uris)
}

/// Seals and stores TOTP accounts from `otpauth://` URIs, all validated before any is stored.
async fn import_uris(core: &Core, uris: &[String]) -> Result<Vec<TotpAccount>> {
    let parsed = uris
        .iter()
        .map(|u| parse_uri(u))
        .collect::<Result<Vec<_>>>()?;
    if !parsed.is_empty() {
        secret_store(core)?;
    }
    let mut added = Vec::with_capacity(parsed.len());
    for p in &parsed {
        let row = seal(core, p, None).await?;
        core.store.insert_totp(&row)?;
        added.push(row.summary());
    }
    Ok(added)
}

/// Starts a move: one move code per account, the TOTP accounts left encrypted with the first
/// account's server, and the link that holds them all.
pub(crate) async fn move_out(core: &Core) -> Result<MoveOut> {
    let accounts = core.store.accounts()?;
    if accounts.is_empty() {
        return Err(Error::InvalidInput(
            "a move needs an enrolled account; move TOTP accounts alone with the export file"
                .into(),
        ));
    }
    let uris = added_totp_uris(core).await?;
    let key = Zeroizing::new(random::<32>()?);
    let blob = if uris.is_empty() {
        None
    } else {
        let plain =
            Zeroizing::new(serde_json::to_vec(&*uris).map_err(|e| Error::Internal(e.to_string()))?);
        let blob = b64(&encrypt(&key, MOVE_TOTP_AAD, &plain)?);
        if blob.len() > MAX_TOTP_BLOB_CHARS {
            return Err(Error::InvalidInput(
                "too many TOTP accounts for a move; use the export file".into(),
            ));
        }
        Some(blob)
    };
    let mut entries = Vec::with_capacity(accounts.len());
    let mut expires_at = u64::MAX;
    for (i, account) in accounts.iter().enumerate() {
        let totp_blob = if i == 0 { blob.clone() } else { None };
        let vouch = MoveVouch {
            account_id: account.account_id.clone(),
            totp_blob_sha256: totp_blob
                .as_deref()
                .map(|b| unb64("totp_blob", b).map(|raw| sha256(&raw)))
                .transpose()
                .map_err(|e| Error::Internal(e.to_string()))?,
            timestamp: UnixMillis::now(),
        };
        // The user is asked for each account, by what it hands over.
        let prompt = format!(
            "Move {} ({}) to a new phone",
            text::escape(&account.upn),
            text::escape(&account.server_name)
        );
        let signature = core
            .sign_verified(&account.device_key_alias, vouch.signed_bytes(), prompt)
            .await?;
        let answer = core
            .api
            .move_vouch(
                &account.server_url,
                &MoveVouchRequest {
                    account_id: account.account_id.clone(),
                    totp_blob,
                    timestamp: vouch.timestamp,
                    signature: signature.to_b64(),
                },
            )
            .await?;
        expires_at = expires_at.min(answer.expires_at.millis());
        entries.push(EnrollmentUrl {
            server: account.server_url.clone(),
            code: answer.code,
            server_fingerprint: account.server_public_key.fingerprint(),
        });
    }
    let link = MoveLink {
        key: *key,
        accounts: entries,
        totp_at: blob.is_some().then_some(0),
        phone_sign_in: accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| a.passwordless_key_alias.is_some())
            .map(|(i, _)| i)
            .collect(),
    };
    tracing::info!(
        accounts = accounts.len(),
        totp_accounts = uris.len(),
        "move started"
    );
    Ok(MoveOut {
        link: link.to_url_string(),
        expires_at_ms: expires_at,
        accounts: accounts.len() as u32,
        totp_accounts: uris.len() as u32,
    })
}

/// Completes a move on the new phone: every code is claimed first (a used, expired or
/// orphaned move is refused before anything is created), the TOTP accounts decrypted, then
/// each account enrolled and the TOTP accounts stored.
pub(crate) async fn move_in(
    core: &Core,
    link: &str,
    device_name: &str,
    push: PushRegistration,
) -> Result<MoveIn> {
    let link = MoveLink::parse(link).map_err(Error::MoveLink)?;
    let key = Zeroizing::new(link.key);
    let mut blob = None;
    // The entry that keeps the TOTP accounts last: a move another server refuses does not
    // take them.
    let mut order: Vec<usize> = (0..link.accounts.len())
        .filter(|&i| link.totp_at != Some(i))
        .collect();
    order.extend(link.totp_at);
    for i in order {
        let entry = &link.accounts[i];
        let claimed = core
            .api
            .move_claim(
                &entry.server,
                &MoveClaimRequest {
                    code: entry.code.clone(),
                },
            )
            .await?;
        if link.totp_at == Some(i) {
            // Handed out once: a link whose TOTP accounts were taken was used before.
            blob = Some(claimed.totp_blob.ok_or(Error::MoveUsed)?);
        }
    }
    let uris: Zeroizing<Vec<String>> = match blob {
        None => Zeroizing::new(Vec::new()),
        Some(blob) => {
            let raw = unb64("totp_blob", &blob)
                .map_err(|_| Error::InvalidResponse("the TOTP blob is not base64url".into()))?;
            let plain = decrypt(&key, MOVE_TOTP_AAD, &raw).ok_or(Error::MoveTotpUnreadable)?;
            Zeroizing::new(serde_json::from_slice(&plain).map_err(|_| Error::MoveTotpUnreadable)?)
        }
    };
    // Validated (and a secret store present) before any account is created.
    for u in uris.iter() {
        parse_uri(u)?;
    }
    if !uris.is_empty() {
        secret_store(core)?;
    }
    let mut accounts: Vec<AccountSummary> = Vec::with_capacity(link.accounts.len());
    for (i, entry) in link.accounts.iter().enumerate() {
        let mut account =
            enroll::enroll(core, &entry.to_url_string(), device_name, push.clone()).await?;
        if link.phone_sign_in.contains(&i) {
            // Phone sign-in was on for it on the old phone: on here too, with this phone's
            // own key (the user is verified for it).
            let id = parse_account_id(&account.account_id)?;
            account = enroll::enable_phone_sign_in(core, &id).await?;
        }
        accounts.push(account);
    }
    let totp_accounts = import_uris(core, &uris).await?;
    tracing::info!(
        accounts = accounts.len(),
        totp_accounts = totp_accounts.len(),
        "move completed"
    );
    Ok(MoveIn {
        accounts,
        totp_accounts,
    })
}

/// After a move, on the old phone: removes every account (each server is told, §5.7) and
/// every TOTP account.
pub(crate) async fn remove_everything(core: &Core) -> Result<()> {
    for account in core.store.accounts()? {
        enroll::remove_account(core, &account.account_id).await?;
    }
    for t in core.store.totp_accounts()? {
        core.store.delete_totp(&t.totp_id)?;
    }
    tracing::info!("accounts removed after a move");
    Ok(())
}

/// The export file (JSON text). The AEAD's associated data covers every field but the
/// ciphertext, so a changed parameter fails like a changed ciphertext.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportFile {
    format: String,
    v: u32,
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    /// SHA-256 of the second half of the derived bytes: tells a wrong passphrase from a
    /// changed file.
    check: String,
    ciphertext: String,
}

impl ExportFile {
    fn aad(&self) -> Vec<u8> {
        Canonical::new(EXPORT_AAD_TAG)
            .str(&self.format)
            .u64(u64::from(self.v))
            .str(&self.kdf)
            .u64(u64::from(self.m_kib))
            .u64(u64::from(self.t))
            .u64(u64::from(self.p))
            .str(&self.salt)
            .str(&self.check)
            .finish()
    }
}

/// 64 bytes from the passphrase: the AEAD key, then the check half.
fn derive(
    passphrase: &str,
    salt: &[u8],
    m_kib: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 64]>> {
    let params = Params::new(m_kib, t, p, Some(64))
        .map_err(|_| Error::InvalidExportFile("unusable key derivation parameters"))?;
    let mut out = Zeroizing::new([0u8; 64]);
    Argon2::new(Argon2Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *out)
        .map_err(|_| Error::InvalidExportFile("unusable key derivation parameters"))?;
    Ok(out)
}

fn halves(derived: &[u8; 64]) -> (Zeroizing<[u8; 32]>, [u8; 32]) {
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&derived[..32]);
    (key, sha256(&derived[32..]))
}

/// Argon2 is deliberately slow: off the async threads.
async fn derive_blocking(
    passphrase: Zeroizing<String>,
    salt: Vec<u8>,
    m_kib: u32,
    t: u32,
    p: u32,
) -> Result<Zeroizing<[u8; 64]>> {
    tokio::task::spawn_blocking(move || derive(&passphrase, &salt, m_kib, t, p))
        .await
        .map_err(|_| Error::Internal("key derivation task failed".into()))?
}

/// The export file of the TOTP accounts the user added, encrypted under `passphrase`.
pub(crate) async fn export(core: &Core, passphrase: &str) -> Result<String> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::InvalidInput(format!(
            "the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    let uris = added_totp_uris(core).await?;
    let salt = random::<16>()?;
    let derived = derive_blocking(
        Zeroizing::new(passphrase.to_owned()),
        salt.to_vec(),
        EXPORT_M_KIB,
        EXPORT_T,
        EXPORT_P,
    )
    .await?;
    let (key, check) = halves(&derived);
    let mut file = ExportFile {
        format: EXPORT_FORMAT.into(),
        v: 1,
        kdf: "argon2id".into(),
        m_kib: EXPORT_M_KIB,
        t: EXPORT_T,
        p: EXPORT_P,
        salt: b64(&salt),
        check: b64(&check),
        ciphertext: String::new(),
    };
    let plain =
        Zeroizing::new(serde_json::to_vec(&*uris).map_err(|e| Error::Internal(e.to_string()))?);
    file.ciphertext = b64(&encrypt(&key, &file.aad(), &plain)?);
    tracing::info!(totp_accounts = uris.len(), "TOTP accounts exported");
    serde_json::to_string_pretty(&file).map_err(|e| Error::Internal(e.to_string()))
}

/// Imports an export file: `WrongPassphrase`, or `InvalidExportFile` for anything changed.
pub(crate) async fn import(
    core: &Core,
    contents: &str,
    passphrase: &str,
) -> Result<Vec<TotpAccount>> {
    if contents.len() > MAX_EXPORT_BYTES {
        return Err(Error::InvalidExportFile("the file is too large"));
    }
    let file: ExportFile = serde_json::from_str(contents)
        .map_err(|_| Error::InvalidExportFile("not a TOTP export file"))?;
    if file.format != EXPORT_FORMAT || file.v != 1 || file.kdf != "argon2id" {
        return Err(Error::InvalidExportFile("not a version 1 TOTP export file"));
    }
    if file.m_kib > MAX_M_KIB || file.t > MAX_T || file.p > MAX_P {
        return Err(Error::InvalidExportFile(
            "the key derivation parameters are out of bounds",
        ));
    }
    let salt = unb64("salt", &file.salt).map_err(|_| Error::InvalidExportFile("bad salt"))?;
    let check = unb64_fixed::<32>("check", &file.check)
        .map_err(|_| Error::InvalidExportFile("bad check"))?;
    let ciphertext = unb64("ciphertext", &file.ciphertext)
        .map_err(|_| Error::InvalidExportFile("bad ciphertext"))?;
    let derived = derive_blocking(
        Zeroizing::new(passphrase.to_owned()),
        salt,
        file.m_kib,
        file.t,
        file.p,
    )
    .await?;
    let (key, expected) = halves(&derived);
    if !ct_eq(&expected, &check) {
        return Err(Error::WrongPassphrase);
    }
    let plain = decrypt(&key, &file.aad(), &ciphertext)
        .ok_or(Error::InvalidExportFile("the file was changed"))?;
    let uris: Zeroizing<Vec<String>> = Zeroizing::new(
        serde_json::from_slice(&plain)
            .map_err(|_| Error::InvalidExportFile("the contents are not TOTP accounts"))?,
    );
    let added = import_uris(core, &uris).await?;
    tracing::info!(totp_accounts = added.len(), "TOTP accounts imported");
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_opens_only_under_its_key_and_associated_data() {
        let key = [3u8; 32];
        let blob = encrypt(&key, b"ad", b"secret accounts").unwrap();
        assert_eq!(
            decrypt(&key, b"ad", &blob).unwrap().as_slice(),
            b"secret accounts"
        );
        assert!(decrypt(&[4u8; 32], b"ad", &blob).is_none());
        assert!(decrypt(&key, b"other", &blob).is_none());
        let mut flipped = blob.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decrypt(&key, b"ad", &flipped).is_none());
        assert!(decrypt(&key, b"ad", &blob[..10]).is_none());
    }
}
