//! Interop: our BFD driver against FRR bfdd and BIRD, each in network namespaces this test creates.
//!
//! Topology per test: namespace `<prefix>o` (ferrolb, 192.0.2.1 / 2001:db8::1) and `<prefix>r`
//! (the router, 192.0.2.2 / 2001:db8::2) joined by a veth pair, with a run-unique
//! `flbbfd<4 hex>` prefix. Sessions over IPv4 and IPv6 must come Up on both sides, and cutting
//! the link must take ours Down with "Control Detection Time Expired". Namespaces are deleted by
//! name and daemons stopped by pid when the test ends, pass or fail.
//!
//! Skips, saying why, when not root or when the daemons are not installed.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU8;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferrolb_speaker::bfd::driver::{
    DriverConfig, DriverHandle, HopMode, PeerSpec, SINGLE_HOP_PORT, SessionEvent,
};
use ferrolb_speaker::bfd::packet::{Diagnostic, SessionState};
use ferrolb_speaker::bfd::session::{Cause, SessionConfig};
use nix::sched::{CloneFlags, setns};
use tokio::sync::mpsc::UnboundedReceiver;

const OURS_V4: &str = "192.0.2.1";
const ROUTER_V4: &str = "192.0.2.2";
const OURS_V6: &str = "2001:db8::1";
const ROUTER_V6: &str = "2001:db8::2";

fn skip_reason(daemon_files: &[&str]) -> Option<String> {
    if run("id", &["-u"]).map(|uid| uid.trim() == "0") != Ok(true) {
        return Some("needs root to create network namespaces".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("iproute2 (ip) is not installed".into());
    }
    daemon_files
        .iter()
        .find(|f| !Path::new(f).exists())
        .map(|missing| format!("{missing} is not installed"))
}

/// Runs a command to completion, failing with its output.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{program} {args:?}: {}{}",
            text,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Namespaces, daemons and files of one test, removed on drop (also when the test panics).
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
    pidfiles: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Lab {
    fn new() -> Result<Self, String> {
        let prefix = format!("flbbfd{:04x}", rand::random::<u16>());
        let mut lab = Self {
            prefix: prefix.clone(),
            namespaces: Vec::new(),
            pidfiles: Vec::new(),
            dirs: Vec::new(),
        };
        for ns in [lab.ours(), lab.router()] {
            run("ip", &["netns", "add", &ns])?;
            lab.namespaces.push(ns);
        }
        let (ours, router) = (lab.ours(), lab.router());
        run(
            "ip",
            &[
                "link", "add", &ours, "netns", &ours, "type", "veth", "peer", "name", &router,
                "netns", &router,
            ],
        )?;
        for (ns, v4, v6) in [(&ours, OURS_V4, OURS_V6), (&router, ROUTER_V4, ROUTER_V6)] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", ns],
            )?;
            run(
                "ip",
                &[
                    "-n",
                    ns,
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    ns,
                    "nodad",
                ],
            )?;
            run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
            run("ip", &["-n", ns, "link", "set", ns, "up"])?;
        }
        Ok(lab)
    }

    /// Our namespace, and our end of the veth (same name).
    fn ours(&self) -> String {
        format!("{}o", self.prefix)
    }

    /// The router's namespace, and its end of the veth.
    fn router(&self) -> String {
        format!("{}r", self.prefix)
    }

    fn scratch_dir(&mut self, path: PathBuf) -> Result<PathBuf, String> {
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        self.dirs.push(path.clone());
        Ok(path)
    }

    /// Starts a self-daemonizing program inside the router namespace; stopped via its pidfile.
    fn start_daemon(
        &mut self,
        pidfile: PathBuf,
        program: &str,
        args: &[&str],
    ) -> Result<(), String> {
        let router = self.router();
        let mut full = vec!["netns", "exec", &router, program];
        full.extend_from_slice(args);
        self.pidfiles.push(pidfile.clone());
        run("ip", &full)?;
        wait_until(Duration::from_secs(10), || pidfile.exists())
            .map_err(|()| format!("{program} wrote no {}", pidfile.display()))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for pidfile in &self.pidfiles {
            if let Ok(pid) = std::fs::read_to_string(pidfile) {
                let _ = run("kill", &[pid.trim()]);
            }
        }
        for ns in &self.namespaces {
            let _ = run("ip", &["netns", "del", ns]);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) -> Result<(), ()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(())
}

/// `ms` x 3 timers.
fn timers(ms: u64) -> SessionConfig {
    SessionConfig::new(
        Duration::from_millis(ms),
        Duration::from_millis(ms),
        NonZeroU8::MIN.saturating_add(2),
        false,
    )
    .expect("valid timers")
}

/// Waits until every peer's session has reached `to`, returning those transitions.
async fn all_reach(
    events: &mut UnboundedReceiver<SessionEvent>,
    peers: &[IpAddr],
    to: SessionState,
    within: Duration,
) -> Result<Vec<SessionEvent>, String> {
    let mut reached: Vec<SessionEvent> = Vec::new();
    tokio::time::timeout(within, async {
        while reached.len() < peers.len() {
            match events.recv().await {
                Some(event) if event.change.to == to && peers.contains(&event.key.peer) => {
                    reached.retain(|e| e.key.peer != event.key.peer);
                    reached.push(event);
                }
                Some(_) => {}
                None => return Err("driver stopped".to_string()),
            }
        }
        Ok(())
    })
    .await
    .map_err(|_| format!("only {reached:?} reached {to:?} within {within:?}"))??;
    Ok(reached)
}

type Check<T> = Box<dyn Fn() -> Result<T, String> + Send + Sync>;
type Toggle = Box<dyn Fn(bool) -> Result<(), String> + Send + Sync>;

/// How the test drives and observes the router daemon.
struct Router {
    /// Whether the daemon reports both sessions up.
    both_up: Check<bool>,
    /// Cuts the router's end of the link.
    cut: Check<()>,
    /// Administratively disables (false) or enables the router's IPv4 session, where the
    /// daemon can do that at run time.
    set_v4_admin_up: Option<Toggle>,
    /// The Desired Min TX interval in ms the router last received on the IPv4 session, where
    /// the daemon shows it.
    v4_remote_tx_ms: Option<Check<u64>>,
}

async fn poll_until(
    what: &str,
    within: Duration,
    check: impl Fn() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while !check()? {
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Our side: a driver inside our namespace with sessions to the router over both families.
async fn exercise(router: &Router) -> Result<(), String> {
    let (driver, mut events) =
        DriverHandle::start(&DriverConfig::default()).map_err(|e| e.to_string())?;
    let peers: [(IpAddr, IpAddr); 2] = [
        (parse(ROUTER_V4), parse(OURS_V4)),
        (parse(ROUTER_V6), parse(OURS_V6)),
    ];
    let mut keys = Vec::new();
    for (peer, local) in peers {
        let spec = PeerSpec {
            peer: SocketAddr::new(peer, SINGLE_HOP_PORT),
            local,
            hops: HopMode::SingleHop,
        };
        keys.push(spec.key());
        driver
            .add_session(spec, timers(100))
            .await
            .map_err(|e| e.to_string())?;
    }
    let routers: Vec<IpAddr> = peers.iter().map(|(peer, _)| *peer).collect();
    let v4 = &routers[..1];
    all_reach(
        &mut events,
        &routers,
        SessionState::Up,
        Duration::from_secs(20),
    )
    .await?;
    poll_until(
        "router reports both sessions up",
        Duration::from_secs(10),
        &router.both_up,
    )
    .await?;

    if let Some(set_admin_up) = &router.set_v4_admin_up {
        // RFC 5882 §3.2: the peer's AdminDown takes BFD down but must not fail the client.
        set_admin_up(false)?;
        let down = all_reach(&mut events, v4, SessionState::Down, Duration::from_secs(5)).await?;
        if down[0].change.cause != Cause::PeerAdminDown || down[0].change.signals_path_failure() {
            return Err(format!("router shutdown seen as {down:?}"));
        }
        set_admin_up(true)?;
        all_reach(&mut events, v4, SessionState::Up, Duration::from_secs(10)).await?;
    }

    if let Some(remote_tx_ms) = &router.v4_remote_tx_ms {
        // A profile change is a Poll Sequence, not a session reset (RFC 5880 §6.8.3).
        driver
            .reconfigure(keys[0], timers(300))
            .await
            .map_err(|e| e.to_string())?;
        poll_until("router learns our 300 ms", Duration::from_secs(5), || {
            remote_tx_ms().map(|ms| ms == 300)
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        if let Ok(event) = events.try_recv() {
            return Err(format!("reconfiguration changed state: {event:?}"));
        }
    }

    (router.cut)()?;
    let downs = all_reach(
        &mut events,
        &routers,
        SessionState::Down,
        Duration::from_secs(5),
    )
    .await?;
    for down in downs {
        if down.change.diag != Diagnostic::ControlDetectionTimeExpired
            || !down.change.signals_path_failure()
        {
            return Err(format!("unexpected down: {down:?}"));
        }
    }
    let counters = driver.counters().await.map_err(|e| e.to_string())?;
    if counters.dropped.values().sum::<u64>() > 0 {
        return Err(format!("router packets were dropped: {counters:?}"));
    }
    Ok(())
}

fn parse(ip: &str) -> IpAddr {
    ip.parse().expect("address literal")
}

/// Runs [`exercise`] on a thread that has entered our namespace (setns affects only the
/// calling thread, and sockets keep the namespace they were created in).
fn exercise_in(lab: &Lab, router: Router) -> Result<(), String> {
    let netns = PathBuf::from("/run/netns").join(lab.ours());
    std::thread::spawn(move || {
        let ns = File::open(&netns).map_err(|e| format!("{}: {e}", netns.display()))?;
        setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(exercise(&router))
    })
    .join()
    .map_err(|_| "our side panicked".to_string())?
}

#[test]
fn sessions_come_up_with_frr_bfdd_and_go_down_when_the_link_is_cut() {
    if let Some(reason) =
        skip_reason(&["/usr/lib/frr/bfdd", "/usr/lib/frr/zebra", "/usr/bin/vtysh"])
    {
        eprintln!("skipped: {reason}");
        return;
    }
    let mut lab = Lab::new().expect("lab topology");
    let router = lab.router();
    let run_dir = lab
        .scratch_dir(PathBuf::from("/var/run/frr").join(&router))
        .expect("FRR run directory");
    run("chown", &["frr:frr", &run_dir.to_string_lossy()]).expect("chown to frr");
    // bfdd needs zebra to resolve the interface of single-hop peers.
    lab.start_daemon(
        run_dir.join("zebra.pid"),
        "/usr/lib/frr/zebra",
        &["-d", "-N", &router, "-A", "127.0.0.1"],
    )
    .expect("zebra starts");
    let bfdctl = run_dir.join("bfdd.sock");
    lab.start_daemon(
        run_dir.join("bfdd.pid"),
        "/usr/lib/frr/bfdd",
        &[
            "-d",
            "-N",
            &router,
            "-A",
            "127.0.0.1",
            "--bfdctl",
            &bfdctl.to_string_lossy(),
        ],
    )
    .expect("bfdd starts");
    let mut vtysh = vec![
        "-N",
        router.as_str(),
        "-c",
        "configure terminal",
        "-c",
        "bfd",
    ];
    let peers = [
        format!("peer {OURS_V4} local-address {ROUTER_V4} interface {router}"),
        format!("peer {OURS_V6} local-address {ROUTER_V6} interface {router}"),
    ];
    for peer in &peers {
        vtysh.extend(["-c", peer.as_str()]);
        vtysh.extend(["-c", "receive-interval 100", "-c", "transmit-interval 100"]);
        vtysh.extend(["-c", "detect-multiplier 3", "-c", "exit"]);
    }
    run("vtysh", &vtysh).expect("bfdd accepts the peers");

    let vtysh_json = |ns: String| {
        move || -> Result<serde_json::Value, String> {
            let json = run("vtysh", &["-N", &ns, "-c", "show bfd peers json"])?;
            serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))
        }
    };
    let peers_json = vtysh_json(router.clone());
    let both_up = move || {
        let peers = peers_json()?;
        let up = |peer| {
            peers
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["peer"] == peer && p["status"] == "up")
        };
        Ok(up(OURS_V4) && up(OURS_V6))
    };
    let peers_json = vtysh_json(router.clone());
    let v4_remote_tx_ms = move || {
        let peers = peers_json()?;
        peers
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["peer"] == OURS_V4)
            .and_then(|p| p["remote-transmit-interval"].as_u64())
            .ok_or_else(|| format!("no IPv4 peer in {peers}"))
    };
    let admin_ns = router.clone();
    let set_v4_admin_up = move |up: bool| {
        let peer = format!("peer {OURS_V4} local-address {ROUTER_V4} interface {admin_ns}");
        let shutdown = if up { "no shutdown" } else { "shutdown" };
        let args = [
            "-N",
            &admin_ns,
            "-c",
            "configure terminal",
            "-c",
            "bfd",
            "-c",
            &peer,
        ];
        run("vtysh", &[&args[..], &["-c", shutdown]].concat()).map(drop)
    };
    let result = exercise_in(
        &lab,
        Router {
            both_up: Box::new(both_up),
            cut: cut_link(&router),
            set_v4_admin_up: Some(Box::new(set_v4_admin_up)),
            v4_remote_tx_ms: Some(Box::new(v4_remote_tx_ms)),
        },
    );
    assert_eq!(result, Ok(()));
}

/// Takes the router's end of the veth down.
fn cut_link(router: &str) -> Check<()> {
    let router = router.to_string();
    Box::new(move || run("ip", &["-n", &router, "link", "set", &router, "down"]).map(drop))
}

#[test]
fn sessions_come_up_with_bird_and_go_down_when_the_link_is_cut() {
    if let Some(reason) = skip_reason(&["/usr/sbin/bird", "/usr/sbin/birdc"]) {
        eprintln!("skipped: {reason}");
        return;
    }
    let mut lab = Lab::new().expect("lab topology");
    let router = lab.router();
    let dir = lab
        .scratch_dir(std::env::temp_dir().join(&lab.prefix))
        .expect("scratch directory");
    let config = dir.join("bird.conf");
    std::fs::write(
        &config,
        format!(
            "router id {ROUTER_V4};\n\
             protocol device {{ }}\n\
             protocol bfd {{\n\
               interface \"{router}\" {{ interval 100 ms; multiplier 3; }};\n\
               neighbor {OURS_V4} dev \"{router}\" local {ROUTER_V4};\n\
               neighbor {OURS_V6} dev \"{router}\" local {ROUTER_V6};\n\
             }}\n"
        ),
    )
    .expect("BIRD config written");
    let socket = dir.join("bird.ctl").to_string_lossy().into_owned();
    lab.start_daemon(
        dir.join("bird.pid"),
        "bird",
        &[
            "-c",
            &config.to_string_lossy(),
            "-s",
            &socket,
            "-P",
            &dir.join("bird.pid").to_string_lossy(),
        ],
    )
    .expect("BIRD starts");

    let both_up = move || {
        let sessions = run("birdc", &["-s", &socket, "show", "bfd", "sessions"])?;
        Ok(sessions.lines().filter(|l| l.contains(" Up ")).count() == 2)
    };
    let result = exercise_in(
        &lab,
        Router {
            both_up: Box::new(both_up),
            cut: cut_link(&router),
            set_v4_admin_up: None,
            v4_remote_tx_ms: None,
        },
    );
    assert_eq!(result, Ok(()));
}
