//! What the checks need from the machine itself: Debian packages (apt), the rustfmt and clippy
//! rustup components, and root for apt and the Swift chroot.
//!
//! Every check looks at the exact file or command the suite later uses (so a package that is
//! "installed" but whose files are gone counts as missing), `apt-get update` runs once and only
//! when something is missing, and a package that `apt-get install` leaves missing is reinstalled
//! once. Not root: `sudo -n` when it works, else a clear error naming the apt-get command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::run;

/// One thing a suite needs from the system, with the Debian package that provides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// `cc` (ring and the bundled SQLite compile C; rustc links with it) and `make` (jemalloc).
    CCompiler,
    PkgConfig,
    /// `java` for kotlinc and the JUnit run.
    Java,
    /// `npm`, which installs kotlinc into target/tools.
    Npm,
    Jna,
    Junit,
    Debootstrap,
    /// `/usr/bin/chromium` (tests/tests/browser.rs).
    Chromium,
    /// `/usr/bin/chromedriver` (tests/tests/browser.rs).
    Chromedriver,
    /// The server binaries `xtask`'s PostgreSQL pass runs (see [`server_bin_dir`]).
    Postgres,
    /// Apache httpd and mod_auth_openidc (tests/tests/mod_auth_openidc.rs runs `apache2` in
    /// the foreground on its own configuration; no system service is used).
    ModAuthOpenidc,
}

impl Need {
    /// Everything `cargo xtask test` needs.
    pub const ALL: [Need; 11] = [
        Need::CCompiler,
        Need::PkgConfig,
        Need::Java,
        Need::Npm,
        Need::Jna,
        Need::Junit,
        Need::Debootstrap,
        Need::Chromium,
        Need::Chromedriver,
        Need::Postgres,
        Need::ModAuthOpenidc,
    ];

    fn packages(self) -> &'static [&'static str] {
        match self {
            Need::CCompiler => &["build-essential"],
            Need::PkgConfig => &["pkg-config"],
            Need::Java => &["default-jre-headless"],
            Need::Npm => &["npm"],
            Need::Jna => &["libjna-java"],
            Need::Junit => &["junit4", "libhamcrest-java"],
            Need::Debootstrap => &["debootstrap"],
            // Without recommends (they pull udev, avahi, printing, ... and upgrade systemd);
            // the one recommended package the screenshots want is the fonts.
            Need::Chromium => &["chromium", "fonts-liberation"],
            Need::Chromedriver => &["chromium-driver"],
            Need::Postgres => &["postgresql"],
            // `apache2-bin` is the server and its modules without `apache2`'s configuration
            // and service: nothing is started or enabled on the machine (the suite runs its
            // own `apache2` on its own configuration).
            Need::ModAuthOpenidc => &["apache2-bin", "libapache2-mod-auth-openidc"],
        }
    }

    /// What is checked, for messages.
    fn what(self) -> &'static str {
        match self {
            Need::CCompiler => "cc + make",
            Need::PkgConfig => "pkg-config",
            Need::Java => "java",
            Need::Npm => "npm",
            Need::Jna => "/usr/share/java/jna.jar",
            Need::Junit => "/usr/share/java/junit4.jar + hamcrest.jar",
            Need::Debootstrap => "debootstrap",
            Need::Chromium => "/usr/bin/chromium",
            Need::Chromedriver => "/usr/bin/chromedriver",
            Need::Postgres => "PostgreSQL server (/usr/lib/postgresql/<version>/bin)",
            Need::ModAuthOpenidc => {
                "/usr/sbin/apache2 + /usr/lib/apache2/modules/mod_auth_openidc.so"
            }
        }
    }

    pub fn present(self) -> bool {
        match self {
            // make: jemalloc (the server's allocator) is built from source.
            Need::CCompiler => on_path("cc") && on_path("make"),
            Need::PkgConfig => on_path("pkg-config"),
            Need::Java => on_path("java"),
            Need::Npm => on_path("npm"),
            Need::Jna => Path::new("/usr/share/java/jna.jar").is_file(),
            Need::Junit => {
                Path::new("/usr/share/java/junit4.jar").is_file()
                    && Path::new("/usr/share/java/hamcrest.jar").is_file()
            }
            Need::Debootstrap => debootstrap_path().is_some(),
            Need::Chromium => executable(Path::new("/usr/bin/chromium")),
            Need::Chromedriver => executable(Path::new("/usr/bin/chromedriver")),
            // The same lookup the PostgreSQL pass uses (never `initdb` on PATH: a stray
            // /usr/local/bin/initdb may point into a removed /usr/lib/postgresql/NN). As root
            // the cluster runs as the `postgres` user, which the package creates.
            Need::Postgres => server_bin_dir().is_ok() && (!is_root() || user_exists("postgres")),
            // The binary and every module the suite loads (apache2-bin ships all but the last).
            Need::ModAuthOpenidc => {
                executable(Path::new(APACHE2))
                    && APACHE2_MODULES
                        .iter()
                        .all(|m| Path::new(APACHE2_MODULE_DIR).join(m).is_file())
            }
        }
    }

    /// Packages to `apt-get install --reinstall` when a plain install left this missing (dpkg
    /// says installed, but the files were removed). For PostgreSQL that is the versioned server
    /// package behind the `postgresql` metapackage, and postgresql-common (creates the user).
    fn reinstall(self) -> Vec<String> {
        match self {
            Need::Postgres => {
                let mut p = vec!["postgresql-common".to_owned()];
                p.extend(metapackage_depends("postgresql", "postgresql-"));
                p
            }
            // `cc` is an alternatives link set up by gcc.
            Need::CCompiler => vec![
                "gcc".to_owned(),
                "make".to_owned(),
                "build-essential".to_owned(),
            ],
            Need::Java => vec!["default-jre-headless".to_owned()],
            other => other.packages().iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Apache httpd, as tests/tests/mod_auth_openidc.rs runs it.
const APACHE2: &str = "/usr/sbin/apache2";
const APACHE2_MODULE_DIR: &str = "/usr/lib/apache2/modules";
/// The modules tests/tests/mod_auth_openidc.rs loads.
const APACHE2_MODULES: [&str; 8] = [
    "mod_mpm_prefork.so",
    "mod_authn_core.so",
    "mod_authz_core.so",
    "mod_authz_user.so",
    "mod_cgi.so",
    "mod_proxy.so",
    "mod_proxy_http.so",
    "mod_auth_openidc.so",
];

/// Installs whatever of `needs` is missing; nothing (not even `apt-get update`) when all are present.
pub fn ensure(needs: &[Need]) -> Result<()> {
    let missing: Vec<Need> = needs.iter().copied().filter(|n| !n.present()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if missing.contains(&Need::Postgres) && std::env::var_os("PG_BIN").is_some() {
        // An explicit PG_BIN is never "fixed" by installing another PostgreSQL.
        server_bin_dir()?;
    }
    let mut packages: Vec<String> = Vec::new();
    for n in &missing {
        for p in n.packages() {
            if !packages.iter().any(|q| q == p) {
                packages.push(p.to_string());
            }
        }
    }
    let what: Vec<&str> = missing.iter().map(|n| n.what()).collect();
    println!("xtask: missing {}", what.join(", "));
    println!("xtask: apt-get install {}", packages.join(" "));
    let apt = Apt::new(&packages)?;
    apt.update();
    apt.install(&packages, false)?;
    let still: Vec<Need> = missing.iter().copied().filter(|n| !n.present()).collect();
    if !still.is_empty() {
        let mut again: Vec<String> = Vec::new();
        for n in &still {
            for p in n.reinstall() {
                if !again.contains(&p) {
                    again.push(p);
                }
            }
        }
        println!(
            "xtask: still missing after install: {}; apt-get install --reinstall {}",
            still
                .iter()
                .map(|n| n.what())
                .collect::<Vec<_>>()
                .join(", "),
            again.join(" ")
        );
        apt.install(&again, true)?;
    }
    let still: Vec<&str> = missing
        .iter()
        .filter(|n| !n.present())
        .map(|n| n.what())
        .collect();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    Ok(())
}

/// `rustfmt` and `clippy` (the lint step), from rustup when missing.
pub fn ensure_rust_components() -> Result<()> {
    let works = |sub: &str| {
        Command::new("cargo")
            .args([sub, "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("fmt") && works("clippy") {
        return Ok(());
    }
    println!("xtask: rustup component add rustfmt clippy");
    run(Command::new("rustup").args(["component", "add", "rustfmt", "clippy"]))
        .context("installing the rustfmt and clippy components (is rustup on PATH?)")
}

struct Apt {
    sudo: bool,
}

impl Apt {
    /// Root, or passwordless sudo; otherwise an error that says what to run.
    fn new(packages: &[String]) -> Result<Apt> {
        match privilege() {
            Some(sudo) => Ok(Apt { sudo }),
            None => bail!(
                "these Debian packages are missing and installing them needs root (not root, and \
                 `sudo -n` is not available). Run as root:\n\n    \
                 apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y {}\n\n\
                 (or the same through `sudo`), then run the command again",
                packages.join(" ")
            ),
        }
    }

    fn command(&self) -> Command {
        let mut c = if self.sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            c
        } else {
            Command::new("apt-get")
        };
        // Wait for a concurrent apt/dpkg (unattended-upgrades) instead of failing at once.
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-o", "DPkg::Lock::Timeout=600"]);
        c
    }

    /// One `apt-get update` per install. A failing third-party source is not fatal here: the
    /// install that follows fails clearly if the package lists really are unusable.
    fn update(&self) {
        if let Err(e) = run(self.command().args(["update", "-qq"])) {
            eprintln!("xtask: warning: apt-get update failed ({e:#}); installing anyway");
        }
    }

    fn install(&self, packages: &[String], reinstall: bool) -> Result<()> {
        let mut c = self.command();
        c.args(["install", "-y", "-q", "--no-install-recommends"]);
        if reinstall {
            c.arg("--reinstall");
        }
        run(c.args(packages))
    }
}

/// `Some(false)` as root, `Some(true)` when passwordless sudo works, `None` otherwise.
fn privilege() -> Option<bool> {
    if is_root() {
        return Some(false);
    }
    let sudo_works = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    sudo_works.then_some(true)
}

/// `program` as root: itself when we are root, through `sudo -n` otherwise (mount, chroot,
/// debootstrap for the Swift suite). Fails with a clear message when neither works.
pub fn as_root(program: &str) -> Result<Command> {
    match privilege() {
        Some(false) => Ok(Command::new(program)),
        Some(true) => {
            let mut c = Command::new("sudo");
            c.args(["-n", program]);
            Ok(c)
        }
        None => bail!(
            "`{program}` needs root (the Swift suite's trixie chroot: debootstrap, mount, chroot); \
             run as root or with passwordless sudo"
        ),
    }
}

/// Effective uid 0 (from /proc, so no libc call is needed).
pub fn is_root() -> bool {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(uids) = status.lines().find_map(|l| l.strip_prefix("Uid:")) {
            return uids.split_whitespace().nth(1) == Some("0");
        }
    }
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn user_exists(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    // `metadata` follows symlinks: a dangling link is not a program.
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| executable(p))
}

fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

/// debootstrap lives in /usr/sbin, which is not on every user's PATH.
pub fn debootstrap_path() -> Option<PathBuf> {
    find_on_path("debootstrap").or_else(|| {
        let p = Path::new("/usr/sbin/debootstrap");
        executable(p).then(|| p.to_path_buf())
    })
}

/// The `Depends:` of a metapackage that start with `prefix` (`postgresql` → `postgresql-15`).
fn metapackage_depends(package: &str, prefix: &str) -> Vec<String> {
    let Ok(out) = Command::new("apt-cache")
        .args(["depends", package])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|d| d.trim().to_owned())
        .filter(|d| d.starts_with(prefix) && !d.contains('<'))
        .collect()
}

/// The programs the cluster needs from a server bin directory.
const SERVER_PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

fn has_server_programs(bin: &Path) -> bool {
    SERVER_PROGRAMS.iter().all(|p| bin.join(p).is_file())
}

/// `/usr/lib/postgresql/<newest>/bin` (Debian) that holds initdb, pg_ctl and postgres, or
/// `$PG_BIN`. PATH is not consulted: an `initdb` there (e.g. a /usr/local/bin symlink into a
/// removed /usr/lib/postgresql/NN, or a client-only install) says nothing about the server.
/// The install step checks with this same function.
pub fn server_bin_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        let dir = PathBuf::from(dir);
        if !has_server_programs(&dir) {
            bail!(
                "PG_BIN={} does not hold {}",
                dir.display(),
                SERVER_PROGRAMS.join(", ")
            );
        }
        return Ok(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let bin = e.path().join("bin");
                    has_server_programs(&bin).then_some((v, bin))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql \
             (apt-get install -y postgresql, or set PG_BIN)"
        ),
    }
}
