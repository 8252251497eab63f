//! Examples of embedding the `lb` library; see `examples/` in this crate:
//! - `allocate`: load MetalLB YAML, validate it and allocate addresses with `lbcore`.
//! - `file_announcer`: a user's own [`lbcore::Announcer`], fed by lb's planner, that writes
//!   the desired state to a file.
//! - `l2_announce`: the L2 announcer embedded, answering ARP/NDP for one address.
//! - `bgp_sender`: the BGP speaker embedded, announcing N host routes to one peer.
