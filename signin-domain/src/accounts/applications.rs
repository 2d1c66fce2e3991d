//! Registered applications: who may start a sign-in, and the name the phone shows.
//!
//! An admin registers each application (`admin app add --name NAME`), which gets a
//! `client_id` and a secret, printed once; only SHA-256(secret) is stored (the secret is 32
//! random bytes, so a fast hash is enough). The sign-in start API takes them as HTTP Basic
//! credentials (`client_secret_basic` of RFC 6749 §2.3.1), compared in constant time. The
//! server's own pages are the built-in application [`PORTAL_CLIENT_ID`]: they have no
//! secret, so no API caller can act as them.
use std::fmt;

use anyhow::bail;
use authenticator_protocol::encoding::{b64, ct_eq, sha256, unb64_fixed};
use authenticator_protocol::text;

use crate::audit::{self, Event};
use crate::error::AppError;
use crate::random::random_bytes;
use crate::store::applications::{self as store, ApplicationRow};
use crate::store::cache::Cache;
use crate::store::{now_ms, Pool};

/// The server's own sign-in pages, created by the migration.
pub const PORTAL_CLIENT_ID: &str = "signin-portal";
/// Longest application name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// An application that proved its credential (or the built-in portal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub client_id: String,
    /// The registered display name, shown on the phone.
    pub name: String,
    pub builtin: bool,
}

impl From<ApplicationRow> for Application {
    fn from(r: ApplicationRow) -> Self {
        Application {
            client_id: r.client_id,
            name: r.name,
            builtin: r.builtin != 0,
        }
    }
}

impl fmt::Display for Application {
    /// The line `admin app list` prints (the name escaped for the terminal).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.client_id, text::escape(&self.name))?;
        if self.builtin {
            f.write_str(" (built-in: this server's sign-in pages)")?;
        }
        Ok(())
    }
}

/// What `admin app add` prints once: the secret is not stored and cannot be shown again.
pub struct Registered {
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for Registered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registered")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// A display name as the phone will show it: trimmed, 1 to 128 characters, no control,
/// newline or bidirectional formatting characters.
pub fn check_name(name: &str) -> anyhow::Result<&str> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        bail!("--name must be 1 to {MAX_NAME_LEN} characters");
    }
    super::check_plain_flag("--name", name)?;
    Ok(name)
}

/// Registers an application; the name must be unique.
pub async fn add(pool: &Pool, name: &str) -> anyhow::Result<Registered> {
    let name = check_name(name)?;
    let client_id = format!("app-{}", b64(&random_bytes::<12>()?));
    let secret = b64(&random_bytes::<32>()?);
    let row = ApplicationRow {
        client_id: client_id.clone(),
        name: name.to_owned(),
        secret_hash: Some(b64(&sha256(secret.as_bytes()))),
        builtin: 0,
        created_at: now_ms(),
    };
    if !store::insert(pool, &row).await? {
        bail!("an application named {:?} is already registered", name);
    }
    audit_app(pool, Event::ApplicationAdded, &client_id).await?;
    Ok(Registered {
        client_id,
        client_secret: secret,
    })
}

/// Every application, by name, the built-in portal among them.
pub async fn list(pool: &Pool) -> anyhow::Result<Vec<Application>> {
    Ok(store::all(pool)
        .await?
        .into_iter()
        .map(Application::from)
        .collect())
}

/// Removes a registered application: its credential stops working at once.
pub async fn remove(pool: &Pool, client_id: &str) -> anyhow::Result<()> {
    let client_id = client_id.trim();
    if client_id == PORTAL_CLIENT_ID {
        bail!("{PORTAL_CLIENT_ID} is this server's own sign-in pages and cannot be removed");
    }
    if !store::remove(pool, client_id).await? {
        bail!("no application with client id {client_id}");
    }
    audit_app(pool, Event::ApplicationRemoved, client_id).await?;
    Ok(())
}

async fn audit_app(pool: &Pool, event: Event, client_id: &str) -> anyhow::Result<()> {
    let outcome = format!("client_id={client_id}");
    audit::record(
        pool,
        event,
        audit::Entry {
            outcome: &outcome,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// The built-in portal (the server's own pages).
pub async fn portal(pool: &Pool) -> Result<Application, AppError> {
    store::find(pool, PORTAL_CLIENT_ID)
        .await?
        .map(Application::from)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the built-in portal is missing")))
}

/// The application whose `client_id` and `secret` these are. Unknown ids, the portal (no
/// secret) and wrong secrets are all `unauthorized_application`, alike.
pub async fn authenticate(
    pool: &Pool,
    client_id: &str,
    secret: &str,
) -> Result<Application, AppError> {
    check_secret(store::find(pool, client_id).await?, secret)
}

/// [`authenticate`] against the registration as the cache has it (`store::cache`), which a
/// removal in another process empties only at the next sign-in start: for the sign-in start
/// API only, since the start (`sign_in::start`) checks in its first statement that the
/// application is still registered.
pub async fn authenticate_for_start(
    pool: &Pool,
    cache: &Cache,
    client_id: &str,
    secret: &str,
) -> Result<Application, AppError> {
    check_secret(cache.application(pool, client_id).await?, secret)
}

fn check_secret(row: Option<ApplicationRow>, secret: &str) -> Result<Application, AppError> {
    // Hash even for an unknown id, so that the answer takes the same work.
    let presented = sha256(secret.as_bytes());
    let Some(row) = row else {
        return Err(AppError::UnauthorizedApplication);
    };
    let Some(stored) = row.secret_hash.as_deref() else {
        return Err(AppError::UnauthorizedApplication);
    };
    let stored = unb64_fixed::<32>("secret_hash", stored)
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored secret hash: {e}")))?;
    if !ct_eq(&stored, &presented) {
        return Err(AppError::UnauthorizedApplication);
    }
    Ok(row.into())
}
