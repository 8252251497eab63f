//! BGP mode with real routers: `lb run` in one network namespace, BIRD 2 or GoBGP in another,
//! joined by veth. Needs root, bird2 and gobgpd (installed by ./scripts/test as root).

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::{eventually, prerequisites, veth, Netns, Proc, Scratch};

const TOOLS: &[&str] = &["ip", "bird", "birdc"];

/// A speaker namespace (lb, 10.9.0.1, 2001:db8:9::1) and a router namespace (10.9.0.2,
/// 2001:db8:9::2).
struct Lab {
    spk: Netns,
    rtr: Netns,
    dir: Scratch,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab { spk: Netns::new("bsp"), rtr: Netns::new("brt"), dir: Scratch::new("bgp") };
        veth(&lab.spk, &lab.rtr, "eth0");
        lab.spk.ip(&["addr", "add", "10.9.0.1/24", "dev", "eth0"]);
        lab.rtr.ip(&["addr", "add", "10.9.0.2/24", "dev", "eth0"]);
        lab.spk.ip(&["addr", "add", "2001:db8:9::1/64", "dev", "eth0", "nodad"]);
        lab.rtr.ip(&["addr", "add", "2001:db8:9::2/64", "dev", "eth0", "nodad"]);
        lab
    }

    fn write_config(&self, yaml: &str) -> PathBuf {
        let p = self.dir.path("lb.yaml");
        std::fs::write(&p, yaml).expect("config");
        p
    }

    fn lb(&self) -> Proc {
        self.lb_with(&[])
    }

    /// lb putting the service addresses on its host (so that they answer pings).
    fn lb_with_host_addresses(&self) -> Proc {
        let cfg = self.dir.path("lb.yaml");
        let state = self.dir.path("state.json");
        let args = ["run", "-c", cfg.to_str().unwrap(), "--node", "spk", "--state-file", state.to_str().unwrap()];
        Proc::spawn(self.spk.cmd(env!("CARGO_BIN_EXE_lb"), &args), &self.dir.0, &format!("lb-{}", support::unique("")))
    }

    fn lb_with(&self, extra: &[&str]) -> Proc {
        let cfg = self.dir.path("lb.yaml");
        let state = self.dir.path("state.json");
        let args = [
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "--node",
            "spk",
            "--state-file",
            state.to_str().unwrap(),
            "--no-host-addresses",
        ];
        let mut cmd = self.spk.cmd(env!("CARGO_BIN_EXE_lb"), &args);
        cmd.args(extra);
        Proc::spawn(cmd, &self.dir.0, &format!("lb-{}", support::unique("")))
    }
}

/// A daemon process (BIRD, gobgpd): signalled and stopped by PID, thawed when dropped so
/// that a test failing while it is frozen still lets it be killed.
#[derive(Default)]
struct Daemon(Option<Proc>);

impl Daemon {
    fn signal(&self, sig: &str) {
        if let Some(p) = &self.0 {
            p.signal(sig);
        }
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.0.take() {
            p.signal("TERM");
            p.wait(Duration::from_secs(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.signal("CONT");
    }
}

/// BIRD in the router namespace, with its own control socket.
struct Bird<'a> {
    lab: &'a Lab,
    daemon: Daemon,
    sock: PathBuf,
    conf: PathBuf,
}

impl<'a> Bird<'a> {
    fn start(lab: &'a Lab, protocols: &str) -> Bird<'a> {
        let conf = lab.dir.path("bird.conf");
        std::fs::write(&conf, format!("router id 10.9.0.2;\nprotocol device {{}}\n{protocols}")).unwrap();
        let mut b = Bird { lab, daemon: Daemon::default(), sock: lab.dir.path("bird.ctl"), conf };
        b.run();
        b
    }

    fn run(&mut self) {
        let pid = self.lab.dir.path("bird.pid");
        let args =
            ["-f", "-c", self.conf.to_str().unwrap(), "-s", self.sock.to_str().unwrap(), "-P", pid.to_str().unwrap()];
        self.daemon.0 = Some(Proc::spawn(self.lab.rtr.cmd("bird", &args), &self.lab.dir.0, "bird"));
        assert!(
            eventually(Duration::from_secs(5), || self.cli("show status").contains("Daemon is up")),
            "BIRD did not start"
        );
    }

    fn cli(&self, cmd: &str) -> String {
        let mut args = vec!["-s", self.sock.to_str().unwrap()];
        args.extend(cmd.split(' '));
        String::from_utf8_lossy(&support::run("birdc", &args).stdout).into_owned()
    }

    fn established(&self, proto: &str) -> bool {
        self.cli(&format!("show protocols {proto}")).contains("Established")
    }

    fn route(&self, prefix: &str) -> String {
        self.cli(&format!("show route all {prefix}"))
    }

    fn has_route(&self, prefix: &str) -> bool {
        self.route(prefix).contains(prefix)
    }
}

const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\nspec:\n  addresses: [192.0.2.16/29, \"2001:db8:5::/125\"]\n---\n";

fn services(with_api: bool) -> String {
    let mut y = String::from(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{port: 80}]}\n",
    );
    if with_api {
        y.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: api, namespace: t}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{port: 443}]}\n");
    }
    y
}

fn peer(name: &str, my: u32, peer: u32, addr: &str, extra: &str) -> String {
    format!("apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec: {{myASN: {my}, peerASN: {peer}, peerAddress: \"{addr}\"{extra}}}\n---\n")
}

const ADVERT: &str = "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c}\nspec: {communities: [{name: no-export, value: \"65535:65281\"}]}\n---\n\
apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv}\nspec: {communities: [no-export, \"large:64512:1:2\"], localPref: 250}\n---\n";

/// BIRD's error wait keeps a session down for a minute after an error by default; the
/// tests shorten it so a thawed or restarted peer comes back within seconds.
const BIRD_EBGP4: &str = "protocol bgp lb4 {\n  local 10.9.0.2 as 64500;\n  neighbor 10.9.0.1 as 64512;\n  passive on;\n  error wait time 1, 2;\n  ipv4 { import all; export none; };\n}\n";

#[test]
fn bird_receives_ipv4_over_ebgp_and_ipv6_over_ibgp_with_attributes_and_follows_changes() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new();
    let bird6 = "protocol bgp lb6 {\n  local 2001:db8:9::2 as 64512;\n  neighbor 2001:db8:9::1 as 64512;\n  direct;\n  passive on;\n  ipv6 { import all; export none; };\n}\n";
    let bird = Bird::start(&lab, &format!("{BIRD_EBGP4}{bird6}"));
    let peers = peer("bird4", 64512, 64500, "10.9.0.2", "") + &peer("bird6", 64512, 64512, "2001:db8:9::2", "");
    let cfg = lab.write_config(&format!("{POOL}{peers}{ADVERT}{}", services(true)));
    let lb = lab.lb();
    assert!(
        eventually(Duration::from_secs(15), || bird.established("lb4") && bird.established("lb6")),
        "sessions not established:\n{}\n{}",
        bird.cli("show protocols all"),
        lb.stderr()
    );
    assert!(
        eventually(Duration::from_secs(5), || bird.has_route("192.0.2.17/32") && bird.has_route("2001:db8:5::1/128"))
    );
    let r4 = bird.route("192.0.2.16/32");
    for want in [
        "BGP.as_path: 64512",
        "BGP.next_hop: 10.9.0.1",
        "BGP.community: (65535,65281)",
        "BGP.large_community: (64512, 1, 2)",
    ] {
        assert!(r4.contains(want), "{want} missing:\n{r4}");
    }
    let r6 = bird.route("2001:db8:5::/128");
    for want in ["BGP.local_pref: 250", "BGP.next_hop: 2001:db8:9::1", "BGP.community: (65535,65281)"] {
        assert!(r6.contains(want), "{want} missing:\n{r6}");
    }
    assert!(r6.lines().any(|l| l.trim() == "BGP.as_path:"), "an iBGP path is empty:\n{r6}");
    assert!(bird.cli("show route count").contains("4 of 4 routes"), "{}", bird.cli("show route count"));

    // ROUTE-REFRESH (BIRD's "reload in"): the whole table is sent again.
    bird.cli("reload in lb4");
    assert!(eventually(Duration::from_secs(5), || lb.stderr().contains("ROUTE-REFRESH received")), "{}", lb.stderr());
    assert!(bird.has_route("192.0.2.16/32"));

    // Removing a service withdraws exactly its routes; adding it back announces them.
    std::fs::write(&cfg, format!("{POOL}{peers}{ADVERT}{}", services(false))).unwrap();
    assert!(
        eventually(Duration::from_secs(6), || !bird.has_route("192.0.2.17/32") && !bird.has_route("2001:db8:5::1/128"))
    );
    assert!(bird.has_route("192.0.2.16/32") && bird.has_route("2001:db8:5::/128"), "the other service stays");
    std::fs::write(&cfg, format!("{POOL}{peers}{ADVERT}{}", services(true))).unwrap();
    assert!(
        eventually(Duration::from_secs(6), || bird.has_route("192.0.2.17/32") && bird.has_route("2001:db8:5::1/128"))
    );

    // (This test runs lb with --no-host-addresses; the next one checks host addresses.)
    // SIGTERM: Cease / Administrative Shutdown, everything withdrawn.
    lb.signal("TERM");
    assert!(eventually(Duration::from_secs(5), || bird
        .cli("show protocols all lb4")
        .contains("Administrative shutdown")));
    assert!(eventually(Duration::from_secs(5), || !bird.has_route("192.0.2.16/32")));
}

#[test]
fn the_session_survives_a_peer_restart_and_our_hold_timer_catches_a_frozen_peer() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new();
    let mut bird = Bird::start(&lab, BIRD_EBGP4);
    lab.write_config(&format!(
        "{POOL}{}{ADVERT}{}",
        peer("bird4", 64512, 64500, "10.9.0.2", ", holdTime: 3s"),
        services(false)
    ));
    let lb = lab.lb();
    assert!(eventually(Duration::from_secs(15), || bird.has_route("192.0.2.16/32")), "{}", lb.stderr());
    assert!(
        bird.cli("show protocols all lb4").contains("Hold timer:") && bird.cli("show protocols all lb4").contains("/3")
    );

    // The peer restarts: the session comes back and the table is sent again.
    bird.daemon.stop();
    bird.run();
    assert!(eventually(Duration::from_secs(20), || bird.has_route("192.0.2.16/32")), "{}", lb.stderr());

    // The peer freezes: our hold timer (3 s) fires, and the session recovers when it thaws.
    bird.daemon.signal("STOP");
    assert!(eventually(Duration::from_secs(10), || lb.stderr().contains("hold timer expired")), "{}", lb.stderr());
    bird.daemon.signal("CONT");
    assert!(
        eventually(Duration::from_secs(20), || bird.established("lb4") && bird.has_route("192.0.2.16/32")),
        "{}",
        lb.stderr()
    );
}

#[test]
fn md5_with_the_right_password_establishes_and_a_wrong_one_never_does() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new();
    let bird = Bird::start(&lab, &BIRD_EBGP4.replace("passive on;", "passive on;\n  password \"s3cret\";"));
    let with = |pw: &str| {
        format!(
            "{POOL}{}{ADVERT}{}",
            peer("bird4", 64512, 64500, "10.9.0.2", &format!(", password: {pw}")),
            services(false)
        )
    };
    let cfg = lab.write_config(&with("s3cret"));
    let lb = lab.lb();
    assert!(eventually(Duration::from_secs(15), || bird.has_route("192.0.2.16/32")), "{}", lb.stderr());
    // A wrong password (the reload restarts the session with it): never established.
    std::fs::write(&cfg, with("wrong")).unwrap();
    assert!(eventually(Duration::from_secs(8), || !bird.established("lb4")), "{}", bird.cli("show protocols all lb4"));
    assert!(!eventually(Duration::from_secs(8), || bird.established("lb4")), "established with a wrong MD5 password");
}

/// GoBGP in the router namespace, with its own API port.
struct GoBgp<'a> {
    lab: &'a Lab,
    daemon: Daemon,
    conf: PathBuf,
    port: String,
}

impl<'a> GoBgp<'a> {
    /// Starts gobgpd (global AS `asn`) with one passive neighbor.
    fn start(lab: &'a Lab, asn: u32, neighbor: &str, peer_as: u32, extra: &str) -> GoBgp<'a> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let port = (50051 + (std::process::id() % 1000) * 8 + NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
            .to_string();
        let conf = lab.dir.path("gobgp.toml");
        std::fs::write(
            &conf,
            format!(
                "[global.config]\n  as = {asn}\n  router-id = \"10.9.0.2\"\n  port = 179\n\n\
                 [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{neighbor}\"\n    peer-as = {peer_as}\n{extra}\
                 \n  [neighbors.transport.config]\n    passive-mode = true\n"
            ),
        )
        .unwrap();
        let mut g = GoBgp { lab, daemon: Daemon::default(), conf, port };
        g.run();
        g
    }

    fn run(&mut self) {
        let api = format!("127.0.0.1:{}", self.port);
        let args = ["-f", self.conf.to_str().unwrap(), "-t", "toml", "--api-hosts", &api, "--pprof-disable"];
        self.daemon.0 = Some(Proc::spawn(self.lab.rtr.cmd("gobgpd", &args), &self.lab.dir.0, "gobgpd"));
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut a = vec!["-u", "127.0.0.1", "-p", self.port.as_str()];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&self.lab.rtr.exec("gobgp", &a).stdout).into_owned()
    }

    fn rib(&self, family: &str) -> String {
        self.cli(&["global", "rib", "-a", family])
    }

    fn established(&self) -> bool {
        self.cli(&["neighbor"]).contains("Establ")
    }
}

const GOBGP: &[&str] = &["ip", "gobgpd", "gobgp"];

#[test]
fn gobgp_receives_the_routes_follows_changes_restarts_and_freezes() {
    if !prerequisites(GOBGP) {
        return;
    }
    let lab = Lab::new();
    let mut gobgp = GoBgp::start(&lab, 64500, "10.9.0.1", 64512, "");
    let peers = peer("gobgp", 64512, 64500, "10.9.0.2", ", holdTime: 3s");
    let cfg = lab.write_config(&format!("{POOL}{peers}{ADVERT}{}", services(true)));
    let lb = lab.lb();
    assert!(
        eventually(Duration::from_secs(20), || gobgp.rib("ipv4").contains("192.0.2.17/32")),
        "{}\n{}",
        gobgp.cli(&["neighbor"]),
        lb.stderr()
    );
    let rib = gobgp.rib("ipv4");
    let line = rib.lines().find(|l| l.contains("192.0.2.16/32")).unwrap_or_default();
    assert!(line.contains("10.9.0.1") && line.contains("64512"), "{rib}");
    assert!(line.contains("no-export") || line.contains("65535:65281"), "{rib}");
    assert!(line.contains("64512:1:2"), "{rib}");

    // Removing a service withdraws exactly its route; adding it back announces it.
    std::fs::write(&cfg, format!("{POOL}{peers}{ADVERT}{}", services(false))).unwrap();
    assert!(
        eventually(Duration::from_secs(6), || !gobgp.rib("ipv4").contains("192.0.2.17/32")),
        "{}",
        gobgp.rib("ipv4")
    );
    assert!(gobgp.rib("ipv4").contains("192.0.2.16/32"));
    std::fs::write(&cfg, format!("{POOL}{peers}{ADVERT}{}", services(true))).unwrap();
    assert!(eventually(Duration::from_secs(6), || gobgp.rib("ipv4").contains("192.0.2.17/32")));

    // The peer restarts: the session comes back with the whole table.
    gobgp.daemon.stop();
    gobgp.run();
    assert!(eventually(Duration::from_secs(30), || gobgp.rib("ipv4").contains("192.0.2.17/32")), "{}", lb.stderr());

    // The peer freezes: our 3 s hold timer fires; it recovers after SIGCONT.
    gobgp.daemon.signal("STOP");
    assert!(eventually(Duration::from_secs(10), || lb.stderr().contains("hold timer expired")), "{}", lb.stderr());
    gobgp.daemon.signal("CONT");
    assert!(
        eventually(Duration::from_secs(40), || gobgp.established() && gobgp.rib("ipv4").contains("192.0.2.16/32")),
        "{}",
        lb.stderr()
    );
}

#[test]
fn gobgp_over_ibgp_ipv6_with_md5() {
    if !prerequisites(GOBGP) {
        return;
    }
    let lab = Lab::new();
    let v6 = "    auth-password = \"s3cret\"\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv6-unicast\"\n";
    let gobgp = GoBgp::start(&lab, 64512, "2001:db8:9::1", 64512, v6);
    let with = |pw: &str| {
        format!(
            "{POOL}{}{ADVERT}{}",
            peer("gobgp6", 64512, 64512, "2001:db8:9::2", &format!(", password: {pw}")),
            services(false)
        )
    };
    let cfg = lab.write_config(&with("s3cret"));
    let lb = lab.lb();
    assert!(
        eventually(Duration::from_secs(20), || gobgp.rib("ipv6").contains("2001:db8:5::/128")),
        "{}\n{}",
        gobgp.cli(&["neighbor"]),
        lb.stderr()
    );
    let rib = gobgp.rib("ipv6");
    let line = rib.lines().find(|l| l.contains("2001:db8:5::/128")).unwrap_or_default();
    assert!(line.contains("2001:db8:9::1") && line.contains("LocalPref: 250"), "{rib}");
    // A wrong MD5 password: the session never comes up again.
    std::fs::write(&cfg, with("wrong")).unwrap();
    assert!(eventually(Duration::from_secs(8), || !gobgp.established()), "{}", gobgp.cli(&["neighbor"]));
    assert!(!eventually(Duration::from_secs(8), || gobgp.established()), "established with a wrong MD5 password");
}

#[test]
fn a_peer_without_four_octet_as_support_gets_two_octet_as_paths() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new();
    let bird = Bird::start(
        &lab,
        "protocol bgp lb4 {\n  local 10.9.0.2 as 64500;\n  neighbor 10.9.0.1 as 64512;\n  passive on;\n  enable as4 off;\n  error wait time 1, 2;\n  ipv4 { import all; export none; };\n}\n",
    );
    lab.write_config(&format!("{POOL}{}{ADVERT}{}", peer("bird4", 64512, 64500, "10.9.0.2", ""), services(false)));
    let lb = lab.lb();
    assert!(
        eventually(Duration::from_secs(15), || bird.has_route("192.0.2.16/32")),
        "{}\n{}",
        bird.cli("show protocols all lb4"),
        lb.stderr()
    );
    // The AS_PATH is encoded with 2-octet numbers, and BIRD reads it right.
    assert!(bird.route("192.0.2.16/32").contains("BGP.as_path: 64512"), "{}", bird.route("192.0.2.16/32"));
}

#[test]
fn graceful_restart_keeps_routes_at_the_router_across_a_restart() {
    if !prerequisites(&[TOOLS, &["ping", "tcpdump"]].concat()) {
        return;
    }
    let lab = Lab::new();
    let kernel = "protocol kernel {\n  ipv4 { export all; };\n}\n";
    let bird = Bird::start(&lab, &(BIRD_EBGP4.replace("passive on;", "passive on;\n  graceful restart on;") + kernel));
    lab.write_config(&format!(
        "{POOL}{}{ADVERT}{}",
        peer("bird4", 64512, 64500, "10.9.0.2", ", enableGracefulRestart: true"),
        services(false)
    ));
    // lb puts the address on its host, and BIRD installs the route in the router's kernel:
    // the router reaches the service address through lb's node.
    let mut lb = lab.lb_with_host_addresses();
    assert!(eventually(Duration::from_secs(15), || bird.has_route("192.0.2.16/32")), "{}", lb.stderr());
    let ping = |secs: &str| lab.rtr.cmd("ping", &["-n", "-i", "0.05", "-w", secs, "192.0.2.16"]);
    let reached = eventually(Duration::from_secs(10), || {
        lab.rtr.exec("ping", &["-c", "1", "-W", "1", "192.0.2.16"]).status.success()
    });
    assert!(reached, "the router cannot reach the service address: {}", lab.rtr.ip(&["route"]));
    // Traffic flows through the whole restart.
    let mut traffic = Proc::spawn(ping("12"), &lab.dir.0, "ping");
    let mut dump = Proc::spawn(
        lab.rtr.cmd("tcpdump", &["-n", "-l", "-v", "-i", "eth0", "tcp port 179"]),
        &lab.dir.0,
        "tcpdump-gr",
    );
    std::thread::sleep(Duration::from_secs(1));
    lb.signal("TERM");
    assert_eq!(lb.wait(Duration::from_secs(5)), Some(0));
    // No NOTIFICATION: the router keeps the routes (stale) for the restart time.
    std::thread::sleep(Duration::from_secs(2));
    assert!(bird.has_route("192.0.2.16/32"), "routes kept during the restart:\n{}", bird.cli("show protocols all lb4"));
    assert!(!bird.cli("show protocols all lb4").contains("Administrative shutdown"));
    // The next process comes back, sends the table and End-of-RIB; the routes stay.
    let lb2 = lab.lb_with_host_addresses();
    assert!(eventually(Duration::from_secs(15), || bird.established("lb4")), "{}", lb2.stderr());
    assert!(bird.has_route("192.0.2.16/32"));
    // An End-of-RIB from lb (BIRD sends its own too): tcpdump -v prints a packet as a line
    // with the time, then its addresses, then the decoded BGP messages.
    let from_lb = |text: &str| {
        let mut packets: Vec<String> = Vec::new();
        for line in text.lines() {
            match packets.last_mut() {
                Some(p) if !line.starts_with(|c: char| c.is_ascii_digit()) => {
                    p.push('\n');
                    p.push_str(line);
                }
                _ => packets.push(line.to_string()),
            }
        }
        packets.iter().any(|p| p.contains("10.9.0.1.") && p.contains("> 10.9.0.2.") && p.contains("End-of-Rib"))
    };
    let sent_eor = eventually(Duration::from_secs(10), || from_lb(&dump.stdout()));
    dump.signal("TERM");
    dump.wait(Duration::from_secs(5));
    assert!(sent_eor, "no End-of-RIB from lb after the restart:\n{}", dump.stdout());
    assert_eq!(traffic.wait(Duration::from_secs(20)), Some(0), "ping failed");
    let summary = traffic.stdout();
    assert!(summary.contains(" 0% packet loss"), "traffic stopped during the restart:\n{summary}");
}

/// BIRD that connects to us (not passive), as soon as it starts.
const BIRD_ACTIVE: &str = "protocol bgp lb4 {\n  local 10.9.0.2 as 64500;\n  neighbor 10.9.0.1 as 64512;\n  connect delay time 0;\n  connect retry time 1;\n  error wait time 1, 2;\n  ipv4 { import all; export none; };\n}\n";

#[test]
fn a_connection_opened_by_the_peer_is_taken_up() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new();
    // lb connects to a port nobody listens on, so only BIRD's connection can succeed.
    lab.write_config(&format!(
        "{POOL}{}{ADVERT}{}",
        peer("bird4", 64512, 64500, "10.9.0.2", ", peerPort: 1790"),
        services(false)
    ));
    let lb = lab.lb();
    let bird = Bird::start(&lab, BIRD_ACTIVE);
    assert!(
        eventually(Duration::from_secs(15), || bird.has_route("192.0.2.16/32")),
        "{}\n{}",
        bird.cli("show protocols all lb4"),
        lb.stderr()
    );
    assert!(lb.stderr().contains("taking up a connection from the peer"), "{}", lb.stderr());
}

/// Runs the scripted collision peer (tests/collision_peer.py) against lb.
fn scripted_collision(mode: &str) -> (String, String) {
    let lab = Lab::new();
    lab.write_config(&format!("{POOL}{}{ADVERT}{}", peer("peer", 64512, 64500, "10.9.0.2", ""), services(false)));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/collision_peer.py");
    let mut peer = Proc::spawn(lab.rtr.cmd("python3", &[script, mode]), &lab.dir.0, "peer");
    std::thread::sleep(Duration::from_millis(300));
    let lb = lab.lb();
    peer.wait(Duration::from_secs(30));
    (peer.stdout() + &peer.stderr(), lb.stderr())
}

#[test]
fn a_collision_keeps_the_connection_of_the_higher_identifier() {
    if !prerequisites(&["ip", "python3"]) {
        return;
    }
    let (peer, lb) = scripted_collision("high");
    assert!(peer.starts_with("OK"), "{peer}\n{lb}");
    assert!(lb.contains("connection collision: keeping the peer's"), "{lb}");
    let (peer, lb) = scripted_collision("low");
    assert!(peer.starts_with("OK"), "{peer}\n{lb}");
    assert!(lb.contains("connection collision: keeping ours"), "{lb}");
}

#[test]
fn connection_collisions_end_with_one_stable_session() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new();
    lab.write_config(&format!("{POOL}{}{ADVERT}{}", peer("bird4", 64512, 64500, "10.9.0.2", ""), services(false)));
    // Both sides connect at once, again and again: each start races the other.
    for round in 0..3 {
        let bird = Bird::start(&lab, BIRD_ACTIVE);
        let lb = lab.lb();
        assert!(
            eventually(Duration::from_secs(15), || bird.established("lb4") && bird.has_route("192.0.2.16/32")),
            "round {round}:\n{}\n{}",
            bird.cli("show protocols all lb4"),
            lb.stderr()
        );
        // And it stays up: no flapping between the two connections.
        std::thread::sleep(Duration::from_secs(3));
        assert!(bird.established("lb4"), "round {round}: {}", bird.cli("show protocols all lb4"));
        assert!(!lb.stderr().contains("hold timer expired"), "{}", lb.stderr());
        eprintln!("round {round}: {} collision(s) resolved", lb.stderr().matches("connection collision").count());
        drop(lb);
        drop(bird);
    }
}

#[test]
fn gtsm_sessions_come_up_only_with_a_router_that_does_gtsm_too() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new();
    lab.write_config(&format!("{POOL}{}{ADVERT}{}", peer("bird4", 64512, 64500, "10.9.0.2", ""), services(false)));
    // BIRD with GTSM (RFC 5082): it sends with TTL 255 and wants 255 in.
    let gtsm = BIRD_EBGP4.replace("passive on;", "passive on;\n  ttl security on;");
    {
        let bird = Bird::start(&lab, &gtsm);
        let lb = lab.lb_with(&["--bgp-gtsm"]);
        let up = eventually(Duration::from_secs(15), || bird.has_route("192.0.2.16/32"));
        assert!(up, "{}\n{}", bird.cli("show protocols all lb4"), lb.stderr());
    }
    // BIRD without GTSM sends eBGP with TTL 1: lb drops every segment, no session.
    let bird = Bird::start(&lab, BIRD_EBGP4);
    let lb = lab.lb_with(&["--bgp-gtsm"]);
    std::thread::sleep(Duration::from_secs(6));
    assert!(!bird.established("lb4"), "{}\n{}", bird.cli("show protocols all lb4"), lb.stderr());
    assert!(!lb.stderr().contains("BGP session established"), "{}", lb.stderr());
    // And without GTSM on our side either, the same two come up: only GTSM kept them apart.
    // (BIRD starts afresh: a connection half set up during the refusals could hold it in
    // OpenConfirm until its hold time.)
    drop(lb);
    drop(bird);
    let bird = Bird::start(&lab, BIRD_EBGP4);
    let lb = lab.lb();
    let up = eventually(Duration::from_secs(15), || bird.has_route("192.0.2.16/32"));
    assert!(up, "{}\n{}", bird.cli("show protocols all lb4"), lb.stderr());
}

/// FRR's bgpd (Debian's `frr`, the router most MetalLB users peer with) in the router
/// namespace: without zebra (`-Z`: no kernel routes; next hops count as reachable), its vty
/// socket in the scratch directory.
struct Frr<'a> {
    lab: &'a Lab,
    daemon: Daemon,
    conf: PathBuf,
}

const BGPD: &str = "/usr/lib/frr/bgpd";

impl<'a> Frr<'a> {
    fn start(lab: &'a Lab, config: &str) -> Frr<'a> {
        let conf = lab.dir.path("frr.conf");
        std::fs::write(&conf, config).unwrap();
        let mut f = Frr { lab, daemon: Daemon::default(), conf };
        f.run();
        f
    }

    fn run(&mut self) {
        let pid = self.lab.dir.path("bgpd.pid");
        let vty = self.lab.dir.0.to_str().unwrap().to_string();
        let args = [
            "-Z",
            "-S",
            "-n",
            "-f",
            self.conf.to_str().unwrap(),
            "-i",
            pid.to_str().unwrap(),
            "--vty_socket",
            &vty,
            "-A",
            "127.0.0.1",
            "-P",
            "0",
        ];
        self.daemon.0 = Some(Proc::spawn(self.lab.rtr.cmd(BGPD, &args), &self.lab.dir.0, "bgpd"));
        assert!(
            eventually(Duration::from_secs(10), || self.cli("show bgp summary").contains("BGP router identifier")),
            "bgpd did not start"
        );
    }

    fn cli(&self, cmd: &str) -> String {
        let vty = self.lab.dir.0.to_str().unwrap();
        String::from_utf8_lossy(&support::run("vtysh", &["--vty_socket", vty, "-c", cmd]).stdout).into_owned()
    }

    fn route(&self, family: &str, prefix: &str) -> String {
        self.cli(&format!("show bgp {family} unicast {prefix}"))
    }

    fn has_route(&self, family: &str, prefix: &str) -> bool {
        self.route(family, prefix).contains("best")
    }
}

/// Root, vtysh and FRR's bgpd (not on PATH: `/usr/lib/frr`), as `prerequisites` says.
fn frr_prerequisites() -> bool {
    if !prerequisites(&["ip", "vtysh"]) {
        return false;
    }
    if !std::path::Path::new(BGPD).is_file() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true and {BGPD} is missing (Debian package frr)");
        eprintln!("SKIPPED: this test needs {BGPD} (Debian package frr): run ./scripts/test as root to install it");
        return false;
    }
    true
}

const FRR_CONF: &str = "frr defaults traditional\nhostname rtr\nlog stdout informational\n\
router bgp 64500\n bgp router-id 10.9.0.2\n no bgp ebgp-requires-policy\n\
 neighbor 10.9.0.1 remote-as 64512\n neighbor 10.9.0.1 timers 3 9\n\
 neighbor 2001:db8:9::1 remote-as 64500\n neighbor 2001:db8:9::1 password s3cret\n\
 address-family ipv4 unicast\n  neighbor 10.9.0.1 activate\n  no neighbor 2001:db8:9::1 activate\n exit-address-family\n\
 address-family ipv6 unicast\n  neighbor 2001:db8:9::1 activate\n exit-address-family\n";

#[test]
fn frr_receives_ipv4_over_ebgp_and_ipv6_over_ibgp_with_md5_follows_changes_refreshes_and_restarts() {
    if !frr_prerequisites() {
        return;
    }
    let lab = Lab::new();
    let mut frr = Frr::start(&lab, FRR_CONF);
    let peers = format!(
        "{}{}",
        peer("frr4", 64512, 64500, "10.9.0.2", ", holdTime: 9s"),
        peer("frr6", 64500, 64500, "2001:db8:9::2", ", password: s3cret")
    );
    let cfg = lab.write_config(&format!("{POOL}{peers}{ADVERT}{}", services(true)));
    let lb = lab.lb();
    assert!(
        eventually(Duration::from_secs(20), || frr.has_route("ipv4", "192.0.2.17/32")
            && frr.has_route("ipv6", "2001:db8:5::1/128")),
        "{}\n{}",
        frr.cli("show bgp summary"),
        lb.stderr()
    );
    // eBGP over IPv4: our AS in the path, the session's address as next hop, both kinds of
    // community; no LOCAL_PREF on eBGP.
    let r4 = frr.route("ipv4", "192.0.2.16/32");
    assert!(r4.contains("64512") && r4.contains("10.9.0.1 from 10.9.0.1"), "{r4}");
    assert!(r4.contains("Community: no-export"), "{r4}");
    assert!(r4.contains("Large Community: 64512:1:2"), "{r4}");
    assert!(r4.contains("external") && !r4.contains("localpref 250"), "{r4}");
    // iBGP over IPv6 (TCP MD5): LOCAL_PREF from the advertisement, an empty AS path.
    let r6 = frr.route("ipv6", "2001:db8:5::/128");
    assert!(r6.contains("localpref 250") && r6.contains("internal"), "{r6}");
    assert!(r6.contains("2001:db8:9::1"), "{r6}");
    assert!(r6.contains("Local"), "an empty AS path reads Local: {r6}");
    // One BGP identifier for both sessions: the IPv4 address beside the session's IPv6 one.
    assert!(r6.contains("from 2001:db8:9::1 (10.9.0.1)"), "{r6}");

    // Removing a service withdraws exactly its routes; adding it back announces them.
    std::fs::write(&cfg, format!("{POOL}{peers}{ADVERT}{}", services(false))).unwrap();
    assert!(eventually(Duration::from_secs(6), || !frr.has_route("ipv4", "192.0.2.17/32")), "{}", lb.stderr());
    assert!(eventually(Duration::from_secs(6), || !frr.has_route("ipv6", "2001:db8:5::1/128")));
    assert!(frr.has_route("ipv4", "192.0.2.16/32") && frr.has_route("ipv6", "2001:db8:5::/128"));
    std::fs::write(&cfg, format!("{POOL}{peers}{ADVERT}{}", services(true))).unwrap();
    assert!(eventually(Duration::from_secs(6), || frr.has_route("ipv4", "192.0.2.17/32")));

    // FRR asks for the table again (ROUTE-REFRESH): lb sends it whole.
    frr.cli("clear bgp ipv4 unicast 10.9.0.1 soft in");
    assert!(eventually(Duration::from_secs(6), || lb.stderr().contains("ROUTE-REFRESH received")), "{}", lb.stderr());
    assert!(frr.has_route("ipv4", "192.0.2.17/32"));

    // FRR restarts: both sessions come back with the whole table.
    frr.daemon.stop();
    frr.run();
    assert!(
        eventually(Duration::from_secs(40), || frr.has_route("ipv4", "192.0.2.17/32")
            && frr.has_route("ipv6", "2001:db8:5::1/128")),
        "{}\n{}",
        frr.cli("show bgp summary"),
        lb.stderr()
    );
}

/// `n` LoadBalancer Services (t/s0 …) and a pool of /32s large enough for them.
fn many(n: usize) -> String {
    let mut y = String::from(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: big}\nspec: {addresses: [10.100.0.0/16]}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all}\n---\napiVersion: v1\nkind: List\nitems:\n",
    );
    for i in 0..n {
        y.push_str(&format!("- {{apiVersion: v1, kind: Service, metadata: {{name: s{i}, namespace: t}}, spec: {{type: LoadBalancer}}}}\n"));
    }
    y
}

/// The UPDATE count of lb's last "sent UPDATE messages" log line for `peer`.
fn updates_sent(stderr: &str, peer: &str) -> Option<u64> {
    stderr
        .lines()
        .rfind(|l| l.contains("sent UPDATE messages") && l.contains(&format!("peer={peer}")))
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("updates=")))
        .and_then(|n| n.parse().ok())
}

#[test]
fn with_extended_messages_the_table_goes_in_fewer_larger_updates() {
    if !prerequisites(TOOLS) {
        return;
    }
    // 3,000 /32s: about 810 fit in a 4,096-octet UPDATE (4 UPDATEs), all of them in one of
    // up to 65,535 octets once both sides announce extended messages (RFC 8654).
    let lab = Lab::new();
    let bird = Bird::start(&lab, &BIRD_EBGP4.replace("passive on;", "passive on;\n  enable extended messages on;"));
    lab.write_config(&format!("{}{}", peer("bird", 64512, 64500, "10.9.0.2", ""), many(3000)));
    let lb = lab.lb();
    assert!(
        eventually(Duration::from_secs(20), || bird.cli("show route count").contains("3000 of 3000 routes")),
        "{}\n{}\n{}",
        bird.cli("show route count"),
        bird.cli("show protocols all lb4"),
        lb.stderr()
    );
    let caps = bird.cli("show protocols all lb4");
    assert!(caps.matches("Extended message").count() >= 2, "announced by both sides:\n{caps}");
    // The count includes the End-of-RIB markers (one per family both sides announce).
    let sent = updates_sent(&lb.stderr(), "bird").unwrap_or(u64::MAX);
    assert!(sent <= 3, "3,000 routes fit in one extended UPDATE, {sent} sent:\n{}", lb.stderr());
}

/// OpenBGPD (Debian's `openbgpd`) in the router namespace, its control socket in the
/// scratch directory. It chroots to its user's home, `/run/openbgpd`, which systemd would
/// create: the test creates it when missing.
struct OpenBgpd<'a> {
    lab: &'a Lab,
    daemon: Daemon,
    conf: PathBuf,
    sock: PathBuf,
}

impl<'a> OpenBgpd<'a> {
    fn start(lab: &'a Lab, neighbors: &str) -> OpenBgpd<'a> {
        std::fs::create_dir_all("/run/openbgpd").expect("OpenBGPD's chroot directory");
        let sock = lab.dir.path("bgpd.sock");
        let conf = lab.dir.path("openbgpd.conf");
        std::fs::write(
            &conf,
            format!(
                "AS 64500\nrouter-id 10.9.0.2\nlisten on 10.9.0.2\nlisten on 2001:db8:9::2\nsocket \"{}\"\n{neighbors}allow from any\ndeny to any\n",
                sock.display()
            ),
        )
        .unwrap();
        let mut o = OpenBgpd { lab, daemon: Daemon::default(), conf, sock };
        o.run();
        o
    }

    fn run(&mut self) {
        let args = ["-d", "-f", self.conf.to_str().unwrap()];
        self.daemon.0 = Some(Proc::spawn(self.lab.rtr.cmd("bgpd", &args), &self.lab.dir.0, "openbgpd"));
        assert!(
            eventually(Duration::from_secs(10), || self.cli(&["show"]).contains("Neighbor")),
            "OpenBGPD did not start: {}",
            std::fs::read_to_string(self.lab.dir.path("openbgpd.err")).unwrap_or_default()
        );
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut a = vec!["-s", self.sock.to_str().unwrap()];
        a.extend_from_slice(args);
        String::from_utf8_lossy(&support::run("bgpctl", &a).stdout).into_owned()
    }

    fn route(&self, prefix: &str) -> String {
        self.cli(&["show", "rib", "detail", prefix])
    }

    fn has_route(&self, prefix: &str) -> bool {
        self.route(prefix).contains(&format!("entry for {prefix}"))
    }
}

#[test]
fn openbgpd_receives_ipv4_over_ebgp_and_ipv6_over_ibgp_with_md5_refreshes_and_shuts_down() {
    if !prerequisites(&["ip", "bgpd", "bgpctl"]) {
        return;
    }
    let lab = Lab::new();
    let neighbors = "neighbor 10.9.0.1 {\n  remote-as 64512\n  descr \"lb\"\n  holdtime 9\n}\n\
                     neighbor 2001:db8:9::1 {\n  remote-as 64500\n  descr \"lb6\"\n  tcp md5sig password s3cret\n}\n";
    let obgp = OpenBgpd::start(&lab, neighbors);
    let peers = format!(
        "{}{}",
        peer("obgp4", 64512, 64500, "10.9.0.2", ", holdTime: 9s"),
        peer("obgp6", 64500, 64500, "2001:db8:9::2", ", password: s3cret")
    );
    let cfg = lab.write_config(&format!("{POOL}{peers}{ADVERT}{}", services(true)));
    let lb = lab.lb();
    assert!(
        eventually(Duration::from_secs(20), || obgp.has_route("192.0.2.17/32") && obgp.has_route("2001:db8:5::1/128")),
        "{}\n{}",
        obgp.cli(&["show"]),
        lb.stderr()
    );
    let r4 = obgp.route("192.0.2.16/32");
    assert!(r4.contains("Nexthop 10.9.0.1") && r4.contains("64512"), "{r4}");
    assert!(r4.contains("Communities: NO_EXPORT") && r4.contains("Large Communities: 64512:1:2"), "{r4}");
    assert!(r4.contains("external"), "{r4}");
    let r6 = obgp.route("2001:db8:5::/128");
    assert!(r6.contains("Nexthop 2001:db8:9::1") && r6.contains("localpref 250") && r6.contains("internal"), "{r6}");

    // Removing a service withdraws exactly its routes.
    std::fs::write(&cfg, format!("{POOL}{peers}{ADVERT}{}", services(false))).unwrap();
    assert!(eventually(Duration::from_secs(6), || !obgp.has_route("192.0.2.17/32")), "{}", lb.stderr());
    assert!(obgp.has_route("192.0.2.16/32"));

    // A ROUTE-REFRESH from OpenBGPD gets the whole table.
    obgp.cli(&["neighbor", "lb", "refresh"]);
    assert!(eventually(Duration::from_secs(6), || lb.stderr().contains("ROUTE-REFRESH received")), "{}", lb.stderr());

    // An administrative shutdown from the router with a reason (RFC 9003): lb says which,
    // by name, and the session comes back when the router brings it up.
    obgp.cli(&["neighbor", "lb6", "down", "maintenance"]);
    assert!(
        eventually(Duration::from_secs(6), || lb
            .stderr()
            .contains("the peer sent NOTIFICATION Cease / Administrative Shutdown (6/2) \"maintenance\"")),
        "{}",
        lb.stderr()
    );
    obgp.cli(&["neighbor", "lb6", "up"]);
    assert!(
        eventually(Duration::from_secs(40), || obgp
            .cli(&["show"])
            .lines()
            .any(|l| l.starts_with("lb6") && !l.contains("Connect") && !l.contains("Active") && !l.contains("Idle"))
            && obgp.has_route("2001:db8:5::/128")),
        "{}\n{}",
        obgp.cli(&["show"]),
        lb.stderr()
    );
}

#[test]
fn frr_keeps_the_routes_as_stale_across_a_graceful_restart_over_gtsm() {
    if !frr_prerequisites() {
        return;
    }
    let lab = Lab::new();
    // GTSM on both sides (FRR's ttl-security, lb's --bgp-gtsm), graceful restart on both.
    let frr = Frr::start(
        &lab,
        "frr defaults traditional\nhostname rtr\nlog stdout informational\nrouter bgp 64500\n bgp router-id 10.9.0.2\n\
         no bgp ebgp-requires-policy\n bgp graceful-restart\n neighbor 10.9.0.1 remote-as 64512\n\
         neighbor 10.9.0.1 ttl-security hops 1\n neighbor 10.9.0.1 timers 3 9\n",
    );
    lab.write_config(&format!(
        "{POOL}{}{ADVERT}{}",
        peer("frr", 64512, 64500, "10.9.0.2", ", enableGracefulRestart: true"),
        services(false)
    ));
    let mut lb = lab.lb_with(&["--bgp-gtsm"]);
    assert!(
        eventually(Duration::from_secs(20), || frr.has_route("ipv4", "192.0.2.16/32")),
        "{}\n{}",
        frr.cli("show bgp summary"),
        lb.stderr()
    );
    let n = frr.cli("show bgp neighbors 10.9.0.1");
    assert!(n.contains("Graceful Restart Capability: advertised and received"), "{n}");
    assert!(n.contains("may be up to 1 hops away"), "GTSM in force:\n{n}");

    // lb stops (SIGTERM, graceful restart configured: no NOTIFICATION): FRR keeps the route,
    // marked stale, until lb is back and has sent its table again.
    lb.signal("TERM");
    assert_eq!(lb.wait(Duration::from_secs(5)), Some(0), "{}", lb.stderr());
    assert!(
        eventually(Duration::from_secs(5), || frr.cli("show bgp ipv4 unicast").contains("S> 192.0.2.16/32")),
        "{}",
        frr.cli("show bgp ipv4 unicast")
    );
    let lb2 = lab.lb_with(&["--bgp-gtsm"]);
    assert!(
        eventually(Duration::from_secs(20), || {
            let table = frr.cli("show bgp ipv4 unicast");
            table.contains("*> 192.0.2.16/32") && !table.contains("S> 192.0.2.16/32")
        }),
        "{}\n{}",
        frr.cli("show bgp ipv4 unicast"),
        lb2.stderr()
    );
}

#[test]
fn ebgp_multihop_from_a_source_address_reaches_a_router_two_hops_away_and_ttl_1_does_not() {
    if !prerequisites(TOOLS) {
        return;
    }
    // lb (10.9.0.1, loopback 10.255.0.1) -- middle (forwards) -- router (10.10.0.2).
    let spk = Netns::new("msp");
    let mid = Netns::new("mmd");
    let rtr = Netns::new("mrt");
    let dir = Scratch::new("multihop");
    veth(&spk, &mid, "eth0");
    veth(&mid, &rtr, "eth1");
    spk.ip(&["addr", "add", "10.9.0.1/24", "dev", "eth0"]);
    spk.ip(&["addr", "add", "10.255.0.1/32", "dev", "lo"]);
    spk.ip(&["route", "add", "default", "via", "10.9.0.2"]);
    mid.ip(&["addr", "add", "10.9.0.2/24", "dev", "eth0"]);
    mid.ip(&["addr", "add", "10.10.0.1/24", "dev", "eth1"]);
    mid.ip(&["route", "add", "10.255.0.1/32", "via", "10.9.0.1"]);
    assert!(mid.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]).status.success());
    rtr.ip(&["addr", "add", "10.10.0.2/24", "dev", "eth1"]);
    rtr.ip(&["route", "add", "default", "via", "10.10.0.1"]);
    let conf = dir.path("bird.conf");
    let sock = dir.path("bird.ctl");
    std::fs::write(
        &conf,
        "router id 10.10.0.2;\nprotocol device {}\nprotocol bgp lbm {\n  local 10.10.0.2 as 64500;\n  \
         neighbor 10.255.0.1 as 64512;\n  multihop 2;\n  passive on;\n  error wait time 1, 2;\n  \
         ipv4 { import all; export none; };\n}\n",
    )
    .unwrap();
    let pid = dir.path("bird.pid");
    let args = ["-f", "-c", conf.to_str().unwrap(), "-s", sock.to_str().unwrap(), "-P", pid.to_str().unwrap()];
    let mut bird = Daemon(Some(Proc::spawn(rtr.cmd("bird", &args), &dir.0, "bird")));
    let birdc = |cmd: &str| {
        let mut a = vec!["-s", sock.to_str().unwrap()];
        a.extend(cmd.split(' '));
        String::from_utf8_lossy(&support::run("birdc", &a).stdout).into_owned()
    };
    assert!(eventually(Duration::from_secs(5), || birdc("show status").contains("Daemon is up")), "BIRD did not start");
    let cfg = dir.path("lb.yaml");
    let run = |multihop: bool| {
        let extra = format!(", sourceAddress: 10.255.0.1, ebgpMultiHop: {multihop}");
        std::fs::write(
            &cfg,
            format!("{POOL}{}{ADVERT}{}", peer("far", 64512, 64500, "10.10.0.2", &extra), services(false)),
        )
        .unwrap();
        let state = dir.path("state.json");
        let args = [
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "--node",
            "spk",
            "--state-file",
            state.to_str().unwrap(),
            "--no-host-addresses",
        ];
        Proc::spawn(spk.cmd(env!("CARGO_BIN_EXE_lb"), &args), &dir.0, &format!("lb-{multihop}"))
    };

    // Single-hop TTL (1): the middle hop drops lb's segments, no session.
    let mut lb = run(false);
    assert!(
        !eventually(Duration::from_secs(6), || birdc("show protocols lbm").contains("Established")),
        "a session with TTL 1 across a router:\n{}",
        birdc("show protocols all lbm")
    );
    lb.signal("TERM");
    lb.wait(Duration::from_secs(5));

    // ebgpMultiHop: TTL 255; the session comes from the loopback source address.
    let lb = run(true);
    assert!(
        eventually(Duration::from_secs(20), || birdc("show route all 192.0.2.16/32").contains("BGP.next_hop")),
        "{}\n{}",
        birdc("show protocols all lbm"),
        lb.stderr()
    );
    let p = birdc("show protocols all lbm");
    assert!(p.contains("Established") && p.contains("Neighbor address: 10.255.0.1"), "{p}");
    bird.stop();
}
