//! Settings of a running server.
use std::net::SocketAddr;

use authenticator_protocol::wire::DEFAULT_REQUEST_TTL_SECS;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// `sqlite://path`
    pub database: String,
    /// Stored in the database when given; otherwise the stored name (default "Contoso").
    pub server_name: Option<String>,
    pub request_ttl_secs: u64,
    /// Stored in the database when given (used by `admin registration-link`).
    pub enrollment_ttl_secs: Option<u64>,
    /// The server's public URL for the web pages and registration links (stored when given).
    pub public_url: Option<url::Url>,
    /// APNs / FCM clients and retries (long-poll always works).
    pub push: crate::delivery::push::PushConfig,
    /// Anti-fatigue limits and the pause after a report.
    pub risk: crate::sign_in::risk::RiskConfig,
    /// A MaxMind `.mmdb` database for "City, Country" locations.
    pub geoip: Option<std::path::PathBuf>,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: "sqlite://signin.db".into(),
            server_name: None,
            request_ttl_secs: DEFAULT_REQUEST_TTL_SECS,
            enrollment_ttl_secs: None,
            public_url: None,
            push: Default::default(),
            risk: Default::default(),
            geoip: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What handlers need to know at run time.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server_name: String,
    pub request_ttl_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            server_name: crate::store::DEFAULT_SERVER_NAME.into(),
            request_ttl_secs: DEFAULT_REQUEST_TTL_SECS,
        }
    }
}
