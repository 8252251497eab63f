//! A BGP session: the pure state machine ([`fsm`]) and the tokio driver that carries it out.

pub mod driver;
pub mod fsm;
