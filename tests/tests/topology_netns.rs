//! Real namespaces (run as root): the netns primitives create, connect, run and remove by name/pid.

use ferrolb_lab::netns::{self, NetNs, RunPrefix};

/// Removes this test's namespaces even when an assertion fails.
struct Cleanup(RunPrefix);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = netns::sweep(&format!("{}*", self.0));
    }
}

#[test]
fn veth_between_namespaces_carries_traffic_and_delete_stops_processes() {
    let prefix = RunPrefix::random();
    let _cleanup = Cleanup(prefix.clone());
    let dir = prefix.claim().expect("claim run");
    let a = NetNs::create(&prefix.name("a").expect("name")).expect("create a");
    let b = NetNs::create(&prefix.name("b").expect("name")).expect("create b");
    let (la, lb) = (
        prefix.name("va").expect("name"),
        prefix.name("vb").expect("name"),
    );
    a.add_veth(&la, &b, &lb).expect("veth");
    a.add_addr(&la, "192.0.2.1/24").expect("addr a");
    b.add_addr(&lb, "192.0.2.2/24").expect("addr b");
    a.set_up(&la).expect("up a");
    b.set_up(&lb).expect("up b");
    a.exec(&["ping", "-c1", "-W2", "192.0.2.2"])
        .expect("ping across the veth");

    let mut sleeper = b
        .spawn(&["sleep", "60"], &dir.join("sleep.log"))
        .expect("spawn");
    let pid = sleeper.pid();
    assert!(sleeper.is_running());
    // `ip netns exec` enters the namespace after the fork, so the pid shows up there shortly after
    // spawn returns.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut inside = b.pids().expect("pids");
    while inside.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
        inside = b.pids().expect("pids");
    }
    assert_eq!(inside, vec![pid]);

    let err = b
        .exec(&["ip", "link", "set", "nosuchlink", "up"])
        .expect_err("bad link");
    assert!(
        err.to_string().contains(b.name()),
        "error names the namespace: {err}"
    );

    b.delete().expect("delete b");
    assert!(
        !netns::pid_alive(pid),
        "process inside the namespace was stopped"
    );
    sleeper.stop();
    a.delete().expect("delete a");
    let left: Vec<String> = netns::list_namespaces()
        .expect("list")
        .into_iter()
        .filter(|n| n.starts_with(prefix.as_str()))
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
}

#[test]
fn sweep_removes_namespaces_of_a_dead_run_only() {
    let dead = RunPrefix::random();
    let live = RunPrefix::random();
    let _c1 = Cleanup(dead.clone());
    let _c2 = Cleanup(live.clone());
    // The dead run was owned by a process that has exited since.
    let mut exited = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead_pid = exited.id();
    exited.wait().expect("wait");
    std::fs::create_dir_all(dead.run_dir()).expect("run dir");
    std::fs::write(dead.run_dir().join("owner"), dead_pid.to_string()).expect("owner");
    NetNs::create(&dead.name("x").expect("name")).expect("create");
    NetNs::create(&live.name("x").expect("name")).expect("create");
    live.claim().expect("claim live run");

    // Globs narrowed to this test's two runs so parallel runs of other tests are never touched.
    let report = netns::sweep_stale(&format!("{dead}*")).expect("sweep dead");
    assert!(report.namespaces.contains(&dead.name("x").expect("name")));
    let report = netns::sweep_stale(&format!("{live}*")).expect("sweep live");
    assert!(report.namespaces.is_empty(), "live run swept: {report:?}");
    let listed = netns::runs().expect("runs");
    let run = listed
        .iter()
        .find(|r| r.prefix == live)
        .expect("live run listed");
    assert_eq!(run.owner, Some(netns::Owner::Process(std::process::id())));
    assert_eq!(run.namespaces, vec![live.name("x").expect("name")]);
    let names = netns::list_namespaces().expect("list");
    assert!(
        names.contains(&live.name("x").expect("name")),
        "live run kept"
    );
    assert!(
        !names.contains(&dead.name("x").expect("name")),
        "dead run removed"
    );
}
