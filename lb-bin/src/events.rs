//! Publishing Kubernetes Events (`events.k8s.io/v1`) with bounded memory.
//!
//! As kube's `Recorder` does, an Event repeated on one object (same type, reason, action,
//! reporter, regarding and related objects) within six minutes is folded into the first one:
//! its `series` counts the repeats and says when the last was seen. Unlike it, what this
//! recorder remembers of a published Event is small and bounded: the Event's name and
//! namespace, its count and when it was last published, keyed by a hash of the fold key, for
//! at most [`CAPACITY`] Events (client-go's event correlator keeps 4,096 too). kube's Recorder
//! kept every Event whole for six minutes, and scanned them all on every publish: 24 MB and a
//! quadratic scan when the controller allocated 10,000 Services at once.
//!
//! Invariants: an entry is used for folding only while younger than [`FOLD_WINDOW`]; the map
//! never holds more than [`CAPACITY`] entries (when full, old entries go, and if none is old,
//! all go: a repeat then starts a new Event, which loses nothing but the count).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};
use kube::Client;

/// How long a repeat is folded into the Event it repeats.
pub const FOLD_WINDOW: SignedDuration = SignedDuration::from_mins(6);
/// Most Events remembered for folding.
pub const CAPACITY: usize = 4096;

/// What is remembered of a published Event.
struct Seen {
    name: String,
    namespace: String,
    count: i32,
    last: Timestamp,
}

/// Publishes Events for one reporter (controller and instance).
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    seen: Mutex<HashMap<u64, Seen>>,
    capacity: usize,
}

/// The fold key of `ev` on `regarding`, hashed.
fn fold_key(reporter: &Reporter, ev: &Event, regarding: &ObjectReference) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let reference = |r: &ObjectReference, h: &mut std::collections::hash_map::DefaultHasher| {
        (&r.api_version, &r.kind, &r.namespace, &r.name, &r.uid).hash(h);
    };
    matches!(ev.type_, EventType::Warning).hash(&mut h);
    (&ev.reason, &ev.action, &reporter.controller, &reporter.instance).hash(&mut h);
    reference(regarding, &mut h);
    if let Some(r) = &ev.secondary {
        reference(r, &mut h);
    }
    h.finish()
}

impl Recorder {
    /// A recorder publishing as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Recorder { client, reporter, seen: Mutex::new(HashMap::new()), capacity: CAPACITY }
    }

    /// Publishes `ev` about `regarding`: a new Event, or a repeat counted on the Event it
    /// repeats. The Event goes in the object's namespace (`default` for a cluster-scoped one).
    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = fold_key(&self.reporter, ev, regarding);
        let repeat = self.remembered(key, now);
        if let Some((name, namespace, count)) = repeat {
            let series = EventSeries { count, last_observed_time: MicroTime(now) };
            let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
            let patch = serde_json::json!({ "series": series });
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => return Ok(()),
                // The Event is gone (deleted, or expired by the API server's TTL): forget
                // it and publish a new one, or repeats would go nowhere for as long as they
                // keep coming.
                Err(kube::Error::Api(e)) if e.code == 404 => self.forget(key),
                Err(e) => {
                    // Not counted: the next repeat starts a new Event.
                    self.forget(key);
                    return Err(e);
                }
            }
        }
        let event = self.event(ev, regarding, now);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event).await?;
        self.remember(key, Seen { name, namespace, count: 1, last: now });
        Ok(())
    }

    /// The Event `key` repeats and its new count, if one was published within the window
    /// (counting this repeat).
    fn remembered(&self, key: u64, now: Timestamp) -> Option<(String, String, i32)> {
        let mut seen = self.seen.lock().ok()?;
        let s = seen.get_mut(&key).filter(|s| s.last + FOLD_WINDOW > now)?;
        s.count = s.count.saturating_add(1);
        s.last = now;
        Some((s.name.clone(), s.namespace.clone(), s.count))
    }

    fn forget(&self, key: u64) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(&key);
        }
    }

    fn remember(&self, key: u64, s: Seen) {
        let Ok(mut seen) = self.seen.lock() else { return };
        if seen.len() >= self.capacity && !seen.contains_key(&key) {
            seen.retain(|_, old| old.last + FOLD_WINDOW > s.last);
            if seen.len() >= self.capacity {
                seen.clear();
            }
        }
        seen.insert(key, s);
    }

    /// Number of Events remembered for folding.
    pub fn remembered_len(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(0)
    }

    fn event(&self, ev: &Event, regarding: &ObjectReference, now: Timestamp) -> K8sEvent {
        let controller = &self.reporter.controller;
        let namespace = regarding.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".into());
        let base = regarding.name.as_deref().unwrap_or(controller);
        K8sEvent {
            metadata: ObjectMeta {
                name: Some(format!("{base}.{:x}", now.as_nanosecond())),
                namespace: Some(namespace),
                ..Default::default()
            },
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            note: ev.note.clone(),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            related: ev.secondary.clone(),
            reporting_controller: Some(controller.clone()),
            reporting_instance: Some(self.reporter.instance.clone().unwrap_or_else(|| controller.clone())),
            type_: Some(match ev.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fakeapi::store::resource;
    use kube::config::{KubeConfigOptions, Kubeconfig};

    fn svc(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some("web".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        }
    }

    fn ev(reason: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some(note.into()),
            action: "Allocate".into(),
            secondary: None,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn repeats_are_counted_on_the_first_event_and_memory_stays_bounded() {
        let api = fakeapi::FakeApi::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let kubeconfig = Kubeconfig::from_yaml(&api.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        let client = Client::try_from(config).unwrap();
        let reporter = Reporter { controller: "lb-controller".into(), instance: Some("c1".into()) };
        let mut rec = Recorder::new(client, reporter);
        rec.capacity = 3;
        let events = resource("events.k8s.io", "events").unwrap();
        let stored = || api.shared.with(|s| s.list(events, Some("web")));

        rec.publish(&ev("IPAllocated", "192.0.2.1"), &svc("a")).await.unwrap();
        rec.publish(&ev("IPAllocated", "192.0.2.1"), &svc("a")).await.unwrap();
        rec.publish(&ev("IPAllocated", "192.0.2.1"), &svc("a")).await.unwrap();
        let list = stored();
        assert_eq!(list.len(), 1, "three publishes, one Event: {list:?}");
        assert_eq!(list[0]["series"]["count"], 3);
        assert_eq!(list[0]["reason"], "IPAllocated");
        assert_eq!(list[0]["regarding"]["name"], "a");
        assert_eq!(list[0]["reportingController"], "lb-controller");
        assert_eq!(list[0]["reportingInstance"], "c1");

        // Another reason, or another object, is another Event.
        rec.publish(&ev("AllocationFailed", "no pool"), &svc("a")).await.unwrap();
        rec.publish(&ev("IPAllocated", "192.0.2.2"), &svc("b")).await.unwrap();
        assert_eq!(stored().len(), 3);
        assert_eq!(rec.remembered_len(), 3);
        // Full: a fourth distinct Event empties the memory (nothing is old enough to go
        // alone), so a repeat of the first starts a new Event instead of failing.
        rec.publish(&ev("IPAllocated", "192.0.2.3"), &svc("c")).await.unwrap();
        assert!(rec.remembered_len() <= 3, "{}", rec.remembered_len());
        rec.publish(&ev("IPAllocated", "192.0.2.1"), &svc("a")).await.unwrap();
        assert_eq!(stored().len(), 5);

        // The Events a repeat would count on are deleted: the repeat publishes a new one.
        let a_allocated = |e: &serde_json::Value| e["regarding"]["name"] == "a" && e["reason"] == "IPAllocated";
        for e in stored().iter().filter(|e| a_allocated(e)) {
            let name = e["metadata"]["name"].as_str().unwrap();
            api.shared.with(|s| s.delete(events, "web", name)).unwrap();
        }
        rec.publish(&ev("IPAllocated", "192.0.2.1"), &svc("a")).await.unwrap();
        let list: Vec<_> = stored().into_iter().filter(a_allocated).collect();
        assert_eq!(list.len(), 1, "{list:?}");
        assert!(list[0].get("series").is_none(), "a new Event, not a patch of the deleted one: {list:?}");
    }
}
