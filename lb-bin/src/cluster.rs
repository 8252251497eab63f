//! What `lb controller` and `lb speaker` know of the cluster: one store per kind, fed by
//! kube-rs watchers, and the configuration read from them through lbcore's loader types, so
//! that objects from the API and from files are validated the same way.
//!
//! Invariants: a store holds the newest version seen of each object (a write's response may
//! arrive before the watch event of an older version); after a relist it holds exactly the
//! listed objects; [`Stores::ready`] is true once every store that is watched has had its
//! initial list.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use lbcore::config::{self, raw, Config, Diagnostic, Loaded, Resources, Source};
use serde::de::DeserializeOwned;

use crate::crds;

/// Objects of one kind, by namespace and name, fed by a watcher.
pub struct Store<K> {
    /// The objects.
    pub items: BTreeMap<(String, String), K>,
    relist: Option<BTreeMap<(String, String), K>>,
    ready: bool,
    watched: bool,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Store { items: BTreeMap::new(), relist: None, ready: false, watched: false }
    }
}

/// An object's namespace and name.
pub fn key<K: Resource>(o: &K) -> (String, String) {
    (o.meta().namespace.clone().unwrap_or_default(), o.meta().name.clone().unwrap_or_default())
}

/// The annotation `kubectl apply` keeps the whole last applied object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what lb never reads and what is often most of an object's size: the API server's
/// `managedFields` (a field tree per writer) and `kubectl apply`'s copy of the whole object
/// in an annotation. lb never writes a stored object back (its writes are patches built
/// from scratch, and Lease updates start from a fresh GET), so nothing is lost.
fn slim<K: Resource>(o: &mut K) {
    let m = o.meta_mut();
    m.managed_fields = None;
    if let Some(a) = m.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

fn version<K: Resource>(o: &K) -> Option<u64> {
    o.meta().resource_version.as_deref().and_then(|v| v.parse().ok())
}

impl<K: Resource + Clone> Store<K> {
    fn apply(&mut self, ev: watcher::Event<K>) {
        match ev {
            watcher::Event::Init => self.relist = Some(BTreeMap::new()),
            watcher::Event::InitApply(mut o) => {
                slim(&mut o);
                self.relist.get_or_insert_with(BTreeMap::new).insert(key(&o), o);
            }
            watcher::Event::InitDone => {
                self.items = self.relist.take().unwrap_or_default();
                self.ready = true;
            }
            watcher::Event::Apply(o) => self.put(o),
            watcher::Event::Delete(o) => {
                self.items.remove(&key(&o));
            }
        }
    }

    /// Keeps `o` unless the store already holds a newer version of it (without what
    /// lb never reads: see `slim`).
    pub fn put(&mut self, mut o: K) {
        slim(&mut o);
        let k = key(&o);
        let newer = match (self.items.get(&k).and_then(version), version(&o)) {
            (Some(have), Some(new)) => new >= have,
            _ => true,
        };
        if newer {
            self.items.insert(k, o);
        }
    }

    /// Forgets an object (after deleting it).
    pub fn forget(&mut self, k: &(String, String)) {
        self.items.remove(k);
    }

    fn ok(&self) -> bool {
        !self.watched || self.ready
    }
}

/// Something a watcher saw.
// One Update exists at a time and moves straight into its store: boxing would only add an
// allocation per event.
#[allow(clippy::large_enum_variant)]
pub enum Update {
    /// A Service.
    Service(watcher::Event<Service>),
    /// A Namespace.
    Namespace(watcher::Event<Namespace>),
    /// A Node.
    Node(watcher::Event<Node>),
    /// An EndpointSlice.
    Slice(watcher::Event<EndpointSlice>),
    /// A ServiceL2Status.
    L2Status(watcher::Event<crds::ServiceL2Status>),
    /// A ServiceBGPStatus.
    BgpStatus(watcher::Event<crds::ServiceBGPStatus>),
    /// A Lease.
    Lease(watcher::Event<Lease>),
    /// A Secret.
    Secret(watcher::Event<k8s_openapi::api::core::v1::Secret>),
    /// An IPAddressPool.
    Pool(watcher::Event<crds::IPAddressPool>),
    /// An L2Advertisement.
    L2(watcher::Event<crds::L2Advertisement>),
    /// A BGPAdvertisement.
    BgpAdv(watcher::Event<crds::BGPAdvertisement>),
    /// A BGPPeer.
    Peer(watcher::Event<crds::BGPPeer>),
    /// A Community.
    Community(watcher::Event<crds::Community>),
    /// A BFDProfile.
    Bfd(watcher::Event<crds::BFDProfile>),
    /// A watch failed (it is retried with backoff).
    Failed(String),
}

/// Every store.
#[derive(Default)]
pub struct Stores {
    /// Services, all namespaces.
    pub services: Store<Service>,
    /// Namespaces.
    pub namespaces: Store<Namespace>,
    /// Nodes.
    pub nodes: Store<Node>,
    /// EndpointSlices, all namespaces.
    pub slices: Store<EndpointSlice>,
    /// ServiceL2Status objects.
    pub l2_statuses: Store<crds::ServiceL2Status>,
    /// ServiceBGPStatus objects.
    pub bgp_statuses: Store<crds::ServiceBGPStatus>,
    /// Leases (the speakers' liveness).
    pub leases: Store<Lease>,
    /// Secrets in the configuration namespace (BGPPeer passwordSecret; the speaker only).
    pub secrets: Store<k8s_openapi::api::core::v1::Secret>,
    pools: Store<crds::IPAddressPool>,
    l2: Store<crds::L2Advertisement>,
    bgp_advs: Store<crds::BGPAdvertisement>,
    peers: Store<crds::BGPPeer>,
    communities: Store<crds::Community>,
    bfd: Store<crds::BFDProfile>,
}

fn raw_meta(m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> raw::ObjectMeta {
    raw::ObjectMeta {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        labels: m.labels.clone().unwrap_or_default(),
        annotations: m.annotations.clone().unwrap_or_default(),
        creation_timestamp: m.creation_timestamp.as_ref().map(|t| t.0.to_string()),
    }
}

fn source<K: Resource<DynamicType = ()>>(o: &K) -> Source {
    let (ns, name) = key(o);
    Source { file: Arc::from(format!("{} {ns}/{name}", K::kind(&()))), doc: 0, item: None }
}

fn loaded<S: Clone, K: Resource<DynamicType = ()>>(o: &K, spec: &S) -> Loaded<raw::Object<S>> {
    Loaded { source: source(o), object: raw::Object { metadata: raw_meta(o.meta()), spec: spec.clone() } }
}

/// A v1 Service read through lbcore's own reduced model (unknown fields ignored).
pub fn to_raw_service(svc: &Service) -> Option<raw::Service> {
    serde_json::to_value(svc).and_then(serde_json::from_value).ok()
}

impl Stores {
    /// A watcher for one kind, marking its store as watched.
    pub fn watch<K>(&mut self, api: Api<K>, wrap: fn(watcher::Event<K>) -> Update) -> stream::BoxStream<'static, Update>
    where
        K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        // Mark the store this kind feeds (by applying an empty relist marker).
        self.apply(wrap(watcher::Event::Init));
        watcher(api, watcher::Config::default())
            .default_backoff()
            .map(move |r| match r {
                Ok(ev) => wrap(ev),
                Err(e) => Update::Failed(e.to_string()),
            })
            .boxed()
    }

    /// Watchers for the six config kinds in `ns`, and for Namespaces.
    pub fn watch_config(&mut self, client: &Client, ns: &str) -> Vec<stream::BoxStream<'static, Update>> {
        vec![
            self.watch(Api::namespaced(client.clone(), ns), Update::Pool),
            self.watch(Api::namespaced(client.clone(), ns), Update::L2),
            self.watch(Api::namespaced(client.clone(), ns), Update::BgpAdv),
            self.watch(Api::namespaced(client.clone(), ns), Update::Peer),
            self.watch(Api::namespaced(client.clone(), ns), Update::Community),
            self.watch(Api::namespaced(client.clone(), ns), Update::Bfd),
        ]
    }

    /// Applies one update.
    pub fn apply(&mut self, u: Update) {
        fn feed<K: Resource + Clone>(s: &mut Store<K>, e: watcher::Event<K>) {
            if matches!(e, watcher::Event::Init) {
                s.watched = true;
            }
            s.apply(e);
        }
        match u {
            Update::Service(e) => feed(&mut self.services, e),
            Update::Namespace(e) => feed(&mut self.namespaces, e),
            Update::Node(e) => feed(&mut self.nodes, e),
            Update::Slice(e) => feed(&mut self.slices, e),
            Update::L2Status(e) => feed(&mut self.l2_statuses, e),
            Update::BgpStatus(e) => feed(&mut self.bgp_statuses, e),
            Update::Lease(e) => feed(&mut self.leases, e),
            Update::Secret(e) => feed(&mut self.secrets, e),
            Update::Pool(e) => feed(&mut self.pools, e),
            Update::L2(e) => feed(&mut self.l2, e),
            Update::BgpAdv(e) => feed(&mut self.bgp_advs, e),
            Update::Peer(e) => feed(&mut self.peers, e),
            Update::Community(e) => feed(&mut self.communities, e),
            Update::Bfd(e) => feed(&mut self.bfd, e),
            Update::Failed(e) => tracing::warn!(error = %e, "watch failed; retrying"),
        }
    }

    /// Whether every watched store has had its initial list.
    pub fn ready(&self) -> bool {
        self.services.ok()
            && self.namespaces.ok()
            && self.nodes.ok()
            && self.slices.ok()
            && self.l2_statuses.ok()
            && self.bgp_statuses.ok()
            && self.leases.ok()
            && self.secrets.ok()
            && self.pools.ok()
            && self.l2.ok()
            && self.bgp_advs.ok()
            && self.peers.ok()
            && self.communities.ok()
            && self.bfd.ok()
    }

    /// The configuration, Namespaces and LoadBalancer Services as lbcore's resources.
    pub fn resources(&self) -> Resources {
        let mut r = Resources {
            pools: self.pools.items.values().map(|o| loaded(o, &o.spec.spec)).collect(),
            l2_advertisements: self.l2.items.values().map(|o| loaded(o, &o.spec.spec)).collect(),
            bgp_advertisements: self.bgp_advs.items.values().map(|o| loaded(o, &o.spec.spec)).collect(),
            peers: self.peers.items.values().map(|o| loaded(o, &o.spec.spec)).collect(),
            communities: self.communities.items.values().map(|o| loaded(o, &o.spec.spec)).collect(),
            bfd_profiles: self.bfd.items.values().map(|o| loaded(o, &o.spec.spec)).collect(),
            namespaces: self
                .namespaces
                .items
                .values()
                .map(|n| Loaded { source: source(n), object: raw::Namespace { metadata: raw_meta(&n.metadata) } })
                .collect(),
            ..Default::default()
        };
        for svc in self.services.items.values() {
            let Some(raw) = to_raw_service(svc) else { continue };
            if let Some(s) = lbcore::service::Service::from_raw(&raw, &Default::default()) {
                r.push_service(source(svc), s);
            }
        }
        r
    }
}

/// The last configuration that validated, kept while a newer one is invalid (nothing that is
/// announced is withdrawn, and nothing is re-allocated, because of a typo).
#[derive(Default)]
pub struct LastGood {
    /// The configuration in force, if any ever validated.
    pub config: Option<Config>,
    /// The errors last reported (reported again only when they change).
    reported: Vec<String>,
    /// Where to say whether the configuration is loaded and whether it is stale.
    metrics: Option<crate::metrics::ConfigMetrics>,
}

impl LastGood {
    /// With `metrics` kept up to date on every update.
    pub fn with_metrics(metrics: crate::metrics::ConfigMetrics) -> Self {
        LastGood { metrics: Some(metrics), ..Default::default() }
    }

    /// Validates `res`: a valid configuration replaces the one in force; an invalid one is
    /// logged, once per distinct set of errors, and its errors are returned for the caller to
    /// report elsewhere too (None when there is nothing new to report).
    pub fn update(&mut self, res: &Resources) -> Option<Vec<Diagnostic>> {
        let result = config::validate(res);
        if let Some(m) = &self.metrics {
            m.set(result.is_ok() || self.config.is_some(), result.is_err());
        }
        match result {
            Ok(v) => {
                if !self.reported.is_empty() {
                    tracing::info!("the configuration is valid again");
                }
                self.reported.clear();
                self.config = Some(v.config);
                None
            }
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(Diagnostic::to_string).collect();
                if lines == self.reported {
                    return None;
                }
                for l in &lines {
                    tracing::error!("{l}");
                }
                let kept = if self.config.is_some() {
                    "the last good configuration stays in force"
                } else {
                    "nothing is served until it is fixed"
                };
                tracing::error!("the configuration is invalid; {kept}");
                self.reported = lines;
                Some(errors)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    #[test]
    fn stores_keep_what_lb_reads_and_drop_managed_fields_and_the_last_applied_copy() {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("t".into()),
                resource_version: Some("7".into()),
                annotations: Some(
                    [
                        ("metallb.io/loadBalancerIPs".to_string(), "192.0.2.7".to_string()),
                        (LAST_APPLIED.to_string(), "{\"apiVersion\":\"v1\",\"kind\":\"Service\"}".to_string()),
                    ]
                    .into(),
                ),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("kubectl".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            ..Default::default()
        };
        let check = |store: &Store<Service>| {
            let kept = &store.items[&("t".to_string(), "web".to_string())];
            assert_eq!(kept.metadata.managed_fields, None);
            let ann = kept.metadata.annotations.clone().unwrap_or_default();
            assert_eq!(ann.get("metallb.io/loadBalancerIPs").map(String::as_str), Some("192.0.2.7"));
            assert!(!ann.contains_key(LAST_APPLIED));
            assert_eq!(kept.metadata.resource_version.as_deref(), Some("7"));
        };
        // A write's response, and a watch's initial list.
        let mut store: Store<Service> = Store::default();
        store.put(svc.clone());
        check(&store);
        store.apply(watcher::Event::Init);
        store.apply(watcher::Event::InitApply(svc));
        store.apply(watcher::Event::InitDone);
        check(&store);
    }
}
