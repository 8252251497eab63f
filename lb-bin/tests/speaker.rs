//! `lb speaker` end to end with real parts: the real controller and speaker against the fake
//! API server, the speaker in a network namespace, real `arping` from a client namespace
//! asking for the address the controller assigned. Needs root, arping and socat (installed
//! by ./scripts/test as root); without them it says SKIPPED, under CI=true it fails.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use support::cluster::{metrics_addr, Cluster, NS};
use support::{eventually, prerequisites, veth, Netns, Proc};

const TOOLS: &[&str] = &["ip", "arping", "socat", "bird", "birdc"];

/// The speaker's /metrics, read from inside its namespace.
fn scrape(node: &Netns, speaker: &Proc) -> String {
    let addr = metrics_addr(speaker).expect("the metrics address in the log");
    let port = addr.rsplit(':').next().unwrap();
    let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}; printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3");
    String::from_utf8_lossy(&node.exec("bash", &["-c", &script]).stdout).into_owned()
}

/// A node namespace whose speaker reaches the API server (in this process) through a Unix
/// socket and socat, and its kubeconfig.
fn node_with_api(c: &Cluster, prefix: &str) -> (Netns, Proc, std::path::PathBuf) {
    let sock = c.dir.path("api.sock");
    if !sock.exists() {
        c.api.serve_unix(&sock).expect("unix socket");
    }
    let node = Netns::new(prefix);
    let fwd = format!("UNIX-CONNECT:{}", sock.display());
    let socat = Proc::spawn(
        node.cmd("socat", &["TCP-LISTEN:6443,bind=127.0.0.1,fork,reuseaddr", &fwd]),
        &c.dir.0,
        &format!("socat-{prefix}"),
    );
    let kubeconfig = c.dir.path("kubeconfig-node");
    let text = std::fs::read_to_string(c.dir.path("kubeconfig-speaker")).unwrap();
    std::fs::write(&kubeconfig, text.replace(&format!("http://{}", c.api.addr), "http://127.0.0.1:6443")).unwrap();
    (node, socat, kubeconfig)
}

/// `lb speaker` for node n1, in `node`, with fast liveness and metrics on any port.
fn speaker(c: &Cluster, node: &Netns, kubeconfig: &std::path::Path) -> Proc {
    speaker_as(c, node, kubeconfig, "n1", &["--liveness-timeout", "3s"])
}

fn speaker_as(c: &Cluster, node: &Netns, kubeconfig: &std::path::Path, name: &str, extra: &[&str]) -> Proc {
    let args = ["speaker", "--node-name", name, "--liveness-renew", "500ms"];
    let mut cmd = node.cmd(env!("CARGO_BIN_EXE_lb"), &args);
    cmd.args(extra).args(["--metrics-addr", "127.0.0.1:0"]).env("KUBECONFIG", kubeconfig).env("RUST_LOG", "info");
    Proc::spawn(cmd, &c.dir.0, &format!("speaker-{name}-{}", support::unique("")))
}

fn arping(cli: &Netns, ip: &str) -> Option<String> {
    let o = cli.exec("arping", &["-r", "-c", "1", "-w", "1", "-i", "eth0", ip]);
    let mac = String::from_utf8_lossy(&o.stdout).trim().to_lowercase();
    (o.status.success() && !mac.is_empty()).then_some(mac)
}

#[test]
fn the_speaker_answers_arp_for_the_address_the_controller_assigned() {
    if !prerequisites(TOOLS) {
        return;
    }
    let c = Cluster::new("spk");
    let (node, _socat, kubeconfig) = node_with_api(&c, "kn");
    let cli = Netns::new("kc");
    veth(&node, &cli, "eth0");
    node.ip(&["addr", "add", "10.77.0.1/24", "dev", "eth0"]);
    cli.ip(&["addr", "add", "10.77.0.2/24", "dev", "eth0"]);

    c.node("n1", json!({"rack": "r1"}));
    c.pool("lan", json!({"addresses": ["10.77.0.100-10.77.0.110"]}));
    c.create("metallb.io", "l2advertisements", NS, json!({"metadata": {"name": "lan"}}));
    let mut ctl = c.controller("ctl");
    // Left-overs: this node's status for a Service that is gone (from before a restart), and
    // a dead node's claim on the Service this node is about to answer for.
    for (name, node_name, svc) in [("l2-old", "n1", "ghost"), ("l2-dead", "n9", "www")] {
        let labels = json!({"metallb.io/node": node_name, "metallb.io/service-name": svc, "metallb.io/service-namespace": "web"});
        c.create(
            "metallb.io",
            "servicel2statuses",
            NS,
            json!({"metadata": {"name": name, "labels": labels}, "spec": {}}),
        );
    }
    let mut speaker = speaker(&c, &node, &kubeconfig);

    c.service("www", json!({}), json!([{"port": 80}]));
    assert!(eventually(Duration::from_secs(15), || c.ips("web", "www") == ["10.77.0.100"]), "no IP assigned");
    let mac = node.mac("eth0").to_lowercase();
    let answered = eventually(Duration::from_secs(15), || arping(&cli, "10.77.0.100").as_deref() == Some(mac.as_str()));
    assert!(answered, "no ARP reply from the speaker's node; speaker said:\n{}", speaker.stderr());
    assert!(arping(&cli, "10.77.0.101").is_none(), "an unassigned address is not answered");

    // externalTrafficPolicy: Local is answered only from a node with a ready endpoint.
    c.create(
        "",
        "services",
        "web",
        json!({"metadata": {"name": "local"},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}}),
    );
    assert!(eventually(Duration::from_secs(15), || c.ips("web", "local") == ["10.77.0.101"]));
    std::thread::sleep(Duration::from_secs(2));
    assert!(arping(&cli, "10.77.0.101").is_none(), "no local endpoint, yet answered");
    c.create(
        "discovery.k8s.io",
        "endpointslices",
        "web",
        json!({
        "metadata": {"name": "local-x", "labels": {"kubernetes.io/service-name": "local"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.1.1"], "nodeName": "n1", "conditions": {"ready": true}}]}),
    );
    let local = eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.101").as_deref() == Some(mac.as_str()));
    assert!(local, "a ready local endpoint, yet not answered");
    c.delete("services", "web", "local");

    // Who answers is visible in the API, as MetalLB shows it, and only that.
    let only_ours = eventually(Duration::from_secs(5), || c.list("metallb.io", "servicel2statuses", NS).len() == 1);
    assert!(only_ours, "{:#?}", c.list("metallb.io", "servicel2statuses", NS));
    let statuses = c.list("metallb.io", "servicel2statuses", NS);
    let st = statuses.iter().find(|s| s["status"]["serviceName"] == "www").expect("a ServiceL2Status");
    assert_eq!(st["status"]["node"], "n1");
    assert_eq!(st["metadata"]["labels"]["metallb.io/node"], "n1");
    let assigned = c.events("web").iter().any(|e| e["reason"] == "nodeAssigned" && e["regarding"]["name"] == "www");
    assert!(assigned, "a nodeAssigned event");

    // Metrics with MetalLB's names (read from inside the node's namespace).
    let scrape = || scrape(&node, &speaker);
    let value = |text: &str, prefix: &str| -> u64 {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0)
    };
    let counted = eventually(Duration::from_secs(5), || {
        let m = scrape();
        m.contains(
            "metallb_speaker_announced{ip=\"10.77.0.100\",node=\"n1\",protocol=\"layer2\",service=\"web/www\"} 1",
        ) && value(&m, "metallb_layer2_requests_received{ip=\"10.77.0.100\"}") >= 1
            && value(&m, "metallb_layer2_responses_sent{ip=\"10.77.0.100\"}") >= 1
            && value(&m, "metallb_layer2_gratuitous_sent{ip=\"10.77.0.100\"}") >= 1
    });
    assert!(counted, "metrics:\n{}", scrape());

    // A node the API excludes from load balancers stops answering, and says so.
    c.patch(
        "",
        "nodes",
        "",
        "n1",
        json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": ""}}}),
    );
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").is_none()), "still answering");
    assert!(eventually(Duration::from_secs(5), || c.list("metallb.io", "servicel2statuses", NS).is_empty()));
    c.patch(
        "",
        "nodes",
        "",
        "n1",
        json!({"metadata": {"labels": {"node.kubernetes.io/exclude-from-external-load-balancers": null}}}),
    );
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").as_deref() == Some(mac.as_str())));

    // As MetalLB: a node whose network the API says is unavailable does not answer.
    c.node_network("n1", true);
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").is_none()), "NetworkUnavailable");
    c.node_network("n1", false);
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").as_deref() == Some(mac.as_str())));

    // As MetalLB: a Service no endpoint can serve is answered nowhere; a terminating endpoint
    // that still serves is enough.
    c.endpoint("www", None, json!({"ready": false, "serving": false, "terminating": true}));
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").is_none()), "no endpoint");
    assert!(eventually(Duration::from_secs(5), || c.list("metallb.io", "servicel2statuses", NS).is_empty()));
    c.endpoint("www", None, json!({"ready": false, "serving": true, "terminating": true}));
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").as_deref() == Some(mac.as_str())));

    // With the controller stopped, a user points the status at an address outside every
    // pool (the CVE-2020-8554 class): the speaker never answers for it; the controller,
    // back, puts the right address back, and it is answered again.
    ctl.signal("TERM");
    assert_eq!(ctl.wait(Duration::from_secs(10)), Some(0));
    c.patch_status(
        "services",
        "web",
        "www",
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.77.0.200", "ipMode": "VIP"}]}}}),
    );
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").is_none()), "still answering");
    for _ in 0..3 {
        assert!(arping(&cli, "10.77.0.200").is_none(), "answered for an address outside every pool");
    }
    let _ctl = c.controller("ctl2");
    assert!(
        eventually(Duration::from_secs(15), || c.ips("web", "www") == ["10.77.0.100"]),
        "{:?}",
        c.ips("web", "www")
    );
    assert!(eventually(Duration::from_secs(10), || arping(&cli, "10.77.0.100").as_deref() == Some(mac.as_str())));

    // An L2Advertisement that names an interface the node does not have: nobody can answer,
    // and the Service's Events say so (MetalLB's `announceFailed`).
    c.patch("metallb.io", "l2advertisements", NS, "lan", json!({"spec": {"ipAddressPools": ["lan"]}}));
    c.pool("odd", json!({"addresses": ["10.77.0.120/32"], "autoAssign": false}));
    let odd = json!({"metadata": {"name": "odd"}, "spec": {"ipAddressPools": ["odd"], "interfaces": ["eth9"]}});
    c.create("metallb.io", "l2advertisements", NS, odd);
    c.service("odd", json!({"metallb.io/address-pool": "odd"}), json!([{"port": 80}]));
    let failed = |c: &Cluster| {
        c.events("web").into_iter().find(|e| e["reason"] == "announceFailed" && e["regarding"]["name"] == "odd")
    };
    assert!(eventually(Duration::from_secs(15), || failed(&c).is_some()), "{}", speaker.stderr());
    let note = failed(&c).unwrap()["note"].as_str().unwrap_or_default().to_string();
    assert!(note.contains("eth9") && note.contains("10.77.0.120") && note.contains("n1"), "{note}");
    assert_eq!(failed(&c).unwrap()["type"], "Warning");
    assert!(arping(&cli, "10.77.0.120").is_none());

    // SIGTERM: it stops answering, removes its status and its liveness Lease, and exits 0.
    speaker.signal("TERM");
    assert_eq!(speaker.wait(Duration::from_secs(10)), Some(0), "{}", speaker.stderr());
    assert!(arping(&cli, "10.77.0.100").is_none());
    assert!(c.list("metallb.io", "servicel2statuses", NS).is_empty());
    assert!(c.list("coordination.k8s.io", "leases", NS).iter().all(|l| l["metadata"]["name"] != "lb-speaker-n1"));

    // Everything both processes asked of the API is allowed by the RBAC of `lb manifests`.
    let accesses = c.api.shared.accesses();
    assert!(accesses.iter().any(|a| a.user == "lb-speaker"), "the speaker's requests carry its token");
    assert_eq!(support::rbac::denied(&accesses, "lb-speaker", "lb-speaker"), Vec::<String>::new());
    assert_eq!(support::rbac::denied(&accesses, "lb-controller", "lb-controller"), Vec::<String>::new());
}

#[test]
fn the_speaker_announces_over_bgp_to_bird_and_says_so() {
    if !prerequisites(TOOLS) {
        return;
    }
    let c = Cluster::new("spb");
    let (node, _socat, kubeconfig) = node_with_api(&c, "kb");
    let rtr = Netns::new("kr");
    veth(&node, &rtr, "eth0");
    node.ip(&["addr", "add", "10.78.0.1/24", "dev", "eth0"]);
    rtr.ip(&["addr", "add", "10.78.0.2/24", "dev", "eth0"]);
    let conf = c.dir.path("bird.conf");
    std::fs::write(
        &conf,
        "router id 10.78.0.2;\nprotocol device {}\nprotocol bgp tor {\n  local 10.78.0.2 as 64500;\n  neighbor 10.78.0.1 as 64512;\n  passive on;\n  password \"md5 via a Secret\";\n  ipv4 { import all; export none; };\n}\n",
    )
    .unwrap();
    let ctl = c.dir.path("bird.ctl");
    let pid = c.dir.path("bird.pid");
    let bird_args = ["-f", "-c", conf.to_str().unwrap(), "-s", ctl.to_str().unwrap(), "-P", pid.to_str().unwrap()];
    let _bird = Proc::spawn(rtr.cmd("bird", &bird_args), &c.dir.0, "bird");
    let birdc = |cmd: &str| {
        let mut args = vec!["-s", ctl.to_str().unwrap()];
        args.extend(cmd.split(' '));
        String::from_utf8_lossy(&support::run("birdc", &args).stdout).into_owned()
    };

    c.node("n1", json!({}));
    c.pool("public", json!({"addresses": ["198.51.100.0/29"]}));
    let peer = json!({"metadata": {"name": "tor"},
        "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.78.0.2", "holdTime": "9s",
                 "passwordSecret": {"name": "tor-md5", "namespace": NS}}});
    // The TCP MD5 password comes from a Secret in the speaker's namespace, as in MetalLB.
    c.create(
        "",
        "secrets",
        NS,
        json!({"metadata": {"name": "tor-md5"}, "type": "kubernetes.io/basic-auth",
               "data": {"password": "bWQ1IHZpYSBhIFNlY3JldA=="}}),
    );
    c.create("metallb.io", "bgppeers", NS, peer);
    let adv = json!({"metadata": {"name": "all"}, "spec": {"communities": ["64512:7"]}});
    c.create("metallb.io", "bgpadvertisements", NS, adv);
    let _ctl = c.controller("ctl");
    let spk = speaker(&c, &node, &kubeconfig);
    c.service("api", json!({}), json!([{"port": 443}]));
    assert!(eventually(Duration::from_secs(15), || c.ips("web", "api") == ["198.51.100.0"]), "no IP assigned");

    let route = || birdc("show route all 198.51.100.0/32");
    let held = eventually(Duration::from_secs(20), || route().contains("198.51.100.0/32"));
    assert!(held, "BIRD never got the route; speaker said:\n{}", spk.stderr());
    let r = route();
    assert!(r.contains("10.78.0.1") && r.contains("64512") && r.contains("(64512,7)"), "{r}");
    let reported = eventually(Duration::from_secs(5), || {
        c.list("metallb.io", "servicebgpstatuses", NS).iter().any(|s| {
            s["status"]["serviceName"] == "api" && s["status"]["node"] == "n1" && s["status"]["peers"] == json!(["tor"])
        })
    });
    assert!(reported, "{:#?}", c.list("metallb.io", "servicebgpstatuses", NS));
    // Metrics follow within a pass (one a second).
    let announced = "metallb_speaker_announced{ip=\"198.51.100.0\",node=\"n1\",protocol=\"bgp\",service=\"web/api\"} 1";
    let counted = eventually(Duration::from_secs(5), || {
        let m = scrape(&node, &spk);
        m.contains("metallb_bgp_session_up{peer=\"tor\"} 1")
            && m.contains("metallb_bgp_announced_prefixes_total{peer=\"tor\"} 1")
            && m.contains(announced)
    });
    assert!(counted, "{}", scrape(&node, &spk));

    // Deleting the Service withdraws exactly its route and its status object.
    c.delete("services", "web", "api");
    assert!(eventually(Duration::from_secs(10), || !route().contains("198.51.100.0/32")), "route not withdrawn");
    assert!(eventually(Duration::from_secs(5), || c.list("metallb.io", "servicebgpstatuses", NS).is_empty()));
    let accesses = c.api.shared.accesses();
    assert_eq!(support::rbac::denied(&accesses, "lb-speaker", "lb-speaker"), Vec::<String>::new());
}

/// Two nodes with speakers in one SWIM group and a client, on one bridge, with the
/// controller and an L2 pool; the speakers' Lease timeout is a minute, so that only
/// membership can move an address fast.
struct Pair {
    c: Cluster,
    nodes: [Netns; 2],
    kubeconfigs: [std::path::PathBuf; 2],
    speakers: [Proc; 2],
    cli: Netns,
    _rest: (Vec<Proc>, Netns),
}

const EXTRA: [&str; 4] = ["--liveness-timeout", "60s", "--memberlist-key", "a shared key of 16+ bytes"];

impl Pair {
    fn new(tag: &str) -> Pair {
        let c = Cluster::new(tag);
        let (n1, s1, kc1) = node_with_api(&c, "k1");
        let (n2, s2, kc2) = node_with_api(&c, "k2");
        let cli = Netns::new("kl");
        let sw = support::bridged(&[&n1, &n2, &cli]);
        for (ns, ip) in [(&n1, "10.79.0.1/24"), (&n2, "10.79.0.2/24"), (&cli, "10.79.0.10/24")] {
            ns.ip(&["addr", "add", ip, "dev", "eth0"]);
        }
        c.node_at("n1", "10.79.0.1");
        c.node_at("n2", "10.79.0.2");
        c.pool("lan", json!({"addresses": ["10.79.0.100-10.79.0.110"]}));
        c.create("metallb.io", "l2advertisements", NS, json!({"metadata": {"name": "lan"}}));
        let ctl = c.controller("ctl");
        let spk1 = speaker_as(&c, &n1, &kc1, "n1", &EXTRA);
        let spk2 = speaker_as(&c, &n2, &kc2, "n2", &EXTRA);
        let joined = eventually(Duration::from_secs(10), || {
            spk1.stderr().contains("member up") && spk2.stderr().contains("member up")
        });
        assert!(joined, "the speakers never met:\n{}\n{}", spk1.stderr(), spk2.stderr());
        Pair {
            c,
            nodes: [n1, n2],
            kubeconfigs: [kc1, kc2],
            speakers: [spk1, spk2],
            cli,
            _rest: (vec![s1, s2, ctl], sw),
        }
    }

    /// The node of the one ServiceL2Status, when there is exactly one.
    fn owner(&self) -> Option<String> {
        let o = self.owners();
        (o.len() == 1).then(|| o.into_iter().next().unwrap_or_default())
    }

    /// The nodes of every ServiceL2Status.
    fn owners(&self) -> BTreeSet<String> {
        let st = self.c.list("metallb.io", "servicel2statuses", NS);
        st.iter().map(|s| s["status"]["node"].as_str().unwrap_or_default().to_string()).collect()
    }

    fn mac(&self, node: &str) -> String {
        self.nodes[usize::from(node == "n2")].mac("eth0").to_lowercase()
    }
}

#[test]
fn membership_moves_an_address_when_its_owner_dies_and_never_back() {
    if !prerequisites(TOOLS) {
        return;
    }
    let mut p = Pair::new("spf");
    let (c, cli) = (&p.c, &p.cli);
    c.service("www", json!({}), json!([{"port": 80}]));
    assert!(eventually(Duration::from_secs(15), || c.ips("web", "www") == ["10.79.0.100"]));
    assert!(eventually(Duration::from_secs(10), || p.owner().is_some()), "no single owner");
    let first = p.owner().unwrap();
    let other = if first == "n1" { "n2" } else { "n1" };
    let (old_mac, new_mac) = (&p.mac(&first), &p.mac(other));
    let i = usize::from(first == "n2");
    assert!(eventually(Duration::from_secs(10), || arping(cli, "10.79.0.100").as_ref() == Some(old_mac)));
    // The client's kernel learns the address's MAC (sending it a datagram resolves it).
    let neigh = || cli.ip(&["neigh", "show", "10.79.0.100"]).to_lowercase();
    let learned = eventually(Duration::from_secs(5), || {
        let _ = cli.exec("bash", &["-c", "echo x > /dev/udp/10.79.0.100/9"]);
        neigh().contains(old_mac.as_str())
    });
    assert!(learned, "{}", neigh());

    // The owner's speaker is killed: the other takes the address over and announces it, and
    // the client's neighbour entry follows.
    p.speakers[i].signal("KILL");
    p.speakers[i].wait(Duration::from_secs(5));
    let moved = eventually(Duration::from_secs(10), || arping(cli, "10.79.0.100").as_ref() == Some(new_mac));
    assert!(moved, "no takeover");
    assert!(eventually(Duration::from_secs(5), || neigh().contains(new_mac.as_str())), "{}", neigh());
    // The dead node's claim stays until its Lease times out (a minute here): membership
    // alone cannot tell dead from cut off. The new owner's claim is there at once.
    assert!(eventually(Duration::from_secs(5), || p.owners().contains(other)), "{:?}", p.owners());

    // The old node's speaker comes back: it rejoins, drops its old claim, and takes nothing back.
    let back = speaker_as(c, &p.nodes[i], &p.kubeconfigs[i], &first, &EXTRA);
    assert!(eventually(Duration::from_secs(10), || back.stderr().contains("member up")), "{}", back.stderr());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(arping(cli, "10.79.0.100").as_ref(), Some(new_mac), "flap-back");
    assert!(eventually(Duration::from_secs(5), || p.owner().as_deref() == Some(other)), "{:?}", p.owners());

    // The API says the owner's node is not ready: it loses the address, though membership
    // still hears its speaker; ready again, it takes nothing back.
    let downs = |s: &Proc| s.stderr().matches("member down").count();
    let before = (downs(&back), downs(&p.speakers[1 - i]));
    c.node_ready(other, false);
    let moved = eventually(Duration::from_secs(10), || arping(cli, "10.79.0.100").as_ref() == Some(old_mac));
    assert!(moved, "a not-ready node kept the address: {}", back.stderr());
    assert_eq!((downs(&back), downs(&p.speakers[1 - i])), before, "membership still hears both");
    c.node_ready(other, true);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(arping(cli, "10.79.0.100").as_ref(), Some(old_mac), "flap-back after ready again");
    p.speakers[i] = back;
}

#[test]
fn a_split_between_live_speakers_settles_on_one_owner() {
    if !prerequisites(TOOLS) {
        return;
    }
    let p = Pair::new("sps");
    p.c.service("www", json!({}), json!([{"port": 80}]));
    assert!(eventually(Duration::from_secs(15), || p.c.ips("web", "www") == ["10.79.0.100"]));
    assert!(eventually(Duration::from_secs(10), || p.owner().is_some()), "no single owner");
    let first = p.owner().unwrap();

    // The two nodes stop hearing each other (membership says each is down to the other),
    // but both still reach the API and keep renewing their Leases: neither is dead.
    p.nodes[0].ip(&["route", "add", "blackhole", "10.79.0.2/32"]);
    p.nodes[1].ip(&["route", "add", "blackhole", "10.79.0.1/32"]);
    let split = eventually(Duration::from_secs(10), || p.speakers.iter().all(|s| s.stderr().contains("member down")));
    assert!(split, "membership never split");
    // At most one renew interval of doubt, then one owner again: the one there was.
    std::thread::sleep(Duration::from_secs(3));
    let settled = eventually(Duration::from_secs(10), || p.owner().as_deref() == Some(first.as_str()));
    assert!(
        settled,
        "owners: {:#?}\nn1:\n{}\nn2:\n{}",
        p.c.list("metallb.io", "servicel2statuses", NS),
        p.speakers[0].stderr(),
        p.speakers[1].stderr()
    );
    let o = p.cli.exec("arping", &["-r", "-c", "3", "-w", "3", "-i", "eth0", "10.79.0.100"]);
    let macs: BTreeSet<String> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| l.trim().to_lowercase()).filter(|l| !l.is_empty()).collect();
    assert_eq!(macs, BTreeSet::from([p.mac(&first)]), "answers during the split");

    // Healed: nothing moves.
    p.nodes[0].ip(&["route", "del", "blackhole", "10.79.0.2/32"]);
    p.nodes[1].ip(&["route", "del", "blackhole", "10.79.0.1/32"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(p.owner().as_deref(), Some(first.as_str()));
}

#[test]
fn two_minutes_without_the_api_server_change_nothing() {
    if !prerequisites(TOOLS) {
        return;
    }
    let c = Cluster::new("spo");
    let (node, _socat, kubeconfig) = node_with_api(&c, "ko");
    let (cli, rtr) = (Netns::new("kc"), Netns::new("kr"));
    let _sw = support::bridged(&[&node, &cli, &rtr]);
    for (ns, ip) in [(&node, "10.76.0.1/24"), (&cli, "10.76.0.10/24"), (&rtr, "10.76.0.2/24")] {
        ns.ip(&["addr", "add", ip, "dev", "eth0"]);
    }
    let conf = c.dir.path("bird.conf");
    std::fs::write(
        &conf,
        "router id 10.76.0.2;\nprotocol device {}\nprotocol bgp tor {\n  local 10.76.0.2 as 64500;\n  neighbor 10.76.0.1 as 64512;\n  passive on;\n  ipv4 { import all; export none; };\n}\n",
    )
    .unwrap();
    let (ctl_sock, pid) = (c.dir.path("bird.ctl"), c.dir.path("bird.pid"));
    let bird_args = ["-f", "-c", conf.to_str().unwrap(), "-s", ctl_sock.to_str().unwrap(), "-P", pid.to_str().unwrap()];
    let _bird = Proc::spawn(rtr.cmd("bird", &bird_args), &c.dir.0, "bird");
    let birdc = |cmd: &str| {
        let mut args = vec!["-s", ctl_sock.to_str().unwrap()];
        args.extend(cmd.split(' '));
        String::from_utf8_lossy(&support::run("birdc", &args).stdout).into_owned()
    };
    c.node("n1", json!({}));
    c.pool("lan", json!({"addresses": ["10.76.0.100-10.76.0.101"]}));
    c.create("metallb.io", "l2advertisements", NS, json!({"metadata": {"name": "lan"}}));
    let peer = json!({"metadata": {"name": "tor"},
        "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "10.76.0.2", "holdTime": "9s"}});
    c.create("metallb.io", "bgppeers", NS, peer);
    c.create("metallb.io", "bgpadvertisements", NS, json!({"metadata": {"name": "all"}}));
    let ctl = c.controller("ctl");
    let spk = speaker(&c, &node, &kubeconfig);
    c.service("www", json!({}), json!([{"port": 80}]));
    let mac = node.mac("eth0").to_lowercase();
    let ready = eventually(Duration::from_secs(20), || {
        arping(&cli, "10.76.0.100").as_ref() == Some(&mac) && birdc("show route 10.76.0.100/32").contains("10.76.0.100")
    });
    assert!(ready, "not announced:\n{}", spk.stderr());
    let statuses = |c: &Cluster| {
        let mut v: Vec<String> = ["servicel2statuses", "servicebgpstatuses"]
            .iter()
            .flat_map(|k| c.list("metallb.io", k, NS))
            .map(|s| format!("{} {}", s["metadata"]["name"], s["metadata"]["resourceVersion"]))
            .collect();
        v.sort();
        v
    };
    std::thread::sleep(Duration::from_secs(2));
    let (session, status_before) = (support::bird_session(&birdc("show protocols tor"), "tor"), statuses(&c));
    assert!(session.0.contains("Established") && session.1 >= 0, "{session:?}");
    let writes_before = c.writes("PATCH services/status");

    // The API server goes away for two minutes: every connection is cut, new ones refused.
    c.api.shared.set_outage(true);
    let outage = std::time::Instant::now();
    while outage.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(10));
        let at = outage.elapsed().as_secs();
        assert_eq!(arping(&cli, "10.76.0.100").as_ref(), Some(&mac), "ARP unanswered {at} s into the outage");
        let now = support::bird_session(&birdc("show protocols tor"), "tor");
        assert!(
            support::same_bird_session(&session, &now),
            "the BGP session moved {at} s into the outage: {session:?} {now:?}"
        );
        assert!(birdc("show route 10.76.0.100/32").contains("10.76.0.100"), "route gone {at} s into the outage");
    }
    c.api.shared.set_outage(false);

    // Back: the components reconnect, and nothing that was right is changed.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(arping(&cli, "10.76.0.100").as_ref(), Some(&mac));
    let now = support::bird_session(&birdc("show protocols tor"), "tor");
    assert!(support::same_bird_session(&session, &now), "the BGP session moved after the outage: {session:?} {now:?}");
    assert_eq!(c.ips("web", "www"), ["10.76.0.100"]);
    assert_eq!(c.writes("PATCH services/status"), writes_before, "a Service status was written again");
    assert_eq!(statuses(&c), status_before, "status objects were rewritten");
    assert!(!spk.stderr().contains("panicked") && !ctl.stderr().contains("panicked"));
}
