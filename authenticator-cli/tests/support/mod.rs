//! The shared setup of the `authenticator` binary's tests: a real sign-in server on a loopback
//! port (a real SQLite file), a phone home directory, and the browser's and admin's sides.
// Each test crate uses a different part.
#![allow(dead_code)]

use std::process::{Command, Output};

use serde_json::{json, Value};
use signin_domain::accounts;
use signin_domain::rules::policy::{Mode, PolicyUpdate, Target};
use signin_server::{RunningServer, ServeConfig};

pub const BIN: &str = env!("CARGO_BIN_EXE_authenticator");
pub const UPN: &str = "bobby@contoso.test";

pub struct Setup {
    pub server: RunningServer,
    pub base: String,
    /// The registered application "My Apps": (client id, secret).
    pub app: (String, String),
    pub home: tempfile::TempDir,
    _db: tempfile::TempDir,
}

pub async fn setup() -> Setup {
    setup_with(ServeConfig::default()).await
}

/// A server with `config` (its listen address and database are chosen here).
pub async fn setup_with(config: ServeConfig) -> Setup {
    let db = tempfile::tempdir().unwrap();
    let server = signin_server::spawn(ServeConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        database: format!("sqlite://{}", db.path().join("s.db").display()),
        ..config
    })
    .await
    .unwrap();
    let update = PolicyUpdate {
        enabled: Some(true),
        target: Some(Target::All),
        mode: Some(Mode::Any),
        number_matching: Some(true),
        show_app_name: Some(true),
        show_location: Some(true),
        new_device_approval: None,
        number_length: None,
        phishing_resistant: None,
        exclude: None,
        ..Default::default()
    };
    accounts::set_policy(server.pool(), &update).await.unwrap();
    accounts::add_user(server.pool(), UPN, "Bobby Smith", &[])
        .await
        .unwrap();
    let registered = accounts::applications::add(server.pool(), "My Apps")
        .await
        .unwrap();
    let base = format!("http://{}/", server.addr);
    Setup {
        server,
        base,
        app: (
            registered.client_id.clone(),
            registered.client_secret.clone(),
        ),
        home: tempfile::tempdir().unwrap(),
        _db: db,
    }
}

impl Setup {
    /// Runs the phone binary off the async workers (it is a separate process).
    pub async fn phone(&self, args: &[&str]) -> Output {
        let mut cmd = self.phone_command(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// The phone binary on this setup's home, with JSON output and the passcode.
    pub fn phone_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--home")
            .arg(self.home.path())
            .arg("--json")
            .args(args)
            .env("AUTHENTICATOR_PASSCODE", "2468-pass");
        cmd
    }

    pub async fn link(&self) -> String {
        self.link_for(UPN).await
    }

    /// A registration link for `upn` (who must exist).
    pub async fn link_for(&self, upn: &str) -> String {
        accounts::registration_link(
            self.server.pool(),
            upn,
            &url::Url::parse(&self.base).unwrap(),
            600,
        )
        .await
        .unwrap()
    }

    pub async fn start_sign_in(&self) -> Value {
        self.start_sign_in_for(UPN).await
    }

    /// Starts a sign-in for `upn` as the registered application: `{id, number, ...}`.
    pub async fn start_sign_in_for(&self, upn: &str) -> Value {
        reqwest::Client::new()
            .post(format!("{}api/v1/signin", self.base))
            .basic_auth(&self.app.0, Some(&self.app.1))
            .json(&json!({ "upn": upn }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn status(&self, id: &str) -> String {
        let v: Value = reqwest::get(format!("{}api/v1/signin/{id}", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["status"].as_str().unwrap().to_owned()
    }
}

pub fn json_out(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&out.stdout)))
}
