//! Allocating a whole set of services at once, the way the controller does after a start:
//! restore every existing assignment first, then allocate in order.
//!
//! Invariants: an address recorded in a service's status is never moved by this step unless
//! it left every pool, its pool no longer admits the service, or the service now asks for
//! something else (then the service is allocated anew); a service whose request cannot be
//! read keeps its address (a typo frees nothing); two restored claims on one address that may
//! not share are reported, not resolved (the earlier service keeps it).

use std::collections::BTreeMap;

use super::{Allocator, RestoreError};
use crate::config::Pool;
use crate::service::Service;

/// What happened to the services of a batch, by their index in the slice given to
/// [`assign_all`]. Only problems are recorded, so a batch of 100k services that all got what
/// they asked for costs nothing here: their addresses are in the returned [`Allocator`]
/// ([`Allocator::assignment`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcomes {
    len: usize,
    errors: BTreeMap<usize, String>,
    notes: BTreeMap<usize, String>,
}

impl Outcomes {
    /// The number of services of the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Why service `i` did not get what it asks for, if it did not (it may still hold
    /// addresses kept from before).
    pub fn error(&self, i: usize) -> Option<&str> {
        self.errors.get(&i).map(String::as_str)
    }

    /// A note for the user about service `i` that is not an error (e.g. a restored address
    /// that left its pool).
    pub fn note(&self, i: usize) -> Option<&str> {
        self.notes.get(&i).map(String::as_str)
    }

    /// The services with a note, in index order.
    pub fn notes(&self) -> impl Iterator<Item = (usize, &str)> + '_ {
        self.notes.iter().map(|(i, n)| (*i, n.as_str()))
    }
}

/// Restores the status addresses of `services`, then allocates to every service in the
/// order given (see [`crate::service::sort_for_allocation`]). Services whose
/// `loadBalancerClass` differs from `class` are left alone, with an error saying so. What
/// each service holds afterwards (new addresses, or the ones it kept despite an error) is in
/// the allocator returned.
pub fn assign_all(pools: &[Pool], services: &[Service], class: Option<&str>) -> (Allocator, Outcomes) {
    let mut alloc = Allocator::new(pools);
    alloc.reserve(services.len());
    let mut out = Outcomes { len: services.len(), ..Outcomes::default() };
    let ours = |s: &Service| s.class() == class;
    for (i, svc) in services.iter().enumerate() {
        if !ours(svc) || svc.status_ips.is_empty() {
            continue;
        }
        let req = svc.restore_request();
        match alloc.restore(&svc.key, req, &svc.status_ips) {
            Ok(()) => {}
            Err(RestoreError::NotInPool(ip)) => {
                out.notes.insert(i, format!("address {ip} from status is no longer in any pool; allocating anew"));
            }
            Err(e) => {
                out.errors.insert(i, e.to_string());
            }
        }
    }
    for (i, svc) in services.iter().enumerate() {
        if !ours(svc) {
            let why = match svc.class() {
                Some(c) => format!("spec.loadBalancerClass is {c:?}: not served by lb (see --lb-class)"),
                None => format!("no spec.loadBalancerClass: lb serves only class {:?}", class.unwrap_or_default()),
            };
            out.errors.insert(i, why);
            continue;
        }
        if out.errors.contains_key(&i) {
            continue;
        }
        let result = match &svc.request {
            Err(e) => Err(e.to_string()),
            Ok(req) => alloc.allocate(&svc.key, req).map(drop).map_err(|e| e.to_string()),
        };
        if let Err(e) = result {
            out.errors.insert(i, e);
        }
    }
    (alloc, out)
}
