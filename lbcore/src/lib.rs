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
//! Invariants: everything here is synchronous and pure (no clock, no I/O besides reading
//! the files a caller names in [`config::load_paths`]); the same inputs give the same
//! outputs on every run (no hash-map iteration order leaks into a result).
#![warn(missing_docs)]

pub mod announcer;
pub mod config;
pub mod ipam;
pub mod plan;
pub mod service;

pub use announcer::{AnnounceError, Announcer, AnnouncerStatus, Desired};
pub use config::Config;
pub use ipam::{AllocError, Allocator};
pub use service::{Request, ServiceKey};
