//! `lbcore`: the domain of the `lb` load balancer, with no sockets and no Kubernetes types.
//!
//! What this crate owns:
//! - [`config`]: MetalLB's `metallb.io` resources as raw serde types (the one source of truth
//!   for their shape), multi-document YAML loading, and validation into a typed, checked
//!   [`config::Config`].
//! - [`service`]: the Kubernetes-free model of a `v1 Service` that the allocator sees, built
//!   from the annotations and spec fields MetalLB reads.
//! - [`ipam`]: address ranges and the [`ipam::Allocator`], which gives services addresses
//!   from pools with MetalLB's semantics, deterministically and in `O(log n)` per allocation.
//! - [`plan`]: the desired announcements of one node, a pure function of configuration,
//!   node and assigned services.
//! - [`announcer`]: the [`announcer::Announcer`] trait that L2 and BGP announcers (and a
//!   user's own) implement, and the desired-state types handed to it.
//!
//! # From YAML to what one node announces
//!
//! ```
//! use lbcore::config::{self, Labels, Resources};
//! use lbcore::ipam::Allocator;
//! use lbcore::plan::{self, Assigned};
//! use lbcore::service::{Request, ServiceKey};
//!
//! let mut res = Resources::default();
//! res.load_str("lb.yaml", "
//! apiVersion: metallb.io/v1beta1
//! kind: IPAddressPool
//! metadata: {name: lan}
//! spec: {addresses: [192.0.2.10-192.0.2.19]}
//! ---
//! apiVersion: metallb.io/v1beta1
//! kind: L2Advertisement
//! metadata: {name: lan}
//! ");
//! // Every problem at once, each naming the resource, field and value.
//! let config = config::validate(&res).expect("a valid configuration").config;
//!
//! let mut alloc = Allocator::new(&config.pools);
//! let ips = alloc.allocate(&ServiceKey::new("shop", "web"), &Request::default()).unwrap();
//! assert_eq!(ips, ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]);
//!
//! // What node `a` may answer for in L2 mode, then which of the eligible nodes answers.
//! let assigned = [Assigned { labels: Labels::new(), ips: vec![(ips[0], "lan".into())] }];
//! let node = plan::Node::new("a", Labels::new());
//! let eligible = plan::l2(&config, &node, &assigned);
//! assert!(eligible.contains_key(&ips[0]));
//! assert!(plan::owner(ips[0], &["a", "b"], None).is_some());
//! ```
//!
//! Invariants: everything here is synchronous and pure (no clock, no I/O besides reading
//! the files a caller names in [`config::load_paths`]); the same inputs give the same
//! outputs on every run (no hash-map iteration order leaks into a result).
#![warn(missing_docs)]

pub mod announcer;
pub mod config;
pub mod ipam;
pub mod plan;
mod routes;
pub mod service;

pub use announcer::{AnnounceError, Announcer, AnnouncerStatus, Desired};
/// The attribute that [`Announcer`] implementations need (re-exported so that implementing
/// the trait takes no extra dependency).
pub use async_trait::async_trait;
pub use config::Config;
pub use ipam::{AllocError, Allocator};
pub use service::{Request, ServiceKey};
