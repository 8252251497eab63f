//! Examples of embedding the `lb` library; see `examples/` in this crate:
//! - `allocate`: load MetalLB YAML, validate it and allocate addresses with `lbcore`.
//! - `log_announcer`: a user's own [`lbcore::Announcer`] that only logs what it is told.
//! - `bgp_sender`: the BGP speaker embedded, announcing N host routes to one peer.
