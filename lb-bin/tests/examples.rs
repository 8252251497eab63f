//! The embedding examples (`examples/examples/`), run as a user would and checked: allocation
//! without any network, a custom announcer fed by the planner, and (as root, in network
//! namespaces) the L2 announcer answering a real `arping` and the BGP speaker announcing to
//! BIRD. `cargo test --workspace` builds the examples; run alone, this test needs them
//! built (`cargo build -p lb-examples --examples`).

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::{eventually, prerequisites, veth, Netns, Proc, Scratch};

/// The example's binary, built next to `lb` (None when it was not built).
fn example(name: &str) -> Option<PathBuf> {
    let p = std::path::Path::new(env!("CARGO_BIN_EXE_lb")).parent()?.join("examples").join(name);
    if p.is_file() {
        return Some(p);
    }
    let msg = format!("the example {name} is not built: cargo build -p lb-examples --examples");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

fn repo(path: &str) -> String {
    format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn allocate_gives_the_homelab_services_their_addresses() {
    let Some(bin) = example("allocate") else { return };
    let o = Command::new(bin).arg(repo("examples/homelab-l2.yaml")).output().expect("runs");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("web/ingress -> [10.10.1.64]") && out.contains("dns/dns-udp -> [10.10.1.65]"), "{out}");
}

#[test]
fn a_file_announcer_fed_by_the_planner_writes_the_desired_state() {
    let Some(bin) = example("file_announcer") else { return };
    let dir = Scratch::new("exf");
    let file = dir.path("announced.txt");
    let o = Command::new(bin).args([&repo("examples/homelab-l2.yaml"), "node-1", file.to_str().unwrap()]).output();
    let o = o.expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&file).expect("the file");
    assert_eq!(
        text,
        "l2 10.10.1.33 on every interface\nl2 10.10.1.64 on every interface\nl2 10.10.1.65 on every interface\n"
    );
}

#[test]
fn l2_announce_answers_arp_in_a_namespace() {
    if !prerequisites(&["ip", "arping"]) {
        return;
    }
    let Some(bin) = example("l2_announce") else { return };
    let (spk, cli, dir) = (Netns::new("xs"), Netns::new("xc"), Scratch::new("exl"));
    veth(&spk, &cli, "eth0");
    spk.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
    cli.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
    let p = Proc::spawn(spk.cmd(bin.to_str().unwrap(), &["eth0", "192.0.2.10", "20"]), &dir.0, "l2_announce");
    let mac = spk.mac("eth0").to_lowercase();
    let answered = eventually(Duration::from_secs(10), || {
        let o = cli.exec("arping", &["-r", "-c", "1", "-w", "1", "-i", "eth0", "192.0.2.10"]);
        String::from_utf8_lossy(&o.stdout).trim().to_lowercase() == mac
    });
    assert!(answered, "{}{}", p.stdout(), p.stderr());
}

#[test]
fn bgp_sender_announces_its_routes_to_bird() {
    if !prerequisites(&["ip", "bird", "birdc"]) {
        return;
    }
    let Some(bin) = example("bgp_sender") else { return };
    let (spk, rtr, dir) = (Netns::new("xb"), Netns::new("xr"), Scratch::new("exb"));
    veth(&spk, &rtr, "eth0");
    spk.ip(&["addr", "add", "10.8.0.1/24", "dev", "eth0"]);
    rtr.ip(&["addr", "add", "10.8.0.2/24", "dev", "eth0"]);
    let conf = dir.path("bird.conf");
    std::fs::write(
        &conf,
        "router id 10.8.0.2;\nprotocol device {}\nprotocol bgp lb {\n  local 10.8.0.2 as 64500;\n  neighbor 10.8.0.1 as 64512;\n  passive on;\n  ipv4 { import all; export none; };\n}\n",
    )
    .unwrap();
    let (sock, pid) = (dir.path("bird.ctl"), dir.path("bird.pid"));
    let args = ["-f", "-c", conf.to_str().unwrap(), "-s", sock.to_str().unwrap(), "-P", pid.to_str().unwrap()];
    let _bird = Proc::spawn(rtr.cmd("bird", &args), &dir.0, "bird");
    let _sender = Proc::spawn(spk.cmd(bin.to_str().unwrap(), &["10.8.0.2", "64512", "64500", "10"]), &dir.0, "sender");
    let count = || {
        let o = support::run("birdc", &["-s", sock.to_str().unwrap(), "show", "route", "count"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let got = eventually(Duration::from_secs(20), || count().contains("10 of 10 routes"));
    assert!(got, "{}", count());
}
