//! BGP communities as MetalLB writes them: standard `AA:NN` (RFC 1997) and large
//! `large:A:B:C` (RFC 8092). Names without a colon are aliases defined by `Community`
//! objects and are resolved during validation.

use std::fmt;

use super::ParseError;

/// A BGP community value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Community {
    /// RFC 1997 community: two 16-bit halves.
    Standard(u16, u16),
    /// RFC 8092 large community: global administrator and two local data parts.
    Large(u32, u32, u32),
}

impl Community {
    /// Whether `s` looks like a community value rather than an alias name.
    pub fn is_literal(s: &str) -> bool {
        s.contains(':')
    }

    /// Parses `AA:NN` or `large:A:B:C`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            let [a, b, c] = parts.as_slice() else {
                return Err("a large community has three parts: large:A:B:C".into());
            };
            let n = |p: &str| p.parse::<u32>().map_err(|_| format!("{p:?} is not a number from 0 to 4294967295"));
            return Ok(Community::Large(n(a)?, n(b)?, n(c)?));
        }
        let parts: Vec<&str> = s.split(':').collect();
        let [a, b] = parts.as_slice() else {
            return Err("a community is AA:NN (two 16-bit numbers) or large:A:B:C".into());
        };
        let n = |p: &str| p.parse::<u16>().map_err(|_| format!("{p:?} is not a number from 0 to 65535"));
        Ok(Community::Standard(n(a)?, n(b)?))
    }
}

/// `"64512:7".parse::<Community>()`, as [`Community::parse`].
impl std::str::FromStr for Community {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Community::parse(s)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(Community::parse("65535:65281"), Ok(Community::Standard(65535, 65281)));
        assert_eq!(Community::parse("large:64512:1:2"), Ok(Community::Large(64512, 1, 2)));
        assert_eq!(Community::Large(4_200_000_000, 0, 7).to_string(), "large:4200000000:0:7");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["65536:1", "1:2:3", "a:b", "large:1:2", "large:1:2:4294967296", ":", "1:"] {
            assert!(Community::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
