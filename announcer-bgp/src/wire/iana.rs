//! BGP codepoints as lossless enums: every known value has a variant, anything else is kept
//! in `Unknown(n)`, so decoding never loses information and encoding round-trips.

macro_rules! codepoints {
    ($(#[$doc:meta])* $name:ident: $ty:ty { $($(#[$vdoc:meta])* $variant:ident = $value:expr,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            /// A value this implementation does not name.
            Unknown($ty),
        }

        impl From<$ty> for $name {
            fn from(v: $ty) -> Self {
                match v {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                match v {
                    $($name::$variant => $value,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

codepoints! {
    /// Message types (IANA "BGP Message Types").
    MessageType: u8 {
        /// RFC 4271.
        Open = 1,
        /// RFC 4271.
        Update = 2,
        /// RFC 4271.
        Notification = 3,
        /// RFC 4271.
        Keepalive = 4,
        /// RFC 2918.
        RouteRefresh = 5,
    }
}

codepoints! {
    /// Capability codes (IANA "Capability Codes").
    CapabilityCode: u8 {
        /// RFC 4760.
        Multiprotocol = 1,
        /// RFC 2918.
        RouteRefresh = 2,
        /// RFC 8654.
        ExtendedMessage = 6,
        /// RFC 4724.
        GracefulRestart = 64,
        /// RFC 6793.
        FourOctetAs = 65,
    }
}

codepoints! {
    /// NOTIFICATION error codes (IANA "BGP Error (Notification) Codes").
    ErrorCode: u8 {
        /// RFC 4271.
        MessageHeader = 1,
        /// RFC 4271.
        OpenMessage = 2,
        /// RFC 4271.
        UpdateMessage = 3,
        /// RFC 4271.
        HoldTimerExpired = 4,
        /// RFC 4271.
        FiniteStateMachine = 5,
        /// RFC 4271.
        Cease = 6,
        /// RFC 7313.
        RouteRefreshMessage = 7,
    }
}

codepoints! {
    /// Path attribute type codes (IANA "BGP Path Attributes").
    AttrType: u8 {
        /// RFC 4271.
        Origin = 1,
        /// RFC 4271.
        AsPath = 2,
        /// RFC 4271.
        NextHop = 3,
        /// RFC 4271.
        MultiExitDisc = 4,
        /// RFC 4271.
        LocalPref = 5,
        /// RFC 4271.
        AtomicAggregate = 6,
        /// RFC 4271.
        Aggregator = 7,
        /// RFC 1997.
        Communities = 8,
        /// RFC 4760.
        MpReachNlri = 14,
        /// RFC 4760.
        MpUnreachNlri = 15,
        /// RFC 6793.
        As4Path = 17,
        /// RFC 6793.
        As4Aggregator = 18,
        /// RFC 8092.
        LargeCommunities = 32,
    }
}

/// Address family identifier: IPv4 (RFC 4760, IANA "Address Family Numbers").
pub const AFI_IPV4: u16 = 1;
/// Address family identifier: IPv6.
pub const AFI_IPV6: u16 = 2;
/// Subsequent address family identifier: unicast.
pub const SAFI_UNICAST: u8 = 1;
/// AS_TRANS, the 2-octet stand-in for a 4-octet AS (RFC 6793).
pub const AS_TRANS: u16 = 23456;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codepoints_round_trip_losslessly() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(MessageType::from(v)), v);
            assert_eq!(u8::from(AttrType::from(v)), v);
        }
        assert_eq!(CapabilityCode::from(65), CapabilityCode::FourOctetAs);
        assert_eq!(ErrorCode::from(99), ErrorCode::Unknown(99));
    }
}
