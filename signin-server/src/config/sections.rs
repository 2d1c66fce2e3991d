//! The sections of the configuration. Each is one struct read two ways: as `serve` flags with
//! their `SIGNIN_*` environment variables (clap, which already prefers a flag to its variable)
//! and as a table of the TOML file (serde, unknown keys refused). Every field is an `Option`,
//! so "not given" stays visible until [`super::ServeConfig::merge`] layers them and fills in
//! the defaults.
//!
//! A field's name is its TOML key and its clap id (the error messages find the flag and the
//! variable by it); the flag names are those of the earlier, separate flag structs, hence the
//! explicit `long` (and `value_name`, which keeps `--help` as it was). Ids are given only where
//! two sections share a key name (clap ids are global). Doc comments are the flags' help text.
use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use url::Url;

/// `[server]`
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "SIGNIN_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Name shown on phones (stored; default "Contoso").
    #[arg(
        long = "server-name",
        env = "SIGNIN_SERVER_NAME",
        value_name = "SERVER_NAME"
    )]
    pub name: Option<String>,
    /// Lifetime of a sign-in request in seconds (default 90).
    #[arg(long, env = "SIGNIN_REQUEST_TTL_SECS")]
    pub request_ttl_secs: Option<u64>,
    /// Lifetime of new enrollment codes (stored; default 600).
    #[arg(long, env = "SIGNIN_ENROLLMENT_TTL_SECS")]
    pub enrollment_ttl_secs: Option<u64>,
    /// The URL users and phones reach this server at (stored), e.g. https://signin.example.com/.
    /// Needed for the web pages unless they are opened on a loopback address.
    #[arg(long, env = "SIGNIN_PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// A proxy (address or CIDR) whose `X-Forwarded-For` is believed. Repeatable;
    /// comma-separated in the environment variable.
    #[arg(long = "trusted-proxy", env = "SIGNIN_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_proxy, value_name = "TRUSTED_PROXIES")]
    #[serde(default, deserialize_with = "networks")]
    pub trusted_proxies: Option<Vec<IpNet>>,
    /// The loopback port the Authenticator listens on for the sign-in page under the
    /// phishing-resistant policy (PROTOCOL.md §5.9; default 47813, what the apps use).
    #[arg(long, env = "SIGNIN_BROWSER_LISTENER_PORT")]
    pub browser_listener_port: Option<u16>,
}

/// `[delivery]`: push clients. A client is configured when its table is in the file or any of
/// its flags or variables is given (long-poll always works).
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySection {
    #[command(flatten)]
    pub apns: Option<ApnsSection>,
    #[command(flatten)]
    pub fcm: Option<FcmSection>,
    #[command(flatten)]
    pub webpush: Option<WebPushSection>,
}

/// `[delivery.apns]`: all of `key_path`, `key_id`, `team_id` and `topic`.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsSection {
    /// APNs signing key (`.p8`, PKCS#8 PEM). Enables APNs with the other `--apns-*` flags.
    #[arg(long = "apns-key", env = "SIGNIN_APNS_KEY", value_name = "APNS_KEY")]
    pub key_path: Option<PathBuf>,
    /// APNs key id (the JWT `kid`).
    #[arg(
        long = "apns-key-id",
        env = "SIGNIN_APNS_KEY_ID",
        value_name = "APNS_KEY_ID"
    )]
    pub key_id: Option<String>,
    /// Apple developer team id (the JWT `iss`).
    #[arg(
        long = "apns-team-id",
        env = "SIGNIN_APNS_TEAM_ID",
        value_name = "APNS_TEAM_ID"
    )]
    pub team_id: Option<String>,
    /// The iOS app's bundle id (`apns-topic`).
    #[arg(
        long = "apns-topic",
        env = "SIGNIN_APNS_TOPIC",
        value_name = "APNS_TOPIC"
    )]
    pub topic: Option<String>,
    /// APNs endpoint (default https://api.push.apple.com; the sandbox is
    /// https://api.sandbox.push.apple.com).
    #[arg(
        id = "apns_endpoint",
        long = "apns-endpoint",
        env = "SIGNIN_APNS_ENDPOINT",
        value_name = "APNS_ENDPOINT"
    )]
    pub endpoint: Option<Url>,
}

/// `[delivery.fcm]`: `service_account_path` and optionally the rest.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmSection {
    /// FCM service-account JSON key file. Enables FCM.
    #[arg(
        long = "fcm-service-account",
        env = "SIGNIN_FCM_SERVICE_ACCOUNT",
        value_name = "FCM_SERVICE_ACCOUNT"
    )]
    pub service_account_path: Option<PathBuf>,
    /// FCM project id (default: the service account's `project_id`).
    #[arg(
        long = "fcm-project-id",
        env = "SIGNIN_FCM_PROJECT_ID",
        value_name = "FCM_PROJECT_ID"
    )]
    pub project_id: Option<String>,
    /// FCM endpoint (default https://fcm.googleapis.com).
    #[arg(
        id = "fcm_endpoint",
        long = "fcm-endpoint",
        env = "SIGNIN_FCM_ENDPOINT",
        value_name = "FCM_ENDPOINT"
    )]
    pub endpoint: Option<Url>,
    /// OAuth2 token endpoint (default: the service account's `token_uri`).
    #[arg(
        long = "fcm-token-uri",
        env = "SIGNIN_FCM_TOKEN_URI",
        value_name = "FCM_TOKEN_URI"
    )]
    pub token_uri: Option<Url>,
}

/// `[delivery.webpush]`: `subject`. The VAPID key itself is created in the database.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebPushSection {
    /// VAPID contact for Web Push (UnifiedPush) operators: a `mailto:` or `https:` URL (the
    /// JWT `sub`). Enables Web Push delivery.
    #[arg(
        long = "webpush-subject",
        env = "SIGNIN_WEBPUSH_SUBJECT",
        value_name = "WEBPUSH_SUBJECT"
    )]
    pub subject: Option<String>,
}

/// `[geoip]`
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpSection {
    /// MaxMind `.mmdb` database (GeoIP2/GeoLite2 City) for "City, Country" locations.
    #[arg(
        id = "geoip",
        long = "geoip",
        env = "SIGNIN_GEOIP_DATABASE",
        value_name = "GEOIP"
    )]
    pub database: Option<PathBuf>,
}

/// `[risk]`: anti-fatigue limits (`sign_in::risk::RiskConfig`).
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSection {
    /// Sign-ins (pushes) a user may start in a burst (default 3).
    #[arg(
        long = "rate-burst",
        env = "SIGNIN_RISK_BURST",
        value_name = "RATE_BURST"
    )]
    pub burst: Option<u32>,
    /// One more sign-in every this many seconds (default 60).
    #[arg(
        long = "rate-refill-secs",
        env = "SIGNIN_RISK_REFILL_SECS",
        value_name = "RATE_REFILL_SECS"
    )]
    pub refill_secs: Option<u64>,
    /// First cool-down when the burst is used up; doubles each time (default 60).
    #[arg(
        long = "rate-cooldown-secs",
        env = "SIGNIN_RISK_COOLDOWN_SECS",
        value_name = "RATE_COOLDOWN_SECS"
    )]
    pub cooldown_secs: Option<u64>,
    /// Longest cool-down (default 3600).
    #[arg(
        long = "rate-max-cooldown-secs",
        env = "SIGNIN_RISK_MAX_COOLDOWN_SECS",
        value_name = "RATE_MAX_COOLDOWN_SECS"
    )]
    pub max_cooldown_secs: Option<u64>,
    /// How long "this wasn't me" pauses a user's sign-ins (default 3600).
    #[arg(long = "report-pause-secs", env = "SIGNIN_RISK_REPORT_PAUSE_SECS")]
    pub report_pause_secs: Option<u64>,
    /// Sign-ins (pushes) a user may start in a burst across every client, address and entry
    /// point (default 10; never fewer than the per-client burst).
    #[arg(
        long = "rate-user-burst",
        env = "SIGNIN_RISK_USER_BURST",
        value_name = "RATE_USER_BURST"
    )]
    pub user_burst: Option<u32>,
}

/// `[outbound]`: what the server may call on someone's say-so (Web Push endpoints, CIBA ping
/// endpoints: `signin_domain::outbound::OutboundPolicy`) and the push channels a user may have.
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSection {
    /// Development only: let Web Push and CIBA ping endpoints be plain http on a loopback
    /// address (and loopback addresses at all). Default false.
    #[arg(
        long = "outbound-allow-http-loopback",
        env = "SIGNIN_OUTBOUND_ALLOW_HTTP_LOOPBACK",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_http_loopback: Option<bool>,
    /// A network (CIDR or address) that Web Push and CIBA ping endpoints may be in although it
    /// is private, loopback, link-local or otherwise not public (an internal push service).
    /// Repeatable; comma-separated in the environment variable. Default none.
    #[arg(long = "outbound-allow-network", env = "SIGNIN_OUTBOUND_ALLOW_NETWORKS", value_delimiter = ',',
          value_parser = parse_proxy, value_name = "ALLOW_NETWORKS")]
    #[serde(default, deserialize_with = "networks")]
    pub allow_networks: Option<Vec<IpNet>>,
    /// The most devices with a push channel (APNs, FCM, Web Push) one user may have; a further
    /// enrollment with one is refused (409 too_many_push_channels). Default 10.
    #[arg(
        long = "max-push-channels-per-user",
        env = "SIGNIN_OUTBOUND_MAX_PUSH_CHANNELS_PER_USER",
        value_name = "MAX_PUSH_CHANNELS_PER_USER"
    )]
    pub max_push_channels_per_user: Option<u32>,
}

/// Parses `10.0.0.0/8`, `192.0.2.1` or `::1` (a single address is a /32 or /128).
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{t:?} is not an IP address or CIDR network"))
}

/// `trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]` (and `allow_networks`), read with
/// [`parse_proxy`] like the flag.
fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<IpNet>>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|p| parse_proxy(p).map_err(serde::de::Error::custom))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// `[limits]`: what one server instance allows its clients (OPERATIONS.md, "Resource limits").
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Seconds a connection may take to send a request head, from opening or after its last
    /// response (default 10).
    #[arg(long, env = "SIGNIN_HEADER_READ_TIMEOUT_SECS")]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a request body or a response write may make no progress (default 30).
    #[arg(long, env = "SIGNIN_IDLE_TIMEOUT_SECS")]
    pub idle_timeout_secs: Option<u64>,
    /// Open connections in total (default 4096; lowered to what the open-file limit allows).
    #[arg(long, env = "SIGNIN_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Open connections from one client address; trusted proxies are exempt (default 256).
    #[arg(long, env = "SIGNIN_MAX_CONNECTIONS_PER_ADDRESS")]
    pub max_connections_per_address: Option<usize>,
    /// Waiting `device/poll` long-polls of one device (default 4).
    #[arg(long, env = "SIGNIN_MAX_POLLS_PER_DEVICE")]
    pub max_polls_per_device: Option<usize>,
    /// Waiting `signin/{id}?wait` long-polls of one sign-in (default 8).
    #[arg(long, env = "SIGNIN_MAX_POLLS_PER_SIGN_IN")]
    pub max_polls_per_sign_in: Option<usize>,
    /// Waiting long-polls in total (default 2048).
    #[arg(long, env = "SIGNIN_MAX_POLLS")]
    pub max_polls: Option<usize>,
    /// Memory for Argon2 checks (passwords, backup codes) in MiB: one check holds 19 MiB, so
    /// this bounds how many run at once (default 19 × the number of cores).
    #[arg(long, env = "SIGNIN_ARGON2_MEMORY_MIB")]
    pub argon2_memory_mib: Option<usize>,
    /// Argon2 checks that may wait for a place before new ones are refused (default 64).
    #[arg(long, env = "SIGNIN_ARGON2_QUEUE")]
    pub argon2_queue: Option<usize>,
}
