//! S3 object keys as the service names them: `<evaluated prefix><suffix>`, the suffix being
//! `<stream>-<version>-YYYY-MM-dd-HH-mm-ss-<uuid><extension>`.
//!
//! A prefix without expressions is followed by the default time prefix `YYYY/MM/dd/HH/`; a
//! prefix with expressions (`!{timestamp:<pattern>}`, `!{firehose:random-string}`, and in
//! error prefixes `!{firehose:error-output-type}`) is evaluated instead. Timestamps are the
//! arrival time of the object's oldest record, in UTC or the destination's CustomTimeZone;
//! every `timestamp` expression of one key evaluates to the same instant.

use rand::Rng;

/// What the key of a failed delivery is for (`!{firehose:error-output-type}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorOutputType {
    HttpEndpointFailed,
}

impl ErrorOutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorOutputType::HttpEndpointFailed => "http-endpoint-failed",
        }
    }
}

/// A calendar instant in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

/// The time zone of a `CustomTimeZone` (`None`: UTC, also for an empty name), or why it is
/// refused: the service takes IANA names, not three-letter abbreviations.
pub fn time_zone(name: &str) -> Result<Option<jiff::tz::TimeZone>, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(None);
    }
    let refusal = || {
        format!(
            "CustomTimeZone {name} is not supported: use an IANA time zone name such as America/New_York (not a three-letter identifier)."
        )
    };
    if name.len() <= 3 {
        return Err(refusal());
    }
    jiff::tz::TimeZone::get(name)
        .map(Some)
        .map_err(|_| refusal())
}

impl Civil {
    /// The calendar time of a Unix millisecond timestamp in a `CustomTimeZone` (UTC when the
    /// name is empty or unknown; names are validated when the destination is configured).
    pub fn in_zone(ms: u64, zone: &str) -> Civil {
        let Ok(Some(zone)) = time_zone(zone) else {
            return Civil::from_unix_ms(ms);
        };
        let Ok(instant) = jiff::Timestamp::from_millisecond(ms as i64) else {
            return Civil::from_unix_ms(ms);
        };
        let local = instant.to_zoned(zone);
        Civil {
            year: i64::from(local.year()),
            month: local.month() as u32,
            day: local.day() as u32,
            hour: local.hour() as u32,
            minute: local.minute() as u32,
            second: local.second() as u32,
            millis: local.millisecond() as u32,
        }
    }

    /// The UTC calendar time of a Unix millisecond timestamp.
    pub fn from_unix_ms(ms: u64) -> Civil {
        let secs = (ms / 1000) as i64;
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (year, month, day) = millrace_wire::timestamp::civil_from_days(days);
        let (month, day) = (month as u32, day as u32);
        Civil {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: ((rem % 3600) / 60) as u32,
            second: (rem % 60) as u32,
            millis: (ms % 1000) as u32,
        }
    }
}

/// One piece of a parsed Java `DateTimeFormatter` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Field(char, usize),
}

/// The pattern letters supported (year, month, day, hour, minute, second, fraction).
const LETTERS: &[char] = &['y', 'u', 'M', 'd', 'H', 'm', 's', 'S'];

/// Parses a `DateTimeFormatter` pattern; `None` for letters this implementation does not
/// support or an unterminated quote.
fn parse_pattern(pattern: &str) -> Option<Vec<Piece>> {
    let mut pieces = Vec::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // Quoted literal; '' is a single quote.
            if chars.get(i + 1) == Some(&'\'') {
                pieces.push(Piece::Literal("'".into()));
                i += 2;
                continue;
            }
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        text.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        text.push(other);
                        i += 1;
                    }
                }
            }
            pieces.push(Piece::Literal(text));
        } else if c.is_ascii_alphabetic() {
            if !LETTERS.contains(&c) {
                return None;
            }
            let mut n = 1;
            while chars.get(i + n) == Some(&c) {
                n += 1;
            }
            pieces.push(Piece::Field(c, n));
            i += n;
        } else if matches!(c, '[' | ']' | '{' | '}' | '#') {
            return None;
        } else {
            pieces.push(Piece::Literal(c.to_string()));
            i += 1;
        }
    }
    Some(pieces)
}

fn format_pieces(pieces: &[Piece], t: &Civil) -> String {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(text),
            Piece::Field(letter, n) => {
                let n = *n;
                let value = match letter {
                    'y' | 'u' if n == 2 => {
                        out.push_str(&format!("{:02}", t.year.rem_euclid(100)));
                        continue;
                    }
                    'y' | 'u' => t.year,
                    'M' => i64::from(t.month),
                    'd' => i64::from(t.day),
                    'H' => i64::from(t.hour),
                    'm' => i64::from(t.minute),
                    's' => i64::from(t.second),
                    _ => {
                        // Fraction of a second: the first n digits of the milliseconds.
                        let digits = format!("{:03}000000", t.millis);
                        out.push_str(&digits[..n.min(9)]);
                        continue;
                    }
                };
                out.push_str(&format!("{value:0n$}"));
            }
        }
    }
    out
}

/// `YYYY/MM/dd/HH/`.
pub fn default_time_prefix(t: &Civil) -> String {
    format!("{:04}/{:02}/{:02}/{:02}/", t.year, t.month, t.day, t.hour)
}

/// An expression found in a prefix.
#[derive(Debug, PartialEq, Eq)]
enum Expression<'a> {
    Timestamp(&'a str),
    RandomString,
    ErrorOutputType,
    Unknown(&'a str),
}

/// Splits a prefix into literal text and `!{…}` expressions.
fn scan(prefix: &str) -> Result<Vec<Result<&str, Expression<'_>>>, String> {
    let mut parts = Vec::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("!{") {
        parts.push(Ok(&rest[..start]));
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "Expression is not closed".to_owned())?;
        let body = &after[..end];
        let expression = match body.split_once(':') {
            Some(("timestamp", pattern)) => Expression::Timestamp(pattern),
            Some(("firehose", "random-string")) => Expression::RandomString,
            Some(("firehose", "error-output-type")) => Expression::ErrorOutputType,
            _ => Expression::Unknown(body),
        };
        parts.push(Err(expression));
        rest = &after[end + 1..];
    }
    parts.push(Ok(rest));
    Ok(parts)
}

fn has_expressions(prefix: &str) -> bool {
    prefix.contains("!{")
}

/// The error text of a prefix that breaks a rule (the service's wording for the first rule;
/// the others follow it).
fn constraint(text: &str) -> String {
    format!("Ths supplied prefix(es) do not satisfy the following constraint: {text}")
}

/// Checks a destination's `Prefix` and `ErrorOutputPrefix` as CreateDeliveryStream and
/// UpdateDestination do.
pub fn validate(prefix: Option<&str>, error_prefix: Option<&str>) -> Result<(), String> {
    let prefix = prefix.unwrap_or("");
    let error_prefix = error_prefix.unwrap_or("");
    for (name, text, is_error) in [
        ("Prefix", prefix, false),
        ("ErrorOutputPrefix", error_prefix, true),
    ] {
        let parts =
            scan(text).map_err(|_| constraint(&format!("{name} has an unclosed expression")))?;
        for part in parts {
            match part {
                Ok(_) => {}
                Err(Expression::Timestamp(pattern)) => {
                    if pattern.is_empty() || parse_pattern(pattern).is_none() {
                        return Err(constraint(&format!(
                            "{name} contains an invalid timestamp format: {pattern}"
                        )));
                    }
                }
                Err(Expression::RandomString) => {}
                Err(Expression::ErrorOutputType) if is_error => {}
                Err(Expression::ErrorOutputType) => {
                    return Err(constraint(
                        "Prefix cannot contain the firehose:error-output-type expression",
                    ))
                }
                Err(Expression::Unknown(body)) => {
                    if body.starts_with("partitionKeyFrom") {
                        return Err(constraint(&format!(
                            "{name} uses dynamic partitioning keys, which require dynamic partitioning (not supported by Millrace yet)"
                        )));
                    }
                    return Err(constraint(&format!(
                        "{name} contains an unsupported expression: !{{{body}}}"
                    )));
                }
            }
        }
    }
    if has_expressions(prefix) && error_prefix.is_empty() {
        return Err(constraint(
            "ErrorOutputPrefix cannot be null or empty when Prefix contains expressions",
        ));
    }
    if has_expressions(error_prefix) && !error_prefix.contains("!{firehose:error-output-type}") {
        return Err(constraint(
            "ErrorOutputPrefix must contain !{firehose:error-output-type} when it contains expressions",
        ));
    }
    Ok(())
}

fn random_string() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..11)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Evaluates a (validated) prefix for an object whose oldest record arrived at `t`.
pub fn evaluate(prefix: &str, t: &Civil, error_type: Option<ErrorOutputType>) -> String {
    if !has_expressions(prefix) {
        let mut out = prefix.to_owned();
        if let Some(kind) = error_type {
            out.push_str(kind.as_str());
            out.push('/');
        }
        out.push_str(&default_time_prefix(t));
        return out;
    }
    let mut out = String::new();
    for part in scan(prefix).unwrap_or_default() {
        match part {
            Ok(text) => out.push_str(text),
            Err(Expression::Timestamp(pattern)) => {
                if let Some(pieces) = parse_pattern(pattern) {
                    out.push_str(&format_pieces(&pieces, t));
                }
            }
            Err(Expression::RandomString) => out.push_str(&random_string()),
            Err(Expression::ErrorOutputType) => {
                out.push_str(error_type.map_or("", ErrorOutputType::as_str))
            }
            Err(Expression::Unknown(_)) => {}
        }
    }
    out
}

/// `<stream>-<version>-YYYY-MM-dd-HH-mm-ss-<uuid><extension>`.
pub fn suffix(stream: &str, version: u64, t: &Civil, extension: &str) -> String {
    format!(
        "{stream}-{version}-{:04}-{:02}-{:02}-{:02}-{:02}-{:02}-{}{extension}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        uuid::Uuid::new_v4()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_of_known_instants() {
        let t = Civil::from_unix_ms(0);
        assert_eq!((t.year, t.month, t.day, t.hour), (1970, 1, 1, 0));
        // 2024-02-29T13:45:07.123Z
        let t = Civil::from_unix_ms(1_709_214_307_123);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis),
            (2024, 2, 29, 13, 45, 7, 123)
        );
    }

    #[test]
    fn prefixes_evaluate_like_the_service() {
        let t = Civil::from_unix_ms(1_709_214_307_123);
        assert_eq!(evaluate("", &t, None), "2024/02/29/13/");
        assert_eq!(evaluate("logs/", &t, None), "logs/2024/02/29/13/");
        assert_eq!(
            evaluate("y=!{timestamp:yyyy}/m=!{timestamp:MM}/", &t, None),
            "y=2024/m=02/"
        );
        assert_eq!(
            evaluate("!{timestamp:yyyy-MM-dd'T'HH}/", &t, None),
            "2024-02-29T13/"
        );
        assert_eq!(
            evaluate(
                "err/!{firehose:error-output-type}/",
                &t,
                Some(ErrorOutputType::HttpEndpointFailed)
            ),
            "err/http-endpoint-failed/"
        );
        assert_eq!(evaluate("r/!{firehose:random-string}/", &t, None).len(), 14);
    }

    #[test]
    fn custom_time_zones() {
        // 2024-02-29T13:45:07.123Z is 08:45 in New York (EST), 19:15 in Kolkata.
        let ms = 1_709_214_307_123;
        assert_eq!(Civil::in_zone(ms, ""), Civil::from_unix_ms(ms));
        assert_eq!(Civil::in_zone(ms, "UTC"), Civil::from_unix_ms(ms));
        let t = Civil::in_zone(ms, "America/New_York");
        assert_eq!((t.day, t.hour, t.minute, t.millis), (29, 8, 45, 123));
        let t = Civil::in_zone(ms, "Asia/Kolkata");
        assert_eq!((t.hour, t.minute), (19, 15));
        // Summer time: 2024-07-01T12:00:00Z is 08:00 EDT.
        assert_eq!(
            Civil::in_zone(1_719_835_200_000, "America/New_York").hour,
            8
        );
        assert!(time_zone("Europe/Paris").expect("zone").is_some());
        assert!(time_zone("EST").is_err());
        assert!(time_zone("Mars/Olympus_Mons").is_err());
    }

    #[test]
    fn prefix_rules() {
        assert!(validate(None, None).is_ok());
        assert!(validate(Some("a/"), Some("b/")).is_ok());
        let message = validate(Some("!{timestamp:yyyy}/"), None).expect_err("rule");
        assert!(message.ends_with(
            "ErrorOutputPrefix cannot be null or empty when Prefix contains expressions"
        ));
        assert!(validate(Some("!{timestamp:yyyy}/"), Some("e/!{timestamp:yyyy}/")).is_err());
        assert!(validate(
            Some("!{timestamp:yyyy}/"),
            Some("e/!{firehose:error-output-type}/")
        )
        .is_ok());
        assert!(validate(Some("!{firehose:error-output-type}/"), Some("e/")).is_err());
        assert!(validate(Some("!{timestamp:qqq}/"), Some("e/")).is_err());
        assert!(validate(Some("!{nope:x}/"), Some("e/")).is_err());
    }
}
