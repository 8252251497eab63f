//! The service model the allocator sees, built from a `v1 Service` as MetalLB reads it.
//!
//! A [`Request`] is everything about a service that allocation depends on: the addresses
//! it asks for (`metallb.io/loadBalancerIPs` or `spec.loadBalancerIP`), the pool it names
//! (`metallb.io/address-pool`), its sharing key (`metallb.io/allow-shared-ip`) and backend
//! key, its ports, its families and the labels that pool `serviceAllocation` selectors see.
//! Both annotation prefixes are read: `metallb.io/` and the legacy `metallb.universe.tf/`
//! (the new one wins when both are set).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// Namespace (`default` when a file gives none).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ServiceKey {
    /// The key `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
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
    /// The namespace's labels (for `namespaceSelectors`).
    pub namespace_labels: Labels,
}

/// A LoadBalancer service read from a file or the API, with its allocation request (or why
/// the request is malformed: such a service gets no address, and the error says why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `metadata.creationTimestamp`, if known (RFC 3339 sorts as text in UTC).
    pub created: Option<String>,
    /// `spec.loadBalancerClass`.
    pub class: Option<String>,
    /// The allocation request.
    pub request: Result<Request, String>,
    /// Addresses already in `status.loadBalancer.ingress` (to restore).
    pub status_ips: Vec<IpAddr>,
}

fn annotation<'a>(ann: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    ANNOTATION_PREFIXES.iter().find_map(|p| ann.get(&format!("{p}{name}"))).map(|s| s.trim()).filter(|s| !s.is_empty())
}

impl Service {
    /// Reads a `v1 Service` of type LoadBalancer, or None for any other type.
    /// `namespace_labels` are the labels of its namespace.
    pub fn from_raw(svc: &raw::Service, namespace_labels: &Labels) -> Option<Service> {
        if svc.spec.type_.as_deref() != Some("LoadBalancer") {
            return None;
        }
        let meta = &svc.metadata;
        let key = ServiceKey::new(
            meta.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into()),
            meta.name.clone().unwrap_or_default(),
        );
        let status_ips = svc
            .status
            .load_balancer
            .ingress
            .iter()
            .filter_map(|i| i.ip.as_deref().and_then(|ip| ip.trim().parse().ok()))
            .collect();
        Some(Service {
            key,
            created: meta.creation_timestamp.clone(),
            class: svc.spec.load_balancer_class.clone(),
            request: request(svc, namespace_labels),
            status_ips,
        })
    }
}

fn request(svc: &raw::Service, namespace_labels: &Labels) -> Result<Request, String> {
    let ann = &svc.metadata.annotations;
    let spec = &svc.spec;
    let mut ips = Vec::new();
    if let Some(list) = annotation(ann, ANN_LOAD_BALANCER_IPS) {
        for s in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ip: IpAddr =
                s.parse().map_err(|_| format!("annotation metallb.io/loadBalancerIPs: {s:?} is not an IP address"))?;
            ips.push(ip);
        }
        if spec.load_balancer_ip.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(
                "both spec.loadBalancerIP and annotation metallb.io/loadBalancerIPs are set; use only the annotation"
                    .into(),
            );
        }
    } else if let Some(s) = spec.load_balancer_ip.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        ips.push(s.parse().map_err(|_| format!("spec.loadBalancerIP: {s:?} is not an IP address"))?);
    }
    let policy = match spec.ip_family_policy.as_deref() {
        None | Some("") | Some("SingleStack") => FamilyPolicy::SingleStack,
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        Some(other) => return Err(format!("spec.ipFamilyPolicy: unknown value {other:?}")),
    };
    let mut families = Vec::new();
    for f in &spec.ip_families {
        let fam = match f.as_str() {
            "IPv4" => Family::V4,
            "IPv6" => Family::V6,
            other => return Err(format!("spec.ipFamilies: unknown family {other:?} (IPv4 or IPv6)")),
        };
        if families.contains(&fam) {
            return Err(format!("spec.ipFamilies: {f} is listed twice"));
        }
        families.push(fam);
    }
    let v4 = ips.iter().filter(|ip| ip.is_ipv4()).count();
    let v6 = ips.len() - v4;
    if v4 > 1 || v6 > 1 {
        return Err("at most one requested address per family".into());
    }
    if !ips.is_empty() {
        let want = match policy {
            FamilyPolicy::SingleStack => ips.len() == 1,
            FamilyPolicy::PreferDualStack => true,
            FamilyPolicy::RequireDualStack => ips.len() == 2,
        };
        if !want {
            return Err(format!("{} requested address(es) do not fit ipFamilyPolicy {policy:?}", ips.len()));
        }
        if let Some(ip) = ips.iter().find(|ip| !families.is_empty() && !families.contains(&Family::of(**ip))) {
            return Err(format!("requested address {ip} is not of a family in spec.ipFamilies"));
        }
    }
    let mut ports = Vec::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            other => return Err(format!("spec.ports[{i}].protocol: unknown protocol {other:?}")),
        };
        let port = u16::try_from(p.port)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| format!("spec.ports[{i}].port: {} is not a port number", p.port))?;
        ports.push(Port { protocol, port });
    }
    let backend_key = if spec.external_traffic_policy.as_deref() == Some("Local") {
        spec.selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
    } else {
        String::new()
    };
    Ok(Request {
        ips,
        pool: annotation(ann, ANN_ADDRESS_POOL).map(str::to_string),
        sharing_key: annotation(ann, ANN_ALLOW_SHARED_IP).map(str::to_string),
        backend_key,
        ports,
        policy,
        families,
        labels: svc.metadata.labels.clone(),
        namespace_labels: namespace_labels.clone(),
    })
}

/// Sorts services into allocation order: creation time (services without one first), then
/// input order. The sort is stable: files give their own order; a Kubernetes caller passes
/// services in namespace/name order, so ties fall back to namespace/name there.
pub fn sort_for_allocation(services: &mut [Service]) {
    services.sort_by(|a, b| a.created.cmp(&b.created));
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

/// The LoadBalancer services in `res`, in allocation order, or an error per service defined
/// twice (same namespace and name).
pub fn load_balancer_services(res: &Resources) -> Result<Vec<Service>, Vec<Diagnostic>> {
    let mut seen: BTreeMap<ServiceKey, &Source> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut out = Vec::new();
    for l in &res.services {
        let ns = l.object.metadata.namespace.as_deref().filter(|n| !n.is_empty()).unwrap_or("default");
        let Some(svc) = Service::from_raw(&l.object, &namespace_labels(res, ns)) else {
            continue;
        };
        if svc.key.name.is_empty() {
            errors.push(Diagnostic {
                field: "metadata.name".into(),
                message: "required".into(),
                ..svc_diag(l, &svc.key)
            });
            continue;
        }
        if let Some(first) = seen.get(&svc.key) {
            let message = format!("Service {} is already defined in {first}", svc.key);
            errors.push(Diagnostic {
                field: "metadata.name".into(),
                value: svc.key.name.clone(),
                message,
                ..svc_diag(l, &svc.key)
            });
            continue;
        }
        seen.insert(svc.key.clone(), &l.source);
        out.push(svc);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    sort_for_allocation(&mut out);
    Ok(out)
}

fn svc_diag(l: &Loaded<raw::Service>, key: &ServiceKey) -> Diagnostic {
    Diagnostic {
        source: Some(l.source.clone()),
        kind: "Service".into(),
        name: key.to_string(),
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
        let s = Service::from_raw(&s, &Labels::new()).unwrap();
        assert_eq!(s.key, ServiceKey::new("default", "a"));
        let r = s.request.unwrap();
        assert_eq!(r.pool.as_deref(), Some("old"));
        assert_eq!(r.sharing_key.as_deref(), Some("k"));
        assert_eq!(r.ips.len(), 2);
        let s = svc("metadata:\n  name: a\n  annotations:\n    metallb.universe.tf/address-pool: old\n    metallb.io/address-pool: new\nspec: {type: LoadBalancer}\n");
        assert_eq!(Service::from_raw(&s, &Labels::new()).unwrap().request.unwrap().pool.as_deref(), Some("new"));
    }

    #[test]
    fn load_balancer_ip_and_local_backend_key() {
        let s = svc("metadata: {name: a, namespace: n}\nspec: {type: LoadBalancer, loadBalancerIP: 10.0.0.7, externalTrafficPolicy: Local, selector: {app: x, tier: y}, ports: [{port: 53, protocol: UDP}]}\n");
        let r = Service::from_raw(&s, &Labels::new()).unwrap().request.unwrap();
        assert_eq!(r.ips, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.backend_key, "app=x,tier=y");
        assert_eq!(r.ports, vec![Port { protocol: Protocol::Udp, port: 53 }]);
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
            let s = Service::from_raw(&svc(y), &Labels::new()).unwrap();
            assert!(s.request.is_err(), "{y}");
        }
        assert!(Service::from_raw(&svc("metadata: {name: a}\nspec: {type: ClusterIP}\n"), &Labels::new()).is_none());
    }
}
