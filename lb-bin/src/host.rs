//! Standalone mode only: make this host accept traffic for the addresses it announces, as
//! kube-proxy does in Kubernetes. The addresses go on a dummy interface (`lb-vips`; on
//! kernels without the dummy driver, on `lo`), and
//! `arp_ignore=1` / `arp_announce=2` make sure the kernel itself never answers ARP for them
//! on another interface (IPv6 neighbour discovery is per interface already), so only `lb`'s
//! responder does, and only where it is told to.
//!
//! Uses the `ip` command of iproute2. Every change is logged; failures are warnings (the
//! addresses are still announced, only local delivery is missing).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::process::Command;

/// Name of the dummy interface holding the addresses.
pub const LINK: &str = "lb-vips";

/// The addresses on the dummy interface.
#[derive(Debug, Default)]
pub struct HostVips {
    present: BTreeSet<IpAddr>,
    /// The device holding them, once set up; whether it is our dummy interface.
    link: Option<(String, bool)>,
    /// The sysctl values found before we changed them, restored by [`HostVips::clear`].
    saved: Vec<(&'static str, String)>,
}

const ARP_SYSCTLS: [(&str, &str); 2] =
    [("/proc/sys/net/ipv4/conf/all/arp_ignore", "1"), ("/proc/sys/net/ipv4/conf/all/arp_announce", "2")];

fn ip(args: &[&str]) -> Result<(), String> {
    match Command::new("ip").args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Err(format!("cannot run ip (iproute2): {e}")),
    }
}

fn sysctl(path: &str, value: &str) {
    if let Err(e) = std::fs::write(path, value) {
        tracing::warn!(%path, error = %e, "cannot set sysctl");
    }
}

impl HostVips {
    /// Makes the dummy interface hold exactly `want`.
    pub fn sync(&mut self, want: &BTreeSet<IpAddr>) {
        if !want.is_empty() && self.link.is_none() {
            for (path, value) in ARP_SYSCTLS {
                if let Ok(old) = std::fs::read_to_string(path) {
                    self.saved.push((path, old.trim().to_string()));
                }
                sysctl(path, value);
            }
            // It may exist from an earlier run that crashed: then `add` fails, and its stale
            // addresses are flushed so only what is announced now is local.
            let _ = ip(&["link", "add", LINK, "type", "dummy"]);
            self.link = match ip(&["link", "set", LINK, "up"]) {
                Ok(()) => {
                    let _ = ip(&["addr", "flush", "dev", LINK]);
                    Some((LINK.to_string(), true))
                }
                Err(e) => {
                    tracing::info!(error = %e, "no dummy interface; service addresses go on lo");
                    Some(("lo".to_string(), false))
                }
            };
        }
        let Some((dev, _)) = self.link.clone() else { return };
        for gone in self.present.difference(want).copied().collect::<Vec<_>>() {
            let cidr = host_cidr(gone);
            if let Err(e) = ip(&["addr", "del", &cidr, "dev", &dev]) {
                tracing::warn!(address = %cidr, error = %e, "cannot remove address");
            }
            self.present.remove(&gone);
        }
        for new in want.difference(&self.present.clone()) {
            let cidr = host_cidr(*new);
            let mut args = vec!["addr", "replace", &cidr, "dev", &dev];
            if new.is_ipv6() {
                args.push("nodad");
            }
            match ip(&args) {
                Ok(()) => {
                    self.present.insert(*new);
                }
                Err(e) => tracing::warn!(address = %cidr, error = %e, "cannot add address"),
            }
        }
    }

    /// Removes every address and the interface, and restores the sysctls.
    pub fn clear(&mut self) {
        self.sync(&BTreeSet::new());
        if let Some((dev, true)) = self.link.take() {
            let _ = ip(&["link", "del", &dev]);
        }
        self.link = None;
        for (path, old) in std::mem::take(&mut self.saved) {
            sysctl(path, &old);
        }
    }
}

fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}
