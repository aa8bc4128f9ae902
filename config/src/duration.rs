//! Go-style duration strings as Kubernetes `metav1.Duration` writes them (`90s`, `1m30s`, `250ms`).
//!
//! Same grammar as [`crate::crd::DURATION_PATTERN`], which the CRD's CEL rules check: one or more
//! `<decimal><unit>` terms, units `h`, `m`, `s`, `ms`, `us`, `ns`; no sign, no bare numbers.
//! Arithmetic is checked: an absurdly long duration is an error, never a panic.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{input:?} is not a duration such as 90s or 1m30s (units h, m, s, ms, us, ns)")]
    Syntax { input: String },
    #[error("{input:?} is too long a duration")]
    Overflow { input: String },
}

/// Parses a duration such as `1m30s` or `1.5s`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax {
        input: input.to_owned(),
    };
    let overflow = || DurationError::Overflow {
        input: input.to_owned(),
    };
    let mut rest = input;
    let mut total_nanos: u128 = 0;
    if rest.is_empty() {
        return Err(syntax());
    }
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if int_len == 0 {
            return Err(syntax());
        }
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(frac) => {
                let frac_len = frac.bytes().take_while(u8::is_ascii_digit).count();
                if frac_len == 0 {
                    return Err(syntax());
                }
                frac.split_at(frac_len)
            }
            None => ("", after),
        };
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" => 1_000,
            "ns" => 1,
            _ => return Err(syntax()),
        };
        let whole: u128 = int_part.parse().map_err(|_| overflow())?;
        let mut term = whole.checked_mul(unit_nanos).ok_or_else(overflow)?;
        // Fractions finer than a nanosecond are dropped, as Go does.
        let mut scale = unit_nanos;
        for digit in frac_part.bytes().take(20) {
            scale /= 10;
            term = term
                .checked_add(u128::from(digit - b'0') * scale)
                .ok_or_else(overflow)?;
        }
        total_nanos = total_nanos.checked_add(term).ok_or_else(overflow)?;
        rest = after;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).map_err(|_| overflow())?;
    let nanos = u32::try_from(total_nanos % 1_000_000_000).map_err(|_| overflow())?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kubernetes_style_durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("10us5ns"), Ok(Duration::from_nanos(10_005)));
    }

    #[test]
    fn duration_garbage_is_refused() {
        for bad in [
            "", "90", "s", "-1s", "+1s", "1.s", ".5s", "1 s", "1d", "1sec", "1µs",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(DurationError::Syntax { input: bad.into() }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn huge_durations_are_an_error_not_a_panic() {
        let input = format!("{}h", "9".repeat(40));
        assert_eq!(
            parse_duration(&input),
            Err(DurationError::Overflow { input })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_duration_strings_never_panic(s in "[0-9.hmsun]{0,40}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn whole_seconds_round_trip(secs in 0u64..1_000_000) {
            prop_assert_eq!(parse_duration(&format!("{secs}s")), Ok(Duration::from_secs(secs)));
        }
    }
}
