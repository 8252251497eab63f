//! `announcer-bgp`: the BGP speaker of `lb`.
#![warn(missing_docs)]

pub mod codec;
pub mod rib;
pub mod session;
pub mod wire;
