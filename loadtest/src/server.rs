//! The server under load: a real `signin-server` process on a loopback port, its database
//! prepared with that binary's own admin commands (policy, application, users, registration
//! links: so any build can be measured, before and after a change), and its CPU time and
//! memory read from `/proc`.
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use authenticator_protocol::enroll::EnrollmentUrl;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The registered application that starts the sign-ins.
pub struct App {
    /// `Basic base64(client_id:secret)`.
    pub authorization: String,
}

pub struct Server {
    child: Child,
    pub pid: u32,
    pub base_url: String,
    pub app: std::sync::Arc<App>,
    /// (upn, registration link) of every prepared user.
    pub links: Vec<(String, String)>,
}

impl Server {
    /// Prepares `database` (users are added later by [`Server::add_users`]) and starts the
    /// server on it with start limits high enough for a load test. `connections`: the server
    /// must hold this many connections and long-polls from this one address (the memory
    /// scenario), so its connection and parking limits are raised to that (default: the
    /// server's own).
    pub async fn start(
        binary: &Path,
        database: &str,
        dir: &Path,
        log_filter: &str,
        connections: Option<usize>,
    ) -> Result<Server> {
        admin(
            binary,
            database,
            &[
                "policy",
                "set",
                "--enabled",
                "true",
                "--target",
                "all",
                "--mode",
                "any",
                "--number-matching",
                "on",
                "--show-app-name",
                "on",
                "--show-location",
                "on",
            ],
        )
        .await?;
        let name = format!("Load test {}", std::process::id());
        let added = admin(binary, database, &["app", "add", "--name", &name]).await?;
        let field = |key: &str| {
            added
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
                .with_context(|| format!("no {key} in `admin app add` output"))
        };
        let credential = format!("{}:{}", field("client_id:")?, field("client_secret:")?);

        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut command = Command::new(binary);
        if let Some(n) = connections {
            // Every simulated phone connects from 127.0.0.1 and the scenario parks many
            // long-polls per phone: the per-address and per-device caps (and the totals) would
            // refuse most of them (issue 20). Room for the parked polls plus the starts.
            let room = (n + 1024).to_string();
            let n = n.to_string();
            command
                .env("SIGNIN_MAX_CONNECTIONS", &room)
                .env("SIGNIN_MAX_CONNECTIONS_PER_ADDRESS", &room)
                .env("SIGNIN_MAX_POLLS_PER_DEVICE", &n)
                .env("SIGNIN_MAX_POLLS", &n);
        }
        let mut child = command
            .args(["--database", database, "serve", "--listen", "127.0.0.1:0"])
            // The load is one application starting many sign-ins per user: lift the start
            // limits (push-bombing protection) out of the way.
            .env("SIGNIN_RISK_BURST", "1000000000")
            .env("SIGNIN_RISK_REFILL_SECS", "1")
            .env("RUST_LOG", log_filter)
            // The server's own statement counter (`GET /debug/statements`), read around each
            // row. It makes sqlx build one log event per statement: a small cost that the
            // rows' CPU figures include.
            .env("SIGNIN_COUNT_STATEMENTS", "1")
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("could not start {}", binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let base_url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("signin-server listening on ") {
                    return Ok(format!("{}/", url.trim_end_matches('/')));
                }
            }
            bail!(
                "the server stopped before listening (see {}/server.log)",
                dir.display()
            )
        })
        .await
        .context("the server did not start listening within 60 s")??;
        // Keep draining stdout so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Server {
            child,
            pid,
            base_url,
            app: std::sync::Arc::new(App {
                authorization: format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(credential)
                ),
            }),
            links: Vec::new(),
        })
    }

    /// Adds `n` users and a registration link for each, with the server's admin commands on
    /// the same database (the running server serves them at once), 16 at a time.
    pub async fn add_users(&mut self, binary: &Path, database: &str, n: usize) -> Result<()> {
        let run = std::process::id();
        let upns: Vec<String> = (0..n)
            .map(|i| format!("load{i}-{run}@contoso.test"))
            .collect();
        for chunk in upns.chunks(16) {
            let mut tasks = Vec::new();
            for upn in chunk {
                let (binary, database, upn) = (binary.to_owned(), database.to_owned(), upn.clone());
                let url = self.base_url.clone();
                tasks.push(tokio::spawn(async move {
                    let add = ["user", "add", "--upn", &upn, "--name", "Load User"];
                    admin(&binary, &database, &add).await?;
                    let link = ["registration-link", "--upn", &upn, "--server-url", &url];
                    let link = admin(&binary, &database, &link).await?.trim().to_owned();
                    EnrollmentUrl::parse(&link).context("the server made an unreadable link")?;
                    anyhow::Ok((upn, link))
                }));
            }
            for t in tasks {
                self.links.push(t.await??);
            }
        }
        Ok(())
    }

    /// User + system CPU time of the server process so far, in seconds.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the command name (which is in parentheses and may hold spaces).
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("unreadable /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // SAFETY: sysconf has no preconditions.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Ok(ticks as f64 / per_second.max(1) as f64)
    }

    /// SQL statements the server has run so far, from its own counter.
    pub async fn statements(&self) -> Result<u64> {
        let url = format!("{}debug/statements", self.base_url);
        let resp = reqwest::get(&url).await?.error_for_status()?;
        resp.text()
            .await?
            .trim()
            .parse()
            .context("the server's statement count")
    }

    /// Write units the server committed so far and the commits they took (`/debug/commits`);
    /// `None` from a server without group commit (an older build).
    pub async fn commits(&self) -> Result<Option<(u64, u64)>> {
        let url = format!("{}debug/commits", self.base_url);
        let resp = reqwest::get(&url).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = resp.error_for_status()?.text().await?;
        let (units, commits) = text
            .trim()
            .split_once(' ')
            .context("the server's commit count")?;
        Ok(Some((units.parse()?, commits.parse()?)))
    }

    /// Resident set size, KiB.
    pub fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .context("no VmRSS")?
            .parse()
            .context("VmRSS")
    }

    pub async fn stop(mut self) -> Result<()> {
        // SIGTERM: the server shuts down gracefully.
        // SAFETY: kill with a pid we spawned.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// `signin-server --database DATABASE admin ARGS…`; its standard output.
async fn admin(binary: &Path, database: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(binary)
        .args(["--database", database, "admin"])
        .args(args)
        .output()
        .await
        .with_context(|| format!("could not run {}", binary.display()))?;
    if !out.status.success() {
        bail!(
            "admin {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}
