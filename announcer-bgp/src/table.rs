//! The routes a session should announce, or has announced: [`lbcore::announcer::Routes`],
//! the plan's own compact table (a prefix and an attribute-set index per route, the distinct
//! sets once), held here behind an `Arc` so that a session can tell at a glance whether
//! what it is asked to announce is what it has sent.

pub use lbcore::announcer::Routes as RouteTable;
