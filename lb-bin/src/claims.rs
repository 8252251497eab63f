//! Who holds an address in L2 mode now, as the ServiceL2Status objects say: the rule the
//! speakers apply among themselves, and that `lb explain` reports.
//!
//! Each speaker answering for a Service writes a ServiceL2Status object naming its node,
//! stamped (annotation [`CLAIMED_AT`]) with the instant it began answering, by its own clock.
//! A claim counts only if made by the node's current speaker process, that is not before the
//! start its Lease records (`acquireTime`, the same clock): a speaker that restarted has lost
//! what it held. Of several claimants that may answer (after a split), the oldest claim keeps
//! the address; every speaker reads the same objects, so they agree.
//!
//! A claim's age is (second, stamp): the later of the API server's creation second and the
//! stamp's second, then the stamp. Creation times are whole seconds from the API server's
//! clock, so clock skew between nodes can only reorder claims made within one of its seconds;
//! the later of the two makes an object kept from before a crash and claimed again count
//! from the new claim.

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;

use crate::crds::ServiceL2Status;

/// The annotation on a ServiceL2Status that says when its node began answering, by the
/// node's clock, to the nanosecond.
pub const CLAIMED_AT: &str = "lb/claimed-at";
/// Each speaker's liveness Lease is `lb-speaker-NODE`.
pub const LEASE_PREFIX: &str = "lb-speaker-";

/// An instant: seconds and nanoseconds since the Unix epoch.
pub type Stamp = (i64, u32);

/// A claim's age: see the module documentation. Older claims sort first.
pub type ClaimAge = (i64, Stamp);

/// One claim in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<'a> {
    /// Its age.
    pub age: ClaimAge,
    /// The Service's namespace.
    pub namespace: &'a str,
    /// The Service's name.
    pub name: &'a str,
    /// The node answering.
    pub node: &'a str,
}

/// When each node's speaker started, from the `acquireTime` of its Lease.
pub fn starts<'a>(leases: impl Iterator<Item = &'a Lease>) -> BTreeMap<String, Stamp> {
    leases
        .filter_map(|l| {
            let node = l.metadata.name.as_deref()?.strip_prefix(LEASE_PREFIX)?;
            let at = l.spec.as_ref()?.acquire_time.as_ref()?.0.to_string();
            Some((node.to_string(), lbcore::service::parse_rfc3339(&at)?))
        })
        .collect()
}

/// The claims in force among `statuses`, given each node's speaker start (a claim of a node
/// whose start is unknown counts).
pub fn in_force<'a>(
    statuses: impl Iterator<Item = &'a ServiceL2Status>,
    starts: &BTreeMap<&str, Stamp>,
) -> Vec<Claim<'a>> {
    let mut out = Vec::new();
    for st in statuses {
        let Some(s) = &st.status else { continue };
        let (Some(namespace), Some(name), Some(node)) = (&s.service_namespace, &s.service_name, &s.node) else {
            continue;
        };
        let Some(created) =
            st.metadata.creation_timestamp.as_ref().and_then(|t| lbcore::service::parse_rfc3339(&t.0.to_string()))
        else {
            continue;
        };
        let stamp = st
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CLAIMED_AT))
            .and_then(|t| lbcore::service::parse_rfc3339(t));
        let before_start = match (stamp, starts.get(node.as_str())) {
            // The stamp and the start are both the node's own clock. The creation time is not:
            // it stays from before a crash when the restarted speaker writes the object again.
            (Some(at), Some(s)) => at < *s,
            // No stamp (written by an older speaker): creation times are whole seconds, so a
            // claim from the start's own second counts.
            (None, Some(s)) => created.0 < s.0,
            (_, None) => false,
        };
        if before_start {
            continue;
        }
        let second = stamp.map_or(created.0, |at| created.0.max(at.0));
        out.push(Claim { age: (second, stamp.unwrap_or_default()), namespace, name, node });
    }
    out
}

/// Of `claimants` (age, node) of one address, the node of the oldest claim among `eligible`.
pub fn holder<'a>(claimants: &mut [(ClaimAge, &'a str)], eligible: &[&str]) -> Option<&'a str> {
    claimants.sort();
    claimants.iter().find(|(_, n)| eligible.contains(n)).map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crds::ServiceL2StatusStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn status(node: &str, created: &str, stamp: Option<&str>) -> ServiceL2Status {
        let mut st = ServiceL2Status::new(&format!("l2-{node}"), Default::default());
        st.metadata = ObjectMeta {
            name: Some(format!("l2-{node}")),
            creation_timestamp: Some(Time(created.parse().unwrap())),
            annotations: stamp.map(|s| [(CLAIMED_AT.to_string(), s.to_string())].into()),
            ..Default::default()
        };
        st.status = Some(ServiceL2StatusStatus {
            node: Some(node.into()),
            service_name: Some("web".into()),
            service_namespace: Some("t".into()),
            ..Default::default()
        });
        st
    }

    #[test]
    fn the_oldest_claim_of_a_live_speaker_that_may_answer_holds_the_address() {
        let statuses = [
            // n1 and n2 claimed in the same API second; n1's own stamp is later.
            status("n1", "2026-11-26T10:00:05Z", Some("2026-11-26T10:00:05.700Z")),
            status("n2", "2026-11-26T10:00:05Z", Some("2026-11-26T10:00:05.200Z")),
            // n3's claim is from before its speaker restarted: it does not count.
            status("n3", "2026-11-26T09:00:00Z", Some("2026-11-26T09:00:00.000Z")),
        ];
        let starts: BTreeMap<&str, Stamp> = [("n3", (1_795_690_000, 0))].into();
        let claims = in_force(statuses.iter(), &starts);
        assert_eq!(claims.iter().map(|c| c.node).collect::<Vec<_>>(), ["n1", "n2"]);
        let mut claimants: Vec<(ClaimAge, &str)> = claims.iter().map(|c| (c.age, c.node)).collect();
        assert_eq!(holder(&mut claimants, &["n1", "n2"]), Some("n2"), "the earlier stamp within the second wins");
        assert_eq!(holder(&mut claimants, &["n1", "n3"]), Some("n1"), "only eligible nodes hold it");
        assert_eq!(holder(&mut claimants, &["n3"]), None);
    }
}
