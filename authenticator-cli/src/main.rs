//! `authenticator`: the desktop phone. It drives `authenticator-core` exactly as the Android and
//! iOS shells do, with a software key store and a local passcode instead of hardware keys and
//! biometrics. `authenticator demo` runs the whole ceremony against an in-process sign-in server.
#![forbid(unsafe_code)]
// Product code handles every failure as a typed error (issue 19); tests, benches and examples
// are separate targets and allow these at their top.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod demo;
mod demo_server;
mod failure;
mod moving;
mod passcode;
mod phone;
mod push;
mod totp;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use crate::phone::Phone;

#[derive(Parser)]
#[command(
    name = "authenticator",
    version,
    about = "Desktop phone for passwordless phone sign-in",
    long_about = "Desktop phone for passwordless phone sign-in: it keeps accounts, answers sign-in \
                  requests with the number shown on the sign-in screen, and shows TOTP codes. \
                  Start with `authenticator enroll <LINK>`, or try `authenticator demo`.",
    after_help = "The phone's home (accounts, keys, passcode hash) is --home, else \
                  AUTHENTICATOR_HOME, else $XDG_DATA_HOME/phonesignin-authenticator, else \
                  ~/.local/share/phonesignin-authenticator.\n\
                  Exit codes: 0 done, 1 error (with --json: a JSON object on stdout whose \
                  `error` is a stable code), 2 usage error, 3 wrong number (approve)."
)]
struct Cli {
    /// Where this phone keeps its accounts, keys and passcode hash [default:
    /// $XDG_DATA_HOME/phonesignin-authenticator, else ~/.local/share/phonesignin-authenticator;
    /// created on first use].
    #[arg(long, global = true, env = "AUTHENTICATOR_HOME", value_name = "DIR")]
    home: Option<PathBuf>,
    /// Machine-readable output: results as JSON on stdout; errors as a JSON object
    /// `{"error": <stable code>, "message": …}` on stdout (and the message on stderr).
    #[arg(long, global = true)]
    json: bool,
    /// The local passcode (user verification, in place of the phone's biometric). Asked on the
    /// terminal when absent; the first command that needs one sets it (asked twice).
    #[arg(
        long,
        global = true,
        env = "AUTHENTICATOR_PASSCODE",
        hide_env_values = true,
        value_name = "PASSCODE"
    )]
    passcode: Option<String>,
    /// Where the key that encrypts private keys at rest is kept.
    #[arg(long, global = true, value_enum, default_value_t = KeyProtection::File, env = "AUTHENTICATOR_KEY_PROTECTION")]
    key_protection: KeyProtection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KeyProtection {
    /// A 0600 file in the home directory (survives reboots; as strong as the file's protection).
    File,
    /// The OS keyring (Linux kernel keyring: lost at logout/reboot).
    Keyring,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Phone(PhoneCommand),
    /// Run the whole ceremony: server, registration QR, enrollment, phone sign-in.
    Demo {
        /// Answer every prompt by itself (including one wrong number first).
        #[arg(long)]
        auto: bool,
    },
}

#[derive(Subcommand)]
enum PhoneCommand {
    /// Add an account from a registration link (the text of the QR code).
    Enroll {
        /// The registration link: the text of the QR code on the security-info page
        /// (`phonesignin://enroll?…`).
        #[arg(value_name = "LINK")]
        url: String,
        /// The name the server and its admin see for this phone.
        #[arg(long, default_value = "Desktop phone", value_name = "NAME")]
        device_name: String,
        #[command(flatten)]
        push: push::PushArgs,
    },
    /// The push channel changed (a phone app's new FCM token, APNs device token or Web Push
    /// subscription): tell every account's server, signed by the account's device key. Exits
    /// 4 when some server was not told (unreachable: run it again later; or refused).
    PushUpdate {
        #[command(flatten)]
        push: push::PushArgs,
    },
    /// List the accounts on this phone.
    Accounts,
    /// Enable phone sign-in (passwordless) for an account (id or UPN).
    EnablePhoneSignIn {
        /// The account: its id or its UPN (see `authenticator accounts`).
        // Ids are base64url: they may start with `-`.
        #[arg(allow_hyphen_values = true)]
        account: String,
    },
    /// Remove an account from this phone (its server is told).
    Remove {
        /// The account: its id or its UPN (see `authenticator accounts`).
        #[arg(allow_hyphen_values = true)]
        account: String,
    },
    /// List sign-in requests waiting for an answer (never shows the number).
    Pending {
        /// Wait up to this many seconds for a request to arrive.
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        wait: u32,
    },
    /// Approve a request with the number shown on the sign-in screen.
    Approve {
        /// The request id (see `authenticator pending`).
        // Ids are base64url: they may start with `-`.
        #[arg(allow_hyphen_values = true)]
        request: String,
        /// The number the sign-in screen shows (the phone never sees it).
        #[arg(long, value_name = "DIGITS")]
        number: String,
        /// The account (id or UPN), when several accounts have a request with this id.
        #[arg(long, allow_hyphen_values = true, value_name = "ACCOUNT")]
        account: Option<String>,
    },
    /// Deny a request.
    Deny {
        /// The request id (see `authenticator pending`).
        #[arg(allow_hyphen_values = true)]
        request: String,
        /// The account (id or UPN), when several accounts have a request with this id.
        #[arg(long, allow_hyphen_values = true, value_name = "ACCOUNT")]
        account: Option<String>,
    },
    /// "This wasn't me": deny and report the request as fraud.
    Report {
        /// The request id (see `authenticator pending`).
        #[arg(allow_hyphen_values = true)]
        request: String,
        /// The account (id or UPN), when several accounts have a request with this id.
        #[arg(long, allow_hyphen_values = true, value_name = "ACCOUNT")]
        account: Option<String>,
    },
    /// TOTP accounts (offline fallback codes, and imports from other services).
    Totp {
        #[command(subcommand)]
        command: TotpCommand,
    },
    /// Let this computer's sign-in pages find this phone (phishing-resistant sign-in): listens
    /// on 127.0.0.1 until interrupted. Approvals of such sign-ins need their page seen here.
    BrowserListener {
        /// The port the sign-in pages call (the server's `--browser-listener-port`).
        #[arg(long, default_value_t = authenticator_protocol::sign_in::DEFAULT_BROWSER_LISTENER_PORT, value_name = "PORT")]
        port: u16,
    },
    /// Move to a new phone: print the one link (and QR code) that moves every account and
    /// TOTP account; run `move-in` with it on the new phone.
    MoveOut,
    /// Complete a move on this (new) phone with the link `move-out` printed on the old one.
    MoveIn {
        link: String,
        #[arg(long, default_value = "Desktop phone")]
        device_name: String,
    },
    /// After a move, on the old phone: keep its accounts, or remove them all.
    #[command(group(clap::ArgGroup::new("choice").required(true).args(["keep", "remove"])))]
    MoveDone {
        #[arg(long)]
        keep: bool,
        #[arg(long)]
        remove: bool,
    },
    /// Print the current TOTP code of an account: a TOTP id, a sign-in account (id or UPN)
    /// whose enrollment brought it, or a label (`issuer:name` or name).
    Code {
        /// A TOTP id, a sign-in account (id or UPN), or a label (see `authenticator totp list`).
        #[arg(allow_hyphen_values = true)]
        account: String,
    },
}

#[derive(Subcommand)]
enum TotpCommand {
    /// Add a TOTP account from an `otpauth://totp/…` URI (the text of another service's QR code).
    Add {
        /// The `otpauth://totp/…` URI (never printed: it holds the secret).
        #[arg(value_name = "URI")]
        uri: String,
    },
    /// List the TOTP accounts.
    List,
    /// Remove a TOTP account.
    Remove {
        /// A TOTP id, a sign-in account (id or UPN), or a label (see `authenticator totp list`).
        #[arg(allow_hyphen_values = true)]
        account: String,
    },
    /// Write the TOTP accounts you added to a passphrase-encrypted file (never phone sign-in
    /// keys).
    Export {
        file: PathBuf,
        #[arg(long, env = "AUTHENTICATOR_EXPORT_PASSPHRASE", hide_env_values = true)]
        passphrase: Option<String>,
    },
    /// Add the TOTP accounts of a file `totp export` wrote.
    Import {
        file: PathBuf,
        #[arg(long, env = "AUTHENTICATOR_EXPORT_PASSPHRASE", hide_env_values = true)]
        passphrase: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AUTHENTICATOR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A usage error under --json is a JSON object too (clap then prints its own text on
            // stderr and exits 2); --help and --version print as usual.
            if e.use_stderr() && std::env::args_os().any(|a| a == "--json") {
                println!("{}", failure::usage(&e.to_string()));
            }
            e.exit()
        }
    };
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            failure::report(&e, json);
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let command = match cli.command {
        Command::Demo { auto } => return demo::run(auto).await.map(|()| ExitCode::SUCCESS),
        Command::Phone(command) => command,
    };
    let home = match cli.home {
        Some(h) => h,
        None => {
            let home = default_home()?;
            if !home.exists() {
                eprintln!(
                    "This phone's home is {} (the default: --home or AUTHENTICATOR_HOME chooses another).",
                    home.display()
                );
            }
            home
        }
    };
    let phone = Phone::open(&home, cli.passcode, cli.key_protection)?;
    let out = phone::Output { json: cli.json };
    let result = run_phone(&phone, &out, command).await;
    // A failed user verification: say what was wrong with the passcode.
    result.map_err(|e| phone.explain(e))
}

async fn run_phone(phone: &Phone, out: &phone::Output, command: PhoneCommand) -> Result<ExitCode> {
    match command {
        PhoneCommand::Enroll {
            url,
            device_name,
            push,
        } => {
            phone
                .enroll(out, &url, &device_name, push.registration()?)
                .await
        }
        PhoneCommand::PushUpdate { push } => phone.push_update(out, &push).await,
        PhoneCommand::Accounts => phone.accounts(out).await,
        PhoneCommand::EnablePhoneSignIn { account } => {
            phone.enable_phone_sign_in(out, &account).await
        }
        PhoneCommand::Remove { account } => phone.remove(out, &account).await,
        PhoneCommand::Pending { wait } => phone.pending(out, wait).await,
        PhoneCommand::Approve {
            request,
            number,
            account,
        } => {
            phone
                .approve(out, &request, account.as_deref(), &number)
                .await
        }
        PhoneCommand::Deny { request, account } => {
            phone.deny(out, &request, account.as_deref()).await
        }
        PhoneCommand::Report { request, account } => {
            phone.report(out, &request, account.as_deref()).await
        }
        PhoneCommand::Totp { command } => match command {
            TotpCommand::Add { uri } => phone.totp_add(out, &uri).await,
            TotpCommand::List => phone.totp_list(out).await,
            TotpCommand::Remove { account } => phone.totp_remove(out, &account).await,
            TotpCommand::Export { file, passphrase } => {
                let passphrase = moving::passphrase(passphrase, true)?;
                phone.totp_export(out, &file, passphrase).await
            }
            TotpCommand::Import { file, passphrase } => {
                let passphrase = moving::passphrase(passphrase, false)?;
                phone.totp_import(out, &file, passphrase).await
            }
        },
        PhoneCommand::MoveOut => phone.move_out(out).await,
        PhoneCommand::MoveIn { link, device_name } => phone.move_in(out, &link, &device_name).await,
        PhoneCommand::MoveDone { remove, .. } => phone.move_done(out, remove).await,
        PhoneCommand::Code { account } => phone.code(out, &account).await,
        PhoneCommand::BrowserListener { port } => phone.browser_listener(out, port).await,
    }
}

fn default_home() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| anyhow::anyhow!("set --home (neither XDG_DATA_HOME nor HOME is set)"))?;
    Ok(base.join("phonesignin-authenticator"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request and account ids are base64url, so about one in 32 starts with `-`: such an id is
    /// still an id, not an unknown flag (the CLI test hit this as a usage error, exit 2).
    #[test]
    fn ids_that_start_with_a_hyphen_are_ids_not_flags() {
        let cli = Cli::try_parse_from([
            "authenticator",
            "approve",
            "-Ab3_request-id-22chars",
            "--number",
            "42",
            "--account",
            "-Xy_account",
        ])
        .expect("parses");
        let Command::Phone(PhoneCommand::Approve {
            request,
            number,
            account,
        }) = cli.command
        else {
            panic!("not approve");
        };
        assert_eq!(request, "-Ab3_request-id-22chars");
        assert_eq!(number, "42");
        assert_eq!(account.as_deref(), Some("-Xy_account"));
        for command in ["deny", "report", "enable-phone-sign-in", "remove"] {
            assert!(
                Cli::try_parse_from(["authenticator", command, "-leading-hyphen"]).is_ok(),
                "{command}"
            );
        }
    }
}
