//! `lb controller`: assigns addresses to LoadBalancer Services in a Kubernetes cluster, from
//! MetalLB's `metallb.io` configuration, and writes them to Service status.
//!
//! Not a per-object concurrent reconciler (DESIGN.md, Decisions): one task keeps its own
//! stores of Services, Namespaces and the config kinds, fed by watchers; once every watcher
//! has delivered its initial list, and while this replica holds the Lease, it runs passes.
//! A pass validates the configuration (an invalid one is reported and the last good one
//! kept), restores every address found in Service status, then allocates to the pending
//! Services in creation order ([`lbcore::ipam::batch::assign_all`]), and writes only what
//! differs from what the API holds: `status.loadBalancer.ingress` and the annotation
//! `metallb.io/ip-allocated-from-pool`.
//!
//! Invariants:
//! - Level-triggered: a pass is computed from the stores alone, so a restarted or newly
//!   elected controller reaches the same assignments, and writes nothing when nothing
//!   differs (a restart never moves an IP and never rewrites a status).
//! - Every write carries the resourceVersion it was computed from; a 409 Conflict means
//!   re-read that Service and run another pass.
//! - Writes happen only while the Lease is held and its renew deadline has not passed.
//! - No finalizers: a controller that is down never blocks deleting a Service.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Client, Resource, ResourceExt};
use lbcore::config::Diagnostic;
use lbcore::ipam::batch;
use lbcore::service::{self, ANN_ALLOCATED_FROM_POOL};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::cluster::{LastGood, Stores, Update};
use crate::events::Recorder;
use crate::leader;
use crate::metrics::ControllerMetrics;
use crate::{Error, Result};

/// Arguments of `lb controller`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Namespace of the metallb.io configuration objects and of the Lease.
    #[arg(long, env = "LB_NAMESPACE", default_value = "metallb-system")]
    pub namespace: String,
    /// Serve only Services of this spec.loadBalancerClass (default: Services without one).
    #[arg(long, env = "LB_LB_CLASS")]
    pub lb_class: Option<String>,
    /// This replica's identity in the Lease (default: host name and process ID).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "LB_METRICS_ADDR", default_value = "0.0.0.0:7472")]
    pub metrics_addr: std::net::SocketAddr,
    /// Name of the Lease the replicas elect a leader with.
    #[arg(long, env = "LB_LEASE_NAME", default_value = "lb-controller")]
    pub lease_name: String,
    /// How long the Lease holds without renewal (Go duration).
    #[arg(long, env = "LB_LEASE_DURATION", default_value = "15s")]
    pub lease_duration: String,
    /// How long the leader keeps writing without renewing (less than --lease-duration).
    #[arg(long, env = "LB_RENEW_DEADLINE", default_value = "10s")]
    pub renew_deadline: String,
    /// How often the Lease is acquired or renewed.
    #[arg(long, env = "LB_LEASE_RETRY", default_value = "2s")]
    pub lease_retry: String,
}

impl Args {
    fn lease(&self, identity: &str) -> Result<leader::Settings> {
        let dur = |flag: &str, v: &str| {
            lbcore::config::duration::parse(v).map_err(|e| Error::Invalid(format!("--{flag} {v:?}: {e}")))
        };
        let s = leader::Settings {
            duration: dur("lease-duration", &self.lease_duration)?,
            renew_deadline: dur("renew-deadline", &self.renew_deadline)?,
            retry: dur("lease-retry", &self.lease_retry)?,
            ..leader::Settings::new(self.lease_name.clone(), identity)
        };
        if s.renew_deadline >= s.duration || s.retry.is_zero() || s.retry >= s.renew_deadline {
            return Err(Error::Invalid(
                "need 0 < --lease-retry < --renew-deadline < --lease-duration (a leader must stop writing before its lease can pass to another)".into(),
            ));
        }
        Ok(s)
    }
}

/// A write a pass decided on.
struct Write {
    key: (String, String),
    version: Option<String>,
    ips: Vec<String>,
    pool: Option<String>,
    /// Whether the status and annotation differ from what is wanted (else only the event
    /// is published: nothing unchanged is written again).
    changed: bool,
    event: Option<Event>,
    object: ObjectReference,
}

/// The controller's state.
struct Controller {
    client: Client,
    args: Args,
    recorder: Recorder,
    stores: Stores,
    metrics: ControllerMetrics,
    /// The configuration in force.
    config: LastGood,
    /// The last allocation failure reported per Service.
    reported_failures: BTreeMap<(String, String), String>,
}

/// The addresses in a Service's status.
pub(crate) fn status_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| ing.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

impl Controller {
    /// A Warning Event on the object a configuration error is about.
    async fn report_invalid(&self, d: &Diagnostic) {
        let api_version = if d.kind == "BGPPeer" { "metallb.io/v1beta2" } else { "metallb.io/v1beta1" };
        let reference = ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(d.kind.clone()),
            name: Some(d.name.clone()),
            namespace: Some(self.args.namespace.clone()),
            ..Default::default()
        };
        let ev = Event {
            type_: EventType::Warning,
            reason: "InvalidConfiguration".into(),
            note: Some(format!("{}: {} {:?}: {}", d.field, d.kind, d.value, d.message).chars().take(1000).collect()),
            action: "Validate".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, "cannot publish an event");
        }
    }

    /// One pass: allocate, and the writes that make the API agree.
    async fn pass(&mut self) -> Vec<Write> {
        let mut res = self.stores.resources();
        if let Some(errors) = self.config.update(&res) {
            for d in &errors {
                self.report_invalid(d).await;
            }
        }
        let Some(config) = &self.config.config else { return Vec::new() };
        let services = match service::load_balancer_services(&mut res) {
            Ok(s) => s,
            Err(errors) => {
                for e in errors {
                    tracing::error!("{e}");
                }
                return Vec::new();
            }
        };
        let class = self.args.lb_class.as_deref();
        let (alloc, outcomes) = batch::assign_all(&config.pools, &services, class);
        self.metrics.pools(&alloc.stats());
        let mut writes = Vec::new();
        let mut ours = BTreeSet::new();
        for (i, svc) in services.iter().enumerate() {
            if svc.class() != class {
                continue;
            }
            let k = (svc.key.namespace.to_string(), svc.key.name.to_string());
            ours.insert(k.clone());
            let Some(obj) = self.stores.services.items.get(&k) else { continue };
            let held = alloc.assignment(&svc.key);
            let ips: Vec<String> = held.iter().map(|(ip, _)| ip.to_string()).collect();
            let mut pools: Vec<&str> = Vec::new();
            for (_, p) in held {
                if !pools.contains(&p) {
                    pools.push(p);
                }
            }
            let pool = (!pools.is_empty()).then(|| pools.join(","));
            let have_pool = obj.annotations().get(ANN_ALLOCATED_FROM_POOL).cloned();
            let failure = outcomes.error(i).map(str::to_string).filter(|_| ips.is_empty());
            let mut event = None;
            match &failure {
                Some(why) if self.reported_failures.get(&k) != Some(why) => {
                    self.reported_failures.insert(k.clone(), why.clone());
                    event = Some(Event {
                        type_: EventType::Warning,
                        reason: "AllocationFailed".into(),
                        note: Some(
                            format!("Failed to allocate IP for \"{}\": {why}", svc.key).chars().take(1000).collect(),
                        ),
                        action: "Allocate".into(),
                        secondary: None,
                    });
                }
                Some(_) => {}
                None => {
                    self.reported_failures.remove(&k);
                }
            }
            let changed = status_ips(obj) != ips || have_pool != pool;
            if changed && !ips.is_empty() {
                let mut note = format!("Assigned IP {:?} from pool {}", ips, pool.clone().unwrap_or_default());
                if let Some(n) = outcomes.note(i) {
                    note = format!("{note} ({n})");
                }
                // The Recorder (events.rs) folds events with the same reason and action on one object
                // into a series that keeps the first note; a move must not read as the first
                // allocation again, so it has an action of its own.
                let moved = !status_ips(obj).is_empty();
                event = Some(Event {
                    type_: EventType::Normal,
                    reason: "IPAllocated".into(),
                    note: Some(note),
                    action: if moved { "Reallocate" } else { "Allocate" }.into(),
                    secondary: None,
                });
            }
            if changed || event.is_some() {
                writes.push(Write {
                    key: k,
                    version: obj.meta().resource_version.clone(),
                    ips: if changed { ips } else { status_ips(obj) },
                    pool: if changed { pool } else { have_pool },
                    changed,
                    event,
                    object: obj.object_ref(&()),
                });
            }
        }
        // A Service that stopped being ours (deleted ones are simply gone): release.
        for (k, obj) in &self.stores.services.items {
            if !ours.contains(k) && obj.annotations().contains_key(ANN_ALLOCATED_FROM_POOL) {
                writes.push(Write {
                    key: k.clone(),
                    version: obj.meta().resource_version.clone(),
                    ips: Vec::new(),
                    pool: None,
                    changed: true,
                    event: None,
                    object: obj.object_ref(&()),
                });
            }
        }
        self.reported_failures.retain(|k, _| ours.contains(k));
        writes
    }
}

/// Runs the writes of a pass, a few at a time, while `leading` says this replica may
/// write. Returns the updated Services, and whether another pass is needed (a conflict or
/// an error).
async fn execute(
    client: &Client,
    recorder: &Recorder,
    metrics: &ControllerMetrics,
    writes: Vec<Write>,
    leading: &watch::Receiver<Option<Instant>>,
) -> (Vec<Service>, bool) {
    let may_write = || leading.borrow().is_some_and(|d| Instant::now() < d);
    let results = stream::iter(writes)
        .map(|w| async move {
            if !may_write() {
                return (None, true);
            }
            if !w.changed {
                // Only an event (a failure first seen by this process): the status stays.
                if let Some(ev) = &w.event {
                    if let Err(e) = recorder.publish(ev, &w.object).await {
                        tracing::debug!(error = %e, "cannot publish an event");
                    }
                }
                return (None, false);
            }
            let api: Api<Service> = Api::namespaced(client.clone(), &w.key.0);
            let ingress: Vec<_> = w.ips.iter().map(|ip| json!({"ip": ip, "ipMode": "VIP"})).collect();
            let status = json!({
                "metadata": {"resourceVersion": w.version},
                "status": {"loadBalancer": {"ingress": ingress}},
            });
            let pp = PatchParams::default();
            let r = match api.patch_status(&w.key.1, &pp, &Patch::Merge(&status)).await {
                Ok(s) => {
                    let ann = json!({
                        "metadata": {
                            "resourceVersion": s.meta().resource_version,
                            "annotations": {ANN_ALLOCATED_FROM_POOL: w.pool},
                        }
                    });
                    if may_write() {
                        api.patch(&w.key.1, &pp, &Patch::Merge(&ann)).await
                    } else {
                        Ok(s)
                    }
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(s) => {
                    if let Some(ev) = &w.event {
                        if let Err(e) = recorder.publish(ev, &w.object).await {
                            tracing::debug!(error = %e, "cannot publish an event");
                        }
                    }
                    tracing::info!(service = %format!("{}/{}", w.key.0, w.key.1), ips = ?w.ips, pool = ?w.pool, "status written");
                    (Some(s), false)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    metrics.errors.with_label_values(&["conflict"]).inc();
                    // Computed from a stale version: re-read, and let the next pass decide.
                    (api.get_opt(&w.key.1).await.ok().flatten(), true)
                }
                Err(kube::Error::Api(e)) if e.code == 404 => (None, false),
                Err(e) => {
                    metrics.errors.with_label_values(&["api"]).inc();
                    tracing::warn!(service = %format!("{}/{}", w.key.0, w.key.1), error = %e, "cannot write status");
                    (None, true)
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let again = results.iter().any(|(_, a)| *a);
    (results.into_iter().filter_map(|(s, _)| s).collect(), again)
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{host}-{}", std::process::id())
}

/// Runs the controller until SIGINT or SIGTERM.
pub async fn run(args: Args) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let sig = |k: SignalKind| signal(k).map_err(|e| Error::Invalid(format!("cannot install a signal handler: {e}")));
    let (mut term, mut int) = (sig(SignalKind::terminate())?, sig(SignalKind::interrupt())?);
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let lease = args.lease(&identity)?;
    let client =
        Client::try_default().await.map_err(|e| Error::Invalid(format!("cannot reach the Kubernetes API: {e}")))?;
    let ns = args.namespace.clone();
    let reporter = Reporter { controller: "lb-controller".into(), instance: Some(identity.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);

    let (leading_tx, leading) = watch::channel(None);
    let (stop_tx, stop) = watch::channel(false);
    let election = tokio::spawn(leader::run(Api::<Lease>::namespaced(client.clone(), &ns), lease, leading_tx, stop));

    let registry = prometheus::Registry::new();
    let metrics = ControllerMetrics::new(&registry);
    let ready = crate::metrics::start(args.metrics_addr, &registry).await?;
    let mut stores = Stores::default();
    let mut watches = stores.watch_config(&client, &ns);
    watches.push(stores.watch(Api::<Service>::all(client.clone()), Update::Service));
    watches.push(stores.watch(Api::<Namespace>::all(client.clone()), Update::Namespace));
    let mut updates = stream::select_all(watches);
    let mut me = Controller {
        client: client.clone(),
        args,
        recorder,
        stores,
        metrics,
        config: LastGood::with_metrics(crate::metrics::ConfigMetrics::new(&registry)),
        reported_failures: BTreeMap::new(),
    };
    tracing::info!(%identity, namespace = %ns, "controller started; waiting for the lease and the initial lists");
    let mut leading_rx = leading.clone();
    let mut dirty = true;
    let mut was_leading = false;
    // Changes are gathered for a moment before a pass, so a burst costs a few passes.
    let settle = Duration::from_millis(50);
    let mut next_pass = Instant::now();
    loop {
        let is_leading = leading.borrow().is_some_and(|d| Instant::now() < d);
        if is_leading && !was_leading {
            dirty = true; // a new leader starts from what the API holds
        }
        was_leading = is_leading;
        let can_pass = dirty && is_leading && me.stores.ready();
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            u = updates.next() => match u {
                Some(u) => {
                    if matches!(u, Update::Failed(_)) {
                        me.metrics.errors.with_label_values(&["watch"]).inc();
                    }
                    me.stores.apply(u);
                    ready.store(me.stores.ready(), std::sync::atomic::Ordering::SeqCst);
                    if !dirty {
                        next_pass = Instant::now() + settle;
                    }
                    dirty = true;
                }
                None => return Err(Error::Invalid("every watch ended".into())),
            },
            _ = leading_rx.changed() => {}
            _ = tokio::time::sleep_until(next_pass), if can_pass => {
                dirty = false;
                let writes = me.pass().await;
                if !writes.is_empty() {
                    let (updated, again) = execute(&me.client, &me.recorder, &me.metrics, writes, &leading).await;
                    for s in updated {
                        me.stores.services.put(s);
                    }
                    if again {
                        dirty = true;
                        next_pass = Instant::now() + Duration::from_millis(500);
                    }
                }
            }
        }
    }
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    let _ = election.await;
    Ok(())
}
