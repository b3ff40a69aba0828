//! ISO-8601 timestamps as awsQuery requests and XML replies carry them, to and from the epoch
//! seconds the JSON documents use.
//!
//! Accepted: `YYYY-MM-DDTHH:MM:SS`, an optional fraction of any length, then `Z` or an offset
//! (`+HH:MM`, `+HHMM`); the `T` and `Z` may be lower case, and a missing zone means UTC. Written:
//! `2026-12-01T08:00:00Z`, with `.mmm` milliseconds before the `Z` when the time has a fraction
//! (what IAM and STS send). Years outside 0000–9999 are not representable and give `None`.

/// Seconds since the Unix epoch of an ISO-8601 / RFC 3339 date-time, or `None` if `text` is not
/// one.
pub fn parse_iso8601(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let digits = |from: usize, count: usize| -> Option<i64> {
        let part = bytes.get(from..from + count)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            part.iter()
                .fold(0i64, |value, digit| value * 10 + i64::from(digit - b'0')),
        )
    };
    let separator = |at: usize, allowed: &[u8]| bytes.get(at).is_some_and(|c| allowed.contains(c));
    if !(separator(4, b"-")
        && separator(7, b"-")
        && separator(10, b"Tt")
        && separator(13, b":")
        && separator(16, b":"))
    {
        return None;
    }
    let year = digits(0, 4)?;
    let month = digits(5, 2)?;
    let day = digits(8, 2)?;
    let hour = digits(11, 2)?;
    let minute = digits(14, 2)?;
    let second = digits(17, 2)?;
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }

    let mut at = 19;
    let mut fraction = 0.0;
    if bytes.get(at) == Some(&b'.') {
        let start = at + 1;
        let end = start
            + bytes
                .get(start..)?
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
        if end == start {
            return None;
        }
        fraction = text.get(at..end)?.parse::<f64>().ok()?;
        at = end;
    }
    let offset_seconds = match bytes.get(at..)? {
        [] => 0,
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hours, minutes) = match rest {
                [_, _, b':', _, _] => (digits(at + 1, 2)?, digits(at + 4, 2)?),
                [_, _, _, _] => (digits(at + 1, 2)?, digits(at + 3, 2)?),
                [_, _] => (digits(at + 1, 2)?, 0),
                _ => return None,
            };
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -magnitude
            } else {
                magnitude
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds;
    Some(seconds as f64 + fraction)
}

/// `epoch_seconds` as `YYYY-MM-DDTHH:MM:SS[.mmm]Z` (rounded to milliseconds), or `None` when it
/// is not finite or falls outside the years 0000–9999.
pub fn format_iso8601(epoch_seconds: f64) -> Option<String> {
    if !epoch_seconds.is_finite() {
        return None;
    }
    let millis = (epoch_seconds * 1000.0).round();
    // Years 0000 to 9999.
    if !(-62_167_219_200_000.0..253_402_300_800_000.0).contains(&millis) {
        return None;
    }
    let millis = millis as i64;
    let seconds = millis.div_euclid(1000);
    let fraction = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let time = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    );
    Some(if fraction == 0 {
        format!("{time}Z")
    } else {
        format!("{time}.{fraction:03}Z")
    })
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

/// Days since 1970-01-01 of a proleptic Gregorian date. The year is shifted to start in March,
/// so that the leap day is the last day of the shifted year and months have a fixed offset.
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`]: `(year, month, day)` of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_clients_send() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_iso8601("2026-12-01T08:00:00Z"), Some(1_796_112_000.0));
        assert_eq!(parse_iso8601("2026-12-01t08:00:00z"), Some(1_796_112_000.0));
        assert_eq!(parse_iso8601("2026-12-01T08:00:00"), Some(1_796_112_000.0));
        assert_eq!(
            parse_iso8601("2026-12-01T08:00:00.250Z"),
            Some(1_796_112_000.25)
        );
        assert_eq!(
            parse_iso8601("2026-12-01T09:30:00+01:30"),
            Some(1_796_112_000.0)
        );
        assert_eq!(
            parse_iso8601("2026-12-01T06:00:00-0200"),
            Some(1_796_112_000.0)
        );
        assert_eq!(parse_iso8601("2024-02-29T00:00:00Z"), Some(1_709_164_800.0));
        assert_eq!(parse_iso8601("1969-12-31T23:59:59Z"), Some(-1.0));
    }

    #[test]
    fn rejects_what_is_not_a_date_time() {
        for bad in [
            "",
            "2026-12-01",
            "2026-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T08:00:00.Z",
            "2026-12-01T08:00:00ZZ",
            "2026-12-01T08:00:00+1",
            "2026-12-01 08:00:00Z",
            "１９７0-01-01T00:00:00Z",
            "1795852800",
        ] {
            assert_eq!(parse_iso8601(bad), None, "{bad}");
        }
    }

    #[test]
    fn formats_seconds_and_milliseconds() {
        assert_eq!(
            format_iso8601(1_796_112_000.0).as_deref(),
            Some("2026-12-01T08:00:00Z")
        );
        assert_eq!(
            format_iso8601(1_796_112_000.359).as_deref(),
            Some("2026-12-01T08:00:00.359Z")
        );
        assert_eq!(
            format_iso8601(-1.0).as_deref(),
            Some("1969-12-31T23:59:59Z")
        );
        assert_eq!(
            format_iso8601(951_782_400.0).as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(format_iso8601(f64::NAN), None);
        assert_eq!(format_iso8601(1e15), None);
    }

    #[test]
    fn round_trips_every_day_over_four_centuries() {
        let mut day = days_from_civil(1800, 1, 1);
        let end = days_from_civil(2200, 1, 1);
        while day < end {
            let (year, month, date) = civil_from_days(day);
            assert_eq!(days_from_civil(year, month, date), day);
            let seconds = (day * 86_400 + 3_723) as f64;
            let text = format_iso8601(seconds).expect("in range");
            assert_eq!(parse_iso8601(&text), Some(seconds), "{text}");
            day += 1;
        }
    }
}
