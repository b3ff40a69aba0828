//! The 128-bit hash-key space that partition keys are mapped onto.

use md5::{Digest, Md5};

/// An inclusive range of hash keys owned by one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashKeyRange {
    pub start: u128,
    pub end: u128,
}

impl HashKeyRange {
    /// Whether `key` falls inside this range.
    pub fn contains(&self, key: u128) -> bool {
        self.start <= key && key <= self.end
    }

    /// Splits the whole key space into `count` ranges the way a new stream's shards are laid out:
    /// each range is `floor(2^128 / count)` wide and the last one ends at `2^128 - 1`.
    pub fn even_split(count: u32) -> Vec<HashKeyRange> {
        assert!(count > 0, "a stream has at least one shard");
        let count = u128::from(count);
        // floor(2^128 / count) computed without overflowing u128.
        let step = if count == 1 {
            0
        } else {
            (u128::MAX / count) + u128::from((u128::MAX % count) + 1 == count)
        };
        (0..count)
            .map(|i| {
                let start = i * step;
                let end = if i + 1 == count {
                    u128::MAX
                } else {
                    (i + 1) * step - 1
                };
                HashKeyRange { start, end }
            })
            .collect()
    }
}

/// The hash key of a partition key: MD5 of its UTF-8 bytes read as a big-endian integer.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// Parses a decimal hash key; `None` when it is not a number in `[0, 2^128 - 1]`.
pub fn parse_hash_key(value: &str) -> Option<u128> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse::<u128>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_shards_match_the_service_layout() {
        let ranges = HashKeyRange::even_split(3);
        let ends: Vec<String> = ranges.iter().map(|r| r.end.to_string()).collect();
        assert_eq!(
            ends,
            [
                "113427455640312821154458202477256070484",
                "226854911280625642308916404954512140969",
                "340282366920938463463374607431768211455"
            ]
        );
        assert_eq!(ranges[1].start, ranges[0].end + 1);
    }

    #[test]
    fn one_and_two_shards() {
        assert_eq!(
            HashKeyRange::even_split(1),
            [HashKeyRange {
                start: 0,
                end: u128::MAX
            }]
        );
        let two = HashKeyRange::even_split(2);
        assert_eq!(two[0].end, (1u128 << 127) - 1);
        assert_eq!(two[1].start, 1u128 << 127);
    }

    #[test]
    fn partition_keys_route_like_the_service() {
        let ranges = HashKeyRange::even_split(3);
        let shard_of = |pk: &str| {
            let key = partition_key_hash(pk);
            ranges.iter().position(|r| r.contains(key))
        };
        assert_eq!(shard_of("a"), Some(0));
        assert_eq!(shard_of("b"), Some(1));
        assert_eq!(shard_of("e"), Some(2));
        assert_eq!(shard_of("f"), Some(1));
    }

    #[test]
    fn hash_key_parsing() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Some(u128::MAX)
        );
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key(""), None);
    }
}
