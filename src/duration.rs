//! Durations as operators write them: `1800`, `30m`, `12h`, `7d`, `1d12h`.
//!
//! SPEC section 3: "Durations are accepted as integer seconds (`1800`) or with
//! a unit". Units are `s`, `m`, `h`, `d` and `w`, combined largest first. The
//! same type renders back in the shortest such form, so error messages quote
//! values the way the operator wrote them.

use std::fmt;
use std::str::FromStr;

/// A whole number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Secs(u64);

impl Secs {
    pub const ZERO: Secs = Secs(0);

    pub const fn new(secs: u64) -> Self {
        Secs(secs)
    }
    pub const fn minutes(m: u64) -> Self {
        Secs(m * 60)
    }
    pub const fn hours(h: u64) -> Self {
        Secs(h * 3600)
    }
    pub const fn days(d: u64) -> Self {
        Secs(d * 86_400)
    }
    pub const fn as_secs(self) -> u64 {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// Why a duration did not parse; the message quotes the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration: {reason} (use whole seconds like 1800, or units like 30m, 12h, 7d, 1d12h)")]
pub struct ParseDurationError {
    input: String,
    reason: &'static str,
}

const UNITS: [(char, u64); 5] = [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl FromStr for Secs {
    type Err = ParseDurationError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseDurationError { input: input.to_owned(), reason };
        let s = input.trim();
        if s.is_empty() {
            return Err(fail("it is empty"));
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse::<u64>().map(Secs).map_err(|_| fail("the number is too large"));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        // Units must come largest first, each at most once.
        let mut last_unit_rank: Option<usize> = None;
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let Some(rank) = UNITS.iter().position(|(u, _)| *u == c) else {
                return Err(fail("unknown unit"));
            };
            if digits.is_empty() {
                return Err(fail("a unit without a number"));
            }
            if last_unit_rank.is_some_and(|last| rank <= last) {
                return Err(fail("units must go from largest to smallest, each once"));
            }
            last_unit_rank = Some(rank);
            let n: u64 = digits.parse().map_err(|_| fail("the number is too large"))?;
            digits.clear();
            total = n
                .checked_mul(UNITS[rank].1)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(|| fail("the number is too large"))?;
        }
        if !digits.is_empty() {
            return Err(fail("a number without a unit after a unit"));
        }
        Ok(Secs(total))
    }
}

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0s");
        }
        let mut rest = self.0;
        // Weeks are accepted but not printed: "14d" reads better than "2w".
        for (unit, size) in UNITS.iter().skip(1) {
            if rest >= *size {
                write!(f, "{}{}", rest / size, unit)?;
                rest %= size;
            }
        }
        Ok(())
    }
}

impl<'de> serde::Deserialize<'de> for Secs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Secs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration: whole seconds (1800) or a string with units (\"30m\", \"1d12h\")")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Secs, E> {
                Ok(Secs(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Secs, E> {
                u64::try_from(v).map(Secs).map_err(|_| E::custom(format!("{v} is negative; durations are at least 0")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Secs, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl serde::Serialize for Secs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_form_the_spec_names() {
        assert_eq!("1800".parse(), Ok(Secs(1800)));
        assert_eq!("30m".parse(), Ok(Secs(1800)));
        assert_eq!("12h".parse(), Ok(Secs(43_200)));
        assert_eq!("7d".parse(), Ok(Secs(604_800)));
        assert_eq!("1d12h".parse(), Ok(Secs(129_600)));
        assert_eq!("2w".parse(), Ok(Secs(1_209_600)));
        assert_eq!("1h30m15s".parse(), Ok(Secs(5_415)));
        assert_eq!(" 0s ".parse(), Ok(Secs(0)));
    }

    #[test]
    fn refuses_what_is_ambiguous_or_wrong() {
        for bad in ["", "m", "30x", "30m1h", "1h1h", "12h30", "-5", "1.5h", "99999999999999999999"] {
            let err = bad.parse::<Secs>().expect_err(bad);
            assert!(err.to_string().contains("is not a duration"), "{err}");
        }
    }

    #[test]
    fn displays_in_the_shortest_unit_form() {
        assert_eq!(Secs(1800).to_string(), "30m");
        assert_eq!(Secs(129_600).to_string(), "1d12h");
        assert_eq!(Secs(1_728_000).to_string(), "20d");
        assert_eq!(Secs(61).to_string(), "1m1s");
        assert_eq!(Secs(0).to_string(), "0s");
    }

    #[test]
    fn round_trips() {
        for n in [1, 59, 60, 3599, 3600, 86_399, 86_400, 2_592_000, 123_456_789] {
            let s = Secs(n).to_string();
            assert_eq!(s.parse::<Secs>(), Ok(Secs(n)), "{s}");
        }
    }

    #[test]
    fn deserializes_integers_and_strings_from_toml() {
        #[derive(serde::Deserialize)]
        struct T {
            a: Secs,
            b: Secs,
        }
        let t: T = toml::from_str("a = 1800\nb = \"1d12h\"").expect("valid toml");
        assert_eq!((t.a, t.b), (Secs(1800), Secs(129_600)));
        assert!(toml::from_str::<T>("a = -1\nb = \"1h\"").is_err());
        assert!(toml::from_str::<T>("a = \"soon\"\nb = \"1h\"").is_err());
    }
}
