//! The run-time settings the domain needs (the server's `config` module builds them from
//! flags, environment and file).
use authenticator_protocol::wire::DEFAULT_REQUEST_TTL_SECS;

/// What handlers need to know at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server_name: String,
    pub request_ttl_secs: u64,
    /// The Authenticator's loopback listener the sign-in page calls (§5.9).
    pub browser_listener_port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server_name: crate::store::DEFAULT_SERVER_NAME.into(),
            request_ttl_secs: DEFAULT_REQUEST_TTL_SECS,
            browser_listener_port: authenticator_protocol::sign_in::DEFAULT_BROWSER_LISTENER_PORT,
        }
    }
}
