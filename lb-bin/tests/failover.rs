//! L2 failover with real parts: `lb run` on three hosts (network namespaces) sharing one
//! configuration (`kind: Node` entries and a membership key), and a client, all on one
//! bridge. The owner of the service's addresses is killed (SIGKILL), and later another owner
//! loses its link: each time exactly one host takes over, the client's neighbour entries
//! follow the new owner's gratuitous ARP / unsolicited NA without the client asking, no
//! other MAC claims the address after the take-over, and the host that comes back takes
//! nothing back. And two hosts cut off from each other both answer, then settle on one.
//!
//! Needs root and ip, arping, ndisc6, tcpdump, ping (installed by ./scripts/test as root);
//! without them it says SKIPPED, under CI=true it fails.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use support::{eventually, prerequisites, Netns, Proc, Scratch};

const TOOLS: &[&str] = &["ip", "arping", "ndisc6", "tcpdump", "ping"];
const KEY: &str = "a shared key of 16+ bytes";
const V4: &str = "10.81.0.100";
const V6: &str = "fd00:81::100";

fn config(hosts: usize) -> String {
    let mut y = String::from(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan}\nspec:\n  addresses: [10.81.0.100/32, \"fd00:81::100/128\"]\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: t}\nspec: {type: LoadBalancer, ipFamilyPolicy: RequireDualStack, ports: [{port: 80}]}\n",
    );
    for i in 0..hosts {
        y.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: n{i}, labels: {{rack: r{i}}}}}\nstatus: {{addresses: [{{type: InternalIP, address: 10.81.0.{}}}]}}\n",
            i + 1
        ));
    }
    y
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// A frame seen by the client that says "this MAC has this address": an ARP reply or
/// gratuitous request for one of the service addresses, or a neighbour advertisement of it.
#[derive(Debug)]
struct Claim {
    at: f64,
    mac: String,
    ip: &'static str,
}

struct Lab {
    nodes: Vec<Netns>,
    cli: Netns,
    _sw: Netns,
    dir: Scratch,
    macs: Vec<String>,
    _dump: Proc,
}

impl Lab {
    fn new(hosts: usize) -> Lab {
        let nodes: Vec<Netns> = (0..hosts).map(|_| Netns::new("fn")).collect();
        let cli = Netns::new("fc");
        let mut members: Vec<&Netns> = nodes.iter().collect();
        members.push(&cli);
        let sw = support::bridged(&members);
        for (i, n) in nodes.iter().enumerate() {
            // IPv6 addresses survive a link going down (the kernel's default drops them).
            let o = n.exec("sh", &["-c", "echo 1 > /proc/sys/net/ipv6/conf/all/keep_addr_on_down"]);
            assert!(o.status.success(), "keep_addr_on_down: {}", String::from_utf8_lossy(&o.stderr));
            n.ip(&["addr", "add", &format!("10.81.0.{}/24", i + 1), "dev", "eth0"]);
            n.ip(&["addr", "add", &format!("fd00:81::{}/64", i + 1), "dev", "eth0", "nodad"]);
        }
        cli.ip(&["addr", "add", "10.81.0.10/24", "dev", "eth0"]);
        cli.ip(&["addr", "add", "fd00:81::10/64", "dev", "eth0", "nodad"]);
        let dir = Scratch::new("fo");
        std::fs::write(dir.path("lb.yaml"), config(hosts)).expect("config");
        let pcap = dir.path("client.pcap");
        let dump = Proc::spawn(
            cli.cmd("tcpdump", &["-n", "-U", "-i", "eth0", "-w", pcap.to_str().unwrap(), "arp or icmp6"]),
            &dir.0,
            "tcpdump",
        );
        assert!(eventually(Duration::from_secs(5), || dump.stderr().contains("listening on")), "tcpdump did not start");
        let macs = nodes.iter().map(|n| n.mac("eth0").to_lowercase()).collect();
        Lab { nodes, cli, _sw: sw, dir, macs, _dump: dump }
    }

    fn lb(&self, i: usize, tag: &str) -> Proc {
        let cfg = self.dir.path("lb.yaml");
        let state = self.dir.path(&format!("n{i}.json"));
        let node = format!("n{i}");
        let args = [
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "--node",
            &node,
            "--state-file",
            state.to_str().unwrap(),
            "--bgp-listen",
            "off",
            "--memberlist-key",
            KEY,
        ];
        let mut cmd = self.nodes[i].cmd(env!("CARGO_BIN_EXE_lb"), &args);
        cmd.env("RUST_LOG", "info");
        Proc::spawn(cmd, &self.dir.0, &format!("lb-n{i}-{tag}"))
    }

    fn node_of(&self, mac: &str) -> Option<usize> {
        self.macs.iter().position(|m| m == mac)
    }

    /// The node whose MAC answers an ARP request for V4.
    fn arp_owner(&self) -> Option<usize> {
        let o = self.cli.exec("arping", &["-r", "-c", "1", "-w", "1", "-i", "eth0", V4]);
        let mac = String::from_utf8_lossy(&o.stdout).trim().to_lowercase();
        self.node_of(&mac)
    }

    /// The node whose MAC answers a neighbour solicitation for V6.
    fn nd_owner(&self) -> Option<usize> {
        let o = self.cli.exec("ndisc6", &["-1", "-q", "-r", "2", "-w", "500", V6, "eth0"]);
        let mac = String::from_utf8_lossy(&o.stdout).trim().to_lowercase();
        self.node_of(&mac)
    }

    /// The node the client's own neighbour table sends `ip` to.
    fn neighbour(&self, ip: &str) -> Option<usize> {
        let line = self.cli.ip(&["neigh", "show", ip]).to_lowercase();
        let mac = line.split_whitespace().skip_while(|w| *w != "lladdr").nth(1)?.to_string();
        self.node_of(&mac)
    }

    /// Every frame the client saw that claims a service address, in order.
    fn claims(&self) -> Vec<Claim> {
        let pcap = self.dir.path("client.pcap");
        let text = support::must("tcpdump", &["-n", "-e", "-tt", "-r", pcap.to_str().unwrap()]);
        text.lines()
            .filter_map(|l| {
                let ip = if l.contains(&format!("Reply {V4} is-at")) || l.contains(&format!("tell {V4},")) {
                    V4
                } else if l.contains(&format!("neighbor advertisement, tgt is {V6},")) {
                    V6
                } else {
                    return None;
                };
                let mut w = l.split_whitespace();
                let at = w.next()?.parse().ok()?;
                Some(Claim { at, mac: w.next()?.to_lowercase(), ip })
            })
            .collect()
    }

    /// Fails unless, after `since`, every frame claiming `ip` came from node `owner`'s MAC
    /// once the first of them had (the take-over), and nothing else claimed it afterwards.
    fn only_owner_after(&self, ip: &str, owner: usize, since: f64, logs: &str) {
        let claims = self.claims();
        let after: Vec<&Claim> = claims.iter().filter(|c| c.ip == ip && c.at >= since).collect();
        let first = after.iter().position(|c| c.mac == self.macs[owner]);
        let first = first.unwrap_or_else(|| panic!("n{owner} never claimed {ip} after {since}: {after:?}\n{logs}"));
        let others: Vec<&&Claim> = after[first..].iter().filter(|c| c.mac != self.macs[owner]).collect();
        assert!(others.is_empty(), "another MAC claimed {ip} after n{owner} took it: {others:?}\n{logs}");
    }

    /// Client traffic to both addresses, so that its neighbour table holds their owners.
    fn touch(&self) {
        self.cli.exec("ping", &["-c", "1", "-W", "1", V4]);
        self.cli.exec("ping", &["-6", "-c", "1", "-W", "1", V6]);
    }
}

fn logs(lbs: &[&Proc]) -> String {
    lbs.iter().map(|p| format!("--- {}\n{}", p.stderr.display(), p.stderr())).collect()
}

#[test]
fn three_hosts_fail_over_to_exactly_one_and_never_back() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new(3);
    let mut lbs: Vec<Proc> = (0..3).map(|i| lab.lb(i, "a")).collect();
    let all = |lbs: &Vec<Proc>| logs(&lbs.iter().collect::<Vec<_>>());
    let met = eventually(Duration::from_secs(10), || lbs.iter().all(|p| p.stderr().matches("member up").count() >= 2));
    assert!(met, "the hosts never met:\n{}", all(&lbs));
    let ready = eventually(Duration::from_secs(10), || lab.arp_owner().is_some() && lab.nd_owner().is_some());
    assert!(ready, "nobody answers for the addresses:\n{}", all(&lbs));
    let (owner4, owner6) = (lab.arp_owner().unwrap(), lab.nd_owner().unwrap());
    // Which hosts' logs say they answer for `ip` now (the last word of each).
    let announcing = |p: &Proc, ip: &str| {
        let needle = format!("ip={ip} ");
        let text = p.stderr();
        let last = text.lines().rfind(|l| l.contains("announcing in L2 mode") && l.contains(&needle)).map(String::from);
        last.is_some_and(|l| !l.contains("no longer")) as usize
    };
    let holders = lbs.iter().map(|p| announcing(p, V4)).sum::<usize>();
    assert_eq!(holders, 1, "exactly one host answers for {V4}:\n{}", all(&lbs));
    lab.touch();
    assert_eq!((lab.neighbour(V4), lab.neighbour(V6)), (Some(owner4), Some(owner6)));

    // 1. The owner of V4 dies without a word.
    let victim = owner4;
    let killed_at = now();
    lbs[victim].signal("KILL");
    lbs[victim].wait(Duration::from_secs(5));
    // The client's entries move by the new owners' own announcements: the client sends
    // nothing to the addresses meanwhile.
    let moved = eventually(Duration::from_secs(10), || {
        lab.neighbour(V4).is_some_and(|n| n != victim)
            && (owner6 != victim || lab.neighbour(V6).is_some_and(|n| n != victim))
    });
    assert!(moved, "the client's neighbour entries did not move: {:?}\n{}", lab.cli.ip(&["neigh"]), all(&lbs));
    let new4 = lab.neighbour(V4).unwrap();
    let new6 = lab.neighbour(V6).unwrap();
    if owner6 != victim {
        assert_eq!(new6, owner6, "{V6} moved though its owner lives");
    }
    assert_eq!(lab.arp_owner(), Some(new4));
    assert_eq!(lab.nd_owner(), Some(new6));

    // 2. The killed host comes back: it joins, and takes nothing back.
    lbs[victim] = lab.lb(victim, "b");
    let rejoined = eventually(Duration::from_secs(10), || lbs[victim].stderr().matches("member up").count() >= 2);
    assert!(rejoined, "n{victim} did not rejoin:\n{}", all(&lbs));
    std::thread::sleep(Duration::from_secs(3));
    for _ in 0..3 {
        assert_eq!(lab.arp_owner(), Some(new4), "{V4} flapped back:\n{}", all(&lbs));
        assert_eq!(lab.nd_owner(), Some(new6), "{V6} flapped back:\n{}", all(&lbs));
    }
    assert!(!lbs[victim].stderr().contains("announcing in L2 mode"), "{}", lbs[victim].stderr());
    lab.only_owner_after(V4, new4, killed_at, &all(&lbs));
    lab.only_owner_after(V6, new6, killed_at, &all(&lbs));

    // 3. The owner of V4 now loses its link.
    let cut = new4;
    let cut_at = now();
    lab.nodes[cut].ip(&["link", "set", "eth0", "down"]);
    let moved = eventually(Duration::from_secs(10), || {
        lab.neighbour(V4).is_some_and(|n| n != cut) && (new6 != cut || lab.neighbour(V6).is_some_and(|n| n != cut))
    });
    assert!(moved, "the client's neighbour entries did not move: {:?}\n{}", lab.cli.ip(&["neigh"]), all(&lbs));
    let (last4, last6) = (lab.neighbour(V4).unwrap(), lab.neighbour(V6).unwrap());
    assert_eq!(lab.arp_owner(), Some(last4));
    assert_eq!(lab.nd_owner(), Some(last6));
    let gave_up = eventually(Duration::from_secs(5), || lbs[cut].stderr().contains("no longer announcing"));
    assert!(gave_up, "n{cut} kept its addresses with its link down:\n{}", lbs[cut].stderr());

    // 4. Its link comes back: it rejoins, and takes nothing back either.
    let up_at = now();
    lab.nodes[cut].ip(&["link", "set", "eth0", "up"]);
    std::thread::sleep(Duration::from_secs(4));
    for _ in 0..3 {
        assert_eq!(lab.arp_owner(), Some(last4), "{V4} flapped back after the link returned:\n{}", all(&lbs));
        assert_eq!(lab.nd_owner(), Some(last6), "{V6} flapped back after the link returned:\n{}", all(&lbs));
    }
    lab.only_owner_after(V4, last4, cut_at, &all(&lbs));
    lab.only_owner_after(V6, last6, cut_at, &all(&lbs));
    let from_cut: Vec<Claim> = lab.claims().into_iter().filter(|c| c.at >= up_at && c.mac == lab.macs[cut]).collect();
    assert!(from_cut.is_empty(), "n{cut} claimed an address after its link returned: {from_cut:?}");

    // 5. A planned move: the owner of V4 is stopped (SIGTERM). The next owner announces
    // before the leaving one stops answering, and the client's entry follows.
    let leaving = last4;
    let term_at = now();
    lbs[leaving].signal("TERM");
    assert_eq!(lbs[leaving].wait(Duration::from_secs(10)), Some(0), "{}", lbs[leaving].stderr());
    let moved = eventually(Duration::from_secs(5), || lab.neighbour(V4).is_some_and(|n| n != leaving));
    assert!(moved, "the client's entry did not move: {}\n{}", lab.cli.ip(&["neigh"]), all(&lbs));
    let next = lab.neighbour(V4).unwrap();
    assert_eq!(lab.arp_owner(), Some(next));
    lab.only_owner_after(V4, next, term_at, &all(&lbs));
    // Make before break: the next owner took the address before the leaving one stopped
    // accepting its traffic (both logs stamp lines with the same UTC clock, in one
    // fixed-width format).
    let stamp = |p: &Proc, what: &str| {
        let lines: Vec<String> = p.stderr().lines().filter(|l| l.contains(what)).map(String::from).collect();
        lines.last().and_then(|l| l.split_whitespace().next().map(String::from))
    };
    let taken = stamp(&lbs[next], &format!("announcing in L2 mode ip={V4} "));
    let stopped = stamp(&lbs[leaving], "withdrawn everything; exiting");
    assert!(
        taken.is_some() && stopped.is_some() && taken < stopped,
        "taken {taken:?}, stopped {stopped:?}\n{}",
        all(&lbs)
    );

    // Everyone else leaves cleanly.
    for p in &mut lbs {
        p.signal("TERM");
        assert_eq!(p.wait(Duration::from_secs(10)), Some(0), "{}", p.stderr());
    }
}

#[test]
fn two_hosts_cut_off_from_each_other_both_answer_then_settle_on_the_older_claim() {
    if !prerequisites(TOOLS) {
        return;
    }
    let lab = Lab::new(2);
    let mut lbs: Vec<Proc> = (0..2).map(|i| lab.lb(i, "a")).collect();
    let all = |lbs: &Vec<Proc>| logs(&lbs.iter().collect::<Vec<_>>());
    let ready = eventually(Duration::from_secs(10), || {
        lbs.iter().all(|p| p.stderr().contains("member up")) && lab.arp_owner().is_some()
    });
    assert!(ready, "no owner:\n{}", all(&lbs));
    let first = lab.arp_owner().unwrap();
    let second = 1 - first;
    lab.touch();
    assert_eq!(lab.neighbour(V4), Some(first));

    // The hosts stop hearing each other (both links stay up, both still reach the client):
    // each takes the other for dead, so the second answers too, and the client follows it.
    lab.nodes[0].ip(&["route", "add", "blackhole", "10.81.0.2/32"]);
    lab.nodes[1].ip(&["route", "add", "blackhole", "10.81.0.1/32"]);
    let split = eventually(Duration::from_secs(10), || lbs.iter().all(|p| p.stderr().contains("member down")));
    assert!(split, "membership never split:\n{}", all(&lbs));
    let both = eventually(Duration::from_secs(10), || lab.neighbour(V4) == Some(second));
    assert!(both, "the second host did not take over during the split:\n{}", all(&lbs));
    std::thread::sleep(Duration::from_secs(3));

    // Healed: they meet again, the older claim (the first host's) keeps the address, the
    // second gives it up, and the first announces it again, so the client's entry comes
    // back to it without the client asking.
    let healed_at = now();
    lab.nodes[0].ip(&["route", "del", "blackhole", "10.81.0.2/32"]);
    lab.nodes[1].ip(&["route", "del", "blackhole", "10.81.0.1/32"]);
    let back = eventually(Duration::from_secs(15), || lab.neighbour(V4) == Some(first));
    assert!(back, "the client's entry stayed on the second host: {}\n{}", lab.cli.ip(&["neigh"]), all(&lbs));
    assert!(lbs[first].stderr().contains("announcing them again"), "{}", lbs[first].stderr());
    assert_eq!(lab.arp_owner(), Some(first));
    lab.only_owner_after(V4, first, healed_at, &all(&lbs));
    for p in &mut lbs {
        p.signal("TERM");
        assert_eq!(p.wait(Duration::from_secs(10)), Some(0), "{}", p.stderr());
    }
}
