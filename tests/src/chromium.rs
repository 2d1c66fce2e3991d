//! Headless Chromium driven through chromedriver (WebDriver), for the tests that need a real
//! browser: real cookies, real redirects, the pages' script, and the `Origin` header the
//! browser itself writes (what the phishing-resistant sign-in relies on).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium`,
//! `chromium-driver`; `cargo xtask test` installs them). Without them a test fails: it never
//! skips.
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::http::Method;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long an element may take to appear.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Chromium {
    pub client: Client,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    /// Screenshots go to `target/screenshots/<prefix>-NN-<name>.png`.
    prefix: String,
    shots: u32,
}

/// `target/screenshots/` (or `$CARGO_TARGET_DIR/screenshots/`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("screenshots")
}

/// A loopback port nobody listens on at the moment.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Chromium {
    /// A fresh browser (its own profile: no cookies) whose screenshots are named `prefix-…`.
    pub async fn start(prefix: &str) -> Result<Self> {
        Self::start_with(prefix, &[]).await
    }

    /// [`Chromium::start`] with more command-line switches (e.g. [`public_address`]).
    pub async fn start_with(prefix: &str, switches: &[String]) -> Result<Self> {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            if !std::path::Path::new(tool).exists() {
                bail!("{tool} is missing: the browser tests need `apt-get install -y chromium chromium-driver`");
            }
        }
        let port = free_port()?;
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, which the browser it starts joins: dropping this ends
            // them all (`Drop for Chromium`), not chromedriver alone.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting chromedriver")?;
        // Bounded wait for chromedriver to listen.
        let mut up = false;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !up {
            bail!("chromedriver did not start");
        }
        let profile = tempfile::tempdir()?;
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1100,1000",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(switches.iter().cloned());
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        // chromedriver listens on loopback: plain HTTP, no TLS stack needed.
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .context("starting a Chromium session")?;
        std::fs::create_dir_all(screenshot_dir())?;
        // The screenshots of an earlier run under this prefix go: the folder shows this run.
        let earlier = format!("{prefix}-");
        for entry in std::fs::read_dir(screenshot_dir())? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let numbered = name.strip_prefix(&earlier).is_some_and(|rest| {
                rest.len() > 3
                    && rest.as_bytes()[..2].iter().all(u8::is_ascii_digit)
                    && rest.as_bytes()[2] == b'-'
            });
            if numbered && name.ends_with(".png") {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Chromium {
            client,
            _driver: driver,
            _profile: profile,
            prefix: prefix.to_owned(),
            shots: 0,
        })
    }

    /// Saves a screenshot of the page at hand.
    pub async fn shot(&mut self, name: &str) -> Result<()> {
        self.shots += 1;
        let png = self.client.screenshot().await?;
        let file = format!("{}-{:02}-{name}.png", self.prefix, self.shots);
        std::fs::write(screenshot_dir().join(file), png)?;
        Ok(())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        Ok(self.client.goto(url).await?)
    }

    pub async fn wait_for(&self, css: &str) -> Result<Element> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting for {css}"))
    }

    /// Runs `act` on the element `css` once it is there. A page that replaces itself between
    /// finding the element and acting on it (a form post landing, a self-updating page) leaves
    /// a stale element: it is found again and `act` runs again, within [`WAIT`]. Every helper
    /// that acts on an element goes through here.
    pub async fn on_element<T, F, Fut>(&self, css: &str, act: F) -> Result<T>
    where
        F: Fn(Element) -> Fut,
        Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match act(self.wait_for(css).await?).await {
                Err(e) if is_stale(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other.with_context(|| format!("acting on {css}")),
            }
        }
    }

    /// The text of `css`, once it is there.
    pub async fn text(&self, css: &str) -> Result<String> {
        self.on_element(css, |e| async move { e.text().await })
            .await
    }

    /// Waits (bounded by [`WAIT`]) until the text of `css` contains `part`; returns it.
    pub async fn wait_for_text(&self, css: &str, part: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.text(css).await?;
            if text.contains(part) {
                return Ok(text);
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("{css} says {text:?}, never {part:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (bounded by [`WAIT`]) until the page's path is `path`.
    pub async fn wait_for_path(&self, path: &str) -> Result<()> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let now = self.path().await?;
            if now == path {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("the browser stayed at {now}, never reached {path}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) -> Result<()> {
        self.on_element(css, |e| async move {
            e.clear().await?;
            e.send_keys(value).await
        })
        .await
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        self.on_element(css, |e| async move { e.click().await })
            .await
    }

    /// The value of attribute `name` of `css`, once it is there.
    pub async fn attr(&self, css: &str, name: &str) -> Result<Option<String>> {
        self.on_element(css, |e| async move { e.attr(name).await })
            .await
    }

    pub async fn set_checkbox(&self, css: &str, on: bool) -> Result<()> {
        self.on_element(css, |e| async move {
            let checked = e.prop("checked").await?.as_deref() == Some("true");
            if checked != on {
                e.click().await?;
            }
            Ok(())
        })
        .await
    }

    pub async fn path(&self) -> Result<String> {
        Ok(self.client.current_url().await?.path().to_owned())
    }

    /// Types the UPN on the sign-in page of the server at `base` (`http://host:port/`) and
    /// submits it.
    pub async fn enter_upn(&self, base: &str, upn: &str) -> Result<()> {
        self.goto(&format!("{base}signin")).await?;
        self.fill("#upn", upn).await?;
        self.click("#next").await
    }

    pub async fn sign_out(&self) -> Result<()> {
        self.click("form[action='/signout'] button").await?;
        self.wait_for("#upn").await?;
        Ok(())
    }

    /// A Chrome DevTools Protocol command, through chromedriver (`goog/cdp/execute`).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        let command = CdpCommand {
            cmd: cmd.to_owned(),
            params,
        };
        self.client
            .issue_cmd(command)
            .await
            .with_context(|| format!("CDP {cmd}"))
    }

    /// Sets this browser's Local Network Access permission (`loopback-network`: may pages at
    /// `origin` reach this device's loopback addresses) to `setting` — `granted`, `denied`
    /// or `prompt` — as the user's answer to Chrome's prompt, or the site's settings, would.
    pub async fn set_loopback_permission(&self, origin: &str, setting: &str) -> Result<()> {
        self.cdp(
            "Browser.setPermission",
            json!({
                "permission": {"name": "loopback-network"},
                "setting": setting,
                "origin": origin,
            }),
        )
        .await?;
        Ok(())
    }

    /// Checks the page at hand as a user on a phone and on a desktop would see it, each of
    /// [`PAGE_SIZES`] in turn: axe-core finds no serious or critical violation of its rules,
    /// the page does not scroll sideways, and a screenshot of each size goes to
    /// `target/screenshots/<prefix>-NN-<name>-<size>.png`. Fails naming the page, the size
    /// and each problem. The browser is back at its own size afterwards.
    pub async fn check_page(&mut self, name: &str) -> Result<()> {
        self.check_page_in(name, ColorScheme::Light).await
    }

    /// [`Chromium::check_page`] with the system asking for `scheme` (`prefers-color-scheme`).
    pub async fn check_page_in(&mut self, name: &str, scheme: ColorScheme) -> Result<()> {
        self.set_color_scheme(scheme).await?;
        let mut problems = Vec::new();
        for (size, width, height) in PAGE_SIZES {
            self.cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await?;
            let label = match scheme {
                ColorScheme::Light => size.to_owned(),
                ColorScheme::Dark => format!("{size}-dark"),
            };
            let (scroll, client) = self.page_widths().await?;
            if scroll > client {
                problems.push(format!(
                    "{label}: the page scrolls sideways ({scroll} px of content in {client} px)"
                ));
            }
            for v in self.axe_violations().await? {
                if matches!(v.impact.as_str(), "serious" | "critical") {
                    problems.push(format!(
                        "{label}: axe {} ({}): {} at {}",
                        v.id,
                        v.impact,
                        v.help,
                        v.nodes.join(", ")
                    ));
                }
            }
            self.shot(&format!("{name}-{label}")).await?;
        }
        self.cdp("Emulation.clearDeviceMetricsOverride", json!({}))
            .await?;
        self.set_color_scheme(ColorScheme::Light).await?;
        if !problems.is_empty() {
            bail!(
                "page {name} ({}):\n  {}",
                self.path().await.unwrap_or_default(),
                problems.join("\n  ")
            );
        }
        Ok(())
    }

    /// Makes the pages see `prefers-color-scheme: scheme`.
    pub async fn set_color_scheme(&self, scheme: ColorScheme) -> Result<()> {
        let value = match scheme {
            ColorScheme::Light => "light",
            ColorScheme::Dark => "dark",
        };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": value}]}),
        )
        .await?;
        Ok(())
    }

    /// The width of the page's content and of its viewport (CSS px).
    pub async fn page_widths(&self) -> Result<(u64, u64)> {
        let got = self
            .client
            .execute(
                "const e = document.documentElement; return [e.scrollWidth, e.clientWidth];",
                vec![],
            )
            .await?;
        let pair: (u64, u64) = serde_json::from_value(got).context("page widths")?;
        Ok(pair)
    }

    /// Runs axe-core (`target/axe`, installed by `cargo xtask install-toolchains`) on the page
    /// at hand; its violations, every impact.
    pub async fn axe_violations(&self) -> Result<Vec<AxeViolation>> {
        let loaded = self
            .client
            .execute("return typeof window.axe === 'object';", vec![])
            .await?;
        if loaded != Value::Bool(true) {
            let source = std::fs::read_to_string(axe_script()).with_context(|| {
                format!(
                    "{} is missing: run `cargo xtask install-toolchains` (npm axe-core)",
                    axe_script().display()
                )
            })?;
            self.client
                .execute(&format!("{source}\nreturn true;"), vec![])
                .await
                .context("loading axe-core into the page")?;
        }
        let got = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, { resultTypes: ["violations"] }).then(function (r) {
                  done(JSON.stringify(r.violations.map(function (v) {
                    return { id: v.id, impact: v.impact || "", help: v.help,
                             nodes: v.nodes.map(function (n) { return n.target.join(" "); }) };
                  })));
                }, function (e) { done("error: " + e); });"#,
                vec![],
            )
            .await?;
        let text = got.as_str().context("axe-core's answer")?;
        if let Some(e) = text.strip_prefix("error: ") {
            bail!("axe-core failed on the page: {e}");
        }
        serde_json::from_str(text).context("axe-core's violations")
    }

    /// The id of the sign-in the page at hand waits for (`data-request-id`).
    pub async fn sign_in_id(&self) -> Result<String> {
        self.attr("[data-request-id]", "data-request-id")
            .await?
            .context("request id on the page")
    }
}

/// The element was replaced since it was found. Chromedriver says so as a stale reference,
/// or (when the node went away while it was being read) as an inspector error about a node
/// that "does not belong to the document".
fn is_stale(e: &fantoccini::error::CmdError) -> bool {
    use fantoccini::error::{CmdError, ErrorStatus};
    matches!(e, CmdError::Standard(w)
        if w.error == ErrorStatus::StaleElementReference
            || (w.error == ErrorStatus::UnknownError
                && w.message.contains("does not belong to the document")))
}

/// The sizes [`Chromium::check_page`] looks at a page in: a phone and a desktop (CSS px).
pub const PAGE_SIZES: [(&str, u32, u32); 2] = [("phone", 390, 844), ("desktop", 1280, 800)];

/// What the system asks the pages for (`prefers-color-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorScheme {
    Light,
    Dark,
}

/// One rule axe-core found broken on a page, with the elements (CSS selectors) it found it on.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AxeViolation {
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: String,
    pub help: String,
    pub nodes: Vec<String>,
}

/// `target/axe/node_modules/axe-core/axe.min.js` (xtask's `install_axe`).
pub fn axe_script() -> PathBuf {
    screenshot_dir()
        .parent()
        .map(|t| t.join("axe/node_modules/axe-core/axe.min.js"))
        .unwrap_or_default()
}

/// The switch that makes Chromium take the server at `addr` (`127.0.0.1:PORT`) for a public
/// site: its pages then need Local Network Access to reach the Authenticator's listener on
/// loopback, as a real sign-in site's do. They stay a secure context (`http://127.0.0.1` is
/// potentially trustworthy), which the permission requires.
pub fn public_address(addr: std::net::SocketAddr) -> String {
    format!("--ip-address-space-overrides={addr}=public")
}

/// chromedriver's `POST /session/{id}/goog/cdp/execute`.
#[derive(Debug)]
struct CdpCommand {
    cmd: String,
    params: Value,
}

impl WebDriverCompatibleCommand for CdpCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> std::result::Result<url::Url, url::ParseError> {
        let session = session_id.unwrap_or_default();
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (Method::POST, Some(body.to_string()))
    }
}

impl Drop for Chromium {
    /// Killing chromedriver alone would leave its browser running as an orphan: the whole
    /// process group goes (whether or not the test closed the session first).
    fn drop(&mut self) {
        if let Some(pid) = self._driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
