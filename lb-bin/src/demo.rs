//! `lb demo`: L2 and BGP mode working, on this machine, in two minutes, touching nothing
//! outside. It builds a small network in namespaces of its own (two nodes, a client and a
//! BIRD router on one bridge), runs the real `lb run` on both nodes with `examples/demo.yaml`,
//! and shows, step by step: the addresses, the client reaching an address in L2 mode,
//! BIRD's table holding the BGP route from both nodes (ECMP), a node killed and the address
//! moving with the outage measured. Everything it started is stopped by PID and every
//! namespace deleted at the end, on an error, and on Ctrl-C.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// The configuration the demo runs (also in `examples/demo.yaml`).
pub const CONFIG: &str = include_str!("../../examples/demo.yaml");
const WEB: &str = "10.99.0.100";
const WEB6: &str = "fd99::100";
const API: &str = "198.51.100.0/32";

/// Arguments of `lb demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Install the Debian packages the demo needs (iproute2, bird2, arping, ndisc6,
    /// iputils-ping) with apt-get when some are missing.
    #[arg(long)]
    pub install_packages: bool,
}

/// What the demo created, removed on drop.
struct Lab {
    tag: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    dir: PathBuf,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("{}{name}", self.tag)
    }

    fn cleanup(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
        for n in self.namespaces.drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &n]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let o = Command::new(cmd).args(args).output().map_err(|e| Error::Invalid(format!("cannot run {cmd}: {e}")))?;
    if !o.status.success() {
        return Err(Error::Invalid(format!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn in_ns(ns: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["netns", "exec", ns];
    all.extend_from_slice(args);
    run("ip", &all)
}

fn step(n: u32, what: &str) {
    if crate::color_stdout() {
        println!("\n\x1b[1m[{n}/5] {what}\x1b[0m");
    } else {
        println!("\n[{n}/5] {what}");
    }
}

fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Runs the demo.
pub fn run_demo(args: &Args) -> Result<()> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false);
    if !root {
        return Err(Error::Invalid("lb demo needs root: it creates network namespaces (sudo lb demo)".into()));
    }
    // The Debian packages whose programs are not on PATH.
    let missing_packages = || {
        let mut missing: Vec<&str> = Vec::new();
        for (tool, package) in [
            ("ip", "iproute2"),
            ("bird", "bird2"),
            ("birdc", "bird2"),
            ("arping", "arping"),
            ("ndisc6", "ndisc6"),
            ("ping", "iputils-ping"),
        ] {
            if run("sh", &["-c", &format!("command -v {tool}")]).is_err() && !missing.contains(&package) {
                missing.push(package);
            }
        }
        missing
    };
    let missing = missing_packages();
    if !missing.is_empty() && args.install_packages {
        println!("installing the Debian packages the demo needs: {}", missing.join(" "));
        let apt = |a: &[&str]| {
            let ok = Command::new("apt-get").args(a).env("DEBIAN_FRONTEND", "noninteractive").status();
            ok.is_ok_and(|s| s.success())
        };
        let mut install = vec!["install", "-y", "-qq", "--no-install-recommends"];
        install.extend(missing.iter().copied());
        if !(apt(&["update", "-qq"]) && apt(&install)) {
            return Err(Error::Invalid(format!("apt-get could not install {}", missing.join(" "))));
        }
        let still = missing_packages();
        if !still.is_empty() {
            return Err(Error::Invalid(format!(
                "apt-get installed {}, but their programs are not on PATH ({}): add /usr/sbin and /sbin to PATH (sudo does), then run it again",
                still.join(" "),
                std::env::var("PATH").unwrap_or_default()
            )));
        }
    } else if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "lb demo needs the Debian package(s) {0}: run it with --install-packages, or install them with `apt-get install -y {0}` as root, then run it again",
            missing.join(" ")
        )));
    }
    let tag = format!("lbd{}", std::process::id() % 100_000);
    let dir = std::env::temp_dir().join(format!("lb-demo-{tag}"));
    std::fs::create_dir_all(&dir)?;
    let lab =
        Arc::new(Mutex::new(Lab { tag: tag.clone(), namespaces: Vec::new(), children: Vec::new(), dir: dir.clone() }));
    // Ctrl-C, SIGTERM: clean up, then exit.
    {
        let lab = Arc::clone(&lab);
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut t), Ok(mut i)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                    return;
                };
                tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
            });
            println!("\ninterrupted: cleaning up");
            if let Ok(mut l) = lab.lock() {
                l.cleanup();
            }
            std::process::exit(130);
        });
    }
    let result = demo(&lab, &dir);
    if let Ok(mut l) = lab.lock() {
        l.cleanup();
    }
    println!("\ncleaned up: every namespace and process the demo made is gone");
    result
}

/// Keeps `c` in the lab, to be stopped at the end; returns its PID.
fn keep(lab: &Arc<Mutex<Lab>>, c: Child) -> u32 {
    let pid = c.id();
    if let Ok(mut l) = lab.lock() {
        l.children.push(c);
    }
    pid
}

fn demo(lab: &Arc<Mutex<Lab>>, dir: &std::path::Path) -> Result<()> {
    let with = |f: &mut dyn FnMut(&mut Lab)| {
        if let Ok(mut l) = lab.lock() {
            f(&mut l);
        }
    };
    let ns = |n: &str| lab.lock().map(|l| l.ns(n)).unwrap_or_default();
    let (sw, n1, n2, cli, rtr) = (ns("sw"), ns("n1"), ns("n2"), ns("cli"), ns("rtr"));

    step(
        1,
        "a network of namespaces: node-1 10.99.0.1 fd99::1, node-2 10.99.0.2 fd99::2, client 10.99.0.10 fd99::10, router 10.99.0.254",
    );
    for n in [&sw, &n1, &n2, &cli, &rtr] {
        run("ip", &["netns", "add", n])?;
        with(&mut |l| l.namespaces.push(n.clone()));
        in_ns(n, &["ip", "link", "set", "lo", "up"])?;
    }
    in_ns(&sw, &["ip", "link", "add", "br0", "type", "bridge"])?;
    in_ns(&sw, &["ip", "link", "set", "br0", "up"])?;
    let tag = lab.lock().map(|l| l.tag.clone()).unwrap_or_default();
    for (i, (n, addr, addr6)) in [
        (&n1, "10.99.0.1", "fd99::1"),
        (&n2, "10.99.0.2", "fd99::2"),
        (&cli, "10.99.0.10", "fd99::10"),
        (&rtr, "10.99.0.254", "fd99::fe"),
    ]
    .iter()
    .enumerate()
    {
        let (a, b) = (format!("{tag}a{i}"), format!("{tag}b{i}"));
        run("ip", &["link", "add", &a, "type", "veth", "peer", "name", &b])?;
        run("ip", &["link", "set", &a, "netns", n, "name", "eth0"])?;
        run("ip", &["link", "set", &b, "netns", &sw, "name", &format!("p{i}")])?;
        in_ns(&sw, &["ip", "link", "set", &format!("p{i}"), "master", "br0", "up"])?;
        in_ns(n, &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
        // No duplicate address detection: the addresses are usable at once.
        in_ns(n, &["ip", "addr", "add", &format!("{addr6}/64"), "dev", "eth0", "nodad"])?;
        in_ns(n, &["ip", "link", "set", "eth0", "up"])?;
    }
    std::fs::write(dir.join("lb.yaml"), CONFIG)?;
    std::fs::write(
        dir.join("bird.conf"),
        "router id 10.99.0.254;\nprotocol device {}\nprotocol kernel { ipv4 { export all; }; merge paths on; }\n\
         template bgp lb { local 10.99.0.254 as 64500; passive on; ipv4 { import all; export none; }; }\n\
         protocol bgp node1 from lb { neighbor 10.99.0.1 as 64512; }\nprotocol bgp node2 from lb { neighbor 10.99.0.2 as 64512; }\n",
    )?;
    // `ip netns exec` execs the program: the child's PID is the program's.
    let spawn = |ns: &str, args: &[&str], log: &str| -> Result<u32> {
        let out = std::fs::File::create(dir.join(log))?;
        let mut all = vec!["netns", "exec", ns];
        all.extend_from_slice(args);
        let child = Command::new("ip").args(&all).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).spawn()?;
        Ok(keep(lab, child))
    };
    let (conf, ctl, pid) = (dir.join("bird.conf"), dir.join("bird.ctl"), dir.join("bird.pid"));
    spawn(
        &rtr,
        &["bird", "-f", "-c", &conf.to_string_lossy(), "-s", &ctl.to_string_lossy(), "-P", &pid.to_string_lossy()],
        "bird.log",
    )?;
    let lb = std::env::current_exe()?;
    let lb = lb.to_string_lossy();
    let cfg = dir.join("lb.yaml");
    let mut pids = std::collections::BTreeMap::new();
    for (n, node) in [(&n1, "node-1"), (&n2, "node-2")] {
        let state = dir.join(format!("{node}.json"));
        let args = [
            &*lb,
            "run",
            "-c",
            &cfg.to_string_lossy(),
            "--node",
            node,
            "--state-file",
            &state.to_string_lossy(),
            "--bgp-listen",
            "off",
            "--memberlist-key",
            "lb demo membership key, not a secret",
        ];
        pids.insert(node, spawn(n, &args, &format!("{node}.log"))?);
    }

    step(2, "lb run on both nodes assigns the addresses (the same on each: one shared configuration)");
    let report = crate::check::run(&crate::check::Args {
        output: crate::check::Format::Text,
        strict: false,
        lb_class: None,
        paths: vec![cfg.clone()],
    })?;
    report.write(&mut std::io::stdout().lock(), false)?;

    step(3, &format!("L2 mode: the client asks who has {WEB} (ARP) and {WEB6} (NDP); one node answers"));
    let macs: Vec<(String, String)> = [(&n1, "node-1"), (&n2, "node-2")]
        .iter()
        .filter_map(|(n, name)| {
            in_ns(n, &["cat", "/sys/class/net/eth0/address"]).ok().map(|m| (m.trim().to_lowercase(), name.to_string()))
        })
        .collect();
    let owner = |_: ()| -> Option<String> {
        let o = in_ns(&cli, &["arping", "-r", "-c", "1", "-w", "1", "-i", "eth0", WEB]).ok()?;
        let mac = o.trim().to_lowercase();
        macs.iter().find(|(m, _)| *m == mac).map(|(_, n)| n.clone())
    };
    let mut first = None;
    if !wait_for(Duration::from_secs(20), || {
        first = owner(());
        first.is_some()
    }) {
        return Err(Error::Invalid(format!("nobody answered for {WEB}; see {}", dir.display())));
    }
    let first = first.unwrap_or_default();
    println!("  {WEB} is at {first}'s MAC address");
    let ping = in_ns(&cli, &["ping", "-c", "3", "-i", "0.2", "-W", "1", WEB])?;
    println!("  ping: {}", ping.lines().rev().nth(1).unwrap_or_default().trim());
    let owner6 = || -> Option<String> {
        let o = in_ns(&cli, &["ndisc6", "-1", "-q", "-r", "1", "-w", "1000", WEB6, "eth0"]).ok()?;
        let mac = o.trim().to_lowercase();
        macs.iter().find(|(m, _)| *m == mac).map(|(_, n)| n.clone())
    };
    let mut first6 = None;
    if !wait_for(Duration::from_secs(20), || {
        first6 = owner6();
        first6.is_some()
    }) {
        return Err(Error::Invalid(format!("nobody answered NDP for {WEB6}; see {}", dir.display())));
    }
    println!("  {WEB6} is at {}'s MAC address", first6.unwrap_or_default());
    let ping6 = in_ns(&cli, &["ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", WEB6])?;
    println!("  ping -6: {}", ping6.lines().rev().nth(1).unwrap_or_default().trim());

    step(4, &format!("BGP mode: the router learns {API} from both nodes"));
    let birdc = |cmd: &str| -> String {
        let mut a = vec!["-s".to_string(), ctl.to_string_lossy().into_owned()];
        a.extend(cmd.split(' ').map(str::to_string));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run("birdc", &a).unwrap_or_default()
    };
    let both = wait_for(Duration::from_secs(30), || {
        let r = birdc(&format!("show route {API}"));
        r.contains("10.99.0.1") && r.contains("10.99.0.2")
    });
    for line in birdc(&format!("show route {API}")).lines().skip(1) {
        println!("  {line}");
    }
    if !both {
        return Err(Error::Invalid(format!("the router did not learn {API} from both nodes; see {}", dir.display())));
    }
    // BIRD merges the two equal routes into one multipath route in the router's kernel.
    let prefix = API.trim_end_matches("/32");
    let route = || in_ns(&rtr, &["ip", "route", "show", prefix]).unwrap_or_default();
    let ecmp = wait_for(Duration::from_secs(10), || {
        let r = route();
        r.contains("nexthop via 10.99.0.1") && r.contains("nexthop via 10.99.0.2")
    });
    println!("  the router's kernel (ECMP):");
    for line in route().lines() {
        println!("    {}", line.trim());
    }
    if !ecmp {
        return Err(Error::Invalid(format!(
            "the router's kernel has no two-path route to {API}; see {}",
            dir.display()
        )));
    }

    step(5, &format!("{first} dies (link down, then SIGKILL): the other node takes {WEB} over"));
    let log = dir.join("ping.log");
    let out = std::fs::File::create(&log)?;
    let prober = Command::new("ip")
        .args(["netns", "exec", &cli, "ping", "-D", "-n", "-i", "0.01", "-W", "1", WEB])
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()?;
    let prober = keep(lab, prober);
    std::thread::sleep(Duration::from_secs(1));
    let victim = if first == "node-1" { &n1 } else { &n2 };
    let killed_at = now();
    in_ns(victim, &["ip", "link", "set", "eth0", "down"])?;
    if let Some(pid) = pids.get(first.as_str()) {
        run("kill", &["-KILL", &pid.to_string()])?;
    }
    std::thread::sleep(Duration::from_secs(3));
    let _ = run("kill", &["-INT", &prober.to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    let outage = outage(&std::fs::read_to_string(&log).unwrap_or_default(), killed_at);
    let second = owner(()).unwrap_or_else(|| "nobody".into());
    println!("  {WEB} is now at {second}'s MAC address");
    match outage {
        Some(o) => println!("  the client saw no reply for {:.0} ms", o * 1000.0),
        None => println!("  the client got no reply after the kill"),
    }
    Ok(())
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The longest gap between replies around `at`, from `ping -D` output.
fn outage(log: &str, at: f64) -> Option<f64> {
    let stamps: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("bytes from") && l.starts_with('['))
        .filter_map(|l| l[1..l.find(']')?].parse().ok())
        .collect();
    let before: Vec<f64> = stamps.iter().copied().filter(|t| *t <= at).collect();
    let after: Vec<f64> = stamps.iter().copied().filter(|t| *t > at).collect();
    let mut seq = vec![*before.last()?];
    seq.extend(after.iter().copied());
    if seq.len() < 2 {
        return None;
    }
    seq.windows(2).map(|w| w[1] - w[0]).reduce(f64::max)
}
