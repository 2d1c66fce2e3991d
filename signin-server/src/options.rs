//! `serve` flags (and their `SIGNIN_*` environment variables) for push delivery, GeoIP,
//! trusted proxies and anti-fatigue. They override the config file's `[delivery.*]`, `[geoip]`,
//! `[risk]` and `[server] trusted_proxies` (`config_file::FileConfig::apply_delivery_sections`).
use std::path::PathBuf;

use anyhow::bail;
use ipnet::IpNet;
use url::Url;

use crate::config::ServeConfig;
use crate::delivery::push::{ApnsConfig, FcmConfig};

/// Parses `10.0.0.0/8`, `192.0.2.1` or `::1` (a single address is a /32 or /128).
pub fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{t:?} is not an IP address or CIDR network"))
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct DeliveryArgs {
    /// APNs signing key (`.p8`, PKCS#8 PEM). Enables APNs with the other `--apns-*` flags.
    #[arg(long, env = "SIGNIN_APNS_KEY")]
    pub apns_key: Option<PathBuf>,
    /// APNs key id (the JWT `kid`).
    #[arg(long, env = "SIGNIN_APNS_KEY_ID")]
    pub apns_key_id: Option<String>,
    /// Apple developer team id (the JWT `iss`).
    #[arg(long, env = "SIGNIN_APNS_TEAM_ID")]
    pub apns_team_id: Option<String>,
    /// The iOS app's bundle id (`apns-topic`).
    #[arg(long, env = "SIGNIN_APNS_TOPIC")]
    pub apns_topic: Option<String>,
    /// APNs endpoint (default https://api.push.apple.com; the sandbox is
    /// https://api.sandbox.push.apple.com).
    #[arg(long, env = "SIGNIN_APNS_ENDPOINT")]
    pub apns_endpoint: Option<Url>,
    /// FCM service-account JSON key file. Enables FCM.
    #[arg(long, env = "SIGNIN_FCM_SERVICE_ACCOUNT")]
    pub fcm_service_account: Option<PathBuf>,
    /// FCM project id (default: the service account's `project_id`).
    #[arg(long, env = "SIGNIN_FCM_PROJECT_ID")]
    pub fcm_project_id: Option<String>,
    /// FCM endpoint (default https://fcm.googleapis.com).
    #[arg(long, env = "SIGNIN_FCM_ENDPOINT")]
    pub fcm_endpoint: Option<Url>,
    /// OAuth2 token endpoint (default: the service account's `token_uri`).
    #[arg(long, env = "SIGNIN_FCM_TOKEN_URI")]
    pub fcm_token_uri: Option<Url>,
    /// MaxMind `.mmdb` database (GeoIP2/GeoLite2 City) for "City, Country" locations.
    #[arg(long, env = "SIGNIN_GEOIP_DATABASE")]
    pub geoip: Option<PathBuf>,
    /// A proxy (address or CIDR) whose `X-Forwarded-For` is believed. Repeatable;
    /// comma-separated in the environment variable.
    #[arg(long = "trusted-proxy", env = "SIGNIN_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,
    /// Sign-ins (pushes) a user may start in a burst (default 3).
    #[arg(long, env = "SIGNIN_RISK_BURST")]
    pub rate_burst: Option<u32>,
    /// One more sign-in every this many seconds (default 60).
    #[arg(long, env = "SIGNIN_RISK_REFILL_SECS")]
    pub rate_refill_secs: Option<u64>,
    /// First cool-down when the burst is used up; doubles each time (default 60).
    #[arg(long, env = "SIGNIN_RISK_COOLDOWN_SECS")]
    pub rate_cooldown_secs: Option<u64>,
    /// Longest cool-down (default 3600).
    #[arg(long, env = "SIGNIN_RISK_MAX_COOLDOWN_SECS")]
    pub rate_max_cooldown_secs: Option<u64>,
    /// How long "this wasn't me" pauses a user's sign-ins (default 3600).
    #[arg(long, env = "SIGNIN_RISK_REPORT_PAUSE_SECS")]
    pub report_pause_secs: Option<u64>,
}

impl DeliveryArgs {
    /// Applies the given flags over `config`.
    pub fn apply(self, config: &mut ServeConfig) -> anyhow::Result<()> {
        let any_apns = self.apns_key.is_some()
            || self.apns_key_id.is_some()
            || self.apns_team_id.is_some()
            || self.apns_topic.is_some()
            || self.apns_endpoint.is_some();
        if any_apns {
            let base = config.push.apns.clone();
            let pick = |flag: Option<String>, from: Option<String>, name: &str| {
                flag.or(from).ok_or_else(|| {
                    anyhow::anyhow!("APNs needs --{name} (with --apns-key, --apns-key-id, --apns-team-id, --apns-topic)")
                })
            };
            let key_path = match self.apns_key.or(base.as_ref().map(|b| b.key_path.clone())) {
                Some(p) => p,
                None => bail!("APNs needs --apns-key"),
            };
            config.push.apns = Some(ApnsConfig {
                key_path,
                key_id: pick(
                    self.apns_key_id,
                    base.as_ref().map(|b| b.key_id.clone()),
                    "apns-key-id",
                )?,
                team_id: pick(
                    self.apns_team_id,
                    base.as_ref().map(|b| b.team_id.clone()),
                    "apns-team-id",
                )?,
                topic: pick(
                    self.apns_topic,
                    base.as_ref().map(|b| b.topic.clone()),
                    "apns-topic",
                )?,
                endpoint: self
                    .apns_endpoint
                    .or(base.map(|b| b.endpoint))
                    .unwrap_or_else(|| {
                        Url::parse(crate::delivery::apns::PRODUCTION_ENDPOINT).expect("valid URL")
                    }),
            });
        }
        let any_fcm = self.fcm_service_account.is_some()
            || self.fcm_project_id.is_some()
            || self.fcm_endpoint.is_some()
            || self.fcm_token_uri.is_some();
        if any_fcm {
            let base = config.push.fcm.clone();
            let Some(service_account_path) = self
                .fcm_service_account
                .or(base.as_ref().map(|b| b.service_account_path.clone()))
            else {
                bail!("FCM needs --fcm-service-account");
            };
            config.push.fcm = Some(FcmConfig {
                service_account_path,
                project_id: self
                    .fcm_project_id
                    .or(base.as_ref().and_then(|b| b.project_id.clone())),
                endpoint: self
                    .fcm_endpoint
                    .or(base.as_ref().map(|b| b.endpoint.clone()))
                    .unwrap_or_else(|| {
                        Url::parse(crate::delivery::fcm::PRODUCTION_ENDPOINT).expect("valid URL")
                    }),
                token_uri: self.fcm_token_uri.or(base.and_then(|b| b.token_uri)),
            });
        }
        if self.geoip.is_some() {
            config.geoip = self.geoip;
        }
        if !self.trusted_proxies.is_empty() {
            config.trusted_proxies = self.trusted_proxies;
        }
        let f = &mut config.risk;
        if let Some(v) = self.rate_burst {
            if v == 0 {
                bail!("--rate-burst must be at least 1");
            }
            f.burst = v;
        }
        if let Some(v) = self.rate_refill_secs {
            f.refill_secs = v.max(1);
        }
        if let Some(v) = self.rate_cooldown_secs {
            f.cooldown_secs = v;
        }
        if let Some(v) = self.rate_max_cooldown_secs {
            f.max_cooldown_secs = v;
        }
        if let Some(v) = self.report_pause_secs {
            f.report_pause_secs = v;
        }
        Ok(())
    }
}
