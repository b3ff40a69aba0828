//! Reading condition values as numbers, dates, IP networks and binary data.

use std::net::IpAddr;

/// A number as the `Numeric*` operators read it: an integer or a decimal fraction.
pub(crate) fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    let looks_numeric = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if !looks_numeric {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A point in time as the `Date*` operators read it, in milliseconds since the Unix epoch:
/// either epoch seconds (`1577836800`, fractions allowed) or ISO 8601 (`2020-01-01`,
/// `2020-01-01T00:00:00Z`, `2020-01-01T00:00:00.123+02:00`; no zone means UTC).
pub(crate) fn parse_date_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    match parse_epoch_seconds(text) {
        Some(seconds) => Some((seconds * 1000.0).round() as i64),
        None => parse_iso8601_millis(text),
    }
}

fn parse_epoch_seconds(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let is_decimal = !unsigned.is_empty()
        && unsigned.chars().all(|c| c.is_ascii_digit() || c == '.')
        && unsigned.matches('.').count() <= 1;
    if !is_decimal {
        return None;
    }
    text.parse::<f64>()
        .ok()
        .filter(|seconds| seconds.is_finite())
}

fn parse_iso8601_millis(text: &str) -> Option<i64> {
    let (date, time) = match text.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_fields = date.splitn(3, '-');
    let year = parse_digits(date_fields.next()?, 4)?;
    let month = parse_digits(date_fields.next()?, 2)?;
    let day = parse_digits(date_fields.next()?, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut millis = days_from_civil(year, month, day) * 86_400_000;
    if let Some(time) = time {
        millis += parse_time_millis(time)?;
    }
    Some(millis)
}

/// `HH:MM[:SS[.fff]]` followed by `Z`, `±HH:MM`, `±HHMM` or nothing; returns milliseconds
/// after midnight UTC (may be negative or past a day, which the caller's sum absorbs).
fn parse_time_millis(time: &str) -> Option<i64> {
    let zone_start = time.find(['Z', 'z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_start);
    let mut clock_fields = clock.splitn(3, ':');
    let hours = parse_digits(clock_fields.next()?, 2)?;
    let minutes = parse_digits(clock_fields.next()?, 2)?;
    let (seconds, fraction_millis) = match clock_fields.next() {
        None => (0, 0),
        Some(seconds) => {
            let (whole, fraction) = match seconds.split_once(['.', ',']) {
                Some((whole, fraction)) => (whole, Some(fraction)),
                None => (seconds, None),
            };
            let whole = parse_digits(whole, 2)?;
            let fraction_millis = match fraction {
                None => 0,
                Some(fraction) => {
                    if fraction.is_empty() || !fraction.chars().all(|c| c.is_ascii_digit()) {
                        return None;
                    }
                    let padded: String = fraction.chars().chain("000".chars()).take(3).collect();
                    padded.parse::<i64>().ok()?
                }
            };
            (whole, fraction_millis)
        }
    };
    if hours > 24 || minutes > 59 || seconds > 60 {
        return None;
    }
    let offset_minutes = match zone {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 {
                return None;
            }
            let offset_hours = parse_digits(&digits[..2], 2)?;
            let offset_mins = parse_digits(&digits[2..], 2)?;
            sign * (offset_hours * 60 + offset_mins)
        }
    };
    let local = ((hours * 60 + minutes) * 60 + seconds) * 1000 + fraction_millis;
    Some(local - offset_minutes * 60_000)
}

fn parse_digits(text: &str, len: usize) -> Option<i64> {
    if text.len() != len || !text.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// An IP network from `IpAddress`/`NotIpAddress`: `203.0.113.0/24`, `2001:db8::/32`, or a
/// single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNetwork {
    address: IpAddr,
    prefix_len: u8,
}

impl IpNetwork {
    pub(crate) fn parse(text: &str) -> Option<IpNetwork> {
        let text = text.trim();
        let (address, prefix_len) = match text.split_once('/') {
            Some((address, prefix)) => (address.parse::<IpAddr>().ok()?, Some(prefix)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_len {
            None => max,
            Some(prefix) if !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_digit()) => {
                prefix.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(IpNetwork {
            address,
            prefix_len,
        })
    }

    /// Whether `address` lies in this network. An IPv4 address never lies in an IPv6 network
    /// and the other way round.
    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// Decodes standard base64 (padding optional), for `BinaryEquals`.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in text.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // A single leftover sextet cannot come from whole bytes.
    if bits >= 6 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let check = |text: &str, expected: Option<i64>| {
            assert_eq!(parse_date_millis(text), expected, "{text:?}");
        };
        check("1970-01-01", Some(0));
        check("2020-01-01", Some(1_577_836_800_000));
        check("2020-01-01T00:00:00Z", Some(1_577_836_800_000));
        check("2020-01-01T00:00:00.5Z", Some(1_577_836_800_500));
        check("2020-01-01T02:00:00+02:00", Some(1_577_836_800_000));
        check("2019-12-31T19:00:00-0500", Some(1_577_836_800_000));
        check("2020-01-01T00:00", Some(1_577_836_800_000));
        check("1577836800", Some(1_577_836_800_000));
        check("1577836800.25", Some(1_577_836_800_250));
        check("2020-02-29", Some(1_582_934_400_000));
        check("2021-02-29", None);
        check("2020-13-01", None);
        check("yesterday", None);
        check("", None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("10"), Some(10.0));
        assert_eq!(parse_number("-1.5"), Some(-1.5));
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("ten"), None);
    }

    #[test]
    fn networks() {
        let network = IpNetwork::parse("203.0.113.0/24").expect("valid network");
        assert!(network.contains("203.0.113.7".parse().expect("valid ip")));
        assert!(!network.contains("203.0.114.7".parse().expect("valid ip")));
        assert!(!network.contains("::1".parse().expect("valid ip")));
        let any = IpNetwork::parse("0.0.0.0/0").expect("valid network");
        assert!(any.contains("8.8.8.8".parse().expect("valid ip")));
        let v6 = IpNetwork::parse("2001:db8::/32").expect("valid network");
        assert!(v6.contains("2001:db8:1::5".parse().expect("valid ip")));
        assert!(!v6.contains("2001:db9::5".parse().expect("valid ip")));
        assert_eq!(IpNetwork::parse("10.0.0.0/33"), None);
        assert_eq!(IpNetwork::parse("10.0.0.0/"), None);
        assert_eq!(IpNetwork::parse("nonsense"), None);
    }

    #[test]
    fn base64() {
        assert_eq!(decode_base64("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(decode_base64("aGVsbG8"), Some(b"hello".to_vec()));
        assert_eq!(decode_base64(""), Some(Vec::new()));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("!!"), None);
    }
}
