//! Network namespaces, links and processes of one lab run, all named and removed by name and pid.
//!
//! Contract:
//! - Every object this module creates carries a [`RunPrefix`] (`flb` + 4 random hex digits), so two
//!   runs (or two parallel tests) never collide and a later [`sweep`] can find leftovers by name.
//! - Nothing here touches the root namespace's interfaces, routes or firewall: every `ip`, `sysctl`
//!   and `nft` call runs inside a namespace this run created (`ip netns exec NAME …`), and veth pairs
//!   are created straight inside their two namespaces (`ip link add … netns A type veth peer … netns B`).
//! - Processes are stopped by the pid we recorded (SIGTERM, then SIGKILL after a grace period) — never
//!   by name. Deleting a namespace first stops every process still inside it (`ip netns pids`), so a
//!   deleted namespace leaves no process behind.
//! - Every failure is a [`NetnsError`] that carries the full command line and its stderr.
//!
//! The calls are synchronous (`std::process`): they are short and the harness runs them from tests,
//! benchmarks and the `lab` binary alike; async callers wrap them in `spawn_blocking`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Linux limits interface names to 15 bytes (`IFNAMSIZ` 16 including the NUL).
pub const IFNAME_MAX: usize = 15;

/// Fixed leading letters of every run prefix; [`sweep`] globs start with it.
pub const PREFIX_LEAD: &str = "flb";

/// Where each run keeps its configs, sockets, logs and pid files: `/run/ferrolb-lab/<prefix>/`.
pub const RUN_ROOT: &str = "/run/ferrolb-lab";

/// How long a process gets to exit after SIGTERM before it is sent SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Failures of the commands this module runs; each names the command line (and namespace) involved.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed output that is not UTF-8")]
    NotUtf8 { command: String },
    #[error("`{command}` printed unexpected output: {detail}")]
    Parse { command: String, detail: String },
    #[error("interface name `{name}` is {len} bytes, Linux allows at most {IFNAME_MAX}")]
    NameTooLong { name: String, len: usize },
    #[error("`{prefix}` is not a run prefix (`{PREFIX_LEAD}` followed by 4 lowercase hex digits)")]
    BadPrefix { prefix: String },
    #[error("{what} ({path}): {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
}

/// The run-unique prefix of every namespace and interface name: `flb` + 4 hex digits (7 bytes),
/// which leaves 8 bytes of role suffix within the 15-byte interface-name limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunPrefix(String);

impl RunPrefix {
    /// Longest role suffix an interface name may carry after the prefix.
    pub const MAX_ROLE: usize = IFNAME_MAX - 7;

    /// A fresh random prefix. Randomness comes from std's per-process hasher keys mixed with the pid
    /// and the clock, which is plenty to keep concurrent runs on one machine apart.
    pub fn random() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(since.as_nanos());
        }
        let value = hasher.finish() & 0xffff;
        Self(format!("{PREFIX_LEAD}{value:04x}"))
    }

    /// Parses a prefix given by a user or found in a namespace name.
    pub fn parse(prefix: &str) -> Result<Self, NetnsError> {
        let hex = prefix.strip_prefix(PREFIX_LEAD).unwrap_or("");
        let valid = hex.len() == 4
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(NetnsError::BadPrefix {
                prefix: prefix.to_owned(),
            })
        }
    }

    /// The prefix of a namespace or interface name created by some run, if it has one.
    pub fn of_name(name: &str) -> Option<Self> {
        name.get(..7).and_then(|head| Self::parse(head).ok())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<prefix><role>`, checked against the interface-name limit (namespace names use the same
    /// scheme so one glob finds both).
    pub fn name(&self, role: &str) -> Result<String, NetnsError> {
        let name = format!("{}{role}", self.0);
        if name.len() > IFNAME_MAX {
            return Err(NetnsError::NameTooLong {
                len: name.len(),
                name,
            });
        }
        Ok(name)
    }

    /// This run's directory for configs, sockets, logs and pid files.
    pub fn run_dir(&self) -> PathBuf {
        Path::new(RUN_ROOT).join(&self.0)
    }

    /// Creates the run directory and records the calling process as the run's owner, so that
    /// [`sweep_stale`] of other runs leaves this one alone while the process lives. Call it before
    /// creating the run's first namespace.
    pub fn claim(&self) -> Result<PathBuf, NetnsError> {
        self.write_owner(std::process::id())
    }

    /// Marks the run as owned by no process (a lab left running by `lab up`): only an explicit
    /// [`sweep`] of its prefix removes it.
    pub fn detach(&self) -> Result<PathBuf, NetnsError> {
        self.write_owner(0)
    }

    fn write_owner(&self, pid: u32) -> Result<PathBuf, NetnsError> {
        let dir = self.run_dir();
        let io_err = |what, path: &Path| {
            let path = path.to_owned();
            move |source| NetnsError::Io { what, path, source }
        };
        fs::create_dir_all(&dir).map_err(io_err("creating run directory", &dir))?;
        let owner = dir.join("owner");
        fs::write(&owner, pid.to_string()).map_err(io_err("writing run owner", &owner))?;
        Ok(dir)
    }
}

impl fmt::Display for RunPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A command line kept as argv, displayed shell-like for error messages.
fn display_argv<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| {
            let a = a.as_ref();
            if a.is_empty() || a.contains([' ', '\'', '"', '\t']) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` to completion and returns its stdout; a non-zero exit becomes
/// [`NetnsError::Failed`] carrying the command line and stderr.
pub fn run<S: AsRef<str>>(argv: &[S]) -> Result<String, NetnsError> {
    let command = display_argv(argv);
    let Some((program, args)) = argv.split_first() else {
        return Err(NetnsError::Parse {
            command,
            detail: "empty command line".into(),
        });
    };
    let output = Command::new(program.as_ref())
        .args(args.iter().map(AsRef::as_ref))
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetnsError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    String::from_utf8(output.stdout).map_err(|_| NetnsError::NotUtf8 { command })
}

/// Names of all network namespaces on the machine (`ip netns list`, first column).
pub fn list_namespaces() -> Result<Vec<String>, NetnsError> {
    let out = run(&["ip", "netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// A network namespace this run created (or adopted by name for cleanup). Dropping the handle does
/// not delete the namespace: the owner (the topology) deletes namespaces explicitly, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates the namespace and brings its `lo` up (a namespace starts with `lo` down, which breaks
    /// 127.0.0.1 listeners such as the routers' control APIs).
    pub fn create(name: &str) -> Result<Self, NetnsError> {
        if name.len() > IFNAME_MAX {
            return Err(NetnsError::NameTooLong {
                name: name.to_owned(),
                len: name.len(),
            });
        }
        run(&["ip", "netns", "add", name])?;
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// A handle to an existing namespace, by name (no check is made that it exists).
    pub fn adopt(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `argv` inside the namespace and returns its stdout.
    pub fn exec<S: AsRef<str>>(&self, argv: &[S]) -> Result<String, NetnsError> {
        run(&self.wrap(argv))
    }

    /// `ip …` inside the namespace.
    pub fn ip<S: AsRef<str>>(&self, args: &[S]) -> Result<String, NetnsError> {
        let mut argv = vec!["ip".to_owned()];
        argv.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self.exec(&argv)
    }

    fn wrap<S: AsRef<str>>(&self, argv: &[S]) -> Vec<String> {
        let mut full = vec![
            "ip".to_owned(),
            "netns".to_owned(),
            "exec".to_owned(),
            self.name.clone(),
        ];
        full.extend(argv.iter().map(|a| a.as_ref().to_owned()));
        full
    }

    /// Starts a long-running process inside the namespace, stdout and stderr appended to `log`.
    /// `ip netns exec` execs the program in place, so the child's pid is the program's pid.
    pub fn spawn<S: AsRef<str>>(&self, argv: &[S], log: &Path) -> Result<NsProcess, NetnsError> {
        let full = self.wrap(argv);
        let command = display_argv(&full);
        let open_log = || {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(|source| NetnsError::Io {
                    what: "opening process log",
                    path: log.to_owned(),
                    source,
                })
        };
        let (stdout, stderr) = (open_log()?, open_log()?);
        let child = Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|source| NetnsError::Spawn {
                command: command.clone(),
                source,
            })?;
        Ok(NsProcess {
            pid: child.id(),
            child: Some(child),
            command,
            log: log.to_owned(),
        })
    }

    /// Creates a veth pair with one end (`name`) in this namespace and the other (`peer_name`) in
    /// `peer`, without the pair ever appearing in the root namespace.
    pub fn add_veth(&self, name: &str, peer: &NetNs, peer_name: &str) -> Result<(), NetnsError> {
        for n in [name, peer_name] {
            if n.len() > IFNAME_MAX {
                return Err(NetnsError::NameTooLong {
                    name: n.to_owned(),
                    len: n.len(),
                });
            }
        }
        self.ip(&[
            "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", &peer.name,
        ])?;
        Ok(())
    }

    /// Creates a Linux bridge that behaves like a plain switch: STP off and no forwarding delay so
    /// ports forward at once, and no multicast snooping — with snooping, a port whose host sent its
    /// MLD report before it was attached gets no solicited-node multicast, so its first Neighbor
    /// Solicitations go unanswered for seconds.
    pub fn add_bridge(&self, name: &str) -> Result<(), NetnsError> {
        self.ip(&[
            "link",
            "add",
            name,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        Ok(())
    }

    /// Makes `link` a port of `bridge`.
    pub fn set_master(&self, link: &str, bridge: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "set", link, "master", bridge])?;
        Ok(())
    }

    /// Adds an address in CIDR notation (`192.0.2.11/24`, `2001:db8:2::11/64`). IPv6 addresses are
    /// added with `nodad`: duplicate address detection would hold them tentative for a second and
    /// the lab never assigns a duplicate.
    pub fn add_addr(&self, link: &str, cidr: &str) -> Result<(), NetnsError> {
        if cidr.contains(':') {
            self.ip(&["-6", "addr", "add", cidr, "dev", link, "nodad"])?;
        } else {
            self.ip(&["addr", "add", cidr, "dev", link])?;
        }
        Ok(())
    }

    pub fn set_up(&self, link: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "set", link, "up"])?;
        Ok(())
    }

    pub fn set_down(&self, link: &str) -> Result<(), NetnsError> {
        self.ip(&["link", "set", link, "down"])?;
        Ok(())
    }

    /// Adds a route, e.g. `("198.51.100.64/26", "192.0.2.3")` or `("default", "2001:db8:5::3")`.
    pub fn add_route(&self, dest: &str, via: &str) -> Result<(), NetnsError> {
        let family = if via.contains(':') { "-6" } else { "-4" };
        self.ip(&[family, "route", "add", dest, "via", via])?;
        Ok(())
    }

    /// Replaces a route (adds it if absent): used to switch the routed client between routers.
    pub fn replace_route(&self, dest: &str, via: &str) -> Result<(), NetnsError> {
        let family = if via.contains(':') { "-6" } else { "-4" };
        self.ip(&[family, "route", "replace", dest, "via", via])?;
        Ok(())
    }

    /// Sets a sysctl of this namespace (`net.ipv4.ip_forward`, `net.ipv6.conf.all.forwarding`, …).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        self.exec(&["sysctl", "-q", "-w", &format!("{key}={value}")])?;
        Ok(())
    }

    /// Loads an nftables ruleset (text) into this namespace.
    pub fn nft_apply(&self, ruleset: &str, scratch: &Path) -> Result<(), NetnsError> {
        fs::write(scratch, ruleset).map_err(|source| NetnsError::Io {
            what: "writing nftables ruleset",
            path: scratch.to_owned(),
            source,
        })?;
        self.exec(&["nft", "-f", &scratch.to_string_lossy()])?;
        Ok(())
    }

    /// Pids of every process whose network namespace is this one.
    pub fn pids(&self) -> Result<Vec<u32>, NetnsError> {
        let command = format!("ip netns pids {}", self.name);
        let out = run(&["ip", "netns", "pids", &self.name])?;
        out.split_whitespace()
            .map(|p| {
                p.parse().map_err(|_| NetnsError::Parse {
                    command: command.clone(),
                    detail: format!("`{p}` is not a pid"),
                })
            })
            .collect()
    }

    /// Stops every process inside (SIGTERM, then SIGKILL after the grace) and deletes the namespace.
    /// Deleting a namespace that no longer exists is not an error (cleanup runs on every path).
    pub fn delete(&self) -> Result<(), NetnsError> {
        if !list_namespaces()?.iter().any(|n| n == &self.name) {
            return Ok(());
        }
        let pids = self.pids()?;
        stop_pids(&pids, STOP_GRACE);
        run(&["ip", "netns", "del", &self.name])?;
        Ok(())
    }
}

/// True while `pid` names a live (non-zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name, which may itself contain spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends `signal` (`TERM`, `KILL`) to `pid` with kill(1); a process that is already gone is fine.
fn signal(pid: u32, signal: &str) {
    // The result is ignored on purpose: the only failure that matters (the process still being
    // alive) is checked by the caller through /proc.
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM to every pid, wait up to `grace` for them to exit, then SIGKILL the rest.
pub fn stop_pids(pids: &[u32], grace: Duration) {
    let live: Vec<u32> = pids.iter().copied().filter(|&p| pid_alive(p)).collect();
    for &pid in &live {
        signal(pid, "TERM");
    }
    let deadline = Instant::now() + grace;
    while live.iter().any(|&p| pid_alive(p)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    for &pid in live.iter().filter(|&&p| pid_alive(p)) {
        signal(pid, "KILL");
    }
}

/// A process started by [`NetNs::spawn`]. Stopped by its pid on [`NsProcess::stop`] or on drop.
#[derive(Debug)]
pub struct NsProcess {
    pid: u32,
    child: Option<Child>,
    command: String,
    log: PathBuf,
}

impl NsProcess {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line it was started with.
    pub fn command(&self) -> &str {
        &self.command
    }

    /// The file its stdout and stderr go to.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// True while the process runs (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGTERM, then SIGKILL after [`STOP_GRACE`]; reaps the child.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            signal(self.pid, "TERM");
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            // kill() sends SIGKILL; an error means it already exited, which wait() then reaps.
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// Gives up ownership without stopping the process (for a lab left running by `lab up`); the
    /// namespace deletion in `lab down` stops it later.
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A daemon that forked itself into the background (BIRD, FRR's `-d`): known by the pid it wrote
/// to its pid file, stopped by that pid.
#[derive(Debug)]
pub struct Daemon {
    pid: u32,
    label: String,
}

impl Daemon {
    /// Waits until `pid_file` holds the pid of a live process (the daemon writes it after forking).
    pub fn from_pid_file(label: &str, pid_file: &Path, wait: Duration) -> Result<Self, NetnsError> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(text) = fs::read_to_string(pid_file)
                && let Ok(pid) = text.trim().parse::<u32>()
                && pid_alive(pid)
            {
                return Ok(Self {
                    pid,
                    label: label.to_owned(),
                });
            }
            if Instant::now() >= deadline {
                return Err(NetnsError::Timeout {
                    what: format!("{label} to write its pid file {}", pid_file.display()),
                    after: wait,
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn is_running(&self) -> bool {
        pid_alive(self.pid)
    }

    /// SIGTERM, then SIGKILL after the grace period.
    pub fn stop(&self) {
        stop_pids(&[self.pid], STOP_GRACE);
    }
}

/// Polls `probe` every 50 ms until it returns `Some`, or fails with [`NetnsError::Timeout`].
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T, NetnsError> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(NetnsError::Timeout {
                what: what.to_owned(),
                after: timeout,
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Matches `name` against a glob with `*` (any run of characters) and `?` (one character).
pub fn glob_match(glob: &str, name: &str) -> bool {
    fn go(g: &[u8], n: &[u8]) -> bool {
        match g.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((b'?', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(glob.as_bytes(), name.as_bytes())
}

/// What a [`sweep`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub namespaces: Vec<String>,
    pub run_dirs: Vec<PathBuf>,
}

/// Removes every namespace whose name matches `glob` (processes inside are stopped first), and the
/// run directories (`/run/ferrolb-lab/<prefix>`, `/var/run/frr/<ns>`) of the prefixes involved.
/// Only namespaces of runs this library created are considered, whatever the glob says: the name
/// must start with a run prefix that has a run directory (see [`RunPrefix::claim`]).
///
/// This is unconditional: sweeping `flb*` while another run is live removes that run too. Use
/// [`sweep_stale`] to remove only runs whose owning process has exited.
pub fn sweep(glob: &str) -> Result<SweepReport, NetnsError> {
    sweep_where(glob, |_| true)
}

/// Like [`sweep`], but removes only runs whose owning process has exited: a run's directory holds
/// an `owner` file with the pid of the process that created it (`0` for a lab detached by `lab up`,
/// which only an explicit [`sweep`] removes).
pub fn sweep_stale(glob: &str) -> Result<SweepReport, NetnsError> {
    sweep_where(glob, |prefix| {
        // A run whose owner cannot be read is kept: it may be being claimed right now.
        matches!(run_owner(prefix), Some(Owner::Process(pid)) if !pid_alive(pid))
    })
}

/// Who holds a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// The process that created it (a test, a benchmark); the run is stale once it exits.
    Process(u32),
    /// Nobody: a lab left running by `lab up`, removed only by an explicit [`sweep`].
    Detached,
}

/// A run of this library found on the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub prefix: RunPrefix,
    /// `None` while the owner file is missing or unreadable.
    pub owner: Option<Owner>,
    /// Its namespaces.
    pub namespaces: Vec<String>,
}

fn run_owner(prefix: &RunPrefix) -> Option<Owner> {
    let text = fs::read_to_string(prefix.run_dir().join("owner")).ok()?;
    match text.trim().parse::<u32>().ok()? {
        0 => Some(Owner::Detached),
        pid => Some(Owner::Process(pid)),
    }
}

/// Every run of this library on the machine (those with a run directory), with its namespaces:
/// what `lab status` shows and how `lab down` finds a detached lab.
pub fn runs() -> Result<Vec<Run>, NetnsError> {
    let namespaces = list_namespaces()?;
    let mut runs = Vec::new();
    let Ok(entries) = fs::read_dir(RUN_ROOT) else {
        return Ok(runs);
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(prefix) = RunPrefix::parse(&name) else {
            continue;
        };
        runs.push(Run {
            owner: run_owner(&prefix),
            namespaces: namespaces
                .iter()
                .filter(|n| RunPrefix::of_name(n).as_ref() == Some(&prefix))
                .cloned()
                .collect(),
            prefix,
        });
    }
    runs.sort_by(|a, b| a.prefix.as_str().cmp(b.prefix.as_str()));
    Ok(runs)
}

fn sweep_where(
    glob: &str,
    removable: impl Fn(&RunPrefix) -> bool,
) -> Result<SweepReport, NetnsError> {
    let mut report = SweepReport::default();
    let mut prefixes: Vec<RunPrefix> = Vec::new();
    for name in list_namespaces()? {
        let Some(prefix) = RunPrefix::of_name(&name) else {
            continue;
        };
        // Only runs of this library (they claim a run directory before their first namespace):
        // other tools on the machine may use similar names.
        if !glob_match(glob, &name) || !prefix.run_dir().exists() || !removable(&prefix) {
            continue;
        }
        NetNs::adopt(&name).delete()?;
        remove_dir(&Path::new("/var/run/frr").join(&name), &mut report)?;
        report.namespaces.push(name);
        if !prefixes.contains(&prefix) {
            prefixes.push(prefix);
        }
    }
    // Run directories whose namespaces are already gone (a crash after deleting them) go too.
    if let Ok(entries) = fs::read_dir(RUN_ROOT) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(prefix) = RunPrefix::of_name(&name)
                && glob_match(glob, &name)
                && removable(&prefix)
                && !prefixes.contains(&prefix)
            {
                prefixes.push(prefix);
            }
        }
    }
    for prefix in prefixes {
        remove_dir(&prefix.run_dir(), &mut report)?;
    }
    Ok(report)
}

fn remove_dir(path: &Path, report: &mut SweepReport) -> Result<(), NetnsError> {
    match fs::remove_dir_all(path) {
        Ok(()) => {
            report.run_dirs.push(path.to_owned());
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetnsError::Io {
            what: "removing run directory",
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_prefix_parses_back_and_leaves_room_for_roles() {
        let p = RunPrefix::random();
        assert_eq!(RunPrefix::parse(p.as_str()).ok(), Some(p.clone()));
        assert_eq!(p.as_str().len() + RunPrefix::MAX_ROLE, IFNAME_MAX);
        assert!(p.name("gobgpup").is_ok());
    }

    #[test]
    fn interface_name_over_fifteen_bytes_is_refused() {
        let p = RunPrefix::parse("flb00ab").expect("valid prefix");
        assert!(matches!(
            p.name("toolongxx"),
            Err(NetnsError::NameTooLong { len: 16, .. })
        ));
    }

    #[test]
    fn foreign_names_have_no_run_prefix() {
        assert_eq!(RunPrefix::of_name("cni-1234"), None);
        assert_eq!(RunPrefix::of_name("flbXYZWn1"), None);
        assert_eq!(
            RunPrefix::of_name("flb0a1fn1").map(|p| p.to_string()),
            Some("flb0a1f".to_owned())
        );
    }

    #[test]
    fn glob_matches_stars_and_question_marks() {
        assert!(glob_match("flb*", "flb12abn1"));
        assert!(glob_match("flb12ab*", "flb12abseg"));
        assert!(!glob_match("flb12ab*", "flb12acseg"));
        assert!(glob_match("flb????n?", "flb12abn1"));
        assert!(!glob_match("flb", "flb12ab"));
    }

    #[test]
    fn failed_command_error_names_the_command_and_stderr() {
        let err = run(&["ls", "/nonexistent ferrolb path"]).expect_err("ls of a missing path");
        let text = err.to_string();
        assert!(
            text.contains("ls '/nonexistent ferrolb path'"),
            "got: {text}"
        );
        assert!(text.contains("No such file"), "got: {text}");
    }
}
