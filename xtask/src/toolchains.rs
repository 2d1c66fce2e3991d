//! Installs what the checks need, idempotently, caching under `target/` (see
//! ../shared/ENVIRONMENT.md for the recipes). [`install_all`] is the first step of
//! `cargo xtask test` and all of `cargo xtask install-toolchains`:
//! - Debian packages on the host ([`crate::system`]): C compiler, pkg-config, Java, npm, JNA,
//!   JUnit 4, debootstrap, Chromium + chromedriver, the PostgreSQL server binaries, Apache httpd
//!   with mod_auth_openidc;
//! - the rustfmt and clippy rustup components;
//! - npm: `kotlin-compiler` into `target/tools`; `openid-client` (the relying party of the
//!   OpenID Connect end-to-end test, `tests/oidc-rp/`) into `target/oidc-rp` and `axe-core` (the
//!   accessibility rules of the browser suite, `tests/axe/`) into `target/axe`, from their lock files;
//! - a Debian trixie chroot with Swift 6 (`swiftlang`) and OpenSSL's libcrypto (the P-256 the
//!   Swift tests use to play the Secure Enclave) in `target/swiftroot`.
//!
//! [`Chroot`] mounts `/proc` and the project into the chroot and always unmounts them on drop,
//! also when the suite fails; stale mounts from an interrupted run are removed first.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::run;
use crate::system::{self, as_root, Need};

pub const KOTLIN_VERSION: &str = "2.4.20";
/// Debian packages installed in the trixie chroot.
const CHROOT_APT: &[&str] = &[
    "swiftlang",
    "libc6-dev",
    "libstdc++-14-dev",
    "libssl-dev",
    "pkg-config",
];
/// What the Kotlin (JVM) suite needs from the host.
pub const KOTLIN_NEEDS: &[Need] = &[Need::Java, Need::Npm, Need::Jna, Need::Junit];

pub fn kotlin_home() -> PathBuf {
    PathBuf::from("target/tools/node_modules/kotlin-compiler")
}

pub fn swift_root() -> PathBuf {
    PathBuf::from("target/swiftroot")
}

/// Everything `cargo xtask test` needs, each part skipped when already present.
pub fn install_all() -> Result<()> {
    system::ensure(&Need::ALL)?;
    system::ensure_rust_components()?;
    install_kotlin()?;
    install_oidc_rp()?;
    install_axe()?;
    install_swift_chroot()
}

/// Where `tests/tests/oidc_rp.rs` runs `tests/oidc-rp/rp.mjs` (its `node_modules` are here).
pub fn oidc_rp_dir() -> PathBuf {
    PathBuf::from("target/oidc-rp")
}

/// `npm ci` of `tests/oidc-rp/` (openid-client, pinned by its package-lock.json) into
/// `target/oidc-rp`; skipped when that lock file is already installed there.
pub fn install_oidc_rp() -> Result<()> {
    install_npm_lock(Path::new("tests/oidc-rp"), &oidc_rp_dir(), "openid-client")
}

/// Where the browser suite (`tests/tests/browser.rs`) reads `axe-core/axe.min.js` from.
pub fn axe_dir() -> PathBuf {
    PathBuf::from("target/axe")
}

/// `npm ci` of `tests/axe/` (axe-core, pinned by its package-lock.json) into `target/axe`;
/// skipped when that lock file is already installed there.
pub fn install_axe() -> Result<()> {
    install_npm_lock(Path::new("tests/axe"), &axe_dir(), "axe-core")
}

/// `npm ci` of the npm project in `source` (its package.json and package-lock.json) into
/// `dir`, unless `dir` already holds that lock file and `package` is installed.
fn install_npm_lock(source: &Path, dir: &Path, package: &str) -> Result<()> {
    let lock = std::fs::read_to_string(source.join("package-lock.json"))
        .with_context(|| format!("{}/package-lock.json", source.display()))?;
    let installed = dir
        .join(format!("node_modules/{package}/package.json"))
        .exists()
        && std::fs::read_to_string(dir.join("package-lock.json")).is_ok_and(|l| l == lock);
    if installed {
        return Ok(());
    }
    println!(
        "xtask: installing {} ({package}) into {}",
        source.display(),
        dir.display()
    );
    std::fs::create_dir_all(dir)?;
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), dir.join(file))
            .with_context(|| format!("copying {}/{file}", source.display()))?;
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir))
}

pub fn install_kotlin() -> Result<()> {
    let kotlinc = kotlin_home().join("bin/kotlinc");
    let version_file = kotlin_home().join("package.json");
    if kotlinc.exists()
        && std::fs::read_to_string(&version_file)
            .is_ok_and(|s| s.contains(&format!("\"version\": \"{KOTLIN_VERSION}\"")))
    {
        return Ok(());
    }
    println!("xtask: installing kotlin-compiler@{KOTLIN_VERSION} into target/tools");
    std::fs::create_dir_all("target/tools")?;
    run(Command::new("npm").args([
        "install",
        "--no-audit",
        "--no-fund",
        "--prefix",
        "target/tools",
        &format!("kotlin-compiler@{KOTLIN_VERSION}"),
    ]))
}

/// Written last, so an interrupted install is redone.
fn chroot_marker() -> PathBuf {
    swift_root().join("etc/phonesignin-toolchain")
}

fn chroot_marker_text() -> String {
    format!("trixie {}\n", CHROOT_APT.join(" "))
}

pub fn install_swift_chroot() -> Result<()> {
    let root = swift_root();
    if std::fs::read_to_string(chroot_marker()).is_ok_and(|s| s == chroot_marker_text()) {
        return Ok(());
    }
    system::ensure(&[Need::Debootstrap])?;
    let debootstrap = system::debootstrap_path().context("debootstrap not found")?;
    // debootstrap's own completion marker: a run killed half-way leaves a root with apt-get
    // present but the base system unconfigured, which no later step can repair.
    let bootstrapped = root.join("etc/phonesignin-debootstrap-done");
    if !bootstrapped.exists() {
        let mirror = apt_mirror()?;
        println!(
            "xtask: debootstrap trixie into {} from {mirror}",
            root.display()
        );
        if root.exists() {
            // A half-made chroot from an interrupted run: start over (never across a mount).
            Chroot::cleanup_stale(&root)?;
            run(as_root("rm")?.args(["-rf", "--one-file-system"]).arg(&root))?;
        }
        std::fs::create_dir_all(root.parent().expect("target/swiftroot"))?;
        run(as_root(&debootstrap.display().to_string())?
            .args(["--variant=minbase", "trixie"])
            .arg(&root)
            .arg(&mirror))?;
        write_as_root(&bootstrapped, "trixie\n")?;
    }
    run(as_root("cp")?
        .arg("/etc/resolv.conf")
        .arg(root.join("etc/resolv.conf")))
    .context("copying resolv.conf")?;
    let chroot = Chroot::enter(&root, false)?;
    // `dpkg --configure -a` first: an earlier run interrupted mid-install leaves dpkg half-done,
    // and apt refuses to continue until it is finished.
    chroot.run(&format!(
        "DEBIAN_FRONTEND=noninteractive dpkg --configure -a && apt-get update -qq && \
         DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {}",
        CHROOT_APT.join(" ")
    ))?;
    drop(chroot);
    write_as_root(&chroot_marker(), &chroot_marker_text())?;
    Ok(())
}

/// Writes a file inside the (root-owned) chroot: directly as root, else through `sudo -n tee`.
fn write_as_root(path: &Path, text: &str) -> Result<()> {
    if system::is_root() {
        return std::fs::write(path, text).with_context(|| format!("writing {}", path.display()));
    }
    use std::io::Write;
    let mut child = as_root("tee")?
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("sudo -n tee")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())?;
    if !child.wait()?.success() {
        bail!("writing {} failed", path.display());
    }
    Ok(())
}

/// The machine's own Debian mirror (never a hard-coded host).
fn apt_mirror() -> Result<String> {
    if let Ok(s) = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources") {
        if let Some(uri) = s.lines().find_map(|l| l.strip_prefix("URIs:")) {
            if let Some(first) = uri.split_whitespace().next() {
                return Ok(first.to_owned());
            }
        }
    }
    if let Ok(s) = std::fs::read_to_string("/etc/apt/sources.list") {
        for l in s.lines() {
            let mut w = l.split_whitespace();
            if w.next() == Some("deb") {
                if let Some(url) = w.find(|x| x.starts_with("http")) {
                    return Ok(url.to_owned());
                }
            }
        }
    }
    bail!(
        "no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
    )
}

/// `/proc` (and optionally the project, at `/src`) mounted into the chroot for as long as this
/// value lives. Drop unmounts in reverse order, whatever happened in between.
pub struct Chroot {
    root: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Chroot {
    pub fn enter(root: &Path, with_project: bool) -> Result<Chroot> {
        let root = std::fs::canonicalize(root)?;
        Self::cleanup_stale(&root)?;
        let mut c = Chroot {
            root: root.clone(),
            mounts: Vec::new(),
        };
        let proc_dir = root.join("proc");
        std::fs::create_dir_all(&proc_dir)?;
        run(as_root("mount")?
            .args(["-t", "proc", "proc"])
            .arg(&proc_dir))?;
        c.mounts.push(proc_dir);
        if with_project {
            let src = root.join("src");
            std::fs::create_dir_all(&src)?;
            // Plain --bind (not --rbind): the chroot itself lives inside the project's target/.
            run(as_root("mount")?
                .arg("--bind")
                .arg(std::env::current_dir()?)
                .arg(&src))?;
            c.mounts.push(src);
        }
        Ok(c)
    }

    /// Runs `sh -c script` inside the chroot.
    pub fn run(&self, script: &str) -> Result<()> {
        run(&mut self.command(script)?)
    }

    /// `chroot ROOT sh -c script`, as root.
    pub fn command(&self, script: &str) -> Result<Command> {
        let mut c = as_root("chroot")?;
        c.arg(&self.root).args(["sh", "-c", script]);
        Ok(c)
    }

    /// Unmounts whatever is still mounted under `root` (an earlier run that was killed).
    pub fn cleanup_stale(root: &Path) -> Result<()> {
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut stale: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| Path::new(m).starts_with(&root))
            .collect();
        stale.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in stale {
            eprintln!("xtask: unmounting stale {m}");
            if let Ok(mut c) = as_root("umount") {
                let _ = c.arg("-l").arg(m).status();
            }
        }
        Ok(())
    }
}

impl Chroot {
    /// Processes started inside this chroot that are still running (e.g. a test server whose
    /// test process died): they are ours, and they would keep the bind mount busy.
    fn leftover_processes(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                let zombie = std::fs::read_to_string(e.path().join("stat")).is_ok_and(|st| {
                    st.rsplit(')')
                        .next()
                        .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                });
                if !zombie
                    && std::fs::read_link(e.path().join("root")).is_ok_and(|r| r == self.root)
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for Chroot {
    fn drop(&mut self) {
        for signal in ["-TERM", "-KILL"] {
            let pids = self.leftover_processes();
            if pids.is_empty() {
                break;
            }
            eprintln!(
                "xtask: sending SIG{} to leftover chroot process(es) {pids:?}",
                &signal[1..]
            );
            for pid in pids {
                if let Ok(mut c) = as_root("kill") {
                    let _ = c.arg(signal).arg(pid.to_string()).status();
                }
            }
            for _ in 0..30 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if self.leftover_processes().is_empty() {
                    break;
                }
            }
        }
        for m in self.mounts.drain(..).rev() {
            let ok =
                as_root("umount").is_ok_and(|mut c| c.arg(&m).status().is_ok_and(|s| s.success()));
            if !ok {
                // Busy (a process still running inside): detach lazily so nothing stays behind.
                if let Ok(mut c) = as_root("umount") {
                    let _ = c.arg("-l").arg(&m).status();
                }
            }
        }
    }
}
