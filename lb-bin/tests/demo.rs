//! `lb demo` as a newcomer runs it: it must show every step working, and leave nothing behind,
//! also when interrupted. Needs root, bird2, arping and ping (installed by ./scripts/test).

mod support;

use std::process::Command;
use std::time::Duration;

use support::prerequisites;

fn leftovers(pid: u32) -> Vec<String> {
    let tag = format!("lbd{}", pid % 100_000);
    let list = support::must("ip", &["netns", "list"]);
    list.lines().filter(|l| l.starts_with(&tag)).map(str::to_string).collect()
}

#[test]
fn the_demo_shows_l2_bgp_and_a_failover_and_cleans_up() {
    if !prerequisites(&["ip", "bird", "birdc", "arping", "ndisc6", "ping"]) {
        return;
    }
    let child = Command::new(env!("CARGO_BIN_EXE_lb")).arg("demo").output().expect("lb demo runs");
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(child.status.success(), "{out}{}", String::from_utf8_lossy(&child.stderr));
    assert!(out.contains("demo/web  10.99.0.100,fd99::100"), "dual-stack: {out}");
    assert!(out.contains("10.99.0.100 is at node-"), "{out}");
    assert!(out.contains("fd99::100 is at node-"), "{out}");
    let pings = out.lines().filter(|l| l.contains("3 received, 0% packet loss")).count();
    assert_eq!(pings, 2, "IPv4 and IPv6 pings: {out}");
    assert!(out.contains("via 10.99.0.1") && out.contains("via 10.99.0.2"), "both nodes' routes at BIRD: {out}");
    assert!(
        out.contains("nexthop via 10.99.0.1") && out.contains("nexthop via 10.99.0.2"),
        "one two-path route in the router's kernel: {out}"
    );
    assert!(out.contains("is now at node-"), "{out}");
    let owners: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("10.99.0.100 "))
        .filter_map(|l| l.split("is at ").nth(1).or(l.split("is now at ").nth(1)))
        .collect();
    assert_eq!(owners.len(), 2, "{out}");
    assert_ne!(owners[0], owners[1], "the address moved: {out}");
    let ms: f64 = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("the client saw no reply for ")?.strip_suffix(" ms")?.parse().ok())
        .expect("a measured outage");
    assert!(ms > 0.0, "{out}");
    assert!(out.contains("cleaned up"), "{out}");
}

#[test]
fn an_interrupted_demo_leaves_nothing_behind() {
    if !prerequisites(&["ip", "bird", "birdc", "arping", "ndisc6", "ping"]) {
        return;
    }
    let mut child =
        Command::new(env!("CARGO_BIN_EXE_lb")).arg("demo").stdout(std::process::Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let made = support::eventually(Duration::from_secs(10), || !leftovers(pid).is_empty());
    assert!(made, "the demo never made its namespaces");
    std::thread::sleep(Duration::from_secs(1));
    support::run("kill", &["-INT", &pid.to_string()]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(leftovers(pid).is_empty(), "left behind: {:?}", leftovers(pid));
}
