//! L2 mode with real parts: `lb run` in one network namespace, real `arping`, `ndisc6`,
//! the kernel's own neighbour discovery and `tcpdump` in a client namespace, joined by veth.
//!
//! Needs root and arping, ndisc6, tcpdump, mausezahn (installed by ./scripts/test as root). Without them
//! the tests say SKIPPED and why; under CI=true they fail instead.

mod support;

use std::time::Duration;

use support::{eventually, prerequisites, veth, Netns, Proc, Scratch};

const TOOLS: &[&str] = &["ip", "arping", "ndisc6", "tcpdump", "mausezahn"];

fn config(with_api: bool) -> String {
    let mut y = String::from(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n  addresses: [192.0.2.16/29, \"2001:db8:5::/125\"]\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{port: 80}]}\n",
    );
    if with_api {
        y.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: t}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{port: 443}]}\n");
    }
    y
}

/// A speaker namespace and a client namespace on one link.
struct Lab {
    spk: Netns,
    cli: Netns,
    dir: Scratch,
}

impl Lab {
    fn new(link: bool) -> Lab {
        let lab = Lab { spk: Netns::new("spk"), cli: Netns::new("cli"), dir: Scratch::new("l2") };
        if link {
            lab.link();
        }
        std::fs::write(lab.dir.path("lb.yaml"), config(true)).expect("config");
        lab
    }

    fn link(&self) {
        veth(&self.spk, &self.cli, "eth0");
        self.spk.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
        self.cli.ip(&["addr", "add", "192.0.2.2/24", "dev", "eth0"]);
        self.spk.ip(&["addr", "add", "2001:db8:5::ff:1/64", "dev", "eth0", "nodad"]);
        self.cli.ip(&["addr", "add", "2001:db8:5::ff:2/64", "dev", "eth0", "nodad"]);
    }

    fn lb(&self) -> Proc {
        self.lb_with(&[])
    }

    fn lb_with(&self, extra: &[&str]) -> Proc {
        let cfg = self.dir.path("lb.yaml");
        let state = self.dir.path("state.json");
        let mut args =
            vec!["run", "-c", cfg.to_str().unwrap(), "--node", "spk", "--state-file", state.to_str().unwrap()];
        args.extend_from_slice(extra);
        Proc::spawn(self.spk.cmd(env!("CARGO_BIN_EXE_lb"), &args), &self.dir.0, "lb")
    }

    /// The IPv6 multicast groups the speaker's eth0 has joined.
    fn groups(&self) -> String {
        self.spk.ip(&["-6", "maddr", "show", "dev", "eth0"])
    }

    /// The MAC that answers ARP for `ip`, if any.
    fn arping(&self, ip: &str) -> Option<String> {
        let o = self.cli.exec("arping", &["-r", "-c", "1", "-w", "1", "-i", "eth0", ip]);
        let mac = String::from_utf8_lossy(&o.stdout).trim().to_lowercase();
        (o.status.success() && !mac.is_empty()).then_some(mac)
    }

    /// The MAC that answers a Neighbor Solicitation for `ip`, if any.
    fn ndisc(&self, ip: &str) -> Option<String> {
        let o = self.cli.exec("ndisc6", &["-1", "-q", "-r", "2", "-w", "500", ip, "eth0"]);
        let mac = String::from_utf8_lossy(&o.stdout).trim().to_lowercase();
        (o.status.success() && !mac.is_empty()).then_some(mac)
    }

    fn mac(&self) -> String {
        self.spk.mac("eth0").to_lowercase()
    }
}

fn udp(lab: &Lab, ip: &str) {
    let _ = lab.cli.exec("bash", &["-c", &format!("echo x > /dev/udp/{ip}/9")]);
}

#[test]
fn answers_arp_and_ndp_for_assigned_addresses_and_announces_them() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new(true);
    let pcap = lab.dir.path("cli.pcap");
    let mut dump = Proc::spawn(
        lab.cli.cmd("tcpdump", &["-n", "-U", "-i", "eth0", "-w", pcap.to_str().unwrap(), "arp or icmp6"]),
        &lab.dir.0,
        "tcpdump",
    );
    assert!(eventually(Duration::from_secs(5), || dump.stderr().contains("listening on")), "tcpdump did not start");
    // No host addresses: the addresses are not local to the speaker, so only lb can answer.
    let lb = lab.lb_with(&["--no-host-addresses"]);
    let mac = lab.mac();
    assert!(
        eventually(Duration::from_secs(10), || lab.arping("192.0.2.16").as_deref() == Some(mac.as_str())),
        "no ARP reply for 192.0.2.16; lb said:\n{}{}",
        lb.stdout(),
        lb.stderr()
    );
    assert!(lb.stdout().contains("t/web"), "the assignment table is printed: {}", lb.stdout());
    assert_eq!(lab.arping("192.0.2.17"), Some(mac.clone()), "t/api");
    assert_eq!(lab.arping("192.0.2.20"), None, "an unassigned address of the pool is not answered");
    assert_eq!(lab.ndisc("2001:db8:5::"), Some(mac.clone()), "NS for the assigned IPv6 address");
    assert_eq!(lab.ndisc("2001:db8:5::3"), None, "an unassigned IPv6 address is not answered");
    assert!(lab.groups().contains("ff02::1:ff00:0"), "solicited-node group of 2001:db8:5:: joined: {}", lab.groups());

    // A VLAN-tagged request is not answered (in particular not untagged on the native VLAN),
    // while the same request untagged is: crafted with mausezahn from two made-up MACs.
    let mz = |last: &str, vlan: &str| {
        let smac = format!("02:00:00:00:07:{last}");
        // Ethernet (+ 802.1Q) + ARP request "who has 192.0.2.16? tell 192.0.2.7".
        let frame = format!(
            "ff:ff:ff:ff:ff:ff:{smac}:{vlan}08:06:00:01:08:00:06:04:00:01:{smac}:c0:00:02:07:00:00:00:00:00:00:c0:00:02:10"
        );
        let o = lab.cli.exec("mausezahn", &["eth0", "-q", "-c", "1", &frame]);
        assert!(o.status.success(), "mausezahn: {}", String::from_utf8_lossy(&o.stderr));
    };
    mz("01", "81:00:00:64:");
    mz("02", "");
    std::thread::sleep(Duration::from_millis(300));

    // Duplicate Address Detection: a host trying to configure the address sees it defended.
    lab.cli.ip(&["addr", "add", "2001:db8:5::1/64", "dev", "eth0"]);
    assert!(
        eventually(Duration::from_secs(5), || lab.cli.ip(&["-6", "addr", "show", "dev", "eth0"]).contains("dadfailed")),
        "DAD probe for an announced address not defended: {}",
        lab.cli.ip(&["-6", "addr", "show", "dev", "eth0"])
    );

    // Unicast NUD: the client's kernel re-probes a stale entry with a unicast NS to our MAC.
    lab.cli.exec(
        "sysctl",
        &["-qw", "net.ipv6.neigh.eth0.base_reachable_time_ms=500", "net.ipv6.neigh.eth0.delay_first_probe_time=1"],
    );
    udp(&lab, "2001:db8:5::");
    std::thread::sleep(Duration::from_secs(2));
    udp(&lab, "2001:db8:5::");
    std::thread::sleep(Duration::from_millis(2500));
    let neigh = lab.cli.ip(&["-6", "neigh", "show", "2001:db8:5::", "dev", "eth0"]);
    assert!(!neigh.contains("FAILED") && !neigh.contains("INCOMPLETE"), "client neighbour entry: {neigh}");

    dump.signal("INT");
    dump.wait(Duration::from_secs(5));
    let text = support::must("tcpdump", &["-n", "-e", "-r", pcap.to_str().unwrap()]);
    let lines: Vec<&str> = text.lines().collect();
    // Gratuitous ARP in both forms and the unsolicited NA, from our MAC.
    let has = |f: &dyn Fn(&str) -> bool| lines.iter().any(|l| f(l));
    assert!(has(&|l| l.contains(&format!("{mac} > 02:00:00:00:07:02")) && l.contains("Reply 192.0.2.16")), "{text}");
    assert!(!has(&|l| l.contains("> 02:00:00:00:07:01")), "a VLAN-tagged request was answered:\n{text}");
    assert!(
        has(&|l| l.contains(&format!("{mac} > ff:ff:ff:ff:ff:ff"))
            && l.contains("Request who-has 192.0.2.16 tell 192.0.2.16")),
        "{text}"
    );
    assert!(
        has(&|l| l.contains(&format!("{mac} > ff:ff:ff:ff:ff:ff"))
            && l.contains(&format!("Reply 192.0.2.16 is-at {mac}"))),
        "{text}"
    );
    assert!(
        has(&|l| l.contains(&format!("{mac} > 33:33:00:00:00:01"))
            && l.contains("2001:db8:5:: > ff02::1: ICMP6, neighbor advertisement, tgt is 2001:db8:5::")),
        "{text}"
    );
    // A unicast NS (to our MAC and to the address itself) answered by our NA.
    let probe = lines
        .iter()
        .position(|l| {
            l.contains(&format!("> {mac}, ethertype IPv6"))
                && l.contains("> 2001:db8:5::: ICMP6, neighbor solicitation")
        })
        .unwrap_or_else(|| panic!("no unicast NUD probe seen:\n{text}"));
    let src = lines[probe].split(": ").nth(1).and_then(|s| s.split(' ').next()).expect("probe source");
    assert!(
        lines[probe..].iter().any(|l| l.contains(&format!("{mac} >"))
            && l.contains(&format!("2001:db8:5:: > {src}: ICMP6, neighbor advertisement"))),
        "the unicast NUD probe from {src} was not answered:\n{text}"
    );
}

#[test]
fn reloads_on_file_change_and_sighup_keeps_the_last_good_config_and_withdraws_on_sigterm() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new(true);
    let mut lb = lab.lb();
    let mac = lab.mac();
    assert!(eventually(Duration::from_secs(10), || lab.arping("192.0.2.17").is_some()), "{}", lb.stderr());
    let cfg = lab.dir.path("lb.yaml");

    assert_eq!(lab.ndisc("2001:db8:5::1"), Some(mac.clone()));
    assert!(lab.groups().contains("ff02::1:ff00:1"), "{}", lab.groups());
    let sysctl = |k: &str| String::from_utf8_lossy(&lab.spk.exec("sysctl", &["-n", k]).stdout).trim().to_string();
    assert_eq!(sysctl("net.ipv4.conf.all.arp_ignore"), "1", "only lb answers ARP for the host's service addresses");

    // The file changes: t/api is gone, its addresses are no longer answered.
    std::fs::write(&cfg, config(false)).unwrap();
    assert!(eventually(Duration::from_secs(6), || lab.arping("192.0.2.17").is_none()), "{}", lb.stderr());
    assert_eq!(lab.ndisc("2001:db8:5::1"), None, "its IPv6 address is withdrawn too");
    assert!(!lab.groups().contains("ff02::1:ff00:1"), "its solicited-node group is left: {}", lab.groups());
    assert_eq!(lab.arping("192.0.2.16"), Some(mac.clone()), "t/web keeps its address");

    // An invalid file and SIGHUP: reported, and the last good configuration keeps running.
    std::fs::write(&cfg, config(false).replace("192.0.2.16/29", "192.0.2.16/33")).unwrap();
    lb.signal("HUP");
    assert!(
        eventually(Duration::from_secs(5), || lb.stderr().contains("last good configuration keeps running")),
        "{}",
        lb.stderr()
    );
    assert_eq!(lab.arping("192.0.2.16"), Some(mac.clone()));
    assert!(lb.stderr().contains("spec.addresses[0]"), "the error names the field: {}", lb.stderr());

    // Back to a valid file with t/api, by SIGHUP.
    std::fs::write(&cfg, config(true)).unwrap();
    lb.signal("HUP");
    assert!(eventually(Duration::from_secs(5), || lab.arping("192.0.2.17").is_some()), "{}", lb.stderr());
    assert!(lab.spk.ip(&["addr", "show"]).contains("192.0.2.16/32"), "the host accepts traffic for its addresses");

    // SIGTERM: everything withdrawn, exit 0.
    lb.signal("TERM");
    assert_eq!(lb.wait(Duration::from_secs(5)), Some(0), "{}", lb.stderr());
    assert_eq!(lab.arping("192.0.2.16"), None);
    assert_eq!(lab.ndisc("2001:db8:5::"), None);
    assert!(!lab.spk.ip(&["addr", "show"]).contains("192.0.2.16/32"), "host addresses removed");
    assert_eq!(sysctl("net.ipv4.conf.all.arp_ignore"), "0", "sysctls restored");
}

/// A configuration with the pool and these services (t/NAME, one port each), in this order.
fn services(names: &[&str]) -> String {
    let mut y = config(false).split("---\napiVersion: v1\nkind: Service").next().unwrap().to_string();
    for (i, n) in names.iter().enumerate() {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {n}, namespace: t}}\nspec: {{type: LoadBalancer, ports: [{{port: {}}}]}}\n",
            8000 + i
        ));
    }
    y
}

/// The addresses of `svc` in the last assignment table `lb run` printed.
fn assigned(stdout: &str, svc: &str) -> Option<String> {
    stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(svc).filter(|rest| rest.starts_with(' ')))
        .and_then(|rest| rest.split_whitespace().next().map(str::to_string))
}

#[test]
fn assignments_survive_reloads_and_restarts_through_the_state_file_or_memory_when_it_cannot_be_written() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new(false);
    let cfg = lab.dir.path("lb.yaml");
    let state = lab.dir.path("state.json");
    let saved = |svc: &str| -> Option<String> {
        let text = std::fs::read_to_string(&state).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(v["services"][svc][0].as_str()?.to_string())
    };
    std::fs::write(&cfg, services(&["web", "api"])).unwrap();
    let mut lb = lab.lb();
    assert!(eventually(Duration::from_secs(10), || saved("t/api").is_some()), "{}", lb.stderr());
    assert_eq!(saved("t/web").as_deref(), Some("192.0.2.16"));
    assert_eq!(saved("t/api").as_deref(), Some("192.0.2.17"));

    // Services in the other order, and a new one first: without the record of the
    // assignments, allocation in file order would give t/new .16 and move the others.
    std::fs::write(&cfg, services(&["new", "api", "web"])).unwrap();
    assert!(eventually(Duration::from_secs(6), || saved("t/new").is_some()), "{}", lb.stderr());
    assert_eq!(saved("t/web").as_deref(), Some("192.0.2.16"), "a reload moves no address");
    assert_eq!(saved("t/api").as_deref(), Some("192.0.2.17"));
    assert_eq!(saved("t/new").as_deref(), Some("192.0.2.18"));

    // The record is lost while lb runs (deleted, then corrupted): a reload does not allocate
    // without it (that could move every address and overwrite the record); it says so, and
    // goes on once the file is back.
    let record = std::fs::read_to_string(&state).unwrap();
    for (broken, said) in [(None, "empty or gone"), (Some("{not json"), "cannot read the state file")] {
        match broken {
            None => std::fs::remove_file(&state).unwrap(),
            Some(text) => std::fs::write(&state, text).unwrap(),
        }
        std::fs::write(&cfg, services(&["newer", "new", "api", "web"])).unwrap();
        assert!(eventually(Duration::from_secs(6), || lb.stderr().contains(said)), "{}", lb.stderr());
        assert!(assigned(&lb.stdout(), "t/newer").is_none(), "no allocation without the record");
    }
    std::fs::write(&state, &record).unwrap();
    lb.signal("HUP");
    assert!(eventually(Duration::from_secs(6), || saved("t/newer").is_some()), "{}", lb.stderr());
    assert_eq!(saved("t/web").as_deref(), Some("192.0.2.16"), "nothing moved");
    assert_eq!(saved("t/api").as_deref(), Some("192.0.2.17"));
    assert_eq!(saved("t/new").as_deref(), Some("192.0.2.18"));
    std::fs::write(&cfg, services(&["new", "api", "web"])).unwrap();
    lb.signal("HUP");
    assert!(eventually(Duration::from_secs(6), || saved("t/newer").is_none()), "{}", lb.stderr());
    lb.signal("TERM");
    assert_eq!(lb.wait(Duration::from_secs(5)), Some(0), "{}", lb.stderr());

    // A restart, with yet another order: the state file keeps every address.
    std::fs::write(&cfg, services(&["web", "new", "api"])).unwrap();
    let mut lb = lab.lb();
    assert!(eventually(Duration::from_secs(10), || assigned(&lb.stdout(), "t/api").is_some()), "{}", lb.stderr());
    let out = lb.stdout();
    assert_eq!(assigned(&out, "t/web").as_deref(), Some("192.0.2.16"), "{out}");
    assert_eq!(assigned(&out, "t/new").as_deref(), Some("192.0.2.18"), "{out}");
    assert_eq!(assigned(&out, "t/api").as_deref(), Some("192.0.2.17"), "{out}");
    lb.signal("TERM");
    assert_eq!(lb.wait(Duration::from_secs(5)), Some(0), "{}", lb.stderr());

    // A state file that cannot be written (its directory is a file): said once per reload,
    // and the assignments are kept in memory, so a reload still moves nothing.
    let blocker = lab.dir.path("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let unwritable = blocker.join("state.json");
    std::fs::write(&cfg, services(&["web", "api"])).unwrap();
    let args = ["run", "-c", cfg.to_str().unwrap(), "--node", "spk", "--state-file", unwritable.to_str().unwrap()];
    let mut lb = Proc::spawn(lab.spk.cmd(env!("CARGO_BIN_EXE_lb"), &args), &lab.dir.0, "lb");
    let warned = |lb: &Proc, n: usize| lb.stderr().matches("cannot write the state file").count() >= n;
    assert!(eventually(Duration::from_secs(10), || warned(&lb, 1)), "{}", lb.stderr());
    std::fs::write(&cfg, services(&["new", "api", "web"])).unwrap();
    assert!(eventually(Duration::from_secs(6), || assigned(&lb.stdout(), "t/new").is_some()), "{}", lb.stderr());
    let out = lb.stdout();
    assert_eq!(assigned(&out, "t/web").as_deref(), Some("192.0.2.16"), "{out}");
    assert_eq!(assigned(&out, "t/api").as_deref(), Some("192.0.2.17"), "{out}");
    assert_eq!(assigned(&out, "t/new").as_deref(), Some("192.0.2.18"), "{out}");
    assert!(warned(&lb, 2), "{}", lb.stderr());
    lb.signal("TERM");
    assert_eq!(lb.wait(Duration::from_secs(5)), Some(0), "{}", lb.stderr());
}

#[test]
fn interfaces_that_appear_or_flap_are_picked_up_without_a_restart() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new(false);
    let lb = lab.lb();
    assert!(eventually(Duration::from_secs(5), || lb.stdout().contains("t/web")), "{}", lb.stderr());
    lab.link();
    let mac = lab.mac();
    assert!(
        eventually(Duration::from_secs(10), || lab.arping("192.0.2.16").as_deref() == Some(mac.as_str())),
        "a new interface is answered on: {}",
        lb.stderr()
    );
    lab.spk.ip(&["link", "set", "eth0", "down"]);
    std::thread::sleep(Duration::from_secs(2));
    lab.spk.ip(&["link", "set", "eth0", "up"]);
    assert!(
        eventually(Duration::from_secs(10), || lab.arping("192.0.2.16").as_deref() == Some(mac.as_str())),
        "answered again after a flap: {}",
        lb.stderr()
    );
}

#[test]
fn without_cap_net_raw_it_fails_with_one_clear_line() {
    let dir = Scratch::new("cap");
    let cfg = dir.path("lb.yaml");
    std::fs::write(&cfg, config(false)).unwrap();
    let state = dir.path("state.json");
    let lb = env!("CARGO_BIN_EXE_lb");
    let args = [
        "run",
        "-c",
        cfg.to_str().unwrap(),
        "--node",
        "n",
        "--state-file",
        state.to_str().unwrap(),
        "--no-host-addresses",
    ];
    // As root: inside a fresh namespace (should it start anyway, it touches nothing real),
    // with the capability dropped from the bounding and inheritable sets.
    let ns = support::is_root().then(|| Netns::new("cap"));
    let cmd = match &ns {
        Some(ns) => {
            let mut a = vec!["--inh-caps", "-net_raw", "--bounding-set", "-net_raw", lb];
            a.extend_from_slice(&args);
            ns.cmd("setpriv", &a)
        }
        None => {
            let mut c = std::process::Command::new(lb);
            c.args(args);
            c
        }
    };
    let mut p = Proc::spawn(cmd, &dir.0, "lb");
    let code = p.wait(Duration::from_secs(10));
    assert_eq!(code, Some(1), "{}", p.stderr());
    let err = p.stderr();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains("CAP_NET_RAW") && lines[0].contains("setcap"),
        "{err}"
    );
    assert!(p.stdout().is_empty());
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<f64> = rest.split_whitespace().filter_map(|v| v.parse().ok()).collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

#[test]
fn an_arp_flood_gets_replies_within_the_rate_bound_bounded_cpu_and_counted_drops() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new(true);
    let pcap = lab.dir.path("flood.pcap");
    let dump = Proc::spawn(
        lab.cli
            .cmd("tcpdump", &["-n", "-U", "-i", "eth0", "-w", pcap.to_str().unwrap(), "arp and src host 192.0.2.16"]),
        &lab.dir.0,
        "tcpdump-flood",
    );
    assert!(eventually(Duration::from_secs(5), || dump.stderr().contains("listening on")), "tcpdump did not start");
    let lb = lab.lb_with(&["--no-host-addresses", "--arp-reply-rate", "1000", "--metrics-addr", "127.0.0.1:0"]);
    let mac = lab.mac();
    assert!(eventually(Duration::from_secs(10), || lab.arping("192.0.2.16").as_deref() == Some(mac.as_str())));
    std::thread::sleep(Duration::from_secs(3)); // the gratuitous ARP burst is over
    let cpu_before = cpu_seconds(&lb.pid());
    let started = std::time::Instant::now();

    // Three seconds of as many requests as mausezahn can send, and malformed frames: an
    // ARP header cut short, and one for a protocol other than IPv4.
    let flood = Proc::spawn(
        lab.cli.cmd(
            "timeout",
            &[
                "3",
                "mausezahn",
                "-q",
                "-c",
                "0",
                "-d",
                "0",
                "eth0",
                "-t",
                "arp",
                "request, senderip=192.0.2.2, targetip=192.0.2.16",
            ],
        ),
        &lab.dir.0,
        "flood",
    );
    let src = lab.cli.mac("eth0");
    for junk in [
        format!("ff:ff:ff:ff:ff:ff {src} 08:06 00:01:08:00:06:04:00:01"),
        format!("ff:ff:ff:ff:ff:ff {src} 08:06 00:01:86:dd:06:10:00:01 {src} 00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00 00:00:00:00:00:00"),
    ] {
        lab.cli.exec("mausezahn", &["-q", "-c", "5000", "-d", "0", "eth0", &junk]);
    }
    let mut flood = flood;
    flood.wait(Duration::from_secs(10));
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&lb.pid()) - cpu_before;
    std::thread::sleep(Duration::from_millis(500));
    drop(dump);

    let text = support::must("tcpdump", &["-n", "-r", pcap.to_str().unwrap()]);
    let replies = text.lines().filter(|l| l.contains("Reply 192.0.2.16 is-at")).count() as f64;
    // The bound: 1000 a second, plus a bucket of 1000 at the start (and the arping replies).
    let most = 1000.0 * (elapsed + 0.5) + 1000.0 + 10.0;
    assert!(replies <= most, "{replies} replies in {elapsed:.1} s with a bound of 1000/s");
    assert!(replies >= 1000.0, "only {replies} replies: the flood was not answered at all");
    // One worker thread per interface: at most about one core, whatever arrives.
    assert!(cpu < 1.5 * elapsed, "lb used {cpu:.2} s of CPU in {elapsed:.1} s of flood");
    // The drops are counted, per address.
    let addr = support::cluster::metrics_addr(&lb).expect("the metrics address in the log");
    let port = addr.rsplit(':').next().unwrap().to_string();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
    let scrape = || String::from_utf8_lossy(&lab.spk.exec("bash", &["-c", &script]).stdout).into_owned();
    let value = |m: &str, name: &str| -> f64 {
        let key = format!("{name}{{ip=\"192.0.2.16\"}} ");
        m.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0)
    };
    let counted = eventually(Duration::from_secs(3), || value(&scrape(), "lb_layer2_responses_dropped") > 1000.0);
    let m = scrape();
    assert!(counted, "{m}");
    let (requests, dropped) = (value(&m, "metallb_layer2_requests_received"), value(&m, "lb_layer2_responses_dropped"));
    assert!(requests >= replies + dropped - 10.0, "requests {requests}, replies {replies}, dropped {dropped}");
    // And it still answers once the flood is over.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lab.arping("192.0.2.16").as_deref(), Some(mac.as_str()));
    eprintln!(
        "flood: {replies} replies, {dropped} dropped of {requests} requests in {elapsed:.1} s; lb CPU {cpu:.2} s"
    );
}
