//! Browser sessions: a random id in an `HttpOnly; SameSite=Lax` cookie (`Secure` when the
//! public URL is https), only SHA-256 of it in the database, CSRF tokens derived from it, and a
//! fresh id at every sign-in.
use authenticator_protocol::encoding::b64;
use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, HOST};
use axum::http::request::Parts;
use axum::http::HeaderValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::WebError;
use signin_domain::state::AppState;
use signin_domain::store::sessions::{self, SessionRow};
use signin_domain::store::{now_ms, Pool};
use signin_domain::trust::{Authenticated, Method, Principal};

/// Cookie name over plain http (loopback development only).
pub const SESSION_COOKIE: &str = "psi_session";
/// Cookie name over https: the `__Host-` prefix makes browsers insist on `Secure`, `Path=/`
/// and no `Domain`.
pub const SECURE_SESSION_COOKIE: &str = "__Host-psi_session";
/// A session that is not signed in (a sign-in in progress) lives 30 minutes.
pub const ANONYMOUS_TTL_MS: i64 = 30 * 60 * 1000;
/// A signed-in session lives 8 hours.
pub const SIGNED_IN_TTL_MS: i64 = 8 * 60 * 60 * 1000;

/// How the server is reached: `public_url` if configured (`serve --public-url`), otherwise
/// the `Host` of a loopback request (development). Anything else is refused.
#[derive(Debug, Clone)]
pub struct PublicBase {
    pub url: url::Url,
}

impl PublicBase {
    pub fn secure(&self) -> bool {
        self.url.scheme() == "https"
    }
    pub fn cookie_name(&self) -> &'static str {
        if self.secure() {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    matches!(name, "localhost" | "[::1]")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

pub async fn public_base(pool: &Pool, parts: &Parts) -> Result<PublicBase, WebError> {
    if let Some(u) = signin_domain::store::get_setting(pool, super::PUBLIC_URL_SETTING).await? {
        let url =
            url::Url::parse(&u).map_err(|_| WebError::Config("stored public URL is invalid"))?;
        return Ok(PublicBase { url });
    }
    let host = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if is_loopback_host(host) {
        if let Ok(url) = url::Url::parse(&format!("http://{host}/")) {
            return Ok(PublicBase { url });
        }
    }
    Err(WebError::Config(
        "the web pages need the server's public URL: start it with --public-url",
    ))
}

/// The session of this request (created, not yet stored, when the browser has none).
pub struct Session {
    sid: String,
    pub base: PublicBase,
    pub upn: Option<String>,
    pub pending_upn: Option<String>,
    pub pending_request: Option<String>,
    pub pending_kind: Option<String>,
    pub resends: i64,
    /// How a signed-in session was made, and by which device (`trust`): what the account
    /// changes it may make depend on it.
    pub method: Option<Method>,
    pub device: Option<String>,
    /// Not in the browser yet: the response must set the cookie.
    pub is_new: bool,
    /// Has a row in `web_sessions`. A browser that only opened the sign-in page has a cookie
    /// (and so a CSRF token) but no row: nothing is stored before its first form post.
    stored: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("upn", &self.upn)
            .field("is_new", &self.is_new)
            .finish_non_exhaustive()
    }
}

fn tagged_hash(tag: &[u8], sid: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(tag);
    h.update(sid.as_bytes());
    h.finalize().into()
}

fn id_hash(sid: &str) -> String {
    b64(&tagged_hash(b"psi-web-session-v1\0", sid))
}

fn random_sid() -> Result<String, WebError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| WebError::internal(anyhow::anyhow!("random source failed")))?;
    Ok(b64(&bytes))
}

/// The value of the cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_value<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Session {
    fn fresh(base: PublicBase) -> Result<Self, WebError> {
        Ok(Session {
            sid: random_sid()?,
            base,
            upn: None,
            pending_upn: None,
            pending_request: None,
            pending_kind: None,
            resends: 0,
            method: None,
            device: None,
            is_new: true,
            stored: false,
        })
    }

    /// Who this session is signed in as, and how; `None` when not signed in.
    pub fn principal(&self) -> Option<Principal> {
        Some(Principal {
            upn: self.upn.clone()?,
            method: self.method?,
            device: self.device.clone(),
        })
    }

    pub fn id_hash(&self) -> String {
        id_hash(&self.sid)
    }

    /// Whether the session has a row (tests: a page view alone stores none).
    pub fn is_stored(&self) -> bool {
        self.stored
    }

    /// The CSRF token of every form of this session: a hash of the session id under its own
    /// tag (not the stored hash), so it is useless without the cookie.
    pub fn csrf_token(&self) -> String {
        b64(&tagged_hash(b"psi-web-csrf-v1\0", &self.sid))
    }

    /// Constant-time check of a submitted CSRF token. A new session (no cookie) never passes.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        let expected = self.csrf_token();
        if !self.is_new && bool::from(expected.as_bytes().ct_eq(submitted.as_bytes())) {
            Ok(())
        } else {
            Err(WebError::Csrf)
        }
    }

    /// `Set-Cookie` for this session.
    pub fn set_cookie(&self) -> HeaderValue {
        let secure = if self.base.secure() { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
            self.base.cookie_name(),
            self.sid
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` that removes the cookie.
    pub fn clear_cookie(&self) -> HeaderValue {
        let secure = if self.base.secure() { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}",
            self.base.cookie_name()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn row(&self) -> SessionRow {
        SessionRow {
            upn: self.upn.clone(),
            pending_upn: self.pending_upn.clone(),
            pending_request: self.pending_request.clone(),
            pending_kind: self.pending_kind.clone(),
            resends: self.resends,
            method: self.method.map(|m| m.as_str().to_owned()),
            device: self.device.clone(),
        }
    }

    /// Writes the session (insert when not stored yet), keeping its expiry window.
    pub async fn save(&mut self, pool: &Pool) -> Result<(), WebError> {
        if !self.stored {
            let now = now_ms();
            let ttl = if self.upn.is_some() {
                SIGNED_IN_TTL_MS
            } else {
                ANONYMOUS_TTL_MS
            };
            sessions::insert(pool, &self.id_hash(), &self.row(), now, now + ttl).await?;
            self.stored = true;
        } else {
            sessions::update_progress(pool, &self.id_hash(), &self.row()).await?;
        }
        Ok(())
    }

    /// Gives this session a new id, keeping its state: the old id stops working (its row is
    /// deleted) and the next [`save`](Self::save) stores the session under the new id, whose
    /// cookie the response sets. Used when the UPN is submitted, so an id seen before then (a
    /// shared or planted pre-sign-in cookie) cannot follow the sign-in it started.
    pub async fn rotate_id(&mut self, pool: &Pool) -> Result<(), WebError> {
        if self.stored {
            sessions::delete(pool, &self.id_hash(), None).await?;
        }
        self.sid = random_sid()?;
        self.is_new = true;
        self.stored = false;
        Ok(())
    }

    /// Ends this session and starts a signed-in one for `who` under a new id (no session
    /// fixation), recording how and by which device it was made. When `consume_request` is
    /// given, the old session must still hold that pending request: an approval signs in one
    /// browser once.
    pub async fn rotate_to_signed_in(
        &self,
        pool: &Pool,
        who: &Authenticated,
        consume_request: Option<&str>,
    ) -> Result<Session, WebError> {
        if self.stored {
            let deleted = sessions::delete(pool, &self.id_hash(), consume_request).await?;
            if consume_request.is_some() && !deleted {
                return Err(WebError::SessionGone);
            }
        } else if consume_request.is_some() {
            return Err(WebError::SessionGone);
        }
        let mut next = Session::fresh(self.base.clone())?;
        next.upn = Some(who.upn().to_owned());
        next.method = Some(who.method());
        next.device = who.device().map(str::to_owned);
        next.save(pool).await?;
        Ok(next)
    }

    /// Signs out: deletes the stored session.
    pub async fn destroy(&self, pool: &Pool) -> Result<(), WebError> {
        sessions::delete(pool, &self.id_hash(), None).await?;
        Ok(())
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, WebError> {
        let base = public_base(&state.pool, parts).await?;
        let Some(sid) = cookie_value(parts, base.cookie_name()) else {
            return Session::fresh(base);
        };
        // Only ids this server could have made (43 base64url characters of 32 bytes).
        let well_formed = sid.len() == 43
            && sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Session::fresh(base);
        }
        let row = sessions::find(&state.pool, &id_hash(sid), now_ms()).await?;
        let stored = row.is_some();
        // A cookie without a row (the sign-in page was only opened, or the row expired): an
        // anonymous session, stored at its first form post.
        let row = row.unwrap_or_default();
        // A signed-in session always says how it was made; one that does not is not signed in.
        let method = row.method.as_deref().and_then(Method::parse);
        Ok(Session {
            sid: sid.to_owned(),
            base,
            upn: row.upn.filter(|_| method.is_some()),
            pending_upn: row.pending_upn,
            pending_request: row.pending_request,
            pending_kind: row.pending_kind,
            resends: row.resends,
            method,
            device: row.device,
            is_new: false,
            stored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_only() {
        assert!(is_loopback_host("127.0.0.1:8080"));
        assert!(is_loopback_host("localhost:3000"));
        assert!(is_loopback_host("[::1]:8080"));
        assert!(is_loopback_host("127.0.0.1"));
        assert!(!is_loopback_host("signin.example.com"));
        assert!(!is_loopback_host("10.0.0.1:8080"));
        assert!(!is_loopback_host("127.0.0.1.evil.example:80"));
        assert!(!is_loopback_host(""));
    }

    #[test]
    fn csrf_differs_from_the_stored_hash_and_checks_in_constant_time() {
        let base = PublicBase {
            url: url::Url::parse("https://signin.example.com/").unwrap(),
        };
        let mut s = Session::fresh(base).unwrap();
        assert_ne!(s.csrf_token(), s.id_hash());
        let token = s.csrf_token();
        assert!(
            matches!(s.check_csrf(&token), Err(WebError::Csrf)),
            "no cookie yet"
        );
        s.is_new = false;
        assert!(
            s.check_csrf(&token).is_ok(),
            "cookie sent, even before a row is stored"
        );
        assert!(matches!(s.check_csrf("x"), Err(WebError::Csrf)));
        let cookie = s.set_cookie();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.starts_with("__Host-psi_session="));
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert!(cookie.ends_with("; Secure"));
    }
}
