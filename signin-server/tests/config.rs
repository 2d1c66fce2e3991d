//! Configuration precedence through the binary: flags > SIGNIN_* environment > --config file >
//! defaults.
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use signin_domain::store::testing::TestDatabase;

const BIN: &str = env!("CARGO_BIN_EXE_signin-server");
const VARS: [&str; 7] = [
    "SIGNIN_CONFIG",
    "SIGNIN_DATABASE",
    "SIGNIN_LISTEN",
    "SIGNIN_SERVER_NAME",
    "SIGNIN_REQUEST_TTL_SECS",
    "SIGNIN_ENROLLMENT_TTL_SECS",
    "SIGNIN_PUBLIC_URL",
];

fn bin() -> Command {
    let mut c = Command::new(BIN);
    for v in VARS {
        c.env_remove(v);
    }
    c.env("RUST_LOG", "info");
    c
}

fn audit(db: &str) -> String {
    let out = bin()
        .args(["--database", db, "admin", "audit"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_database_comes_from_flag_then_env_then_file() {
    let (file_db, env_db, flag_db) = (
        TestDatabase::create_blocking().unwrap(),
        TestDatabase::create_blocking().unwrap(),
        TestDatabase::create_blocking().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signin.toml");
    std::fs::write(&config, format!("database = \"{}\"\n", file_db.url)).unwrap();
    let add = |upn: &str| ["admin", "user", "add", "--upn", upn, "--name", "X"].map(String::from);

    let out = bin()
        .arg("--config")
        .arg(&config)
        .args(add("file@x"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .env("SIGNIN_CONFIG", &config)
        .env("SIGNIN_DATABASE", &env_db.url)
        .args(add("env@x"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bin()
        .arg("--config")
        .arg(&config)
        .env("SIGNIN_DATABASE", &env_db.url)
        .args(["--database", &flag_db.url])
        .args(add("flag@x"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (db, upn) in [
        (&file_db, "file@x"),
        (&env_db, "env@x"),
        (&flag_db, "flag@x"),
    ] {
        let log = audit(&db.url);
        assert!(
            log.contains(&format!("upn={upn}")),
            "{upn} in its database: {log}"
        );
        assert_eq!(log.lines().count(), 1, "only {upn} there: {log}");
    }
}

#[test]
fn serve_takes_its_settings_from_the_file_and_the_environment() {
    let db = TestDatabase::create_blocking().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signin.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"{}\"\n[server]\nlisten = \"127.0.0.1:0\"\nname = \"FromFile\"\n\
             request_ttl_secs = 45\n",
            db.url
        ),
    )
    .unwrap();
    let mut child = bin()
        .args(["--config"])
        .arg(&config)
        .arg("serve")
        .env("SIGNIN_SERVER_NAME", "FromEnv")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("signin-server listening on http://127.0.0.1:"),
        "{line:?}"
    );
    // SIGTERM: a graceful stop writes out what the background log writer still holds (a
    // SIGKILL right after the address line could lose the start's log lines).
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("server_name=FromEnv"), "{log}");
    assert!(log.contains("request_ttl_secs=45"), "{log}");
    // The database URL (it may hold a password) is not logged.
    assert!(!log.contains(&db.url), "{log}");
}

#[test]
fn a_bad_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("signin.toml");
    std::fs::write(&config, "[server]\nlisten_address = \"127.0.0.1:1\"\n").unwrap();
    let out = bin()
        .arg("--config")
        .arg(&config)
        .args(["admin", "audit"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid config file") && err.contains("listen_address"),
        "{err}"
    );
    let missing = bin()
        .args(["--config", "/nonexistent/signin.toml", "admin", "audit"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("could not read the config file"));
}

/// The variables of the sections beyond `[server]`, unset for the tests below.
const SECTION_VARS: [&str; 16] = [
    "SIGNIN_APNS_KEY",
    "SIGNIN_APNS_KEY_ID",
    "SIGNIN_APNS_TEAM_ID",
    "SIGNIN_APNS_TOPIC",
    "SIGNIN_APNS_ENDPOINT",
    "SIGNIN_FCM_SERVICE_ACCOUNT",
    "SIGNIN_FCM_PROJECT_ID",
    "SIGNIN_FCM_ENDPOINT",
    "SIGNIN_FCM_TOKEN_URI",
    "SIGNIN_GEOIP_DATABASE",
    "SIGNIN_TRUSTED_PROXIES",
    "SIGNIN_RISK_BURST",
    "SIGNIN_RISK_REFILL_SECS",
    "SIGNIN_RISK_COOLDOWN_SECS",
    "SIGNIN_RISK_MAX_COOLDOWN_SECS",
    "SIGNIN_RISK_REPORT_PAUSE_SECS",
];

/// `serve` with the TOML `config` and `envs`: whether it started, and its stderr once stopped.
fn serve_with(config: &str, envs: &[(&str, &str)]) -> (bool, String) {
    let db = TestDatabase::create_blocking().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signin.toml");
    std::fs::write(&path, config).unwrap();
    let mut c = bin();
    for v in SECTION_VARS {
        c.env_remove(v);
    }
    c.envs(envs.iter().copied());
    let mut child = c
        .arg("--config")
        .arg(&path)
        .args(["--database", &db.url, "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let started = line.starts_with("signin-server listening on http://127.0.0.1:");
    if started {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    (started, log)
}

#[test]
fn environment_variables_complete_and_override_the_file_sections() {
    // The variable overrides the file's invalid burst; the proxies come from the
    // comma-separated variable instead of the file.
    let file = "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[risk]\nburst = 0\n";
    let proxies = ("SIGNIN_TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.1");
    let (started, log) = serve_with(file, &[proxies, ("SIGNIN_RISK_BURST", "2")]);
    assert!(started, "{log}");
    assert!(log.contains("trusted_proxies=2"), "{log}");
    let (started, log) = serve_with(file, &[proxies]);
    assert!(!started, "{log}");
    assert!(
        log.contains("--rate-burst (SIGNIN_RISK_BURST, [risk] `burst`) must be at least 1"),
        "{log}"
    );

    // A half APNs configuration, spread over the file and a variable, names what is missing.
    let file = "[delivery.apns]\nkey_path = \"/nonexistent/k.p8\"\ntopic = \"com.example\"\n";
    let (started, log) = serve_with(file, &[("SIGNIN_APNS_KEY_ID", "K")]);
    assert!(!started, "{log}");
    assert!(
        log.contains(
            "APNs is half configured: missing --apns-team-id (SIGNIN_APNS_TEAM_ID, \
             [delivery.apns] `team_id`)"
        ),
        "{log}"
    );
}

#[test]
fn an_unknown_key_in_a_section_is_named() {
    let (started, log) = serve_with("[risk]\nrate_burst = 3\n", &[]);
    assert!(!started);
    assert!(
        log.contains("invalid config file") && log.contains("unknown field `rate_burst`"),
        "{log}"
    );
}
