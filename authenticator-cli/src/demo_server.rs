//! The demo's sign-in server: the real `signin-server` running in this process on a loopback
//! port with a fresh SQLite file, administered through its library API, plus the browser side
//! of the sign-in page (its JSON API).
pub mod geoip;

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use signin_domain::accounts;
use signin_domain::rules::policy::{Mode, PolicyUpdate, Target};
use signin_server::{RunningServer, ServeConfig};

pub struct DemoServer {
    pub base_url: String,
    running: RunningServer,
    browser: reqwest::Client,
    /// The registered application the demo signs in to: (client id, secret).
    app: Option<(String, String)>,
}

pub async fn start(dir: &Path) -> Result<DemoServer> {
    let config = ServeConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        database: format!("sqlite://{}", dir.join("signin.db").display()),
        server_name: Some("Contoso".into()),
        // The demo's GeoIP database, and its browser's address believed from loopback as
        // from a reverse proxy on the same machine (demo_server/geoip.rs).
        geoip: Some(geoip::write_database(dir)?),
        trusted_proxies: vec!["127.0.0.1/32".parse()?, "::1/128".parse()?],
        ..ServeConfig::default()
    };
    let running = signin_server::spawn(config).await?;
    Ok(DemoServer {
        base_url: format!("http://{}/", running.addr),
        running,
        browser: reqwest::Client::builder()
            .default_headers(geoip::browser_headers()?)
            .build()
            .context("cannot set up the demo's browser")?,
        app: None,
    })
}

impl DemoServer {
    pub async fn enable_policy(&self) -> Result<()> {
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
        accounts::set_policy(self.running.pool(), &update).await?;
        Ok(())
    }

    pub async fn add_user(&self, upn: &str, name: &str) -> Result<()> {
        accounts::add_user(self.running.pool(), upn, name, &[]).await
    }

    pub async fn registration_link(&self, upn: &str) -> Result<String> {
        let url = url::Url::parse(&self.base_url)?;
        let ttl = signin_domain::store::enrollment_ttl_secs(self.running.pool()).await?;
        accounts::registration_link(self.running.pool(), upn, &url, ttl).await
    }

    /// Registers the application the demo signs in to (`admin app add --name`): its name is
    /// what the phone shows.
    pub async fn register_application(&mut self, name: &str) -> Result<()> {
        let registered = accounts::applications::add(self.running.pool(), name).await?;
        self.app = Some((
            registered.client_id.clone(),
            registered.client_secret.clone(),
        ));
        Ok(())
    }

    /// The issuer (OpenID Provider) URL: the loopback origin, without a trailing slash.
    pub fn issuer(&self) -> String {
        self.base_url.trim_end_matches('/').to_owned()
    }

    /// Registers a confidential OpenID Connect client (`admin app add --name N
    /// --redirect-uri U`): its name is what the phone shows. The secret is returned once.
    pub async fn register_oidc_client(
        &self,
        name: &str,
        redirect_uri: &str,
    ) -> Result<accounts::applications::Registered> {
        signin_server::oidc::clients::add(
            self.running.pool(),
            name,
            &[redirect_uri.to_owned()],
            false,
            None,
        )
        .await
    }

    /// The application's sign-in page: the user types the UPN, the page gets the number to
    /// show (the application authenticates with its credential).
    pub async fn start_sign_in(&self, upn: &str) -> Result<Value> {
        let (client_id, secret) = self
            .app
            .as_ref()
            .context("register the application first")?;
        let resp = self
            .browser
            .post(format!("{}api/v1/signin", self.base_url))
            .basic_auth(client_id, Some(secret))
            .json(&json!({ "upn": upn }))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .context("the sign-in page answered something that is not JSON")?;
        if !status.is_success() {
            bail!(
                "the sign-in page refused: {}",
                body["message"].as_str().unwrap_or("unknown error")
            );
        }
        Ok(body)
    }

    /// The sign-in page waiting (long-poll) for the phone's answer.
    pub async fn wait_sign_in(&self, id: &str) -> Result<String> {
        for _ in 0..10 {
            let body: Value = self
                .browser
                .get(format!("{}api/v1/signin/{id}?wait=30", self.base_url))
                .timeout(Duration::from_secs(45))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let status = body["status"].as_str().context("no status")?;
            if status != "pending" {
                return Ok(status.to_owned());
            }
        }
        bail!("the sign-in stayed pending")
    }

    pub async fn shutdown(self) {
        self.running.shutdown().await;
    }
}
