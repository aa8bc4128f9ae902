//! The lab's lifecycle from the outside: a lab left up (as `lab up` leaves it) is reported by `lab
//! status` and removed completely by `lab down` — no namespace, link, process or directory of the run
//! remains; a reaper removes a run whose owner is gone; `lab up` runs ferrolb and its demo Services.
//! Also measures a warm-cache start.

mod common;

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::LAB_BIN;
use ferrolb_lab::lab::{Lab, LabState};
use ferrolb_lab::netns::{self, NetNs, RunPrefix};

fn lab_command(args: &[&str]) -> String {
    let output = Command::new(LAB_BIN).args(args).output().expect("run lab");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "lab {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Everything of the run that could outlive it, looked up by name and pid.
fn leftovers(state: &LabState) -> Vec<String> {
    let mut left = Vec::new();
    for name in netns::list_namespaces().expect("ip netns list") {
        if name.starts_with(&state.prefix) {
            left.push(format!("namespace {name}"));
        }
    }
    // Links are created inside the lab's namespaces; none may appear in the root namespace.
    let links = netns::run(&["ip", "-o", "link", "show"]).expect("ip link");
    for line in links.lines().filter(|line| line.contains(&state.prefix)) {
        left.push(format!("root-namespace link {line}"));
    }
    for process in &state.processes {
        if process.is_alive() {
            left.push(format!("process {} pid {}", process.role, process.pid));
        }
    }
    let run_dir = RunPrefix::parse(&state.prefix).expect("prefix").run_dir();
    if run_dir.exists() {
        left.push(format!("directory {}", run_dir.display()));
    }
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_left_up_is_reported_by_status_and_removed_completely_by_down() {
    let lab = Lab::start(common::lab_options()).await.expect("lab starts");
    let timings = lab.timings();
    println!(
        "warm-cache lab start: {:.1} s (topology {:.1} s, control plane {:.1} s, CRDs and nodes {:.1} s; target ≤ 30 s)",
        timings.total.as_secs_f64(),
        timings.topology.as_secs_f64(),
        timings.control_plane.as_secs_f64(),
        timings.cluster_objects.as_secs_f64()
    );
    let state = lab.detach().expect("detach");
    assert!(
        state.processes.len() >= 2,
        "control plane and routers recorded"
    );
    assert!(state.processes.iter().all(|process| process.is_alive()));

    let status = lab_command(&["status"]);
    assert!(
        status.contains(&format!("lab {} — left up by `lab up`", state.prefix)),
        "{status}"
    );
    assert!(status.contains("/readyz: ok"), "{status}");

    let down = lab_command(&["down", &state.prefix]);
    assert!(
        down.contains(&format!("removed lab {}", state.prefix)),
        "{down}"
    );
    let left = leftovers(&state);
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The README's main job: `lab up` brings up the lab with ferrolb running and both demo Services
/// reached by their clients (layer 2 and BGP), leaves it running, and `lab down` removes all of it.
#[test]
fn lab_up_serves_the_demo_services_and_down_removes_everything() {
    let prefix = RunPrefix::random();
    let started = std::time::Instant::now();
    let up = lab_command(&["up", "--prefix", prefix.as_str()]);
    println!(
        "warm-cache `lab up` with ferrolb and the demo: {:.1} s (target ≤ 30 s)",
        started.elapsed().as_secs_f64()
    );
    let state = LabState::read(&prefix).expect("state of the run left up");
    let down = |state: &LabState| {
        let out = lab_command(&["down", &state.prefix]);
        assert!(leftovers(state).is_empty(), "left behind: {out}");
    };
    let checks = std::panic::catch_unwind(|| {
        for (service, mode) in [("demo-l2", "layer 2"), ("demo-bgp", "BGP")] {
            let line = up
                .lines()
                .find(|line| line.contains(&format!("demo/{service} ({mode})")))
                .unwrap_or_else(|| panic!("no {service} line in:\n{up}"));
            assert!(line.contains("reached from"), "{line}");
        }
        let roles: Vec<&str> = state.processes.iter().map(|p| p.role.as_str()).collect();
        assert!(
            roles.iter().any(|r| r.starts_with("controller")),
            "{roles:?}"
        );
        assert_eq!(
            roles.iter().filter(|r| r.starts_with("speaker")).count(),
            state.nodes.len(),
            "{roles:?}"
        );
        assert!(state.processes.iter().all(|p| p.is_alive()), "{roles:?}");
    });
    down(&state);
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn reaper_removes_the_run_when_its_owner_closes_the_pipe() {
    let prefix = RunPrefix::random();
    prefix.claim().expect("claim");
    let namespace = NetNs::create(&prefix.name("n1").expect("name")).expect("create namespace");
    let mut reaper = Command::new(LAB_BIN)
        .args(["reap", prefix.as_str()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start reaper");
    let mut pipe = reaper.stdin.take().expect("pipe");
    pipe.write_all(b"not the stand-down line\n").expect("write");
    drop(pipe); // what the kernel does when the owner exits, however it exits
    assert!(reaper.wait().expect("reaper exits").success());
    let present = netns::list_namespaces().expect("list");
    assert!(
        !present.contains(&namespace.name().to_owned()),
        "namespace removed"
    );
    assert!(!prefix.run_dir().exists(), "run directory removed");
}

#[test]
fn reaper_told_to_stand_down_leaves_the_run() {
    let prefix = RunPrefix::random();
    prefix.claim().expect("claim");
    let namespace = NetNs::create(&prefix.name("n1").expect("name")).expect("create namespace");
    let mut reaper = Command::new(LAB_BIN)
        .args(["reap", prefix.as_str()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start reaper");
    let mut pipe = reaper.stdin.take().expect("pipe");
    pipe.write_all(b"detach\n").expect("write");
    drop(pipe);
    assert!(reaper.wait().expect("reaper exits").success());
    let still_there = netns::list_namespaces()
        .expect("list")
        .contains(&namespace.name().to_owned());
    netns::sweep(&format!("{prefix}*")).expect("cleanup");
    assert!(still_there, "a detached run is left alone");
}

#[test]
fn ctrl_c_during_lab_up_removes_the_partial_lab() {
    let prefix = RunPrefix::random();
    let up = Command::new(LAB_BIN)
        .args(["up", "--prefix", prefix.as_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, as an interactive `lab up` is the terminal's foreground group.
        .process_group(0)
        .spawn()
        .expect("start lab up");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(up.id()).expect("pid fits"));
    netns::wait_for(
        "the first namespace of lab up",
        Duration::from_secs(30),
        || {
            let present = netns::list_namespaces().ok()?;
            present
                .iter()
                .any(|name| name.starts_with(prefix.as_str()))
                .then_some(())
        },
    )
    .expect("lab up creates namespaces");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let output = up.wait_with_output().expect("lab up exits");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("interrupted"), "{stderr}");
    // The reaper removes the run once `lab up` is gone.
    netns::wait_for(
        "the reaper to remove the run",
        Duration::from_secs(30),
        || {
            let present = netns::list_namespaces().ok()?;
            let left = present.iter().any(|name| name.starts_with(prefix.as_str()));
            (!left && !prefix.run_dir().exists()).then_some(())
        },
    )
    .expect("nothing of the interrupted lab remains");
}
