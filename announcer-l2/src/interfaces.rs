//! Which interfaces answer for which addresses.
//!
//! An address whose L2Advertisement lists interfaces is answered on those (when they exist,
//! are up and have a MAC); otherwise on every eligible interface: up, with a MAC, not
//! loopback, not enslaved to a bridge or bond (the master answers; a member would answer
//! the same request with the same or another MAC), and not matching the exclude patterns.
//! The explicit list wins over the patterns.
//! Pure functions over a snapshot of the host's interfaces, so the manager can re-evaluate
//! them on every rescan and pick up interfaces that appear, vanish or flap.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use lbcore::announcer::L2Target;

use crate::wire::MacAddr;

/// Default exclude patterns: container, overlay and tunnel plumbing, where answering ARP
/// for a service address would be wrong.
pub const DEFAULT_EXCLUDE: &[&str] = &[
    "docker*",
    "veth*",
    "cni*",
    "flannel*",
    "cali*",
    "cilium*",
    "lxc*",
    "kube-ipvs*",
    "vxlan*",
    "tunl*",
    "tun*",
    "tap*",
    "virbr*",
    "dummy*",
    "nodelocaldns",
    "lb-vips",
];

/// A snapshot of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// Name.
    pub name: String,
    /// Kernel index.
    pub index: u32,
    /// MAC address, if it has one.
    pub mac: Option<MacAddr>,
    /// Administratively and operationally up.
    pub up: bool,
    /// A loopback interface.
    pub loopback: bool,
    /// Enslaved to a bridge or bond.
    pub enslaved: bool,
}

impl Iface {
    /// The snapshot of a host interface (sysfs tells whether it has a master).
    pub fn of(i: &pnet_datalink::NetworkInterface) -> Iface {
        Iface {
            name: i.name.clone(),
            index: i.index,
            mac: i.mac.filter(|m| *m != MacAddr::zero()),
            up: i.is_up() && i.is_running(),
            loopback: i.is_loopback(),
            enslaved: std::path::Path::new("/sys/class/net").join(&i.name).join("master").exists(),
        }
    }
}

/// Whether `name` matches a glob pattern with `*` wildcards.
pub fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, rest)) => {
            let Some(tail) = name.strip_prefix(head) else { return false };
            if rest.is_empty() {
                return true;
            }
            (0..=tail.len()).filter(|&i| tail.is_char_boundary(i)).any(|i| glob(rest, &tail[i..]))
        }
    }
}

fn usable(i: &Iface) -> bool {
    i.up && i.mac.is_some() && !i.loopback
}

fn eligible(i: &Iface, exclude: &[String]) -> bool {
    usable(i) && !i.enslaved && !exclude.iter().any(|p| glob(p, &i.name))
}

/// The addresses each interface answers for.
pub fn targets(
    desired: &BTreeMap<IpAddr, L2Target>,
    ifaces: &[Iface],
    exclude: &[String],
) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let eligible: Vec<&Iface> = ifaces.iter().filter(|i| eligible(i, exclude)).collect();
    let mut out: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
    for (ip, target) in desired {
        if target.interfaces.is_empty() {
            for i in &eligible {
                out.entry(i.name.clone()).or_default().insert(*ip);
            }
        } else {
            for i in ifaces.iter().filter(|i| usable(i) && target.interfaces.contains(&i.name)) {
                out.entry(i.name.clone()).or_default().insert(*ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, up: bool, mac: bool, loopback: bool) -> Iface {
        Iface {
            name: name.into(),
            index: 1,
            mac: mac.then(|| MacAddr::new(2, 0, 0, 0, 0, 1)),
            up,
            loopback,
            enslaved: false,
        }
    }

    #[test]
    fn globs() {
        assert!(glob("veth*", "veth1234"));
        assert!(glob("*-int", "br-int"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("veth*", "eth0"));
        assert!(glob("eth0", "eth0"));
        assert!(!glob("eth0", "eth01"));
    }

    #[test]
    fn eligible_interfaces_and_explicit_lists() {
        let ifaces = [
            iface("eth0", true, true, false),
            iface("eth1", false, true, false),
            iface("lo", true, false, true),
            iface("veth9", true, true, false),
            iface("wg0", true, false, false),
            Iface { enslaved: true, ..iface("eth2", true, true, false) },
        ];
        let exclude: Vec<String> = DEFAULT_EXCLUDE.iter().map(|s| s.to_string()).collect();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let desired = BTreeMap::from([
            (a, L2Target::default()),
            (b, L2Target { interfaces: ["veth9".to_string(), "eth1".to_string()].into() }),
        ]);
        let t = targets(&desired, &ifaces, &exclude);
        assert_eq!(t.len(), 2);
        assert_eq!(t["eth0"], BTreeSet::from([a]));
        assert_eq!(t["veth9"], BTreeSet::from([b]), "an explicit list beats the exclude patterns; eth1 is down");
    }
}
