//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it, so that several controller replicas can run and exactly one writes.
//!
//! Invariants:
//! - Whether another holder's lease has expired is judged by *our* clock: the time since we
//!   last saw its record change, never by comparing its timestamps with our clock (the
//!   nodes' clocks may disagree).
//! - Every take-over or renewal is a replace carrying the resourceVersion just read, so two
//!   candidates can never both succeed (the second gets 409 Conflict).
//! - While leading, the published deadline is the start of the last successful renewal plus
//!   the renew deadline, which is shorter than the lease duration: a leader that cannot renew
//!   stops writing before anyone else may take over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

/// How a candidate takes part in the election.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Lease's name.
    pub name: String,
    /// This candidate's identity (written as `holderIdentity`).
    pub identity: String,
    /// How long a lease holds without renewal (`leaseDurationSeconds`).
    pub duration: Duration,
    /// How long a leader keeps writing without a successful renewal (less than `duration`).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry: Duration,
}

impl Settings {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(name: impl Into<String>, identity: impl Into<String>) -> Self {
        Settings {
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// The last record seen, and when we first saw it.
struct Observed {
    record: (String, Option<String>),
    since: Instant,
}

/// Runs the election until `stop` turns true, publishing on `leading` the instant until
/// which this candidate may write (None: it may not). On stop, a leader releases the lease
/// so that another replica takes over at once.
pub async fn run(
    api: Api<Lease>,
    s: Settings,
    leading: watch::Sender<Option<Instant>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut observed: Option<Observed> = None;
    loop {
        let started = Instant::now();
        match attempt(&api, &s, &mut observed).await {
            Ok(true) => {
                if leading.borrow().is_none() {
                    tracing::info!(lease = %s.name, identity = %s.identity, "became the leader");
                }
                leading.send_replace(Some(started + s.renew_deadline));
            }
            Ok(false) => {
                if leading.borrow().is_some() {
                    tracing::warn!(lease = %s.name, "lost the lease to another replica; stopped writing");
                }
                leading.send_replace(None);
            }
            Err(e) => {
                tracing::warn!(lease = %s.name, error = %e, "cannot read or renew the lease");
                let expired = leading.borrow().is_some_and(|d| Instant::now() >= d);
                if expired {
                    tracing::warn!(lease = %s.name, "renew deadline passed; stopped writing");
                    leading.send_replace(None);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(s.retry) => {}
            _ = stop.wait_for(|&v| v) => break,
        }
    }
    if leading.borrow().is_some() {
        leading.send_replace(None);
        if let Err(e) = release(&api, &s).await {
            tracing::warn!(lease = %s.name, error = %e, "cannot release the lease");
        } else {
            tracing::info!(lease = %s.name, "released the lease");
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// One try: Ok(true) when this candidate holds the lease afterwards.
async fn attempt(api: &Api<Lease>, s: &Settings, observed: &mut Option<Observed>) -> Result<bool, kube::Error> {
    let secs = i32::try_from(s.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&s.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta { name: Some(s.name.clone()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(e) if is_conflict(&e) => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let record = (holder.clone(), spec.renew_time.as_ref().map(|t| t.0.to_string()));
    if observed.as_ref().is_none_or(|o| o.record != record) {
        *observed = Some(Observed { record, since: Instant::now() });
    }
    let held_for = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(secs)).unwrap_or(0));
    let expired = holder.is_empty() || observed.as_ref().is_some_and(|o| o.since.elapsed() >= held_for);
    if holder != s.identity && !expired {
        return Ok(false);
    }
    if holder != s.identity {
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(s.identity.clone());
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(secs);
    match api.replace(&s.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(e) if is_conflict(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the lease up: no holder, so the next candidate need not wait for it to expire.
async fn release(api: &Api<Lease>, s: &Settings) -> Result<(), kube::Error> {
    let mut lease = api.get(&s.name).await?;
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(s.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    api.replace(&s.name, &PostParams::default(), &lease).await.map(drop)
}
