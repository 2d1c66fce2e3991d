//! Configuration: command-line flags > `SIGNIN_*` environment variables > the TOML file given
//! with `--config` (or `SIGNIN_CONFIG`) > defaults. `signin-server/signin.example.toml` shows
//! every key.
//!
//! Each section ([`sections`]) is one struct that clap reads from the flags and their variables
//! (a flag wins over its variable) and serde reads from the file. Both give a [`Layer`];
//! [`ServeConfig::merge`] puts the two layers over the defaults and checks the result once, into
//! the running [`ServeConfig`]. Unknown keys of the file are errors (a typo must not silently fall
//! back to a default), and every error names the setting's flag, variable and key.
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use authenticator_protocol::wire::DEFAULT_REQUEST_TTL_SECS;
use serde::Deserialize;

use signin_domain::accounts::passwords::PasswordLimits;
use signin_domain::delivery::parking::ParkingLimits;
use signin_domain::delivery::push::{ApnsConfig, FcmConfig, PushConfig, WebPushConfig};
use signin_domain::delivery::{apns, fcm};
use signin_domain::outbound::OutboundPolicy;
use signin_domain::rules::risk::RiskConfig;

pub mod sections;

pub use signin_domain::settings::Settings;

pub use crate::listener::ConnectionLimits;
pub use sections::{
    parse_proxy, ApnsSection, DeliverySection, FcmSection, GeoIpSection, LimitsSection,
    OutboundSection, RiskSection, ServerSection, WebPushSection,
};

pub const DEFAULT_DATABASE: &str = "sqlite://signin.db";

/// Settings of a running server.
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
    pub push: PushConfig,
    /// Anti-fatigue limits and the pause after a report.
    pub risk: RiskConfig,
    /// A MaxMind `.mmdb` database for "City, Country" locations.
    pub geoip: Option<std::path::PathBuf>,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The Authenticator's loopback listener the sign-in page calls (§5.9).
    pub browser_listener_port: u16,
    /// Connection, long-poll and Argon2 bounds (`[limits]`).
    pub limits: ResourceLimits,
    /// What the server may call on someone's say-so (Web Push, CIBA ping), and the push
    /// channels a user may have.
    pub outbound: OutboundPolicy,
}

/// What one server instance allows its clients (`[limits]`; OPERATIONS.md, "Resource limits").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceLimits {
    pub connections: ConnectionLimits,
    pub parking: ParkingLimits,
    /// Argon2 checks at once (from `argon2_memory_mib`).
    pub argon2_concurrency: usize,
    pub argon2_queue: usize,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        let passwords = PasswordLimits::default();
        ResourceLimits {
            connections: ConnectionLimits::default(),
            parking: ParkingLimits::default(),
            argon2_concurrency: passwords.concurrency,
            argon2_queue: passwords.queue,
        }
    }
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: DEFAULT_DATABASE.into(),
            server_name: None,
            request_ttl_secs: DEFAULT_REQUEST_TTL_SECS,
            enrollment_ttl_secs: None,
            public_url: None,
            push: Default::default(),
            risk: Default::default(),
            geoip: None,
            trusted_proxies: Vec::new(),
            browser_listener_port: authenticator_protocol::sign_in::DEFAULT_BROWSER_LISTENER_PORT,
            limits: ResourceLimits::default(),
            outbound: OutboundPolicy::default(),
        }
    }
}

/// One layer of settings: the TOML file, or the `serve` flags with their environment variables.
/// `None` everywhere means "not given".
#[derive(Debug, Default, Clone, PartialEq, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// The root key `database`. Its flag is the global `--database` of the command line (the
    /// admin commands use it too), which `serve` copies here.
    #[arg(skip)]
    pub database: Option<String>,
    #[command(flatten)]
    #[serde(default)]
    pub server: ServerSection,
    #[command(flatten)]
    #[serde(default)]
    pub delivery: DeliverySection,
    #[command(flatten)]
    #[serde(default)]
    pub geoip: GeoIpSection,
    #[command(flatten)]
    #[serde(default)]
    pub risk: RiskSection,
    #[command(flatten)]
    #[serde(default)]
    pub limits: LimitsSection,
    #[command(flatten)]
    #[serde(default)]
    pub outbound: OutboundSection,
}

impl Layer {
    /// The text of a config file.
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

    /// The database URL of this file layer under `flag` (`--database`/`SIGNIN_DATABASE`):
    /// flag or variable > file > default. The admin commands need only this.
    pub fn database_url(&self, flag: Option<String>) -> String {
        flag.or_else(|| self.database.clone())
            .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
    }
}

/// `[limits]`: flags > file > defaults; every bound at least 1 (0 would refuse everything).
fn merge_limits(
    l: LimitsSection,
    f: LimitsSection,
    d: ResourceLimits,
) -> anyhow::Result<ResourceLimits> {
    let positive = |value: Option<u64>, key: &str| -> anyhow::Result<Option<u64>> {
        anyhow::ensure!(
            value != Some(0),
            "{} must be at least 1",
            named(key, "limits")
        );
        Ok(value)
    };
    let count = |value: Option<usize>, key: &str| -> anyhow::Result<Option<usize>> {
        anyhow::ensure!(
            value != Some(0),
            "{} must be at least 1",
            named(key, "limits")
        );
        Ok(value)
    };
    let secs = |value: Option<u64>, default: std::time::Duration| {
        value.map_or(default, std::time::Duration::from_secs)
    };
    let dc = d.connections;
    let dp = d.parking;
    let argon2_memory = count(
        l.argon2_memory_mib.or(f.argon2_memory_mib),
        "argon2_memory_mib",
    )?;
    Ok(ResourceLimits {
        connections: ConnectionLimits {
            header_read_timeout: secs(
                positive(
                    l.header_read_timeout_secs.or(f.header_read_timeout_secs),
                    "header_read_timeout_secs",
                )?,
                dc.header_read_timeout,
            ),
            idle_timeout: secs(
                positive(
                    l.idle_timeout_secs.or(f.idle_timeout_secs),
                    "idle_timeout_secs",
                )?,
                dc.idle_timeout,
            ),
            max_connections: count(l.max_connections.or(f.max_connections), "max_connections")?
                .unwrap_or(dc.max_connections),
            max_connections_per_address: count(
                l.max_connections_per_address
                    .or(f.max_connections_per_address),
                "max_connections_per_address",
            )?
            .unwrap_or(dc.max_connections_per_address),
        },
        parking: ParkingLimits {
            per_device: count(
                l.max_polls_per_device.or(f.max_polls_per_device),
                "max_polls_per_device",
            )?
            .unwrap_or(dp.per_device),
            per_sign_in: count(
                l.max_polls_per_sign_in.or(f.max_polls_per_sign_in),
                "max_polls_per_sign_in",
            )?
            .unwrap_or(dp.per_sign_in),
            total: count(l.max_polls.or(f.max_polls), "max_polls")?.unwrap_or(dp.total),
        },
        argon2_concurrency: argon2_memory
            .map_or(d.argon2_concurrency, PasswordLimits::concurrency_for_memory),
        argon2_queue: l.argon2_queue.or(f.argon2_queue).unwrap_or(d.argon2_queue),
    })
}

impl ServeConfig {
    /// The settings of `serve`: `flags` (flags and variables) > `file` > defaults, checked.
    pub fn merge(flags: Layer, file: Layer) -> anyhow::Result<ServeConfig> {
        let d = ServeConfig::default();
        let database = file.database_url(flags.database);
        let (s, fs) = (flags.server, file.server);

        let apns = match both(flags.delivery.apns, file.delivery.apns) {
            None => None,
            Some((a, fa)) => match (
                a.key_path.or(fa.key_path),
                a.key_id.or(fa.key_id),
                a.team_id.or(fa.team_id),
                a.topic.or(fa.topic),
            ) {
                (Some(key_path), Some(key_id), Some(team_id), Some(topic)) => Some(ApnsConfig {
                    key_path,
                    key_id,
                    team_id,
                    topic,
                    endpoint: match a.endpoint.or(fa.endpoint) {
                        Some(u) => u,
                        None => url::Url::parse(apns::PRODUCTION_ENDPOINT)?,
                    },
                }),
                (key_path, key_id, team_id, topic) => {
                    let missing: Vec<String> = [
                        ("key_path", key_path.is_none()),
                        ("key_id", key_id.is_none()),
                        ("team_id", team_id.is_none()),
                        ("topic", topic.is_none()),
                    ]
                    .into_iter()
                    .filter(|&(_, missing)| missing)
                    .map(|(key, _)| named(key, "delivery.apns"))
                    .collect();
                    anyhow::bail!("APNs is half configured: missing {}", missing.join(", "));
                }
            },
        };
        let fcm = match both(flags.delivery.fcm, file.delivery.fcm) {
            None => None,
            Some((f, ff)) => Some(FcmConfig {
                service_account_path: f
                    .service_account_path
                    .or(ff.service_account_path)
                    .with_context(|| {
                        format!(
                            "FCM is half configured: missing {}",
                            named("service_account_path", "delivery.fcm")
                        )
                    })?,
                project_id: f.project_id.or(ff.project_id),
                endpoint: match f.endpoint.or(ff.endpoint) {
                    Some(u) => u,
                    None => url::Url::parse(fcm::PRODUCTION_ENDPOINT)?,
                },
                token_uri: f.token_uri.or(ff.token_uri),
            }),
        };

        let webpush = match both(flags.delivery.webpush, file.delivery.webpush) {
            None => None,
            Some((w, fw)) => {
                let subject = w.subject.or(fw.subject).with_context(|| {
                    format!(
                        "Web Push is half configured: missing {}",
                        named("subject", "delivery.webpush")
                    )
                })?;
                let config = WebPushConfig { subject };
                config.check().with_context(|| {
                    format!(
                        "{} must be a mailto: or https: URL",
                        named("subject", "delivery.webpush")
                    )
                })?;
                Some(config)
            }
        };

        let (r, fr) = (flags.risk, file.risk);
        let risk = RiskConfig {
            burst: r.burst.or(fr.burst).unwrap_or(d.risk.burst),
            refill_secs: r
                .refill_secs
                .or(fr.refill_secs)
                .map_or(d.risk.refill_secs, |v| v.max(1)),
            cooldown_secs: r
                .cooldown_secs
                .or(fr.cooldown_secs)
                .unwrap_or(d.risk.cooldown_secs),
            max_cooldown_secs: r
                .max_cooldown_secs
                .or(fr.max_cooldown_secs)
                .unwrap_or(d.risk.max_cooldown_secs),
            report_pause_secs: r
                .report_pause_secs
                .or(fr.report_pause_secs)
                .unwrap_or(d.risk.report_pause_secs),
            user_burst: r.user_burst.or(fr.user_burst).unwrap_or(d.risk.user_burst),
        };
        anyhow::ensure!(
            risk.burst >= 1,
            "{} must be at least 1",
            named("burst", "risk")
        );

        let limits = merge_limits(flags.limits, file.limits, d.limits)?;
        let outbound = outbound_policy(flags.outbound, file.outbound)?;

        let config = ServeConfig {
            listen: s.listen.or(fs.listen).unwrap_or(d.listen),
            database,
            server_name: s.name.or(fs.name).or(d.server_name),
            request_ttl_secs: s
                .request_ttl_secs
                .or(fs.request_ttl_secs)
                .unwrap_or(d.request_ttl_secs),
            enrollment_ttl_secs: s
                .enrollment_ttl_secs
                .or(fs.enrollment_ttl_secs)
                .or(d.enrollment_ttl_secs),
            public_url: s.public_url.or(fs.public_url).or(d.public_url),
            push: PushConfig {
                apns,
                fcm,
                webpush,
                retry: d.push.retry,
            },
            risk,
            geoip: flags.geoip.database.or(file.geoip.database).or(d.geoip),
            trusted_proxies: s
                .trusted_proxies
                .or(fs.trusted_proxies)
                .unwrap_or(d.trusted_proxies),
            browser_listener_port: s
                .browser_listener_port
                .or(fs.browser_listener_port)
                .unwrap_or(d.browser_listener_port),
            limits,
            outbound,
        };
        config.check()?;
        Ok(config)
    }

    /// What cannot be told from one value alone. [`ServeConfig::merge`] calls it; `prepare`
    /// calls it again for a `ServeConfig` built in code (the demo, tests).
    pub fn check(&self) -> anyhow::Result<()> {
        // Every phone shows the server's name: the one gate for names.
        if let Some(name) = &self.server_name {
            authenticator_protocol::text::check_plain(name)
                .map_err(|e| anyhow::anyhow!("{} {e}", named("name", "server")))?;
        }
        if let Some(url) = &self.public_url {
            authenticator_protocol::enroll::check_server_url(url).with_context(|| {
                format!(
                    "{} must be https (or http on a loopback address)",
                    named("public_url", "server")
                )
            })?;
        }
        Ok(())
    }
}

/// The outbound policy of the flags (and their variables) over the file over the defaults.
/// `serve` and `admin app add` (for a CIBA ping endpoint) read it alike.
pub fn outbound_policy(
    flags: OutboundSection,
    file: OutboundSection,
) -> anyhow::Result<OutboundPolicy> {
    let d = OutboundPolicy::default();
    let policy = OutboundPolicy {
        allow_http_loopback: flags
            .allow_http_loopback
            .or(file.allow_http_loopback)
            .unwrap_or(d.allow_http_loopback),
        allow_networks: flags
            .allow_networks
            .or(file.allow_networks)
            .unwrap_or_default(),
        max_push_channels_per_user: flags
            .max_push_channels_per_user
            .or(file.max_push_channels_per_user)
            .unwrap_or(d.max_push_channels_per_user),
        ..d
    };
    anyhow::ensure!(
        policy.max_push_channels_per_user >= 1,
        "{} must be at least 1",
        named("max_push_channels_per_user", "outbound")
    );
    Ok(policy)
}

/// Both layers of a section when either has it (a table in the file, or one of its flags).
fn both<T: Default>(flags: Option<T>, file: Option<T>) -> Option<(T, T)> {
    if flags.is_none() && file.is_none() {
        return None;
    }
    Some((flags.unwrap_or_default(), file.unwrap_or_default()))
}

/// A setting's three names, for errors: "--apns-team-id (SIGNIN_APNS_TEAM_ID,
/// [delivery.apns] `team_id`)". `key` is the TOML key and the clap id of the field; the flag
/// and the variable are read from its clap definition.
fn named(key: &str, table: &str) -> String {
    use clap::Args;
    let command = Layer::augment_args(clap::Command::new("serve"));
    let Some(arg) = command.get_arguments().find(|a| a.get_id() == key) else {
        return format!("[{table}] `{key}`");
    };
    let flag = arg.get_long().unwrap_or_default();
    let env = arg
        .get_env()
        .map(|e| e.to_string_lossy())
        .unwrap_or_default();
    format!("--{flag} ({env}, [{table}] `{key}`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(flags: Layer, file: &Layer) -> ServeConfig {
        ServeConfig::merge(flags, file.clone()).unwrap()
    }

    fn server_flags(server: ServerSection) -> Layer {
        Layer {
            server,
            ..Default::default()
        }
    }

    /// Issue 20, finding 5: every phone shows the server's name, so it passes the one gate for
    /// names; the error names the setting and the code point.
    #[test]
    fn a_server_name_with_a_look_alike_character_is_refused() {
        for c in ['\u{200B}', '\u{FEFF}', '\u{E000}', '\n'] {
            let name = format!("Con{c}toso");
            let err = ServeConfig::merge(
                server_flags(ServerSection {
                    name: Some(name),
                    ..Default::default()
                }),
                Layer::default(),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("--server-name"), "{err}");
            assert!(
                err.contains(&format!("holds U+{:04X}", u32::from(c))),
                "{err}"
            );
        }
        let c = merged(
            server_flags(ServerSection {
                name: Some("Contoso — Zürich".into()),
                ..Default::default()
            }),
            &Layer::default(),
        );
        assert_eq!(c.server_name.as_deref(), Some("Contoso — Zürich"));
    }

    #[test]
    fn the_example_file_parses_and_sets_every_server_key() {
        let f = Layer::parse(include_str!("../../signin.example.toml")).unwrap();
        assert!(f.database.is_some());
        let s = &f.server;
        assert!(s.listen.is_some() && s.name.is_some() && s.public_url.is_some());
        assert!(s.request_ttl_secs.is_some() && s.enrollment_ttl_secs.is_some());
    }

    #[test]
    fn the_limits_section_layers_over_the_defaults() {
        let file =
            Layer::parse("[limits]\nmax_connections_per_address = 9\nargon2_memory_mib = 57")
                .unwrap();
        let flags = Layer {
            limits: LimitsSection {
                header_read_timeout_secs: Some(3),
                max_connections_per_address: Some(7),
                ..Default::default()
            },
            ..Default::default()
        };
        let c = ServeConfig::merge(flags, file.clone()).unwrap();
        let l = c.limits;
        assert_eq!(l.connections.max_connections_per_address, 7, "a flag wins");
        assert_eq!(l.connections.header_read_timeout.as_secs(), 3);
        assert_eq!(l.argon2_concurrency, 3, "57 MiB holds three 19 MiB hashes");
        assert_eq!(l.parking, ParkingLimits::default());
        let c = ServeConfig::merge(Layer::default(), file).unwrap();
        assert_eq!(c.limits.connections.max_connections_per_address, 9);
        let example = Layer::parse(include_str!("../../signin.example.toml")).unwrap();
        assert!(example.limits.max_polls.is_some() && example.limits.argon2_queue.is_some());
    }

    #[test]
    fn precedence_is_overrides_then_file_then_defaults() {
        let f = Layer::parse(
            r#"
            database = "postgres://u@db.internal/signin"
            [server]
            listen = "0.0.0.0:9000"
            name = "FromFile"
            request_ttl_secs = 120
            "#,
        )
        .unwrap();
        let c = merged(
            server_flags(ServerSection {
                name: Some("FromEnvOrFlag".into()),
                ..Default::default()
            }),
            &f,
        );
        assert_eq!(c.server_name.as_deref(), Some("FromEnvOrFlag"));
        assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(c.database, "postgres://u@db.internal/signin");
        assert_eq!(c.request_ttl_secs, 120);
        assert_eq!(c.enrollment_ttl_secs, None);
        assert_eq!(c.public_url, None);

        let c = merged(
            Layer {
                database: Some("sqlite://x.db".into()),
                ..server_flags(ServerSection {
                    listen: Some("127.0.0.1:1".parse().unwrap()),
                    request_ttl_secs: Some(30),
                    ..Default::default()
                })
            },
            &f,
        );
        assert_eq!(c.database, "sqlite://x.db");
        assert_eq!(c.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(c.request_ttl_secs, 30);
        assert_eq!(c.server_name.as_deref(), Some("FromFile"));

        let defaults = merged(Layer::default(), &Layer::default());
        let d = ServeConfig::default();
        assert_eq!(defaults.database, DEFAULT_DATABASE);
        assert_eq!(
            (defaults.listen, defaults.request_ttl_secs),
            (d.listen, d.request_ttl_secs)
        );
    }

    #[test]
    fn delivery_geoip_proxy_and_risk_sections_apply() {
        let f = Layer::parse(include_str!("../../signin.example.toml")).unwrap();
        let c = merged(Layer::default(), &f);
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
        let webpush = c.push.webpush.as_ref().unwrap();
        assert_eq!(webpush.subject, "mailto:signin-ops@example.com");
        assert_eq!(c.outbound, OutboundPolicy::default());
        assert_eq!(f.outbound.allow_http_loopback, Some(false));
        assert_eq!(f.outbound.max_push_channels_per_user, Some(10));
        assert_eq!(fcm.endpoint.as_str(), "https://fcm.googleapis.com/");
        assert!(c.geoip.is_some());
        assert_eq!(c.trusted_proxies.len(), 2);
        assert_eq!(c.risk, signin_domain::rules::risk::RiskConfig::default());

        let f =
            Layer::parse("[delivery.apns]\nkey_path = \"k.p8\"\nkey_id = \"K\"\nteam_id = \"T\"")
                .unwrap();
        let err = ServeConfig::merge(Layer::default(), f).unwrap_err();
        assert!(err.to_string().contains("`topic`"), "{err}");
        let f = Layer::parse("[risk]\nburst = 7\nreport_pause_secs = 60").unwrap();
        let c = merged(Layer::default(), &f);
        assert_eq!((c.risk.burst, c.risk.report_pause_secs), (7, 60));
        assert!(c.push.apns.is_none() && c.geoip.is_none());
        // A bad proxy is refused (now already while reading the file, as the flag is by clap).
        assert!(Layer::parse("[server]\ntrusted_proxies = [\"nope\"]")
            .and_then(|f| ServeConfig::merge(Layer::default(), f))
            .is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(Layer::parse("databse = \"sqlite://x\"").is_err());
        assert!(Layer::parse("[server]\nlisten = \"not an address\"").is_err());
        assert!(Layer::parse("[server]\nrequest_ttl_secs = -1").is_err());
        assert!(Layer::parse("[geoip]\nunknown = 1").is_err());
        assert!(Layer::parse("").is_ok());
    }

    #[test]
    fn an_unknown_key_is_named_in_the_error() {
        for (text, key) in [
            ("databse = \"sqlite://x\"", "databse"),
            (
                "[server]\nlisten_address = \"127.0.0.1:1\"",
                "listen_address",
            ),
            ("[delivery.apns]\nkey = \"k.p8\"", "key"),
            (
                "[delivery.fcm]\nservice_account = \"sa.json\"",
                "service_account",
            ),
            ("[risk]\nrate_burst = 3", "rate_burst"),
            ("[anti_fatigue]\nburst = 3", "anti_fatigue"),
        ] {
            let err = Layer::parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("unknown field `{key}`")), "{err}");
        }
    }

    #[test]
    fn errors_name_the_flag_the_variable_and_the_key() {
        let flags = Layer {
            delivery: DeliverySection {
                apns: Some(ApnsSection {
                    key_id: Some("K".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let file = Layer::parse("[delivery.apns]\nkey_path = \"k.p8\"\ntopic = \"t\"").unwrap();
        let err = ServeConfig::merge(flags, file).unwrap_err().to_string();
        assert_eq!(
            err,
            "APNs is half configured: missing --apns-team-id (SIGNIN_APNS_TEAM_ID, \
             [delivery.apns] `team_id`)"
        );

        let err = ServeConfig::merge(
            Layer::default(),
            Layer::parse("[delivery.fcm]\nproject_id = \"p\"").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "FCM is half configured: missing --fcm-service-account \
             (SIGNIN_FCM_SERVICE_ACCOUNT, [delivery.fcm] `service_account_path`)"
        );

        let flags = Layer {
            risk: RiskSection {
                burst: Some(0),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = ServeConfig::merge(flags, Layer::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--rate-burst (SIGNIN_RISK_BURST, [risk] `burst`) must be at least 1"
        );

        let err = ServeConfig::merge(
            Layer::default(),
            Layer::parse("[server]\npublic_url = \"http://signin.example.com/\"").unwrap(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("--public-url (SIGNIN_PUBLIC_URL, [server] `public_url`) must be"),
            "{err:#}"
        );
    }

    #[test]
    fn the_webpush_subject_is_required_and_checked() {
        let err = ServeConfig::merge(
            Layer::default(),
            Layer::parse("[delivery.webpush]").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "Web Push is half configured: missing --webpush-subject \
             (SIGNIN_WEBPUSH_SUBJECT, [delivery.webpush] `subject`)"
        );
        let flags = Layer {
            delivery: DeliverySection {
                webpush: Some(WebPushSection {
                    subject: Some("ops@example.com".into()),
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = ServeConfig::merge(flags, Layer::default()).unwrap_err();
        assert!(err.to_string().starts_with("--webpush-subject"), "{err:#}");
        let file =
            Layer::parse("[delivery.webpush]\nsubject = \"https://ops.example.com/\"").unwrap();
        let c = merged(Layer::default(), &file);
        assert_eq!(c.push.webpush.unwrap().subject, "https://ops.example.com/");
        assert!(Layer::parse("[delivery.webpush]\nvapid_key = \"x\"").is_err());
    }

    /// `[outbound]`: safe defaults (no http, no allowed network, 10 push channels), each key
    /// from the file or a flag, and a cap of 0 refused naming the setting.
    #[test]
    fn the_outbound_section_layers_and_defaults_to_the_safe_policy() {
        let c = merged(Layer::default(), &Layer::default());
        assert!(!c.outbound.allow_http_loopback);
        assert!(c.outbound.allow_networks.is_empty());
        assert_eq!(c.outbound.max_push_channels_per_user, 10);

        let file = Layer::parse(
            "[outbound]\nallow_http_loopback = true\nallow_networks = [\"10.8.0.0/16\", \"fd00::1\"]\n\
             max_push_channels_per_user = 3",
        )
        .unwrap();
        let c = merged(Layer::default(), &file);
        assert!(c.outbound.allow_http_loopback);
        assert_eq!(
            c.outbound.allow_networks,
            vec![
                "10.8.0.0/16".parse::<ipnet::IpNet>().unwrap(),
                "fd00::1/128".parse().unwrap()
            ]
        );
        assert_eq!(c.outbound.max_push_channels_per_user, 3);

        use clap::{Args, FromArgMatches};
        let command = Layer::augment_args(clap::Command::new("serve"));
        let matches = command
            .try_get_matches_from([
                "serve",
                "--outbound-allow-http-loopback=false",
                "--outbound-allow-network",
                "192.168.5.0/24",
                "--max-push-channels-per-user",
                "2",
            ])
            .unwrap();
        let flags = Layer::from_arg_matches(&matches).unwrap();
        let c = merged(flags, &file);
        assert!(!c.outbound.allow_http_loopback);
        assert_eq!(
            c.outbound.allow_networks,
            vec!["192.168.5.0/24".parse::<ipnet::IpNet>().unwrap()]
        );
        assert_eq!(c.outbound.max_push_channels_per_user, 2);
        // The bare flag means true.
        let command = Layer::augment_args(clap::Command::new("serve"));
        let matches = command
            .try_get_matches_from(["serve", "--outbound-allow-http-loopback"])
            .unwrap();
        let flags = Layer::from_arg_matches(&matches).unwrap();
        assert_eq!(flags.outbound.allow_http_loopback, Some(true));

        let err = ServeConfig::merge(
            Layer::default(),
            Layer::parse("[outbound]\nmax_push_channels_per_user = 0").unwrap(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "--max-push-channels-per-user (SIGNIN_OUTBOUND_MAX_PUSH_CHANNELS_PER_USER, \
             [outbound] `max_push_channels_per_user`) must be at least 1"
        );
        assert!(Layer::parse("[outbound]\nallow_networks = [\"internal\"]").is_err());
        assert!(Layer::parse("[outbound]\nallow_http = true").is_err());
    }

    #[test]
    fn an_empty_delivery_table_still_asks_for_its_keys() {
        let err = ServeConfig::merge(Layer::default(), Layer::parse("[delivery.apns]").unwrap())
            .unwrap_err()
            .to_string();
        for flag in [
            "--apns-key ",
            "--apns-key-id",
            "--apns-team-id",
            "--apns-topic",
        ] {
            assert!(err.contains(flag), "{flag} in {err}");
        }
    }

    #[test]
    fn flags_and_file_layer_field_by_field() {
        // The file's APNs table is completed and partly overridden by flags.
        let flags = Layer {
            delivery: DeliverySection {
                apns: Some(ApnsSection {
                    topic: Some("com.example.flag".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            risk: RiskSection {
                refill_secs: Some(0),
                ..Default::default()
            },
            ..server_flags(ServerSection {
                trusted_proxies: Some(vec!["192.0.2.1/32".parse().unwrap()]),
                ..Default::default()
            })
        };
        let file = Layer::parse(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n\
             [delivery.apns]\nkey_path = \"k.p8\"\nkey_id = \"K\"\nteam_id = \"T\"\n\
             topic = \"com.example.file\"\n[risk]\nburst = 5",
        )
        .unwrap();
        let c = merged(flags, &file);
        let apns = c.push.apns.unwrap();
        assert_eq!(
            (apns.key_id.as_str(), apns.topic.as_str()),
            ("K", "com.example.flag")
        );
        assert_eq!(apns.endpoint.as_str(), "https://api.push.apple.com/");
        assert!(c.push.fcm.is_none());
        assert_eq!(c.trusted_proxies, vec!["192.0.2.1/32".parse().unwrap()]);
        assert_eq!((c.risk.burst, c.risk.refill_secs), (5, 1));
        assert_eq!(
            merged(Layer::default(), &file).trusted_proxies,
            vec![
                "10.0.0.0/8".parse::<ipnet::IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
    }

    #[test]
    fn the_flags_are_those_of_the_sections() {
        use clap::{Args, FromArgMatches};
        let command = Layer::augment_args(clap::Command::new("serve"));
        command.clone().debug_assert();
        let matches = command
            .try_get_matches_from([
                "serve",
                "--server-name",
                "N",
                "--trusted-proxy",
                "10.0.0.1,10.0.0.0/8",
                "--geoip",
                "city.mmdb",
                "--fcm-endpoint",
                "http://127.0.0.1:1/",
                "--rate-burst",
                "4",
            ])
            .unwrap();
        let flags = Layer::from_arg_matches(&matches).unwrap();
        assert_eq!(flags.server.name.as_deref(), Some("N"));
        assert_eq!(flags.server.trusted_proxies.as_ref().map(Vec::len), Some(2));
        assert_eq!(flags.geoip.database, Some("city.mmdb".into()));
        assert!(flags.delivery.apns.is_none());
        let fcm = flags.delivery.fcm.as_ref().unwrap();
        assert_eq!(
            fcm.endpoint.as_ref().map(url::Url::as_str),
            Some("http://127.0.0.1:1/")
        );
        assert_eq!(flags.risk.burst, Some(4));
    }
}
