//! The service model the allocator sees, built from a `v1 Service` as MetalLB reads it.
//!
//! A [`Request`] is everything about a service that allocation depends on: the addresses
//! it asks for (`metallb.io/loadBalancerIPs` or `spec.loadBalancerIP`), the pool it names
//! (`metallb.io/address-pool`), its sharing key (`metallb.io/allow-shared-ip`) and backend
//! key, its ports, its families and the labels that pool `serviceAllocation` selectors see.
//! Both annotation prefixes are read: `metallb.io/` and the legacy `metallb.universe.tf/`
//! (the new one wins when both are set).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{raw, Diagnostic, Labels, Loaded, Resources, Source};
use crate::ipam::Family;

/// Annotation prefixes, current first.
pub const ANNOTATION_PREFIXES: [&str; 2] = ["metallb.io/", "metallb.universe.tf/"];
/// Requested addresses, comma-separated.
pub const ANN_LOAD_BALANCER_IPS: &str = "loadBalancerIPs";
/// Pool to allocate from.
pub const ANN_ADDRESS_POOL: &str = "address-pool";
/// Sharing key.
pub const ANN_ALLOW_SHARED_IP: &str = "allow-shared-ip";
/// Pool an address was allocated from (written by the controller).
pub const ANN_ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";

/// A service's identity: namespace and name. Orders by namespace, then name.
///
/// Both parts are shared strings, so a clone costs no allocation: the allocator keeps a
/// clone of each key it holds, and a namespace's name can be one string for all of its
/// services (see [`crate::config::Resources::push_service`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace (`default` when a file gives none).
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
}

impl ServiceKey {
    /// The key `namespace/name`.
    pub fn new(namespace: impl Into<Arc<str>>, name: impl Into<Arc<str>>) -> Self {
        ServiceKey { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// An L4 protocol of a service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// A service port: protocol and number. Two services clash on an IP when they share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// Protocol.
    pub protocol: Protocol,
    /// Port number.
    pub port: u16,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        write!(f, "{}/{p}", self.port)
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FamilyPolicy {
    /// One address.
    #[default]
    SingleStack,
    /// Both families when a pool offers them, else one.
    PreferDualStack,
    /// One address of each family, or none.
    RequireDualStack,
}

/// What a service asks of the allocator.
///
/// Services hold theirs behind an `Arc`, and services that ask alike share one (see
/// [`Interned`]): 100k services made from one template hold one request, not 100k.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Request {
    /// `spec.loadBalancerClass`: which load balancer is to serve the service (None: the
    /// default one).
    pub class: Option<Arc<str>>,
    /// Specific addresses asked for (at most one per family).
    pub ips: Vec<IpAddr>,
    /// Pool named by the `address-pool` annotation.
    pub pool: Option<String>,
    /// Sharing key (`allow-shared-ip`); services share an IP only with the same key.
    pub sharing_key: Option<String>,
    /// Backend key: the pod selector when `externalTrafficPolicy: Local`, else empty.
    /// Services sharing an IP must have the same one (they must land on the same nodes).
    pub backend_key: String,
    /// Ports; services sharing an IP must not have one in common.
    pub ports: Vec<Port>,
    /// Family policy.
    pub policy: FamilyPolicy,
    /// Families in order of preference (`spec.ipFamilies`); empty means "whatever the pool
    /// has, IPv4 first".
    pub families: Vec<Family>,
    /// The service's labels (for `serviceSelectors`).
    pub labels: Labels,
    /// The namespace's labels (for `namespaceSelectors`), shared by every service of the
    /// namespace.
    pub namespace_labels: Arc<Labels>,
}

/// A LoadBalancer service read from a file or the API, with its allocation request (or why
/// the request is malformed: such a service gets no address, and the error says why).
///
/// Kept small (80 octets, and its request shared) because a start may read 100k of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `metadata.creationTimestamp`, if set and readable: kept as a number, not as the
    /// text, since every Service of a cluster has one (100k of them: 3.2 MB as text).
    pub created: Created,
    /// The allocation request, or why it is malformed.
    pub request: Result<Arc<Request>, Box<Malformed>>,
    /// Addresses already in `status.loadBalancer.ingress` (to restore).
    pub status_ips: StatusIps,
}

/// When a Service was created, in microseconds since the Unix epoch ([`created_micros`]), or
/// unknown. Unknown orders before every instant, as services read from files without a
/// timestamp come first in allocation order. 8 octets (an `Option<i64>` takes 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Created(i64);

impl Created {
    /// No timestamp, or one that does not parse.
    pub const UNKNOWN: Created = Created(i64::MIN);

    /// From an RFC 3339 timestamp; [`Created::UNKNOWN`] if it does not parse.
    pub fn parse(s: &str) -> Created {
        created_micros(s).map_or(Created::UNKNOWN, Created)
    }

    /// Microseconds since the Unix epoch, if known.
    pub fn micros(self) -> Option<i64> {
        (self != Created::UNKNOWN).then_some(self.0)
    }
}

impl Default for Created {
    fn default() -> Self {
        Created::UNKNOWN
    }
}

/// The addresses of a Service's status (or of the standalone state file), in order. One
/// address, the common case, is held inline; more go to the heap. With 100k services a
/// boxed slice each cost 32 octets of heap beside the 16 of the pointer, 3.2 MB in all.
/// Equal when the addresses are, whichever variant holds them.
#[derive(Clone, Eq)]
pub enum StatusIps {
    /// Exactly one address.
    One(IpAddr),
    /// Any other number of addresses (none allocates nothing).
    Many(Box<[IpAddr]>),
}

impl Default for StatusIps {
    fn default() -> Self {
        StatusIps::Many(Box::default())
    }
}

impl std::ops::Deref for StatusIps {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        match self {
            StatusIps::One(ip) => std::slice::from_ref(ip),
            StatusIps::Many(ips) => ips,
        }
    }
}

impl PartialEq for StatusIps {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl From<&[IpAddr]> for StatusIps {
    fn from(ips: &[IpAddr]) -> Self {
        match ips {
            [ip] => StatusIps::One(*ip),
            _ => StatusIps::Many(ips.into()),
        }
    }
}

impl FromIterator<IpAddr> for StatusIps {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(iter: I) -> Self {
        let mut it = iter.into_iter();
        match (it.next(), it.next()) {
            (None, _) => StatusIps::default(),
            (Some(ip), None) => StatusIps::One(ip),
            (Some(a), Some(b)) => StatusIps::Many([a, b].into_iter().chain(it).collect()),
        }
    }
}

impl fmt::Debug for StatusIps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A Service's malformed request: why, and what could be read of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Malformed {
    /// What is wrong.
    pub error: RequestError,
    /// What restoring the service's current addresses goes by instead: the class, sharing
    /// key, backend key, ports and labels that could be read. A typo in a Service must not
    /// free its address for another service.
    pub fallback: Request,
}

fn annotation<'a>(ann: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    ANNOTATION_PREFIXES.iter().find_map(|p| ann.get(&format!("{p}{name}"))).map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl Service {
    /// Reads a `v1 Service` of type LoadBalancer, or None for any other type.
    /// `namespace_labels` are the labels of its namespace.
    pub fn from_raw(svc: &raw::Service, namespace_labels: &Arc<Labels>) -> Option<Service> {
        if svc.spec.type_.as_deref() != Some("LoadBalancer") {
            return None;
        }
        let meta = &svc.metadata;
        let key = ServiceKey::new(
            meta.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into()),
            meta.name.clone().unwrap_or_default(),
        );
        let status_ips: StatusIps = svc
            .status
            .load_balancer
            .ingress
            .iter()
            .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.trim().parse().ok()))
            .collect();
        let base = sharing_parts(svc, namespace_labels);
        let request = match request(svc, &base) {
            Ok(r) => Ok(Arc::new(r)),
            Err(error) => Err(Box::new(Malformed { error, fallback: base })),
        };
        let created = meta.creation_timestamp.as_deref().map_or(Created::UNKNOWN, Created::parse);
        Some(Service { key, created, request, status_ips })
    }

    /// What restoring the service's current addresses goes by: the request, or when it is
    /// malformed, the parts of it that could be read.
    pub fn restore_request(&self) -> &Request {
        match &self.request {
            Ok(r) => r,
            Err(m) => &m.fallback,
        }
    }

    /// `spec.loadBalancerClass`, if set.
    pub fn class(&self) -> Option<&str> {
        self.restore_request().class.as_deref()
    }
}

/// Why a Service's request for addresses cannot be read. The Service gets no new address;
/// one it already has is kept (see [`Malformed::fallback`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A requested address does not parse.
    #[error("{field}: {value:?} is not an IP address")]
    BadAddress {
        /// `annotation metallb.io/loadBalancerIPs` or `spec.loadBalancerIP`.
        field: &'static str,
        /// The text.
        value: String,
    },
    /// Both ways of requesting addresses are used.
    #[error("both spec.loadBalancerIP and annotation metallb.io/loadBalancerIPs are set; use only the annotation")]
    BothRequests,
    /// More than one requested address of a family.
    #[error("at most one requested address per family")]
    TwoOfAFamily,
    /// The number of requested addresses does not fit the family policy.
    #[error("{count} requested address(es) do not fit ipFamilyPolicy {policy:?}")]
    PolicyMismatch {
        /// Number of addresses requested.
        count: usize,
        /// The policy.
        policy: FamilyPolicy,
    },
    /// A requested address is of a family the service does not list.
    #[error("requested address {0} is not of a family in spec.ipFamilies")]
    FamilyNotListed(IpAddr),
    /// An unknown `spec.ipFamilyPolicy`.
    #[error("spec.ipFamilyPolicy: unknown value {0:?} (SingleStack, PreferDualStack or RequireDualStack)")]
    BadPolicy(String),
    /// An unknown or repeated `spec.ipFamilies` entry.
    #[error("spec.ipFamilies: {0:?} is unknown or listed twice (IPv4, IPv6)")]
    BadFamily(String),
    /// An unknown port protocol.
    #[error("spec.ports[{index}].protocol: unknown protocol {value:?} (TCP, UDP or SCTP)")]
    BadProtocol {
        /// Port index.
        index: usize,
        /// The text.
        value: String,
    },
    /// A port number out of range.
    #[error("spec.ports[{index}].port: {value} is not a port number")]
    BadPort {
        /// Port index.
        index: usize,
        /// The number.
        value: i64,
    },
}

fn requested_ips(svc: &raw::Service) -> Result<Vec<IpAddr>, RequestError> {
    let ann = &svc.metadata.annotations;
    let spec_ip = svc.spec.load_balancer_ip.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let parse = |field: &'static str, s: &str| -> Result<IpAddr, RequestError> {
        // An IPv4-mapped IPv6 address means its IPv4 address, as Go reads it.
        s.parse::<IpAddr>()
            .map(|ip| ip.to_canonical())
            .map_err(|_| RequestError::BadAddress { field, value: s.to_string() })
    };
    match (annotation(ann, ANN_LOAD_BALANCER_IPS), spec_ip) {
        (Some(_), Some(_)) => Err(RequestError::BothRequests),
        (Some(list), None) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| parse("annotation metallb.io/loadBalancerIPs", s))
            .collect(),
        (None, Some(s)) => Ok(vec![parse("spec.loadBalancerIP", s)?]),
        (None, None) => Ok(Vec::new()),
    }
}

fn families(spec: &raw::ServiceSpec) -> Result<(FamilyPolicy, Vec<Family>), RequestError> {
    let policy = match spec.ip_family_policy.as_deref() {
        None | Some("") | Some("SingleStack") => FamilyPolicy::SingleStack,
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        Some(other) => return Err(RequestError::BadPolicy(other.to_string())),
    };
    let mut families = Vec::new();
    for f in &spec.ip_families {
        let fam = match f.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            _ => return Err(RequestError::BadFamily(f.clone())),
        };
        if families.contains(&fam) {
            return Err(RequestError::BadFamily(f.clone()));
        }
        families.push(fam);
    }
    Ok((policy, families))
}

fn check_requested(ips: &[IpAddr], policy: FamilyPolicy, families: &[Family]) -> Result<(), RequestError> {
    let v4 = ips.iter().filter(|ip| ip.is_ipv4()).count();
    if v4 > 1 || ips.len() - v4 > 1 {
        return Err(RequestError::TwoOfAFamily);
    }
    if ips.is_empty() {
        return Ok(());
    }
    let fits = match policy {
        FamilyPolicy::SingleStack => ips.len() == 1,
        FamilyPolicy::PreferDualStack => true,
        FamilyPolicy::RequireDualStack => ips.len() == 2,
    };
    if !fits {
        return Err(RequestError::PolicyMismatch { count: ips.len(), policy });
    }
    match ips.iter().find(|ip| !families.is_empty() && !families.contains(&Family::of(**ip))) {
        Some(ip) => Err(RequestError::FamilyNotListed(*ip)),
        None => Ok(()),
    }
}

/// The ports that parse, and the first error, if any.
fn ports(spec: &raw::ServiceSpec) -> (Vec<Port>, Option<RequestError>) {
    let mut out = Vec::new();
    let mut first_err = None;
    for (index, p) in spec.ports.iter().enumerate() {
        let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => {
                first_err.get_or_insert(RequestError::BadProtocol { index, value: other.to_string() });
                continue;
            }
        };
        match u16::try_from(p.port).ok().filter(|&n| n != 0) {
            Some(port) => out.push(Port { protocol, port }),
            None => {
                first_err.get_or_insert(RequestError::BadPort { index, value: p.port });
            }
        }
    }
    (out, first_err)
}

/// What sharing depends on, read as far as possible (used for restore even when the rest of
/// the request is malformed).
fn sharing_parts(svc: &raw::Service, namespace_labels: &Arc<Labels>) -> Request {
    let spec = &svc.spec;
    let backend_key = if spec.external_traffic_policy.as_deref() == Some("Local") {
        spec.selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    } else {
        String::new()
    };
    Request {
        class: spec.load_balancer_class.as_deref().map(Arc::from),
        sharing_key: annotation(&svc.metadata.annotations, ANN_ALLOW_SHARED_IP).map(str::to_string),
        backend_key,
        ports: ports(spec).0,
        labels: svc.metadata.labels.clone(),
        namespace_labels: namespace_labels.clone(),
        ..Default::default()
    }
}

fn request(svc: &raw::Service, base: &Request) -> Result<Request, RequestError> {
    let ips = requested_ips(svc)?;
    let (policy, families) = families(&svc.spec)?;
    check_requested(&ips, policy, &families)?;
    if let (_, Some(e)) = ports(&svc.spec) {
        return Err(e);
    }
    Ok(Request {
        ips,
        pool: annotation(&svc.metadata.annotations, ANN_ADDRESS_POOL).map(str::to_string),
        policy,
        families,
        ..base.clone()
    })
}

/// Sorts services into allocation order: creation time (services without one, or with one
/// that does not parse, first), then input order. The sort is stable: files give their own
/// order; a Kubernetes caller passes services in namespace/name order, so ties fall back to
/// namespace/name there.
pub fn sort_for_allocation(services: &mut [Service]) {
    services.sort_by_key(|s| s.created);
}

/// An RFC 3339 timestamp as microseconds since the Unix epoch (what [`Service::created`]
/// holds): every date from year 0 to 9999 fits. Kubernetes writes whole seconds; two
/// instants less than a microsecond apart compare equal.
pub fn created_micros(s: &str) -> Option<i64> {
    let (secs, nanos) = parse_rfc3339(s)?;
    secs.checked_mul(1_000_000)?.checked_add(i64::from(nanos / 1000))
}

/// An RFC 3339 timestamp (`2024-05-01T10:00:00Z`, `…:00.5+02:00`) as seconds and
/// nanoseconds since the Unix epoch, so that instants compare correctly whatever their
/// spelling.
pub fn parse_rfc3339(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        t.iter().all(u8::is_ascii_digit).then(|| t.iter().fold(0i64, |a, &d| a * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if sep(i, b".") {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = b.get(start..i)?;
        if digits.is_empty() {
            return None;
        }
        for (k, &c) in digits.iter().take(9).enumerate() {
            nanos += u32::from(c - b'0') * 10u32.pow(8 - k as u32);
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), ..] if b.len() == i + 6 && sep(i + 3, b":") => {
            let o = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((mo + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset, nanos))
}

/// The labels a namespace selector sees for namespace `ns`: those of its `Namespace` object
/// in `res` (if any), plus `kubernetes.io/metadata.name`, which the API server always sets.
pub fn namespace_labels(res: &Resources, ns: &str) -> Labels {
    let mut labels = res
        .namespaces
        .iter()
        .find(|n| n.object.metadata.name.as_deref() == Some(ns))
        .map(|n| n.object.metadata.labels.clone())
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), ns.to_string());
    labels
}

/// One copy of each namespace name and of each distinct request, shared by the services that
/// have them (see [`crate::config::Resources::push_service`]).
#[derive(Debug, Clone, Default)]
pub struct Interned {
    namespaces: std::collections::HashSet<Arc<str>>,
    requests: std::collections::HashSet<Arc<Request>>,
}

/// The copy of `v` in `set`, which gets `v` when it has none.
fn shared<T: ?Sized + std::hash::Hash + Eq>(set: &mut std::collections::HashSet<Arc<T>>, v: &Arc<T>) -> Arc<T> {
    if let Some(same) = set.get(&**v) {
        return same.clone();
    }
    set.insert(v.clone());
    v.clone()
}

impl Interned {
    /// `svc` with its namespace name and request shared with the services seen before.
    pub fn service(&mut self, mut svc: Service) -> Service {
        svc.key.namespace = shared(&mut self.namespaces, &svc.key.namespace);
        if let Ok(r) = &mut svc.request {
            *r = shared(&mut self.requests, r);
        }
        svc
    }

    /// The shared copy of `req`.
    pub fn request(&mut self, req: Request) -> Arc<Request> {
        if let Some(same) = self.requests.get(&req) {
            return same.clone();
        }
        let r = Arc::new(req);
        self.requests.insert(r.clone());
        r
    }
}

/// Takes the LoadBalancer services out of `res`, with their namespace labels, in allocation
/// order, or returns an error per service defined twice (same namespace and name), without a
/// name, or with a name or namespace that Kubernetes would refuse.
pub fn load_balancer_services(res: &mut Resources) -> Result<Vec<Service>, Vec<Diagnostic>> {
    let loaded = std::mem::take(&mut res.services);
    let mut errors = Vec::new();
    {
        let mut seen: HashMap<&ServiceKey, &Source> = HashMap::with_capacity(loaded.len());
        for l in &loaded {
            let key = &l.object.key;
            if key.name.is_empty() {
                errors.push(Diagnostic { field: "metadata.name".into(), message: "required".into(), ..svc_diag(l) });
            } else if bad_label(l, &mut errors) {
                // Reported; not a key the state file could hold, so not compared.
            } else if let Some(first) = seen.get(key) {
                errors.push(Diagnostic {
                    field: "metadata.name".into(),
                    value: key.name.to_string(),
                    message: format!("Service {key} is already defined in {first}"),
                    ..svc_diag(l)
                });
            } else {
                seen.insert(key, &l.source);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // One copy of each namespace's labels, shared by its services, and one of each request.
    let mut ns_labels: BTreeMap<Arc<str>, Arc<Labels>> = BTreeMap::new();
    let mut shared = Interned::default();
    let mut out: Vec<Service> = loaded
        .into_iter()
        .map(|l| {
            let mut svc = l.object;
            let ns = &svc.key.namespace;
            let labels = match ns_labels.get(ns) {
                Some(l) => l.clone(),
                None => ns_labels.entry(ns.clone()).or_insert_with(|| Arc::new(namespace_labels(res, ns))).clone(),
            };
            if let Ok(r) = &mut svc.request {
                if r.namespace_labels != labels {
                    let mut with_labels = Request::clone(r);
                    with_labels.namespace_labels = labels.clone();
                    *r = shared.request(with_labels);
                }
            }
            if let Err(m) = &mut svc.request {
                m.fallback.namespace_labels = labels;
            }
            svc
        })
        .collect();
    out.shrink_to_fit();
    sort_for_allocation(&mut out);
    Ok(out)
}

/// Reports the Service's name or namespace if it is not a DNS-1123 label, as Kubernetes
/// requires of both; returns whether it did. (The API server checks a Service's name against
/// the stricter DNS-1035 rule, no leading digit, unless its `RelaxedServiceNameValidation`
/// gate is on; lb takes either, so that no Service the API server stored is refused.) The
/// state file and the logs write a service as `namespace/name`, which only stays
/// unambiguous while neither part can hold a `/`.
fn bad_label(l: &Loaded<Service>, errors: &mut Vec<Diagnostic>) -> bool {
    let key = &l.object.key;
    let before = errors.len();
    for (field, value) in [("metadata.name", &key.name), ("metadata.namespace", &key.namespace)] {
        if let Some(message) = label_error(value) {
            errors.push(Diagnostic { field: field.into(), value: value.to_string(), message, ..svc_diag(l) });
        }
    }
    errors.len() > before
}

/// Why `s` is not a DNS-1123 label, or `None` if it is one.
fn label_error(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() > 63 {
        return Some(format!("must be no more than 63 characters (has {})", b.len()));
    }
    let inner = b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    let ends = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if inner && ends(b.first()) && ends(b.last()) {
        return None;
    }
    Some(
        "a DNS-1123 label must consist of lower case alphanumeric characters or '-', and must start \
         and end with an alphanumeric character"
            .into(),
    )
}

fn svc_diag(l: &Loaded<Service>) -> Diagnostic {
    Diagnostic {
        source: Some(l.source.clone()),
        kind: "Service".into(),
        name: l.object.key.to_string(),
        field: String::new(),
        value: String::new(),
        message: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> raw::Service {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn reads_both_annotation_prefixes() {
        let s = svc("metadata:\n  name: a\n  annotations:\n    metallb.universe.tf/address-pool: old\n    metallb.universe.tf/allow-shared-ip: k\n    metallb.io/loadBalancerIPs: '10.0.0.1, 2001:db8::1'\nspec: {type: LoadBalancer, ipFamilyPolicy: PreferDualStack}\n");
        let s = Service::from_raw(&s, &Arc::default()).unwrap();
        assert_eq!(s.key, ServiceKey::new("default", "a"));
        let r = s.request.unwrap();
        assert_eq!(r.pool.as_deref(), Some("old"));
        assert_eq!(r.sharing_key.as_deref(), Some("k"));
        assert_eq!(r.ips.len(), 2);
        let s = svc("metadata:\n  name: a\n  annotations:\n    metallb.universe.tf/address-pool: old\n    metallb.io/address-pool: new\nspec: {type: LoadBalancer}\n");
        assert_eq!(Service::from_raw(&s, &Arc::default()).unwrap().request.unwrap().pool.as_deref(), Some("new"));
    }

    #[test]
    fn load_balancer_ip_and_local_backend_key() {
        let s = svc("metadata: {name: a, namespace: n}\nspec: {type: LoadBalancer, loadBalancerIP: 10.0.0.7, externalTrafficPolicy: Local, selector: {app: x, tier: y}, ports: [{port: 53, protocol: UDP}]}\n");
        let r = Service::from_raw(&s, &Arc::default()).unwrap().request.unwrap();
        assert_eq!(r.ips, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.backend_key, "app=x,tier=y");
        assert_eq!(r.ports, vec![Port { protocol: Protocol::Udp, port: 53 }]);
    }

    #[test]
    fn a_service_stays_within_its_memory_budget() {
        // A start may hold 100k of them beside the allocator: each octet here is 100 kB.
        assert_eq!(std::mem::size_of::<Service>(), 80);
        assert_eq!(std::mem::size_of::<StatusIps>(), 24);
    }

    #[test]
    fn status_addresses_read_back_in_order_however_many() {
        let ips: Vec<IpAddr> = ["192.0.2.1", "2001:db8::1", "192.0.2.2"].iter().map(|s| s.parse().unwrap()).collect();
        for n in 0..=3 {
            let from_slice = StatusIps::from(&ips[..n]);
            let collected: StatusIps = ips[..n].iter().copied().collect();
            assert_eq!(&*from_slice, &ips[..n]);
            assert_eq!(from_slice, collected);
            assert_eq!(matches!(from_slice, StatusIps::One(_)), n == 1, "one address is held inline");
            assert_eq!(StatusIps::Many(ips[..n].into()), from_slice, "equal whichever variant holds them");
        }
        let s = svc("metadata: {name: a}\nspec: {type: LoadBalancer}\nstatus: {loadBalancer: {ingress: [{ip: 192.0.2.1}, {ip: ' 2001:db8::1 '}, {hostname: x}]}}\n");
        assert_eq!(&*Service::from_raw(&s, &Arc::default()).unwrap().status_ips, &ips[..2]);
    }

    #[test]
    fn timestamps_compare_as_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00Z"), Some((1_709_208_000, 0)));
        assert_eq!(parse_rfc3339("2024-02-29T14:00:00+02:00"), parse_rfc3339("2024-02-29T12:00:00Z"));
        assert!(parse_rfc3339("2024-01-01T00:00:00Z") < parse_rfc3339("2024-01-01T00:00:00.5Z"));
        for bad in [
            "",
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0200",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let mk = |name: &str, created: Option<&str>| Service {
            key: ServiceKey::new("n", name),
            created: created.map_or(Created::UNKNOWN, Created::parse),
            request: Ok(Arc::default()),
            status_ips: StatusIps::default(),
        };
        let mut v = vec![
            mk("late", Some("2024-01-01T00:00:01Z")),
            mk("half", Some("2024-01-01T00:00:00.5Z")),
            mk("file-1", None),
            mk("early", Some("2024-01-01T01:00:00+02:00")),
            mk("file-2", None),
        ];
        sort_for_allocation(&mut v);
        let names: Vec<&str> = v.iter().map(|s| &*s.key.name).collect();
        assert_eq!(names, ["file-1", "file-2", "early", "half", "late"]);
        let (first, last) = (created_micros("0000-03-01T00:00:00Z"), created_micros("9999-12-31T23:59:59.999999Z"));
        assert!(first.is_some() && last.is_some() && first < last, "years 0 to 9999 fit: {first:?} {last:?}");
        assert_eq!(created_micros("2024-01-01T00:00:00.5Z"), Some(1_704_067_200_500_000));
        assert_eq!(Created::parse("2024-01-01T00:00:00.5Z").micros(), Some(1_704_067_200_500_000));
        assert_eq!(Created::parse("1970-01-01T00:00:00Z").micros(), Some(0));
        assert_eq!(Created::parse("yesterday"), Created::UNKNOWN);
        assert_eq!(Created::UNKNOWN.micros(), None);
        assert!(Created::UNKNOWN < Created::parse("0000-03-01T00:00:00Z"));
    }

    #[test]
    fn malformed_requests_say_why() {
        let bad = [
            "metadata: {name: a, annotations: {metallb.io/loadBalancerIPs: 10.0.0.300}}\nspec: {type: LoadBalancer}\n",
            "metadata: {name: a, annotations: {metallb.io/loadBalancerIPs: '10.0.0.1,10.0.0.2'}}\nspec: {type: LoadBalancer}\n",
            "metadata: {name: a}\nspec: {type: LoadBalancer, ipFamilyPolicy: Sometimes}\n",
            "metadata: {name: a}\nspec: {type: LoadBalancer, ports: [{port: 70000}]}\n",
            "metadata: {name: a, annotations: {metallb.io/loadBalancerIPs: '10.0.0.1,2001:db8::1'}}\nspec: {type: LoadBalancer}\n",
        ];
        for y in bad {
            let s = Service::from_raw(&svc(y), &Arc::default()).unwrap();
            assert!(s.request.is_err(), "{y}");
        }
        assert!(Service::from_raw(&svc("metadata: {name: a}\nspec: {type: ClusterIP}\n"), &Arc::default()).is_none());
    }

    #[test]
    fn names_kubernetes_would_refuse_are_errors_that_name_the_field() {
        let doc = |ns: &str, name: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: '{name}', namespace: '{ns}'}}\nspec: {{type: LoadBalancer}}\n")
        };
        let long = "a".repeat(64);
        // `a`/`b/c` and `a/b`/`c` would both be `a/b/c` in the state file.
        for (ns, name, fields) in [
            ("a", "b/c", &["metadata.name"][..]),
            ("a/b", "c", &["metadata.namespace"]),
            ("default", "Web", &["metadata.name"]),
            ("default", "web-", &["metadata.name"]),
            ("default", "-web", &["metadata.name"]),
            ("default", "web.x", &["metadata.name"]),
            ("default", "wéb", &["metadata.name"]),
            ("default", &long, &["metadata.name"]),
            ("-x", "web", &["metadata.namespace"]),
            ("x-", "web", &["metadata.namespace"]),
            ("Blue", "web", &["metadata.namespace"]),
            (&long, "web", &["metadata.namespace"]),
            ("Blue", "Web", &["metadata.name", "metadata.namespace"]),
        ] {
            let mut r = Resources::default();
            r.load_str("t.yaml", &doc(ns, name));
            let errs = load_balancer_services(&mut r).expect_err(&format!("{ns}/{name}"));
            let got: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
            assert_eq!(got, fields, "{ns}/{name}: every bad part is reported");
            for e in &errs {
                assert_eq!(e.value, if e.field == "metadata.name" { name } else { ns });
                let why = if e.value.len() > 63 { "no more than 63 characters" } else { "DNS-1123 label" };
                assert!(e.message.contains(why), "{}", e.message);
            }
        }
        // What the API server stores is accepted: DNS-1035 names, and DNS-1123 ones (a leading
        // digit) under its RelaxedServiceNameValidation gate.
        let mut r = Resources::default();
        let text = [doc("kube-system", "web-1"), doc("1x", &"a".repeat(63)), doc("default", "1web")].join("---\n");
        r.load_str("t.yaml", &text);
        assert_eq!(load_balancer_services(&mut r).unwrap().len(), 3);
    }

    #[test]
    fn namespace_labels_apply_whatever_the_order_of_documents() {
        let mut r = Resources::default();
        r.load_str(
            "t.yaml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: blue}\nspec: {type: LoadBalancer}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: blue}\nspec: {type: LoadBalancer}\n---\n\
             apiVersion: v1\nkind: Service\nmetadata: {name: c, namespace: blue}\nspec: {type: ClusterIP}\n---\n\
             apiVersion: v1\nkind: Namespace\nmetadata: {name: blue, labels: {team: blue}}\n",
        );
        let services = load_balancer_services(&mut r).unwrap();
        assert_eq!(services.len(), 2, "the ClusterIP service is not the allocator's");
        let labels: Vec<&Arc<Labels>> =
            services.iter().map(|s| &s.request.as_ref().unwrap().namespace_labels).collect();
        assert_eq!(labels[0].get("team").map(String::as_str), Some("blue"));
        assert_eq!(labels[0].get("kubernetes.io/metadata.name").map(String::as_str), Some("blue"));
        assert!(Arc::ptr_eq(labels[0], labels[1]), "one copy per namespace");
    }

    #[test]
    fn services_that_ask_alike_share_one_request_and_others_keep_their_own() {
        let doc = |name: &str, ns: &str, extra: &str| {
            format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}{extra}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]}}\n---\n")
        };
        let mut r = Resources::default();
        let text = doc("a", "red", "")
            + &doc("b", "red", "")
            + &doc("c", "red", ", labels: {app: c}")
            + &doc("d", "blue", "")
            + "apiVersion: v1\nkind: Namespace\nmetadata: {name: blue, labels: {team: blue}}\n";
        r.load_str("t.yaml", &text);
        let services = load_balancer_services(&mut r).unwrap();
        let req = |name: &str| services.iter().find(|s| &*s.key.name == name).unwrap().request.clone().unwrap();
        let (a, b, c, d) = (req("a"), req("b"), req("c"), req("d"));
        assert!(Arc::ptr_eq(&a, &b), "same namespace, ports and labels: one request");
        assert!(!Arc::ptr_eq(&a, &c), "other labels: a request of its own");
        assert_eq!(c.labels.get("app").map(String::as_str), Some("c"));
        assert!(!Arc::ptr_eq(&a, &d), "another namespace (other namespace labels): a request of its own");
        assert_eq!(d.namespace_labels.get("team").map(String::as_str), Some("blue"));
        assert_eq!(a.namespace_labels.get("team"), None);
        assert_eq!(a.ports, [Port { protocol: Protocol::Tcp, port: 80 }]);
        let key = |name: &str| services.iter().find(|s| &*s.key.name == name).unwrap().key.clone();
        assert!(Arc::ptr_eq(&key("a").namespace, &key("c").namespace), "one namespace string per namespace");
    }
}
