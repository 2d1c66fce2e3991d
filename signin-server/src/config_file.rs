//! Configuration: command-line flags > `SIGNIN_*` environment variables > the TOML file given
//! with `--config` (or `SIGNIN_CONFIG`) > defaults. `signin-server/signin.example.toml` shows
//! every key. Flags and environment variables are declared together in `main.rs` (clap's
//! `env = "SIGNIN_..."`), so they reach this module as one layer: [`Overrides`].
//!
//! Unknown keys are errors (a typo must not silently fall back to a default). Sections for
//! settings of other parts are declared here empty and get their fields with their feature.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::config::ServeConfig;

pub const DEFAULT_DATABASE: &str = "sqlite://signin.db";

/// The TOML file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// `sqlite://path` or `postgres://user:password@host/db` (env `SIGNIN_DATABASE`).
    pub database: Option<String>,
    #[serde(default)]
    pub server: ServerSection,
    /// Push delivery (APNs, FCM).
    #[serde(default)]
    pub delivery: DeliverySection,
    /// GeoIP location lookup.
    #[serde(default)]
    pub geoip: GeoIpSection,
    /// Anti-fatigue limits and risk.
    #[serde(default)]
    pub risk: RiskSection,
}

/// `[server]`
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// env `SIGNIN_LISTEN`; default `127.0.0.1:8080`.
    pub listen: Option<SocketAddr>,
    /// Name shown on phones (stored in the database); env `SIGNIN_SERVER_NAME`.
    pub name: Option<String>,
    /// env `SIGNIN_REQUEST_TTL_SECS`; default 90.
    pub request_ttl_secs: Option<u64>,
    /// Lifetime of new enrollment codes (stored); env `SIGNIN_ENROLLMENT_TTL_SECS`.
    pub enrollment_ttl_secs: Option<u64>,
    /// The URL users and phones reach this server at (stored); env `SIGNIN_PUBLIC_URL`.
    pub public_url: Option<url::Url>,
    /// Proxies (addresses or CIDR) whose `X-Forwarded-For` is believed; env
    /// `SIGNIN_TRUSTED_PROXIES` (comma-separated).
    pub trusted_proxies: Option<Vec<String>>,
}

/// `[delivery]` with `[delivery.apns]` and `[delivery.fcm]` (fields come with the APNs/FCM
/// clients; env `SIGNIN_APNS_*`, `SIGNIN_FCM_*`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverySection {
    pub apns: Option<ApnsSection>,
    pub fcm: Option<FcmSection>,
}

/// `[delivery.apns]`: all of `key_path`, `key_id`, `team_id`, `topic` (env `SIGNIN_APNS_*`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApnsSection {
    pub key_path: Option<PathBuf>,
    pub key_id: Option<String>,
    pub team_id: Option<String>,
    pub topic: Option<String>,
    pub endpoint: Option<url::Url>,
}

/// `[delivery.fcm]` (env `SIGNIN_FCM_*`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FcmSection {
    pub service_account_path: Option<PathBuf>,
    pub project_id: Option<String>,
    pub endpoint: Option<url::Url>,
    pub token_uri: Option<url::Url>,
}

/// `[geoip]` (env `SIGNIN_GEOIP_DATABASE`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIpSection {
    /// A MaxMind `.mmdb` file (GeoIP2/GeoLite2 City or Country).
    pub database: Option<PathBuf>,
}

/// `[risk]`: anti-fatigue limits (env `SIGNIN_RISK_*`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RiskSection {
    pub burst: Option<u32>,
    pub refill_secs: Option<u64>,
    pub cooldown_secs: Option<u64>,
    pub max_cooldown_secs: Option<u64>,
    pub report_pause_secs: Option<u64>,
}

impl FileConfig {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// `--config`/`SIGNIN_CONFIG` if given, else every value unset.
    pub fn load_optional(path: Option<&Path>) -> anyhow::Result<Self> {
        path.map(Self::load)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The database URL: `overridden` (flag or env) > file > default.
    pub fn database(&self, overridden: Option<String>) -> String {
        overridden
            .or_else(|| self.database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
    }

    /// The settings of `serve`: flags/env > file > defaults.
    pub fn serve_config(&self, o: Overrides) -> ServeConfig {
        let d = ServeConfig::default();
        let s = &self.server;
        ServeConfig {
            listen: o.listen.or(s.listen).unwrap_or(d.listen),
            database: self.database(o.database),
            server_name: o.server_name.or_else(|| s.name.clone()).or(d.server_name),
            request_ttl_secs: o
                .request_ttl_secs
                .or(s.request_ttl_secs)
                .unwrap_or(d.request_ttl_secs),
            enrollment_ttl_secs: o
                .enrollment_ttl_secs
                .or(s.enrollment_ttl_secs)
                .or(d.enrollment_ttl_secs),
            public_url: o
                .public_url
                .or_else(|| s.public_url.clone())
                .or(d.public_url),
            ..ServeConfig::default()
        }
    }
}

impl FileConfig {
    /// Applies `[delivery.*]`, `[geoip]`, `[risk]` and `[server] trusted_proxies` to `config`
    /// (flags and environment variables are applied after, by `options::DeliveryArgs`).
    pub fn apply_delivery_sections(&self, config: &mut ServeConfig) -> anyhow::Result<()> {
        use crate::delivery::push::{ApnsConfig, FcmConfig};
        use crate::delivery::{apns, fcm};
        if let Some(a) = &self.delivery.apns {
            let need = |v: &Option<String>, key: &str| {
                v.clone()
                    .with_context(|| format!("[delivery.apns] needs `{key}`"))
            };
            config.push.apns = Some(ApnsConfig {
                key_path: a
                    .key_path
                    .clone()
                    .context("[delivery.apns] needs `key_path`")?,
                key_id: need(&a.key_id, "key_id")?,
                team_id: need(&a.team_id, "team_id")?,
                topic: need(&a.topic, "topic")?,
                endpoint: match &a.endpoint {
                    Some(u) => u.clone(),
                    None => url::Url::parse(apns::PRODUCTION_ENDPOINT)?,
                },
            });
        }
        if let Some(f) = &self.delivery.fcm {
            config.push.fcm = Some(FcmConfig {
                service_account_path: f
                    .service_account_path
                    .clone()
                    .context("[delivery.fcm] needs `service_account_path`")?,
                project_id: f.project_id.clone(),
                endpoint: match &f.endpoint {
                    Some(u) => u.clone(),
                    None => url::Url::parse(fcm::PRODUCTION_ENDPOINT)?,
                },
                token_uri: f.token_uri.clone(),
            });
        }
        if let Some(path) = &self.geoip.database {
            config.geoip = Some(path.clone());
        }
        if let Some(list) = &self.server.trusted_proxies {
            config.trusted_proxies = list
                .iter()
                .map(|p| crate::options::parse_proxy(p).map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()
                .context("[server] trusted_proxies")?;
        }
        let r = &self.risk;
        let f = &mut config.risk;
        if let Some(v) = r.burst {
            anyhow::ensure!(v >= 1, "[risk] burst must be at least 1");
            f.burst = v;
        }
        if let Some(v) = r.refill_secs {
            f.refill_secs = v.max(1);
        }
        if let Some(v) = r.cooldown_secs {
            f.cooldown_secs = v;
        }
        if let Some(v) = r.max_cooldown_secs {
            f.max_cooldown_secs = v;
        }
        if let Some(v) = r.report_pause_secs {
            f.report_pause_secs = v;
        }
        Ok(())
    }
}

/// Values given as flags or `SIGNIN_*` environment variables (`None`: not given).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub database: Option<String>,
    pub listen: Option<SocketAddr>,
    pub server_name: Option<String>,
    pub request_ttl_secs: Option<u64>,
    pub enrollment_ttl_secs: Option<u64>,
    pub public_url: Option<url::Url>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_sets_every_server_key() {
        let f = FileConfig::parse(include_str!("../signin.example.toml")).unwrap();
        assert!(f.database.is_some());
        let s = &f.server;
        assert!(s.listen.is_some() && s.name.is_some() && s.public_url.is_some());
        assert!(s.request_ttl_secs.is_some() && s.enrollment_ttl_secs.is_some());
    }

    #[test]
    fn precedence_is_overrides_then_file_then_defaults() {
        let f = FileConfig::parse(
            r#"
            database = "postgres://u@db.internal/signin"
            [server]
            listen = "0.0.0.0:9000"
            name = "FromFile"
            request_ttl_secs = 120
            "#,
        )
        .unwrap();
        let c = f.serve_config(Overrides {
            server_name: Some("FromEnvOrFlag".into()),
            ..Default::default()
        });
        assert_eq!(c.server_name.as_deref(), Some("FromEnvOrFlag"));
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.database, "postgres://u@db.internal/signin");
        assert_eq!(c.request_ttl_secs, 120);
        assert_eq!(c.enrollment_ttl_secs, None);
        assert_eq!(c.public_url, None);

        let c = f.serve_config(Overrides {
            database: Some("sqlite://x.db".into()),
            listen: Some("127.0.0.1:1".parse().unwrap()),
            request_ttl_secs: Some(30),
            ..Default::default()
        });
        assert_eq!(c.database, "sqlite://x.db");
        assert_eq!(c.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(c.request_ttl_secs, 30);
        assert_eq!(c.server_name.as_deref(), Some("FromFile"));

        let defaults = FileConfig::default().serve_config(Overrides::default());
        let d = ServeConfig::default();
        assert_eq!(defaults.database, DEFAULT_DATABASE);
        assert_eq!(
            (defaults.listen, defaults.request_ttl_secs),
            (d.listen, d.request_ttl_secs)
        );
    }

    #[test]
    fn delivery_geoip_proxy_and_risk_sections_apply() {
        let f = FileConfig::parse(include_str!("../signin.example.toml")).unwrap();
        let mut c = f.serve_config(Overrides::default());
        f.apply_delivery_sections(&mut c).unwrap();
        let apns = c.push.apns.as_ref().unwrap();
        assert_eq!(
            (apns.key_id.as_str(), apns.team_id.as_str()),
            ("ABC123DEFG", "DEF123GHIJ")
        );
        assert_eq!(apns.topic, "com.example.phonesignin");
        assert_eq!(
            apns.endpoint.as_str(),
            "https://api.sandbox.push.apple.com/"
        );
        let fcm = c.push.fcm.as_ref().unwrap();
        assert_eq!(fcm.project_id.as_deref(), Some("phone-signin-prod"));
        assert_eq!(fcm.endpoint.as_str(), "https://fcm.googleapis.com/");
        assert!(c.geoip.is_some());
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.risk, crate::sign_in::risk::RiskConfig::default());

        let f = FileConfig::parse(
            "[delivery.apns]\nkey_path = \"k.p8\"\nkey_id = \"K\"\nteam_id = \"T\"",
        )
        .unwrap();
        let err = f
            .apply_delivery_sections(&mut ServeConfig::default())
            .unwrap_err();
        assert!(err.to_string().contains("`topic`"), "{err}");
        let f = FileConfig::parse("[risk]\nburst = 7\nreport_pause_secs = 60").unwrap();
        let mut c = ServeConfig::default();
        f.apply_delivery_sections(&mut c).unwrap();
        assert_eq!((c.risk.burst, c.risk.report_pause_secs), (7, 60));
        assert!(c.push.apns.is_none() && c.geoip.is_none());
        let f = FileConfig::parse("[server]\ntrusted_proxies = [\"nope\"]").unwrap();
        assert!(f
            .apply_delivery_sections(&mut ServeConfig::default())
            .is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(FileConfig::parse("databse = \"sqlite://x\"").is_err());
        assert!(FileConfig::parse("[server]\nlisten = \"not an address\"").is_err());
        assert!(FileConfig::parse("[server]\nrequest_ttl_secs = -1").is_err());
        assert!(FileConfig::parse("[geoip]\nunknown = 1").is_err());
        assert!(FileConfig::parse("").is_ok());
    }
}
