//! `announcer-l2`: the L2 announcer of `lb` (ARP and NDP responder).
//!
//! Skeleton: the responder, its wire code and its raw-socket I/O arrive with the L2 issue.
//! It will implement [`lbcore::Announcer`]; this crate only names that dependency now so
//! the workspace layout (`lb-bin -> announcer-* -> lbcore`) is fixed from the start.
#![warn(missing_docs)]

pub use lbcore::Announcer;
