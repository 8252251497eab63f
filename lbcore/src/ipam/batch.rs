//! Allocating a whole set of services at once, the way the controller does after a start:
//! restore every existing assignment first, then allocate in order.
//!
//! Invariants: an address recorded in a service's status is never moved by this step unless
//! it left every pool, its pool no longer admits the service, or the service now asks for
//! something else (then the service is allocated anew); a service whose request cannot be
//! read keeps its address (a typo frees nothing); two restored claims on one address that may
//! not share are reported, not resolved (the earlier service keeps it).

use std::net::IpAddr;

use super::{Allocator, RestoreError};
use crate::config::Pool;
use crate::service::Service;

/// What happened to one service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Its addresses now (possibly kept from before even when `error` is set).
    pub ips: Vec<IpAddr>,
    /// The pool of each address.
    pub pools: Vec<String>,
    /// Why it did not get what it asks for, if it did not.
    pub error: Option<String>,
    /// A note for the user that is not an error (e.g. a restored address that left its pool).
    pub note: Option<String>,
}

/// Restores the status addresses of `services`, then allocates to every service in the
/// order given (see [`crate::service::sort_for_allocation`]). Services whose
/// `loadBalancerClass` differs from `class` are left alone, with an error saying so.
pub fn assign_all(pools: &[Pool], services: &[Service], class: Option<&str>) -> (Allocator, Vec<Outcome>) {
    let mut alloc = Allocator::new(pools);
    alloc.reserve(services.len());
    let mut out: Vec<Outcome> = vec![Outcome::default(); services.len()];
    let ours = |s: &Service| s.class.as_deref() == class;
    for (svc, o) in services.iter().zip(out.iter_mut()) {
        if !ours(svc) || svc.status_ips.is_empty() {
            continue;
        }
        let req = svc.restore_request();
        match alloc.restore(&svc.key, req, &svc.status_ips) {
            Ok(()) => {}
            Err(RestoreError::NotInPool(ip)) => {
                o.note = Some(format!("address {ip} from status is no longer in any pool; allocating anew"))
            }
            Err(e) => o.error = Some(e.to_string()),
        }
    }
    for (svc, o) in services.iter().zip(out.iter_mut()) {
        if !ours(svc) {
            o.error = Some(match &svc.class {
                Some(c) => format!("spec.loadBalancerClass is {c:?}: not served by lb (see --lb-class)"),
                None => format!("no spec.loadBalancerClass: lb serves only class {:?}", class.unwrap_or_default()),
            });
            continue;
        }
        if o.error.is_none() {
            let result = match &svc.request {
                Err(e) => Err(e.to_string()),
                Ok(req) => alloc.allocate(&svc.key, req).map(drop).map_err(|e| e.to_string()),
            };
            o.error = result.err();
        }
        // What the service holds now: new addresses, or the ones it kept despite an error.
        o.ips = alloc.assigned(&svc.key).unwrap_or_default();
        o.pools = alloc.assigned_pools(&svc.key).into_iter().map(str::to_string).collect();
    }
    (alloc, out)
}
