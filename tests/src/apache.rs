//! Apache httpd (Debian's `apache2`) as a test's own process: `apache2 -DFOREGROUND -f` a
//! configuration the test writes into a temporary directory, which is also its `ServerRoot`,
//! document root, pid file, runtime directory and error log. Nothing of the system's Apache is
//! used or touched (no `/etc/apache2`, no service, no system port): a package's postinst may
//! have started the system service, and this one only ever listens on a free loopback port.
//!
//! The process is unprivileged: as root the test starts it as `nobody` (and hands it the
//! directory); otherwise it runs as the test's own user. It runs in its own process group,
//! which [`Apache`]'s `Drop` ends — the test passing, failing or panicking alike: `SIGTERM`
//! first (Apache stops its children and cleans up), `SIGKILL` to the group if it lingers.
//!
//! Needs `/usr/sbin/apache2` and the modules in [`MODULE_DIR`] (`cargo xtask test` installs
//! `apache2-bin` and `libapache2-mod-auth-openidc`). Without them a test fails: it never skips.
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub const APACHE2: &str = "/usr/sbin/apache2";
pub const MODULE_DIR: &str = "/usr/lib/apache2/modules";
/// `nobody` and `nogroup` on Debian.
const NOBODY: u32 = 65534;

/// A file the site needs, relative to the server root (CGI scripts are executable).
pub struct SiteFile<'a> {
    pub path: &'a str,
    pub contents: &'a str,
    pub executable: bool,
}

/// A running `apache2`; ends with its process group when dropped.
pub struct Apache {
    pub port: u16,
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub base: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Apache {
    /// Writes `files` and the configuration `config(server_root)` (a complete httpd.conf
    /// listening on 127.0.0.1:`port`, see [`Apache::preamble`]) and starts Apache on it;
    /// returns once it answers on the port (e.g. [`crate::chromium::free_port`]).
    pub fn start(
        port: u16,
        config: impl FnOnce(&Path) -> String,
        files: &[SiteFile<'_>],
    ) -> Result<Apache> {
        if !Path::new(APACHE2).exists() {
            bail!(
                "{APACHE2} is missing: `apt-get install -y apache2-bin libapache2-mod-auth-openidc` \
                 (cargo xtask test installs them)"
            );
        }
        let dir = tempfile::Builder::new().prefix("apache2-").tempdir()?;
        let root = dir.path();
        for f in files {
            let path = root.join(f.path);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, f.contents)?;
            let mode = if f.executable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        }
        std::fs::write(root.join("httpd.conf"), config(root))?;
        let as_nobody = effective_uid() == Some(0);
        if as_nobody {
            hand_over(root, NOBODY)?;
        }
        let mut cmd = Command::new(APACHE2);
        cmd.arg("-DFOREGROUND")
            // What `cargo xtask test` looks for when it checks that no process is left
            // behind (xtask/src/leftovers.rs), and not a system Apache's.
            .arg("-DE2E_TESTS")
            .arg("-d")
            .arg(root)
            .arg("-f")
            .arg(root.join("httpd.conf"))
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            // mod_auth_openidc names its mutexes after the temporary directory.
            .env("TMPDIR", root)
            .env("LANG", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("stderr.log"))?)
            // Its own process group, which its children join: `Drop` ends them all.
            .process_group(0);
        if as_nobody {
            // Not root: Apache's parent never holds privileges it would drop later.
            cmd.uid(NOBODY).gid(NOBODY);
        }
        let child = cmd.spawn().context("starting apache2")?;
        let mut apache = Apache {
            port,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            child,
        };
        apache.wait_until_listening()?;
        Ok(apache)
    }

    /// The directives every configuration starts with: server root, the loopback port, pid
    /// file, runtime directory, mutexes and logs in the temporary directory, the prefork MPM
    /// (one process per request: the CGI module needs no daemon) and the modules `modules`
    /// (file names in [`MODULE_DIR`], e.g. `mod_auth_openidc.so`).
    pub fn preamble(root: &Path, port: u16, modules: &[(&str, &str)]) -> String {
        let root = root.display();
        let mut conf = format!(
            "ServerRoot \"{root}\"\n\
             ServerName 127.0.0.1:{port}\n\
             Listen 127.0.0.1:{port}\n\
             PidFile \"{root}/apache2.pid\"\n\
             DefaultRuntimeDir \"{root}\"\n\
             Mutex file:{root} default\n\
             ErrorLog \"{root}/error.log\"\n\
             LogLevel warn\n\
             LoadModule mpm_prefork_module {MODULE_DIR}/mod_mpm_prefork.so\n\
             StartServers 2\n\
             MinSpareServers 1\n\
             MaxSpareServers 4\n\
             MaxRequestWorkers 8\n"
        );
        for (name, file) in modules {
            conf.push_str(&format!("LoadModule {name} {MODULE_DIR}/{file}\n"));
        }
        conf
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Apache's error log (and what it printed before it had one), for failure messages.
    pub fn error_log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.root().join(name)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }

    fn wait_until_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("apache2 exited ({status}):\n{}", self.error_log());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("apache2 did not listen in time:\n{}", self.error_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Apache {
    /// `SIGTERM` to the group (the parent stops its children and removes what it created),
    /// then `SIGKILL` to whatever is left after a few seconds.
    fn drop(&mut self) {
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Children that outlived the parent, or a parent that ignored SIGTERM.
        self.signal_group("-KILL");
        let _ = self.child.wait();
    }
}

/// The effective uid of this process (from /proc, without libc).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Gives `root` and everything in it to `uid` (same gid), for an Apache that runs as `uid`.
fn hand_over(root: &Path, uid: u32) -> Result<()> {
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        std::os::unix::fs::chown(&path, Some(uid), Some(uid))
            .with_context(|| format!("chown {}", path.display()))?;
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}
