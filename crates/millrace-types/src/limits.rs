//! Service limits that several layers need to agree on.

/// Largest record (data plus partition key) a stream accepts by default.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Most entries in one PutRecords call.
pub const MAX_PUT_RECORDS_ENTRIES: usize = 500;
/// Most bytes (data plus partition keys) in one PutRecords call.
pub const MAX_PUT_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// Most records one GetRecords call returns.
pub const MAX_GET_RECORDS_COUNT: usize = 10_000;
/// Most bytes one GetRecords call returns.
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// How long a shard iterator or a pagination token stays valid.
pub const ITERATOR_LIFETIME_MS: u64 = 300_000;
/// Shortest retention period, in hours.
pub const MIN_RETENTION_HOURS: u32 = 24;
/// Longest retention period, in hours.
pub const MAX_RETENTION_HOURS: u32 = 8760;
/// Shards of a new on-demand stream.
pub const ON_DEMAND_INITIAL_SHARDS: u32 = 4;
/// Most tags on one stream.
pub const MAX_TAGS_PER_STREAM: usize = 50;
