//! `signin-server`: serve the sign-in API, or administer its database.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc: a parked long-poll's connection buffers are allocated but
/// mostly never touched, and jemalloc leaves their untouched pages out of memory
/// (docs/PERFORMANCE.md, "Parked long-polls").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use signin_domain::rules::policy;
use signin_domain::rules::policy::{Mode, PolicyUpdate, Target};
use signin_domain::{accounts, audit, store};
use signin_server::config::{Layer, OutboundSection, ServeConfig};
use signin_server::oidc::clients::{
    BackchannelLogoutUri, ClientOptions, IdTokenAlg, Logout, PingEndpoint,
};

#[derive(Debug, Parser)]
#[command(name = "signin-server", version, about = "Phone sign-in service")]
struct Cli {
    /// TOML configuration file (see signin.example.toml). Flags and SIGNIN_* environment
    /// variables override it.
    #[arg(long, global = true, env = "SIGNIN_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL: `sqlite://path` (created if missing; default sqlite://signin.db) or
    /// `postgres://user:password@host/db`.
    #[arg(long, global = true, env = "SIGNIN_DATABASE")]
    database: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
        // Every `serve` setting (signin_server::config::sections); `--database` is global.
        #[command(flatten)]
        settings: Box<Layer>,
    },
    /// Administer users, policy and enrollment.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// The Authenticator policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Issue a one-time enrollment link (printed alone on stdout).
    RegistrationLink {
        #[arg(long)]
        upn: String,
        #[arg(long, default_value = "http://127.0.0.1:8080/")]
        server_url: url::Url,
        /// Lifetime of this code; default: the stored enrollment TTL (600 s).
        #[arg(long)]
        ttl_secs: Option<u64>,
    },
    /// Print the audit log, oldest first (every filter optional).
    Audit {
        /// A part of the user's name (case-insensitive).
        #[arg(long)]
        upn: Option<String>,
        /// An event name, e.g. `rate_limited`, `signin_decision` (OPERATIONS.md, "Audit").
        #[arg(long)]
        event: Option<String>,
        /// A part of the actor: `admin:ada`, `cli`, `device:`, `application:`, `system`.
        #[arg(long)]
        actor: Option<String>,
        /// `text` (one line an entry), `csv` (a header row; cells that would start a
        /// spreadsheet formula begin with `'`) or `json` (an array).
        #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
        format: AuditFormat,
        /// From this time: `YYYY-MM-DD` or RFC 3339 (UTC).
        #[arg(long)]
        since: Option<String>,
        /// Before this time.
        #[arg(long)]
        until: Option<String>,
    },
    /// Registered applications: who may start a sign-in, and the name the phone shows.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Users' enrolled devices (phones).
    Device {
        #[command(subcommand)]
        command: DeviceCommand,
    },
    /// The OpenID Connect ID-token signing keys: list, rotate, remove a rotated-out one.
    OidcKey {
        #[command(subcommand)]
        command: signin_server::oidc::keys::AdminCommand,
    },
    /// The Web Push (UnifiedPush) VAPID key: show its public key, rotate it.
    WebpushKey {
        #[command(subcommand)]
        command: signin_domain::delivery::webpush::AdminCommand,
    },
    /// The offline fallback sign-in (TOTP and backup codes): policy switch and locks.
    Fallback {
        #[command(subcommand)]
        command: accounts::fallback::AdminCommand,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AuditFormat {
    Text,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
enum AppCommand {
    /// Register an application; prints its client id and secret (the secret only this once).
    /// With `--redirect-uri` it is an OpenID Connect client (docs/INTEGRATION.md).
    Add {
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeatable): the application becomes an OpenID Connect client.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (native or browser app): no secret, PKCE required.
        #[arg(long, requires = "redirect_uris")]
        public: bool,
        /// CIBA ping mode: the client's notification endpoint, https to a host that is not an
        /// internal address (the outbound policy, `[outbound]` of the config file).
        #[arg(long, requires = "redirect_uris")]
        ciba_ping_endpoint: Option<String>,
        /// How long a refresh token family (the `offline_access` scope) lives from its
        /// sign-in, however often it is refreshed; 0: the client gets no refresh tokens.
        #[arg(long, requires = "redirect_uris",
              default_value_t = signin_server::oidc::clients::DEFAULT_REFRESH_LIFETIME_SECS)]
        refresh_lifetime_secs: u64,
        /// A refresh token unused this long ends (default: no idle limit).
        #[arg(long, requires = "redirect_uris")]
        refresh_idle_secs: Option<u64>,
        /// An exact URI the end-session endpoint may send the browser back to after signing
        /// out (repeatable; the rules of --redirect-uri).
        #[arg(long = "post-logout-redirect-uri", requires = "redirect_uris")]
        post_logout_redirect_uris: Vec<String>,
        /// Back-Channel Logout: where the server POSTs a logout token when a session that gave
        /// this client tokens ends. Held to the outbound policy, like --ciba-ping-endpoint.
        #[arg(long, requires = "redirect_uris")]
        backchannel_logout_uri: Option<String>,
        /// How its ID tokens (and logout tokens) are signed: RS256, the default of OpenID
        /// Connect for a client that names none, or ES256.
        #[arg(long, requires = "redirect_uris", value_enum, default_value_t = IdTokenAlgArg::Rs256)]
        id_token_alg: IdTokenAlgArg,
        /// Development only: accept a plain-http ping or back-channel logout endpoint on a
        /// loopback address (the server needs the same setting to call it). As `serve`'s flag,
        /// variable and `[outbound] allow_http_loopback`.
        #[arg(
            long = "outbound-allow-http-loopback",
            env = "SIGNIN_OUTBOUND_ALLOW_HTTP_LOOPBACK",
            value_name = "BOOL",
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            value_parser = clap::builder::BoolishValueParser::new()
        )]
        outbound_allow_http_loopback: Option<bool>,
        /// A network the ping or back-channel logout endpoint's address may be in although it
        /// is not public
        /// (repeatable). As `serve`'s flag, variable and `[outbound] allow_networks`.
        #[arg(long = "outbound-allow-network", env = "SIGNIN_OUTBOUND_ALLOW_NETWORKS",
              value_delimiter = ',', value_parser = signin_server::config::parse_proxy)]
        outbound_allow_networks: Option<Vec<ipnet::IpNet>>,
    },
    /// List the applications (the built-in portal among them).
    List,
    /// Remove an application: its credential stops working at once.
    Remove {
        #[arg(long)]
        client_id: String,
    },
}

/// `--id-token-alg` (the domain's [`IdTokenAlg`] knows no `clap`).
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum IdTokenAlgArg {
    #[value(name = "RS256", alias = "rs256")]
    Rs256,
    #[value(name = "ES256", alias = "es256")]
    Es256,
}

impl From<IdTokenAlgArg> for IdTokenAlg {
    fn from(a: IdTokenAlgArg) -> IdTokenAlg {
        match a {
            IdTokenAlgArg::Rs256 => IdTokenAlg::Rs256,
            IdTokenAlgArg::Es256 => IdTokenAlg::Es256,
        }
    }
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// A user's devices: id (the account id), name, push channel, phone sign-in.
    List {
        #[arg(long)]
        upn: String,
    },
    /// Remove a device: its pending requests end, and its answers and polls are refused.
    Remove {
        /// Device (account) ids are base64url: one may start with `-`.
        #[arg(long, allow_hyphen_values = true)]
        id: String,
    },
    /// Approve a device that awaits approval (new-device approval, or a phone added from a
    /// session made with a code or password alone): it gets sign-ins from now on.
    Approve {
        #[arg(long, allow_hyphen_values = true)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    Add {
        #[arg(long)]
        upn: String,
        #[arg(long)]
        name: String,
        /// Group membership (repeatable). Members of `admins` may open the admin pages.
        #[arg(long = "group")]
        groups: Vec<String>,
        /// Read a password for the web sign-in from the first line of stdin (Argon2id-hashed).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set or replace a user's web password, read from the first line of stdin.
    SetPassword {
        #[arg(long)]
        upn: String,
    },
    /// Add a user to a group.
    AddToGroup {
        #[arg(long)]
        upn: String,
        #[arg(long)]
        group: String,
    },
    /// Set a user's attributes, the claims applications get (OpenID Connect scopes `email`
    /// and `profile`): only the options given change; an empty value clears one.
    Set {
        #[arg(long)]
        upn: String,
        /// Email address (stored in lower case). A new address is not verified unless
        /// `--email-verified true` says so.
        #[arg(long)]
        email: Option<String>,
        /// Whether the email address is verified (the `email_verified` claim): true or false.
        #[arg(long, value_parser = on_off)]
        email_verified: Option<bool>,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        family_name: Option<String>,
    },
    /// Show a user: groups, risk, pause, rate limit, devices and their push channels.
    Show {
        #[arg(long)]
        upn: String,
    },
    /// End a pause that "this wasn't me" started (the risk score stays).
    Resume {
        #[arg(long)]
        upn: String,
    },
    /// Rename a user (for instance one of two users whose names differ only by case, which
    /// the server refuses to start with): everything of theirs moves to the new name.
    Rename {
        /// The user's name exactly as stored (as the refusal lists it).
        #[arg(long)]
        upn: String,
        #[arg(long)]
        new_upn: String,
    },
    /// Disable a user: no sign-in by any method, and every session and token ends at once.
    Disable {
        #[arg(long)]
        upn: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(long)]
        upn: String,
    },
    /// Sign a user out everywhere: every web session, authorization code and access token
    /// ends at once (on every server instance).
    SignOut {
        #[arg(long)]
        upn: String,
    },
    /// Issue a single-use temporary access pass (printed once): signs the user in once, to
    /// register a phone where the policy refuses a password alone.
    TemporaryPass {
        #[arg(long)]
        upn: String,
        /// Lifetime, at most 28800 (8 hours).
        #[arg(long, default_value_t = accounts::temporary_pass::DEFAULT_TTL_SECS)]
        ttl_secs: u64,
    },
}

/// The first line of stdin, without its line ending.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        anyhow::bail!("no password on stdin");
    }
    Ok(password)
}

fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Change the policy; unspecified settings keep their value. Prints the result.
    Set {
        #[arg(long, value_parser = clap::value_parser!(bool))]
        enabled: Option<bool>,
        /// `all` or `group:<name>`
        #[arg(long, value_parser = |s: &str| Target::parse(s).map_err(|e| e.to_string()))]
        target: Option<Target>,
        /// `any`, `push` or `passwordless`
        #[arg(long, value_parser = |s: &str| Mode::parse(s).map_err(|e| e.to_string()))]
        mode: Option<Mode>,
        #[arg(long, value_parser = on_off)]
        number_matching: Option<bool>,
        #[arg(long, value_parser = on_off)]
        show_app_name: Option<bool>,
        #[arg(long, value_parser = on_off)]
        show_location: Option<bool>,
        /// Digits of the sign-in number, 2 to 6 (default 2); an elevated user risk raises it.
        #[arg(long)]
        number_length: Option<u8>,
        /// `on`: a new device waits until one of the user's other devices approves it.
        #[arg(long, value_parser = on_off)]
        new_device_approval: Option<bool>,
        /// `on`: sign-ins on the sign-in pages are bound to the browser (phishing-resistant,
        /// PROTOCOL.md §5.9): only the Authenticator on the same device, which saw the page at
        /// the server's origin, can approve. Needs `serve --public-url`.
        #[arg(long, value_parser = on_off)]
        phishing_resistant: Option<bool>,
        /// Groups the policy leaves out even when the target includes them, comma-separated
        /// (`--exclude contractors,kiosks`); `--exclude ''` excludes none.
        #[arg(long)]
        exclude: Option<String>,
        /// Whom the application name is shown to, among the targeted users: `all` or
        /// `group:<name>`.
        #[arg(long, value_parser = |s: &str| Target::parse(s).map_err(|e| e.to_string()))]
        show_app_name_to: Option<Target>,
        /// Groups never shown the application name, comma-separated (`''`: none).
        #[arg(long)]
        show_app_name_except: Option<String>,
        /// Whom the location is shown to, among the targeted users: `all` or `group:<name>`.
        #[arg(long, value_parser = |s: &str| Target::parse(s).map_err(|e| e.to_string()))]
        show_location_to: Option<Target>,
        /// Groups never shown the location, comma-separated (`''`: none).
        #[arg(long)]
        show_location_except: Option<String>,
    },
    /// Print the policy.
    Show,
}

fn main() -> ExitCode {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // Log lines go to stderr from a background thread, so a request never waits on the
    // terminal or a pipe. Not lossy: when the buffer is full, the logging thread waits rather
    // than drop a line. The guard flushes what is buffered when `main` returns.
    let (log_writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("signin-server-log")
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(log_writer)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(filter),
        )
        .with(signin_server::statements::layer_from_env())
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = Layer::load_optional(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { settings } => {
            let flags = Layer {
                database: cli.database,
                ..*settings
            };
            signin_server::run(ServeConfig::merge(flags, file)?).await
        }
        Command::Admin { command } => {
            let pool = store::connect(&file.database_url(cli.database)).await?;
            // Every command but the rename that mends them works on case-insensitive names.
            if !matches!(
                command,
                AdminCommand::User {
                    command: UserCommand::Rename { .. }
                }
            ) {
                accounts::normalize_upns(&pool).await?;
            }
            // Every entry the command records names the command line as its actor.
            audit::acting_as(
                audit::Actor::CommandLine,
                admin_command(&pool, command, &file.outbound),
            )
            .await
        }
    }
}

/// `admin app add`: an application, or with redirect URIs an OpenID Connect client (with a
/// ping endpoint and a back-channel logout URI already checked under the outbound policy).
async fn add_app(
    pool: &store::Pool,
    name: &str,
    redirect_uris: &[String],
    public: bool,
    ping: Option<&PingEndpoint>,
    options: &ClientOptions,
) -> anyhow::Result<()> {
    let registered = if redirect_uris.is_empty() {
        accounts::applications::add(pool, name).await?
    } else {
        signin_server::oidc::clients::add_with_options(
            pool,
            name,
            redirect_uris,
            public,
            ping,
            options,
        )
        .await?
    };
    println!("client_id: {}", registered.client_id);
    if !public {
        println!("client_secret: {}", registered.client_secret);
        eprintln!("The secret is shown only now; store it in the application's settings.");
    }
    Ok(())
}

/// Runs an admin command; `outbound` is the config file's `[outbound]` (a CIBA ping endpoint
/// is held to the policy the server will ping it under).
async fn admin_command(
    pool: &store::Pool,
    command: AdminCommand,
    outbound: &OutboundSection,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::User {
            command:
                UserCommand::Add {
                    upn,
                    name,
                    groups,
                    password_stdin,
                },
        } => {
            let password = if password_stdin {
                let p = read_password_line()?;
                // Checked first, so that a refused password adds nobody.
                signin_domain::accounts::passwords::hash_password(&p)?;
                Some(p)
            } else {
                None
            };
            accounts::add_user(pool, &upn, &name, &groups).await?;
            if let Some(p) = password {
                signin_domain::accounts::passwords::set_password(pool, &upn, &p).await?;
            }
            println!("added user {}", signin_domain::upn::cli_arg("--upn", &upn)?);
        }
        AdminCommand::User {
            command: UserCommand::SetPassword { upn },
        } => {
            let p = read_password_line()?;
            signin_domain::accounts::passwords::set_password(pool, &upn, &p).await?;
            println!("password set for {}", upn.trim());
        }
        AdminCommand::User {
            command: UserCommand::AddToGroup { upn, group },
        } => {
            signin_domain::accounts::add_group_member(pool, &group, &upn).await?;
            println!("added {} to {}", upn.trim(), group.trim());
        }
        AdminCommand::User {
            command:
                UserCommand::Set {
                    upn,
                    email,
                    email_verified,
                    given_name,
                    family_name,
                },
        } => {
            accounts::attributes::set_attributes(
                pool,
                &upn,
                accounts::attributes::AttributesUpdate {
                    email,
                    email_verified,
                    given_name,
                    family_name,
                },
            )
            .await?;
            println!("attributes set for {}", upn.trim());
        }
        AdminCommand::User {
            command: UserCommand::Show { upn },
        } => println!(
            "{}",
            signin_domain::accounts::describe_user(pool, &upn).await?
        ),
        AdminCommand::User {
            command: UserCommand::TemporaryPass { upn, ttl_secs },
        } => {
            let pass = accounts::temporary_pass::issue(pool, &upn, ttl_secs).await?;
            println!("{pass}");
            eprintln!(
                "Single use, valid {ttl_secs} s: the user chooses \"Use a temporary access pass\" \
                 on the password page."
            );
        }
        AdminCommand::User {
            command: UserCommand::Rename { upn, new_upn },
        } => {
            let renamed = accounts::rename_user(pool, &upn, &new_upn).await?;
            println!("renamed {} to {renamed}", upn.trim());
        }
        AdminCommand::User {
            command: UserCommand::Disable { upn },
        } => {
            let upn = signin_domain::upn::cli_arg("--upn", &upn)?;
            if !signin_domain::trust::set_disabled(pool, &upn, true).await? {
                anyhow::bail!("no user {}", upn.trim());
            }
            println!("disabled {}: every session and token ended", upn.trim());
        }
        AdminCommand::User {
            command: UserCommand::Enable { upn },
        } => {
            let upn = signin_domain::upn::cli_arg("--upn", &upn)?;
            if !signin_domain::trust::set_disabled(pool, &upn, false).await? {
                anyhow::bail!("no user {}", upn.trim());
            }
            println!("enabled {}", upn.trim());
        }
        AdminCommand::User {
            command: UserCommand::SignOut { upn },
        } => {
            let upn = signin_domain::upn::cli_arg("--upn", &upn)?;
            let upn = upn.as_str();
            if !signin_domain::store::users::exists(pool, upn).await? {
                anyhow::bail!("no user {upn}");
            }
            let ended = signin_domain::trust::end_sessions(
                pool,
                upn,
                signin_domain::trust::EndReason::SignOutEverywhere,
            )
            .await?;
            println!(
                "signed {upn} out everywhere: {} web sessions, {} access tokens, {} codes, {} \
                 refresh tokens ended",
                ended.web_sessions, ended.access_tokens, ended.codes, ended.refresh_tokens
            );
        }
        AdminCommand::User {
            command: UserCommand::Resume { upn },
        } => {
            let upn = signin_domain::upn::cli_arg("--upn", &upn)?;
            if signin_domain::rules::risk::resume(pool, &upn).await? {
                println!("resumed sign-ins for {}", upn.trim());
            } else {
                println!("{} was not paused", upn.trim());
            }
        }
        AdminCommand::Policy {
            command:
                PolicyCommand::Set {
                    enabled,
                    target,
                    mode,
                    number_matching,
                    show_app_name,
                    show_location,
                    number_length,
                    new_device_approval,
                    phishing_resistant,
                    exclude,
                    show_app_name_to,
                    show_app_name_except,
                    show_location_to,
                    show_location_except,
                },
        } => {
            let list = |groups: Option<String>| {
                groups.map(|g| g.split(',').map(str::to_owned).collect::<Vec<_>>())
            };
            let p = accounts::set_policy(
                pool,
                &PolicyUpdate {
                    enabled,
                    target,
                    mode,
                    number_matching,
                    show_app_name,
                    show_location,
                    number_length,
                    new_device_approval,
                    phishing_resistant,
                    exclude: list(exclude),
                    app_name_target: show_app_name_to,
                    app_name_exclude: list(show_app_name_except),
                    location_target: show_location_to,
                    location_exclude: list(show_location_except),
                },
            )
            .await?;
            println!("{p}");
        }
        AdminCommand::Policy {
            command: PolicyCommand::Show,
        } => println!("{}", policy::load(pool).await?),
        AdminCommand::RegistrationLink {
            upn,
            server_url,
            ttl_secs,
        } => {
            let ttl = match ttl_secs {
                Some(t) => t,
                None => store::enrollment_ttl_secs(pool).await?,
            };
            let link = accounts::registration_link(pool, &upn, &server_url, ttl)
                .await
                .context("could not issue a registration link")?;
            println!("{link}");
        }
        AdminCommand::Audit {
            upn,
            event,
            actor,
            format,
            since,
            until,
        } => {
            let time = |flag: &str, t: Option<String>| -> anyhow::Result<Option<i64>> {
                t.map(|t| {
                    signin_server::web::admin::parse_time(&t).with_context(|| {
                        format!("{flag} must be YYYY-MM-DD or RFC 3339, not {t:?}")
                    })
                })
                .transpose()
            };
            let filter = store::audit::AuditFilter {
                // A part of the name, compared in lower case (the stored form).
                upn: upn.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()),
                event: event
                    .map(|e| {
                        audit::Event::parse(e.trim())
                            .map(|e| e.as_str().to_owned())
                            .ok_or_else(|| {
                                anyhow::anyhow!(
                                    "--event must be one of the names in OPERATIONS.md (\"Audit events\")"
                                )
                            })
                    })
                    .transpose()?,
                actor,
                since: time("--since", since)?,
                until: time("--until", until)?,
                limit: i64::MAX,
                ..Default::default()
            };
            let mut rows = audit::query(pool, &filter).await?;
            rows.reverse();
            match format {
                AuditFormat::Text => {
                    for row in rows {
                        println!("{row}");
                    }
                }
                AuditFormat::Csv => print!("{}", audit::to_csv(&rows)?),
                AuditFormat::Json => println!("{}", audit::to_json(&rows)?),
            }
        }
        AdminCommand::App {
            command:
                AppCommand::Add {
                    name,
                    redirect_uris,
                    public,
                    ciba_ping_endpoint,
                    refresh_lifetime_secs,
                    refresh_idle_secs,
                    post_logout_redirect_uris,
                    backchannel_logout_uri,
                    id_token_alg,
                    outbound_allow_http_loopback,
                    outbound_allow_networks,
                },
        } => {
            let refresh = signin_server::oidc::clients::RefreshLifetimes::new(
                refresh_lifetime_secs,
                refresh_idle_secs,
            )?;
            // These flags (and their variables) over the file's `[outbound]`, as for `serve`.
            let policy = signin_server::config::outbound_policy(
                OutboundSection {
                    allow_http_loopback: outbound_allow_http_loopback,
                    allow_networks: outbound_allow_networks,
                    max_push_channels_per_user: None,
                },
                outbound.clone(),
            )?;
            let ping = ciba_ping_endpoint
                .as_deref()
                .map(|p| PingEndpoint::parse(p, &policy))
                .transpose()?;
            let logout = Logout {
                post_logout_redirect_uris,
                backchannel_logout_uri: backchannel_logout_uri
                    .as_deref()
                    .map(|u| BackchannelLogoutUri::parse(u, &policy))
                    .transpose()?,
            };
            let options = ClientOptions {
                refresh,
                logout,
                id_token_alg: id_token_alg.into(),
            };
            add_app(pool, &name, &redirect_uris, public, ping.as_ref(), &options).await?;
        }
        AdminCommand::App {
            command: AppCommand::List,
        } => {
            for app in signin_server::oidc::clients::list(pool).await? {
                println!("{app}");
            }
        }
        AdminCommand::App {
            command: AppCommand::Remove { client_id },
        } => {
            accounts::applications::remove(pool, &client_id).await?;
            println!("removed application {}", client_id.trim());
        }
        AdminCommand::Device {
            command: DeviceCommand::List { upn },
        } => {
            for line in accounts::devices::list(pool, &upn).await? {
                println!("{line}");
            }
        }
        AdminCommand::Device {
            command: DeviceCommand::Remove { id },
        } => {
            accounts::devices::remove(pool, &id).await?;
            println!("removed device {}", id.trim());
        }
        AdminCommand::Device {
            command: DeviceCommand::Approve { id },
        } => {
            accounts::devices::approve_as_admin(pool, &id).await?;
            println!("approved device {}", id.trim());
        }
        AdminCommand::OidcKey { command } => {
            signin_server::oidc::keys::run_admin(pool, command).await?
        }
        AdminCommand::WebpushKey { command } => {
            signin_domain::delivery::webpush::run_admin(pool, command).await?
        }
        AdminCommand::Fallback { command } => accounts::fallback::run_admin(pool, command).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Device ids are base64url, so about one in 32 starts with `-`: `--id -Oof…` is an id,
    /// not an unknown flag (the CLI test hit this as a usage error).
    #[test]
    fn a_device_id_that_starts_with_a_hyphen_is_an_id() {
        let cli = Cli::try_parse_from([
            "signin-server",
            "admin",
            "device",
            "remove",
            "--id",
            "-OofGxLBJ5TW-AYwUiPKFw",
        ])
        .expect("parses");
        let Command::Admin {
            command:
                AdminCommand::Device {
                    command: DeviceCommand::Remove { id },
                },
        } = cli.command
        else {
            panic!("not device remove");
        };
        assert_eq!(id, "-OofGxLBJ5TW-AYwUiPKFw");
    }
}
