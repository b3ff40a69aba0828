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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shardId-{:012}", self.0)
    }
}

#[cfg(test)]
mod tests {
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
