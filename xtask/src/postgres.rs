//! The PostgreSQL pass of `cargo xtask test`: a throwaway PostgreSQL cluster on 127.0.0.1 under
//! `target/postgres/` (initdb + pg_ctl; as root, run as the `postgres` user), then the domain's,
//! the server's and the end-to-end suites again with `TEST_DATABASE_URL` pointing at it (each test creates
//! its own database), plus the two-instance tests (`e2e-tests` feature `postgres-tests`).
//! The cluster is stopped and left on disk for inspection (`target/postgres/log`); the next run
//! deletes it. Needs the Debian `postgresql` server binaries (the install step installs them).
//!
//! The test binaries are the ones the shared workspace build made ([`crate::builds`]): the
//! SQLite pass already built them with feature `e2e-tests/postgres-tests`, so this pass only runs.
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::builds::Workspace;
use crate::run;

/// The packages whose tests run again on PostgreSQL: the domain (its store), the server and the
/// end-to-end suites.
const PACKAGES: [&str; 3] = ["signin-domain", "signin-server", "e2e-tests"];

pub fn test_on_postgres(workspace: &Workspace) -> Result<()> {
    crate::system::ensure(&[crate::system::Need::Postgres])?;
    let binaries: Vec<(PathBuf, PathBuf)> = workspace
        .test_binaries()
        .filter(|a| PACKAGES.contains(&a.package.as_str()))
        .map(|a| (a.executable.clone(), a.manifest_dir.clone()))
        .collect();
    if binaries.len() < 4 {
        bail!("expected the domain's, the server's and the end-to-end test binaries, found {binaries:?}");
    }
    let cluster = Cluster::start_in("postgres")?;
    println!("xtask: PostgreSQL cluster on 127.0.0.1:{}", cluster.port);
    for (exe, dir) in &binaries {
        println!("xtask: {} (TEST_DATABASE_URL=postgres)", exe.display());
        run(Command::new(exe)
            .current_dir(dir)
            .env("TEST_DATABASE_URL", cluster.url()))?;
    }
    Ok(())
}

/// A throwaway cluster (fsync off: for tests and benchmarks only), stopped on drop.
pub(crate) struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    as_postgres_user: bool,
    pub port: u16,
    password: String,
}

impl Cluster {
    /// A fresh cluster in `target/<name>` (deleted first if it exists).
    pub(crate) fn start_in(name: &str) -> Result<Self> {
        let bin = crate::system::server_bin_dir()?;
        let dir = std::env::current_dir()?.join("target").join(name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let password = random_hex(16)?;
        std::fs::write(dir.join("pwfile"), format!("{password}\n"))?;
        // PostgreSQL refuses to run as root.
        let as_postgres_user = crate::system::is_root();
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let mut cluster = Cluster {
            bin,
            dir,
            as_postgres_user,
            port: 0,
            password,
        };
        run(cluster
            .pg("initdb")
            .arg("-D")
            .arg(cluster.dir.join("data"))
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8"])
            .args(["--no-locale", "--no-sync", "--no-instructions"])
            .arg(format!("--pwfile={}", cluster.dir.join("pwfile").display()))
            .stdout(std::process::Stdio::null()))
        .context("initdb")?;
        // A free port can be taken between our probe and the server's bind: try a few.
        let mut last = None;
        for _ in 0..3 {
            cluster.port = free_port()?;
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='' \
                 -c max_connections=200 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off",
                cluster.port
            );
            let started = run(cluster
                .pg("pg_ctl")
                .arg("-D")
                .arg(cluster.dir.join("data"))
                .arg("-l")
                .arg(cluster.dir.join("log"))
                .args(["-w", "-t", "60", "-o", &options, "start"]));
            match started {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        let log = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
        Err(last.unwrap_or_else(|| anyhow::anyhow!("pg_ctl start failed")))
            .with_context(|| format!("PostgreSQL did not start; its log:\n{log}"))
    }

    pub(crate) fn url(&self) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        )
    }

    fn pg(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = self
                .pg("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "fast", "-w", "stop"])
                .stdout(std::process::Stdio::null())
                .status();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
