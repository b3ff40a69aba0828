//! Shard ids: `shardId-` followed by a 12-digit zero-padded index.

use std::fmt;

/// The index of a shard inside its stream; printed as `shardId-000000000000`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl ShardId {
    /// Parses a shard id the way the service does: the text after the first `-` (or the whole
    /// value when there is none) must be a decimal integer no larger than `i32::MAX`.
    pub fn parse_lenient(value: &str) -> Option<ShardId> {
        let digits = match value.find('-') {
            Some(position) => &value[position + 1..],
            None => value,
        };
        if digits.is_empty() || digits.len() > 40 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number: u64 = digits.trim_start_matches('0').parse().unwrap_or(0);
        if number > i32::MAX as u64 {
            return None;
        }
        Some(ShardId(number as u32))
    }

    /// The index as used in sequence numbers and file names.
    pub fn index(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ShardId {
    /// Written in one piece (a PutRecords reply prints one per record; `{:012}` pads digit by
    /// digit).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = *b"shardId-000000000000";
        let mut value = self.0;
        for digit in text[8..].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
        // A u32 has at most 10 digits, so the 12 always hold it.
        f.pad(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn display_pads_to_twelve_digits() {
        for index in [0, 7, 123_456, 999_999_999, u32::MAX] {
            assert_eq!(
                super::ShardId(index).to_string(),
                format!("shardId-{index:012}")
            );
        }
    }

    use super::ShardId;

    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(
            ShardId::parse_lenient(input)
                .map(|s| s.to_string())
                .as_deref(),
            expected,
            "{input}"
        );
    }

    #[test]
    fn lenient_parsing_matches_the_service() {
        check("shardId-000000000000", Some("shardId-000000000000"));
        check("0", Some("shardId-000000000000"));
        check("shard-0", Some("shardId-000000000000"));
        check("anything-7", Some("shardId-000000000007"));
        check("-00002147483647", Some("shardId-002147483647"));
        check("ABKLFD8", None);
        check("2.14E4", None);
        check("2147483648", None);
        check("shardId-002147483648", None);
        check("shardId-", None);
    }
}
