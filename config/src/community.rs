//! BGP community values: standard communities (RFC 1997, `AS:value`, two 16-bit halves) and large
//! communities (RFC 8092, `large:global:local1:local2`, three 32-bit parts).

use std::fmt;

/// Why a community value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommunityError {
    #[error(
        "{input:?} is not a community such as 65000:100 or a large community such as large:65000:1:2"
    )]
    Syntax { input: String },
    #[error("{input:?}: each part of a community must be 0-65535")]
    StandardOutOfRange { input: String },
    #[error("{input:?}: each part of a large community must be 0-4294967295")]
    LargeOutOfRange { input: String },
}

/// A community value attached to announced routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommunityValue {
    /// RFC 1997 community: high 16 bits and low 16 bits.
    Standard(u16, u16),
    /// RFC 8092 large community: global administrator, local data 1, local data 2.
    Large(u32, u32, u32),
}

impl CommunityValue {
    /// Parses `65000:100` or `large:65000:1:2`.
    pub fn parse(input: &str) -> Result<Self, CommunityError> {
        let syntax = || CommunityError::Syntax {
            input: input.to_owned(),
        };
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if let Some(large) = input.strip_prefix("large:") {
            let parts: Vec<&str> = large.split(':').collect();
            if parts.len() != 3 || !parts.iter().all(|p| digits(p) && p.len() <= 10) {
                return Err(syntax());
            }
            let out_of_range = || CommunityError::LargeOutOfRange {
                input: input.to_owned(),
            };
            let part = |p: &str| p.parse::<u32>().map_err(|_| out_of_range());
            return Ok(CommunityValue::Large(
                part(parts[0])?,
                part(parts[1])?,
                part(parts[2])?,
            ));
        }
        let (high, low) = input.split_once(':').ok_or_else(syntax)?;
        if !digits(high) || !digits(low) || high.len() > 5 || low.len() > 5 {
            return Err(syntax());
        }
        let out_of_range = || CommunityError::StandardOutOfRange {
            input: input.to_owned(),
        };
        let part = |p: &str| p.parse::<u16>().map_err(|_| out_of_range());
        Ok(CommunityValue::Standard(part(high)?, part(low)?))
    }

    /// Whether `input` has the form of a `Community` alias name rather than a value.
    pub fn is_alias_name(input: &str) -> bool {
        let bytes = input.as_bytes();
        let inner_ok =
            |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.';
        let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.iter().all(inner_ok)
            && bytes.first().is_some_and(edge_ok)
            && bytes.last().is_some_and(edge_ok)
    }
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityValue::Standard(high, low) => write!(f, "{high}:{low}"),
            CommunityValue::Large(global, one, two) => write!(f, "large:{global}:{one}:{two}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn standard_and_large_communities_parse() {
        assert_eq!(
            CommunityValue::parse("65000:100"),
            Ok(CommunityValue::Standard(65000, 100))
        );
        assert_eq!(
            CommunityValue::parse("large:4294967295:0:7"),
            Ok(CommunityValue::Large(u32::MAX, 0, 7))
        );
    }

    #[test]
    fn community_parts_out_of_range_are_refused() {
        assert!(matches!(
            CommunityValue::parse("65536:1"),
            Err(CommunityError::StandardOutOfRange { .. })
        ));
        assert!(matches!(
            CommunityValue::parse("large:4294967296:1:2"),
            Err(CommunityError::LargeOutOfRange { .. })
        ));
    }

    #[test]
    fn community_garbage_is_refused() {
        for bad in [
            "",
            "65000",
            "65000:",
            ":1",
            "1:2:3",
            "large:1:2",
            "large:1:2:3:4",
            "a:b",
            "-1:2",
        ] {
            assert_eq!(
                CommunityValue::parse(bad),
                Err(CommunityError::Syntax { input: bad.into() }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn alias_names_are_dns_label_like() {
        assert!(CommunityValue::is_alias_name("no-export-upstream"));
        assert!(CommunityValue::is_alias_name("edge.v2"));
        for bad in ["", "Bad", "-x", "x-", "a:b", "a_b"] {
            assert!(!CommunityValue::is_alias_name(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn communities_round_trip(high: u16, low: u16, a: u32, b: u32, c: u32) {
            for value in [CommunityValue::Standard(high, low), CommunityValue::Large(a, b, c)] {
                prop_assert_eq!(CommunityValue::parse(&value.to_string()), Ok(value));
            }
        }

        #[test]
        fn arbitrary_community_strings_never_panic(s in "\\PC{0,40}") {
            let _ = CommunityValue::parse(&s);
        }
    }
}
