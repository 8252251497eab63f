//! `announcer-bgp`: the BGP speaker of `lb`.
//!
//! Skeleton: the wire codec, the session state machine and the tokio driver arrive with the
//! BGP issue. It will implement [`lbcore::Announcer`]; this crate only names that dependency
//! now so the workspace layout (`lb-bin -> announcer-* -> lbcore`) is fixed from the start.
#![warn(missing_docs)]

pub use lbcore::Announcer;
