//! AWS Signature Version 4 for the JSON protocol's `POST /` requests, with the signing key cached per day.
//!
//! The load generator signs every request the way AWS itself checks it, so a run against the real service
//! would be accepted; the cost per request is two SHA-256 digests of short strings and two HMACs, because the
//! payload digest is computed once per pre-built body by the caller and the derived key is reused all day.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The hex SHA-256 of a request body, as the canonical request carries it.
pub fn payload_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Derives the day's signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// A UTC instant split the way SigV4 writes it: `20150830T123600Z` and `20150830`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmzDate {
    pub timestamp: String,
    pub date: String,
}

impl AmzDate {
    pub fn now() -> AmzDate {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        AmzDate::from_unix_seconds(seconds)
    }

    pub fn from_unix_seconds(seconds: u64) -> AmzDate {
        let days = (seconds / 86_400) as i64;
        let of_day = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        let date = format!("{year:04}{month:02}{day:02}");
        let timestamp = format!(
            "{date}T{:02}{:02}{:02}Z",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        );
        AmzDate { timestamp, date }
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), by counting 400-year eras
/// that start on 1 March so the leap day falls at the end of each year.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// One header that takes part in the signature; names must already be lowercase.
pub struct SignedHeader<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// Signs requests for one access key, region and service.
pub struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    service: String,
    cached_key: Mutex<Option<(String, [u8; 32])>>,
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str, region: &str, service: &str) -> Signer {
        Signer {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            cached_key: Mutex::new(None),
        }
    }

    fn key_for(&self, date: &str) -> [u8; 32] {
        let mut cached = self
            .cached_key
            .lock()
            .expect("signing key lock is never poisoned");
        if let Some((cached_date, key)) = cached.as_ref() {
            if cached_date == date {
                return *key;
            }
        }
        let key = signing_key(&self.secret_key, date, &self.region, &self.service);
        *cached = Some((date.to_owned(), key));
        key
    }

    /// Returns the `Authorization` header value. `headers` must be sorted by name and include `host` and
    /// `x-amz-date` (whose value must be `when.timestamp`); the path is used as given (already canonical),
    /// and `query` must already be in canonical form.
    pub fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[SignedHeader<'_>],
        payload_digest: &str,
        when: &AmzDate,
    ) -> String {
        let mut canonical = String::with_capacity(256);
        canonical.push_str(method);
        canonical.push('\n');
        canonical.push_str(path);
        canonical.push('\n');
        canonical.push_str(query);
        canonical.push('\n');
        let mut signed_names = String::with_capacity(64);
        for header in headers {
            debug_assert!(header.name.bytes().all(|b| !b.is_ascii_uppercase()));
            canonical.push_str(header.name);
            canonical.push(':');
            canonical.push_str(header.value.trim());
            canonical.push('\n');
            if !signed_names.is_empty() {
                signed_names.push(';');
            }
            signed_names.push_str(header.name);
        }
        canonical.push('\n');
        canonical.push_str(&signed_names);
        canonical.push('\n');
        canonical.push_str(payload_digest);

        let scope = format!(
            "{}/{}/{}/aws4_request",
            when.date, self.region, self.service
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            when.timestamp,
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let signature = hex::encode(hmac_sha256(
            &self.key_for(&when.date),
            string_to_sign.as_bytes(),
        ));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
            self.access_key
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    #[test]
    fn amz_date_formats_utc() {
        // 2015-08-30T12:36:00Z, the date of AWS's published SigV4 examples.
        let when = AmzDate::from_unix_seconds(1_440_938_160);
        assert_eq!(when.timestamp, "20150830T123600Z");
        assert_eq!(when.date, "20150830");
        assert_eq!(AmzDate::from_unix_seconds(0).timestamp, "19700101T000000Z");
        // A leap day, and the last second of a year.
        assert_eq!(AmzDate::from_unix_seconds(951_782_400).date, "20000229");
        assert_eq!(
            AmzDate::from_unix_seconds(1_798_761_599).timestamp,
            "20261231T235959Z"
        );
    }

    #[test]
    fn get_vanilla_matches_the_published_signature() {
        let signer = Signer::new("AKIDEXAMPLE", EXAMPLE_SECRET, "us-east-1", "service");
        let when = AmzDate::from_unix_seconds(1_440_938_160);
        let headers = [
            SignedHeader {
                name: "host",
                value: "example.amazonaws.com",
            },
            SignedHeader {
                name: "x-amz-date",
                value: &when.timestamp,
            },
        ];
        let authorization =
            signer.authorization("GET", "/", "", &headers, &payload_digest(b""), &when);
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn signing_key_is_cached_per_day_and_renewed_on_a_new_day() {
        let signer = Signer::new("AKIDEXAMPLE", EXAMPLE_SECRET, "us-east-1", "kinesis");
        let first = signer.key_for("20261122");
        assert_eq!(first, signer.key_for("20261122"));
        let next_day = signer.key_for("20261123");
        assert_ne!(first, next_day);
        assert_eq!(
            next_day,
            signing_key(EXAMPLE_SECRET, "20261123", "us-east-1", "kinesis")
        );
    }
}
