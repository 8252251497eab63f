//! Allocating a whole set of services at once, the way the controller does after a start:
//! restore every existing assignment first, then allocate the rest in order.
//!
//! Invariant: an address recorded in a service's status is never moved by this step unless
//! it left every pool (then the service is allocated anew) or another service restored
//! earlier holds it and they may not share (then the conflict is reported, not resolved).

use std::net::IpAddr;

use super::{Allocator, RestoreError};
use crate::config::Pool;
use crate::service::Service;

/// What happened to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Its addresses (empty when it got none).
    pub ips: Vec<IpAddr>,
    /// The pool of each address.
    pub pools: Vec<String>,
    /// Why it got no (new) address, if it did not.
    pub error: Option<String>,
    /// A note for the user that is not an error (e.g. a restored address that left its pool).
    pub note: Option<String>,
}

/// Restores the status addresses of `services`, then allocates to every service without
/// one, in the order given (see [`crate::service::sort_for_allocation`]). Services whose
/// `loadBalancerClass` is set and differs from `class` are skipped with an error saying so.
pub fn assign_all(pools: &[Pool], services: &[Service], class: Option<&str>) -> (Allocator, Vec<Outcome>) {
    let mut alloc = Allocator::new(pools);
    let mut out: Vec<Outcome> =
        services.iter().map(|_| Outcome { ips: vec![], pools: vec![], error: None, note: None }).collect();
    let ours = |s: &Service| s.class.as_deref() == class;
    for (svc, o) in services.iter().zip(out.iter_mut()) {
        let (Ok(req), true, false) = (&svc.request, ours(svc), svc.status_ips.is_empty()) else {
            continue;
        };
        match alloc.restore(&svc.key, req, &svc.status_ips) {
            Ok(()) => {}
            Err(RestoreError::NotInPool(ip)) => {
                o.note = Some(format!("address {ip} from status is no longer in any pool; allocating anew"))
            }
            Err(e) => o.error = Some(e.to_string()),
        }
    }
    for (svc, o) in services.iter().zip(out.iter_mut()) {
        if o.error.is_some() {
            continue;
        }
        if !ours(svc) {
            o.error = Some(match &svc.class {
                Some(c) => format!("spec.loadBalancerClass is {c:?}: not served by lb (see --lb-class)"),
                None => format!("no spec.loadBalancerClass: lb serves only class {:?}", class.unwrap_or_default()),
            });
            continue;
        }
        match &svc.request {
            Err(e) => o.error = Some(e.clone()),
            Ok(req) => match alloc.allocate(&svc.key, req) {
                Ok(ips) => {
                    o.pools = alloc.assigned_pools(&svc.key).into_iter().map(str::to_string).collect();
                    o.ips = ips;
                }
                Err(e) => o.error = Some(e.to_string()),
            },
        }
    }
    (alloc, out)
}
