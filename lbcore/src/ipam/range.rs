//! Address families and inclusive address ranges, parsed from pool address strings.
//!
//! A pool entry is either a CIDR (`10.0.0.0/24`, `2001:db8::/64`) or a range
//! (`10.0.0.10-10.0.0.20`, spaces around `-` allowed, as MetalLB trims them).
//! Invariant of [`AddrRange`]: both ends are of one family and `start <= end`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use serde::Serialize;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The number of bits in an address of this family.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// `ip` as an integer (IPv4 in the low 32 bits).
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of `family` whose integer value is `v` (truncated to the family's width).
pub(crate) fn from_u128(family: Family, v: u128) -> IpAddr {
    match family {
        // Truncation is intended: callers only pass values that came from IPv4 addresses.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// Why a pool address string is not a usable CIDR or range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Neither a CIDR nor a range of two addresses.
    #[error("not a CIDR (10.0.0.0/24) or a range (10.0.0.1-10.0.0.9)")]
    Malformed,
    /// A single address without a prefix length.
    #[error("a single address must be written with a prefix length ({0}/{len})", len = Family::of(*.0).bits())]
    BareAddress(IpAddr),
    /// One end of a range is not an IP address.
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    /// The prefix length is not a number within the family's width.
    #[error("the prefix length must be a number from 0 to 32 for IPv4, or to 128 for IPv6")]
    BadPrefix,
    /// A range whose start is after its end.
    #[error("range start {start} is after its end {end}")]
    StartAfterEnd {
        /// Start of the range.
        start: IpAddr,
        /// End of the range.
        end: IpAddr,
    },
    /// A range from one family to the other.
    #[error("range mixes IPv4 and IPv6 addresses")]
    MixedFamilies,
    /// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) in a pool.
    #[error("{0} is an IPv4-mapped IPv6 address; write the IPv4 address ({mapped})", mapped = .0.to_canonical())]
    Mapped(IpAddr),
    /// A CIDR with bits set after the prefix.
    #[error("host bits are set; the network is {network}")]
    HostBits {
        /// The CIDR the user probably meant.
        network: IpNet,
    },
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrRange {
    start: IpAddr,
    end: IpAddr,
}

/// `"192.0.2.0/24".parse::<AddrRange>()`, as [`AddrRange::parse`].
impl std::str::FromStr for AddrRange {
    type Err = RangeError;
    fn from_str(s: &str) -> Result<Self, RangeError> {
        AddrRange::parse(s)
    }
}

impl AddrRange {
    /// The range `start..=end`, or an error if the ends differ in family or are out of order.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self, RangeError> {
        if Family::of(start) != Family::of(end) {
            return Err(RangeError::MixedFamilies);
        }
        if start > end {
            return Err(RangeError::StartAfterEnd { start, end });
        }
        Ok(AddrRange { start, end })
    }

    /// The range covered by a CIDR.
    pub fn from_net(net: IpNet) -> Self {
        AddrRange { start: net.network(), end: net.broadcast() }
    }

    /// Parses a pool entry: `A/N` (host bits must be clear) or `A-B`. A range that
    /// reaches into the IPv4-mapped block `::ffff:0:0/96` is refused, as its ends are.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let r = Self::parse_unchecked(s)?;
        let mapped = AddrRange::from_net(IpNet::V6(
            ipnet::Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96).unwrap_or_default(),
        ));
        if r.start.is_ipv6() && r.overlaps(&mapped) {
            return Err(RangeError::Mapped(r.start.max(mapped.start)));
        }
        Ok(r)
    }

    fn parse_unchecked(s: &str) -> Result<Self, RangeError> {
        let s = s.trim();
        if let Some((a, b)) = s.split_once('-') {
            let start = parse_ip(a)?;
            let end = parse_ip(b)?;
            return AddrRange::new(start, end);
        }
        let Some((addr, len)) = s.split_once('/') else {
            return Err(match s.parse::<IpAddr>() {
                // A bare address: MetalLB rejects it too; say how to write it.
                Ok(ip) => RangeError::BareAddress(ip),
                Err(_) => RangeError::Malformed,
            });
        };
        let ip = parse_ip(addr)?;
        let len: u8 = len.trim().parse().map_err(|_| RangeError::BadPrefix)?;
        let net = IpNet::new(ip, len).map_err(|_| RangeError::BadPrefix)?;
        if net.network() != ip {
            return Err(RangeError::HostBits { network: net.trunc() });
        }
        Ok(AddrRange::from_net(net))
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> Family {
        Family::of(self.start)
    }

    /// Whether `ip` is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        Family::of(ip) == self.family() && self.start <= ip && ip <= self.end
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &AddrRange) -> bool {
        self.family() == other.family() && self.start <= other.end && other.start <= self.end
    }

    /// Number of addresses, saturating at `u128::MAX` (only `::/0` saturates).
    pub fn size(&self) -> u128 {
        (to_u128(self.end) - to_u128(self.start)).saturating_add(1)
    }

    /// The smallest set of CIDRs that covers exactly this range, in address order.
    pub fn cidrs(&self) -> Vec<IpNet> {
        match (self.start, self.end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => Ipv4Subnets::new(s, e, 0).map(IpNet::V4).collect(),
            (IpAddr::V6(s), IpAddr::V6(e)) => Ipv6Subnets::new(s, e, 0).map(IpNet::V6).collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cidrs().as_slice() {
            [one] => write!(f, "{one}"),
            _ => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, RangeError> {
    let s = s.trim();
    let ip: IpAddr = s.parse().map_err(|_| RangeError::BadAddress(s.to_string()))?;
    // Go (and so MetalLB) reads ::ffff:a.b.c.d as IPv4; rather than guess, ask for the IPv4
    // form, so a pool is never silently of the other family.
    if ip.is_ipv6() && ip.to_canonical().is_ipv4() {
        return Err(RangeError::Mapped(ip));
    }
    Ok(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_cidr_and_range() {
        let r = AddrRange::parse("10.0.0.0/30").unwrap();
        assert_eq!((r.start(), r.end(), r.size()), (ip("10.0.0.0"), ip("10.0.0.3"), 4));
        let r = AddrRange::parse(" 10.0.0.10 - 10.0.0.20 ").unwrap();
        assert_eq!(r.size(), 11);
        let r = AddrRange::parse("2001:db8::/64").unwrap();
        assert_eq!(r.size(), 1u128 << 64);
        assert_eq!(AddrRange::parse("8000::/1").unwrap().size(), 1u128 << 127);
        // The whole space saturates (it cannot be a pool: it holds the IPv4-mapped block).
        assert_eq!(AddrRange::from_net("::/0".parse().unwrap()).size(), u128::MAX);
    }

    #[test]
    fn rejects_bad_entries() {
        assert_eq!(
            AddrRange::parse("10.0.0.1/24"),
            Err(RangeError::HostBits { network: "10.0.0.0/24".parse().unwrap() })
        );
        assert!(matches!(AddrRange::parse("10.0.0.9-10.0.0.1"), Err(RangeError::StartAfterEnd { .. })));
        assert_eq!(AddrRange::parse("10.0.0.1-2001:db8::1"), Err(RangeError::MixedFamilies));
        assert_eq!(AddrRange::parse("10.0.0.0/33"), Err(RangeError::BadPrefix));
        assert_eq!(AddrRange::parse("10.0.0.300/24"), Err(RangeError::BadAddress("10.0.0.300".into())));
        assert_eq!(AddrRange::parse("10.0.0.1"), Err(RangeError::BareAddress(ip("10.0.0.1"))));
        assert_eq!(AddrRange::parse(""), Err(RangeError::Malformed));
        assert_eq!(AddrRange::parse("::ffff:10.0.0.0/120"), Err(RangeError::Mapped(ip("::ffff:10.0.0.0"))));
        // Found by fuzzing: a range around the mapped block, whose end printed as ::ffff:a.b.c.d
        // and then did not parse back.
        assert_eq!(AddrRange::parse("::/80"), Err(RangeError::Mapped(ip("::ffff:0.0.0.0"))));
        assert_eq!(AddrRange::parse("::1-::1:0:0:0"), Err(RangeError::Mapped(ip("::ffff:0.0.0.0"))));
        assert!(AddrRange::parse("::/97").is_ok());
        assert!(AddrRange::parse("::1:0:0:0/96").is_ok());
    }

    #[test]
    fn decomposes_ranges_into_cidrs() {
        let r = AddrRange::parse("10.0.0.1-10.0.0.6").unwrap();
        let got: Vec<String> = r.cidrs().iter().map(|n| n.to_string()).collect();
        assert_eq!(got, ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]);
        assert_eq!(AddrRange::parse("10.0.0.0-10.0.0.255").unwrap().to_string(), "10.0.0.0/24");
    }

    #[test]
    fn overlap_is_per_family() {
        let a = AddrRange::parse("10.0.0.0/24").unwrap();
        assert!(a.overlaps(&AddrRange::parse("10.0.0.255-10.0.1.5").unwrap()));
        assert!(!a.overlaps(&AddrRange::parse("10.0.1.0/24").unwrap()));
        assert!(!a.overlaps(&AddrRange::from_net("::/0".parse().unwrap())));
    }
}
