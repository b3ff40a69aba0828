//! Data-plane operations: PutRecord(s), GetShardIterator and GetRecords.

use std::sync::Arc;

use millrace_catalog::{StreamRecord, StreamStatus};
use millrace_log::{Entry, ReadEntry};
use millrace_types::hash_key::parse_hash_key;
use millrace_types::limits::{
    ITERATOR_LIFETIME_MS, MAX_GET_RECORDS_BYTES, MAX_GET_RECORDS_COUNT, MAX_PUT_RECORDS_BYTES,
};
use millrace_types::{partition_key_hash, SequenceNumber, ShardId};

use crate::clock::now_ms;
use crate::committer::Barrier;
use crate::config::FsyncPolicy;
use crate::error::Error;
use crate::record_codec;
use crate::registry::{Engine, Shard, Stream};
use crate::token::IteratorState;

/// One record to write.
#[derive(Clone, Copy, Debug)]
pub struct PutEntry<'a> {
    /// Required unless the stream distributes records itself (`AUTO`).
    pub partition_key: Option<&'a str>,
    pub explicit_hash_key: Option<&'a str>,
    pub data: &'a [u8],
}

/// PutRecords entries whose payloads the caller wrote straight into one buffer in the log's
/// record layout (the handler decodes each record's base64 there): the engine appends them
/// from that buffer instead of copying every record into one of its own first.
#[derive(Debug, Default)]
pub struct PreparedRecords<'a> {
    entries: Vec<PreparedEntry<'a>>,
    payloads: Vec<u8>,
}

#[derive(Debug)]
struct PreparedEntry<'a> {
    partition_key: Option<&'a str>,
    explicit_hash_key: Option<&'a str>,
    /// Where the payload starts in the buffer, where its data starts, and where it ends.
    start: usize,
    data_start: usize,
    end: usize,
}

impl<'a> PreparedRecords<'a> {
    /// Room for `entries` records holding `data_bytes` of data in all.
    pub fn with_capacity(entries: usize, data_bytes: usize) -> PreparedRecords<'a> {
        PreparedRecords {
            entries: Vec::with_capacity(entries),
            payloads: Vec::with_capacity(data_bytes + entries * 3),
        }
    }

    /// Adds a record: `fill` appends its data to the buffer it is given. If `fill` fails,
    /// nothing is added.
    pub fn push_with<E>(
        &mut self,
        partition_key: Option<&'a str>,
        explicit_hash_key: Option<&'a str>,
        fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let start = self.payloads.len();
        record_codec::encode_header_into(&mut self.payloads, partition_key.unwrap_or_default());
        let data_start = self.payloads.len();
        if let Err(err) = fill(&mut self.payloads) {
            self.payloads.truncate(start);
            return Err(err);
        }
        self.entries.push(PreparedEntry {
            partition_key,
            explicit_hash_key,
            start,
            data_start,
            end: self.payloads.len(),
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn partition_key(&self, index: usize) -> Option<&'a str> {
        self.entries[index].partition_key
    }

    /// The data of record `index`.
    pub fn data(&self, index: usize) -> &[u8] {
        let entry = &self.entries[index];
        &self.payloads[entry.data_start..entry.end]
    }
}

/// A put's records, borrowed from the caller or prepared in the log's layout.
enum Batch<'e, 'a> {
    Borrowed(&'e [PutEntry<'a>]),
    Prepared(PreparedRecords<'a>),
}

impl Batch<'_, '_> {
    fn len(&self) -> usize {
        match self {
            Batch::Borrowed(entries) => entries.len(),
            Batch::Prepared(prepared) => prepared.len(),
        }
    }

    fn partition_key(&self, index: usize) -> Option<&str> {
        match self {
            Batch::Borrowed(entries) => entries[index].partition_key,
            Batch::Prepared(prepared) => prepared.partition_key(index),
        }
    }

    fn explicit_hash_key(&self, index: usize) -> Option<&str> {
        match self {
            Batch::Borrowed(entries) => entries[index].explicit_hash_key,
            Batch::Prepared(prepared) => prepared.entries[index].explicit_hash_key,
        }
    }

    fn data(&self, index: usize) -> &[u8] {
        match self {
            Batch::Borrowed(entries) => entries[index].data,
            Batch::Prepared(prepared) => prepared.data(index),
        }
    }
}

/// Why one record of a PutRecords call was not stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutFailure {
    pub error_code: &'static str,
    pub error_message: String,
}

/// Where a written record went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    pub shard_id: ShardId,
    pub sequence_number: SequenceNumber,
}

/// The five shard iterator types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IteratorType {
    AtSequenceNumber,
    AfterSequenceNumber,
    TrimHorizon,
    Latest,
    AtTimestamp,
}

impl IteratorType {
    /// Parses the wire name.
    pub fn parse(name: &str) -> Option<IteratorType> {
        Some(match name {
            "AT_SEQUENCE_NUMBER" => IteratorType::AtSequenceNumber,
            "AFTER_SEQUENCE_NUMBER" => IteratorType::AfterSequenceNumber,
            "TRIM_HORIZON" => IteratorType::TrimHorizon,
            "LATEST" => IteratorType::Latest,
            "AT_TIMESTAMP" => IteratorType::AtTimestamp,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            IteratorType::AtSequenceNumber => "AT_SEQUENCE_NUMBER",
            IteratorType::AfterSequenceNumber => "AFTER_SEQUENCE_NUMBER",
            IteratorType::TrimHorizon => "TRIM_HORIZON",
            IteratorType::Latest => "LATEST",
            IteratorType::AtTimestamp => "AT_TIMESTAMP",
        }
    }
}

/// GetShardIterator's parameters after wire validation.
#[derive(Clone, Debug)]
pub struct IteratorRequest<'a> {
    pub shard_id: &'a str,
    pub iterator_type: IteratorType,
    pub starting_sequence_number: Option<&'a str>,
    pub timestamp_ms: Option<u64>,
}

/// One record read back.
#[derive(Clone, Debug)]
pub struct ReadRecord {
    pub sequence_number: SequenceNumber,
    pub arrival_ms: u64,
    pub(crate) payload: Vec<u8>,
    /// Whether the record was stored encrypted (GetRecords reports `EncryptionType: KMS`).
    pub encrypted: bool,
}

impl ReadRecord {
    pub fn partition_key(&self) -> &str {
        record_codec::decode(&self.payload).map_or("", |(key, _)| key)
    }
    pub fn data(&self) -> &[u8] {
        record_codec::decode(&self.payload).map_or(&[], |(_, data)| data)
    }
}

/// A child of a closed shard, as GetRecords reports it at the shard's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildShard {
    pub shard_id: String,
    pub parent_shards: Vec<String>,
    pub starting_hash_key: String,
    pub ending_hash_key: String,
}

/// GetRecords' result.
#[derive(Clone, Debug)]
pub struct GetRecordsOutput {
    pub records: Vec<ReadRecord>,
    /// Absent once the end of a closed shard has been read.
    pub next_shard_iterator: Option<String>,
    pub millis_behind_latest: u64,
    /// Present (non-empty) exactly when `next_shard_iterator` is absent.
    pub child_shards: Vec<ChildShard>,
}

/// Payload bytes one GetRecords call returns at most (the service allows up to 10 MiB; a
/// larger single record is still returned whole). Smaller replies keep a draining server's
/// memory flat: each call holds its records and their JSON at once, per concurrent reader.
const READ_BYTES_PER_CALL: usize = 4 << 20;
const _: () = assert!(READ_BYTES_PER_CALL <= MAX_GET_RECORDS_BYTES);

/// Requests up to this many shards and bytes per shard append on the async worker when their
/// logs say the append only copies memory.
const INLINE_APPEND_SHARDS: usize = 8;
const INLINE_APPEND_BYTES: usize = 16 << 10;

/// One shard's share of a request: the shard, which request entries go there, and the range of
/// their payloads in the round's [`Encoded`] payloads.
type AppendJob = (Arc<Shard>, Vec<usize>, std::ops::Range<usize>);

/// A round's payloads in one buffer (no buffers per shard): the engine's own copy, or the
/// caller's [`PreparedRecords`].
struct Encoded {
    bytes: Vec<u8>,
    /// Where each payload lies in `bytes`, in routing order.
    spans: Vec<(usize, usize)>,
}

impl Encoded {
    fn payload(&self, k: usize) -> &[u8] {
        let (start, end) = self.spans[k];
        &self.bytes[start..end]
    }

    /// Bytes of the payloads `range`.
    fn len_of(&self, range: &std::ops::Range<usize>) -> usize {
        self.spans[range.clone()].iter().map(|(s, e)| e - s).sum()
    }
}

/// What a put needs to know about its stream.
struct PutSettings {
    incarnation: u64,
    region: String,
    name: String,
    kms_key_id: Option<String>,
    max_record_size_kib: u32,
    automatic: bool,
}

/// A shard's appended group: which request entries went there, at which positions and time.
struct Placement {
    shard: Arc<Shard>,
    entries: Vec<usize>,
    first_position: u64,
    timestamp_ms: u64,
}

impl Engine {
    /// The stream a put writes to, with the few settings the put needs (read under the
    /// stream's lock instead of cloning its whole record, shards and tags included).
    fn writable_stream(
        &self,
        region: &str,
        name: &str,
    ) -> Result<(Arc<Stream>, PutSettings), Error> {
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let settings = stream.with_record(|record| match record.effective_status(now_ms()) {
            None | Some(StreamStatus::Creating) => None,
            Some(_) => Some(PutSettings {
                incarnation: record.incarnation,
                region: record.region.clone(),
                name: record.name.clone(),
                kms_key_id: match (
                    record.encryption.encryption_type.as_str(),
                    record.encryption.key_id.as_deref(),
                ) {
                    ("KMS", Some(key_id)) => Some(key_id.to_owned()),
                    _ => None,
                },
                max_record_size_kib: record.max_record_size_kib,
                automatic: record.record_distribution_strategy.as_deref() == Some("AUTO"),
            }),
        });
        match settings {
            None => Err(self.stream_not_found(name)),
            Some(settings) => Ok((stream, settings)),
        }
    }

    /// PutRecords (and PutRecord): routes, appends, waits for durability under the fsync policy.
    pub async fn put_records(
        &self,
        region: &str,
        name: &str,
        entries: &[PutEntry<'_>],
    ) -> Result<Vec<Result<PutOutcome, PutFailure>>, Error> {
        self.put_batch(region, name, Batch::Borrowed(entries)).await
    }

    /// PutRecords with the records already in the log's layout ([`PreparedRecords`]).
    pub async fn put_prepared_records(
        &self,
        region: &str,
        name: &str,
        records: PreparedRecords<'_>,
    ) -> Result<Vec<Result<PutOutcome, PutFailure>>, Error> {
        self.put_batch(region, name, Batch::Prepared(records)).await
    }

    async fn put_batch(
        &self,
        region: &str,
        name: &str,
        mut batch: Batch<'_, '_>,
    ) -> Result<Vec<Result<PutOutcome, PutFailure>>, Error> {
        let (stream, record) = self.writable_stream(region, name)?;
        // Only encrypted streams need the ARN (it is bound into each sealed record).
        let stream_arn = match &record.kms_key_id {
            Some(_) => self.stream_arn(&record.region, &record.name),
            None => String::new(),
        };
        let write_key = match record.kms_key_id.as_deref() {
            Some(key_id) => Some(self.sealer.write_key(
                &self.config.account_id,
                &record.region,
                record.incarnation,
                key_id,
                &stream_arn,
            )?),
            None => None,
        };
        let overhead = write_key.as_ref().map_or(0, |k| k.overhead());
        let max_record = record.max_record_size_kib as usize * 1024;
        let automatic = record.automatic;
        if !automatic {
            missing_partition_keys(&batch)?;
        }
        let count = batch.len();
        let mut total = 0usize;
        let mut hash_keys = Vec::with_capacity(count);
        for index in 0..count {
            let partition_key = batch.partition_key(index).unwrap_or_default();
            let size = batch.data(index).len() + partition_key.len();
            if size > max_record {
                return Err(Error::InvalidArgument(format!(
                    "Record size {size} bytes exceeds the maximum record size of {} KiB for \
                     stream {name} under account {}.",
                    record.max_record_size_kib, self.config.account_id
                )));
            }
            total += size;
            let key = match batch.explicit_hash_key(index) {
                _ if automatic => rand::random::<u128>(),
                Some(text) => parse_hash_key(text).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, \
                         2^128-1]. Specified value was {text}"
                    ))
                })?,
                None => partition_key_hash(partition_key),
            };
            hash_keys.push(key);
        }
        if total > MAX_PUT_RECORDS_BYTES {
            return Err(Error::InvalidArgument(format!(
                "Records size {total} bytes exceeds the limit of {MAX_PUT_RECORDS_BYTES} bytes \
                 for one PutRecords request."
            )));
        }
        let mut pending: Vec<usize> = (0..count).collect();
        let mut placements = Vec::new();
        let mut throttled = Vec::new();
        for attempt in 0u32.. {
            let open = stream.open_shards();
            // Entries sorted by open shard, in request order within each shard.
            let mut routed: Vec<(usize, usize)> = Vec::with_capacity(pending.len());
            let mut unrouted = Vec::new();
            for entry_index in pending {
                let key = hash_keys[entry_index];
                let position = open
                    .partition_point(|s| s.range.start <= key)
                    .saturating_sub(1);
                if !open.get(position).is_some_and(|s| s.range.contains(key)) {
                    // Resharding is between closing the parents and opening the children.
                    unrouted.push(entry_index);
                    continue;
                }
                routed.push((position, entry_index));
            }
            routed.sort_unstable();
            let encoded = match (&write_key, &mut batch) {
                // Prepared payloads are appended from the caller's buffer, which comes back
                // after the append for a further attempt.
                (None, Batch::Prepared(prepared)) => Encoded {
                    bytes: std::mem::take(&mut prepared.payloads),
                    spans: routed
                        .iter()
                        .map(|&(_, i)| (prepared.entries[i].start, prepared.entries[i].end))
                        .collect(),
                },
                _ => {
                    let size: usize = routed
                        .iter()
                        .map(|&(_, i)| {
                            3 + overhead
                                + batch.partition_key(i).map_or(0, str::len)
                                + batch.data(i).len()
                        })
                        .sum();
                    let mut encoded = Encoded {
                        bytes: Vec::with_capacity(size),
                        spans: Vec::with_capacity(routed.len()),
                    };
                    for &(_, i) in &routed {
                        let partition_key = batch.partition_key(i).unwrap_or_default();
                        let start = encoded.bytes.len();
                        match &write_key {
                            Some(key) => key.seal_into(
                                &mut encoded.bytes,
                                partition_key,
                                batch.data(i),
                                &stream_arn,
                            ),
                            None => record_codec::encode_into(
                                &mut encoded.bytes,
                                partition_key,
                                batch.data(i),
                            ),
                        }
                        encoded.spans.push((start, encoded.bytes.len()));
                    }
                    encoded
                }
            };
            let mut jobs: Vec<AppendJob> = Vec::new();
            let mut first = 0;
            for run in routed.chunk_by(|a, b| a.0 == b.0) {
                let members: Vec<usize> = run.iter().map(|&(_, i)| i).collect();
                jobs.push((open[run[0].0].clone(), members, first..first + run.len()));
                first += run.len();
            }
            let limits = self.config.throughput_limits;
            // Small appends to journaled logs only copy memory: they run right here, which
            // saves two thread hand-offs per request (most of a single-record put's cost).
            let in_memory = jobs.len() <= INLINE_APPEND_SHARDS
                && jobs.iter().all(|(shard, _, range)| {
                    let len = encoded.len_of(range);
                    len <= INLINE_APPEND_BYTES && shard.log.append_stays_in_memory(len)
                });
            let (round, encoded) = if in_memory {
                (append_groups(jobs, &encoded, limits), encoded)
            } else {
                tokio::task::spawn_blocking(move || {
                    let round = append_groups(jobs, &encoded, limits);
                    (round, encoded)
                })
                .await
                .map_err(|e| Error::Internal(format!("append task failed: {e}")))?
            };
            if let (None, Batch::Prepared(prepared)) = (&write_key, &mut batch) {
                prepared.payloads = encoded.bytes;
            }
            let round = round?;
            placements.extend(round.placements);
            throttled.extend(round.throttled);
            pending = unrouted;
            pending.extend(round.closed);
            if pending.is_empty() {
                break;
            }
            if attempt > 10_000 {
                return Err(Error::Internal("records found no open shard".into()));
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.make_visible(&placements).await?;
        let mut outcomes: Vec<Option<Result<PutOutcome, PutFailure>>> = vec![None; count];
        for (entry_index, shard_index) in throttled {
            outcomes[entry_index] = Some(Err(PutFailure {
                error_code: "ProvisionedThroughputExceededException",
                error_message: format!(
                    "Rate exceeded for shard {} in stream {name} under account {}.",
                    ShardId(shard_index),
                    self.config.account_id
                ),
            }));
        }
        for placement in &placements {
            for (offset, &entry_index) in placement.entries.iter().enumerate() {
                outcomes[entry_index] = Some(Ok(PutOutcome {
                    shard_id: ShardId(placement.shard.index),
                    sequence_number: placement.shard.sequence_number(
                        placement.first_position + offset as u64,
                        placement.timestamp_ms,
                    ),
                }));
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every entry was placed"))
            .collect())
    }

    async fn make_visible(&self, placements: &[Placement]) -> Result<(), Error> {
        match self.config.fsync {
            FsyncPolicy::Always if placements.is_empty() => {}
            FsyncPolicy::Always => {
                let shards = placements.iter().map(|p| p.shard.clone()).collect();
                self.committer
                    .commit(shards, Barrier::Sync)
                    .await
                    .map_err(Error::Internal)?;
            }
            // Journaled logs hold appends in memory: the commit thread writes the journal for
            // every request of the round at once (no sync) before they are acknowledged, so
            // an acknowledged record survives a crash of the process.
            FsyncPolicy::Never | FsyncPolicy::Interval(_) if self.group_sync.is_some() => {
                let shards = placements.iter().map(|p| p.shard.clone()).collect();
                self.committer
                    .commit(shards, Barrier::Write)
                    .await
                    .map_err(Error::Internal)?;
            }
            FsyncPolicy::Never | FsyncPolicy::Interval(_) => {
                for placement in placements {
                    placement
                        .shard
                        .publish(placement.first_position + placement.entries.len() as u64);
                }
            }
        }
        Ok(())
    }

    /// PutRecord with its `SequenceNumberForOrdering` check.
    pub async fn put_record(
        &self,
        region: &str,
        name: &str,
        entry: PutEntry<'_>,
        sequence_number_for_ordering: Option<&str>,
    ) -> Result<PutOutcome, Error> {
        if let Some(text) = sequence_number_for_ordering {
            // Any decodable number is accepted, in either layout (the service does not check
            // that it encodes this stream's shard).
            if SequenceNumber::parse(text).is_err()
                && millrace_types::OlderLayout::parse(text).is_none()
            {
                return Err(Error::InvalidArgument(format!(
                    "ExclusiveMinimumSequenceNumber {text} used in PutRecord on stream {name} \
                     under account {} is invalid.",
                    self.config.account_id
                )));
            }
        }
        let mut outcomes = self.put_records(region, name, &[entry]).await?;
        outcomes
            .pop()
            .expect("one entry gives one outcome")
            .map_err(|failure| Error::ProvisionedThroughputExceeded(failure.error_message))
    }

    /// A read-side throttle (GetRecords, GetShardIterator), in the form seen from the service.
    fn shard_rate_exceeded(&self, stream: &str, shard_index: u32) -> Error {
        Error::ProvisionedThroughputExceeded(format!(
            "Rate exceeded for Shard - {}/{stream}/{}",
            self.config.account_id,
            ShardId(shard_index)
        ))
    }

    fn shard_missing(&self, shard: &str, name: &str) -> Error {
        Error::ResourceNotFound(format!(
            "Shard {shard} in stream {name} under account {} does not exist",
            self.config.account_id
        ))
    }

    /// GetShardIterator.
    pub async fn get_shard_iterator(
        &self,
        region: &str,
        name: &str,
        request: IteratorRequest<'_>,
    ) -> Result<String, Error> {
        let (_, shard, record, position) = self.resolve_position(region, name, request).await?;
        if self.config.throughput_limits && !shard.throughput.admit_iterator(now_ms()) {
            return Err(self.shard_rate_exceeded(&record.name, shard.index));
        }
        Ok(self.tokens.iterator(&IteratorState {
            incarnation: record.incarnation,
            shard_index: shard.index,
            position,
            issued_ms: now_ms(),
            stream_name: record.name,
        }))
    }

    /// Turns an iterator type (and its sequence number or timestamp) into a log position.
    pub(crate) async fn resolve_position(
        &self,
        region: &str,
        name: &str,
        request: IteratorRequest<'_>,
    ) -> Result<(Arc<Stream>, Arc<Shard>, StreamRecord, u64), Error> {
        let wants_sequence = matches!(
            request.iterator_type,
            IteratorType::AtSequenceNumber | IteratorType::AfterSequenceNumber
        );
        match (wants_sequence, request.starting_sequence_number.is_some()) {
            (true, false) | (false, true) if request.iterator_type != IteratorType::AtTimestamp => {
                return Err(Error::InvalidArgument(format!(
                    "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and \
                     StartingSequenceNumber or (2) TRIM_HORIZON or LATEST and no \
                     StartingSequenceNumber. Request specified {} and {}.",
                    request.iterator_type.name(),
                    if wants_sequence {
                        "no StartingSequenceNumber"
                    } else {
                        "also a StartingSequenceNumber"
                    }
                )))
            }
            _ => {}
        }
        let Some(parsed_id) = ShardId::parse_lenient(request.shard_id) else {
            // An id that does not parse as one is named as given, in the service's other text.
            return Err(Error::ResourceNotFound(format!(
                "Could not find shard {} in stream {name} under account {}.",
                request.shard_id, self.config.account_id
            )));
        };
        let shown_id = parsed_id.to_string();
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.shard_missing(&shown_id, name))?;
        let record = stream.snapshot();
        if matches!(
            record.effective_status(now_ms()),
            None | Some(StreamStatus::Creating)
        ) {
            return Err(self.shard_missing(&shown_id, name));
        }
        let shard = stream
            .shard(parsed_id.0)
            .ok_or_else(|| self.shard_missing(&shown_id, name))?;
        let now = now_ms();
        let trim = self.trim_position(&shard, &record, now).await?;
        let position = match request.iterator_type {
            IteratorType::TrimHorizon => trim,
            IteratorType::Latest => shard.end_position().unwrap_or_else(|| shard.visible_end()),
            IteratorType::AtTimestamp => {
                let timestamp = request.timestamp_ms.ok_or_else(|| {
                    Error::InvalidArgument(
                        "Must specify timestampInMillis parameter for iterator of type \
                         AT_TIMESTAMP. Current request has no timestamp parameter."
                            .into(),
                    )
                })?;
                if timestamp > now {
                    return Err(Error::InvalidArgument(format!(
                        "The timestampInMillis parameter cannot be greater than the \
                         currentTimestampInMillis. timestampInMillis: {timestamp}, \
                         currentTimestampInMillis: {now}"
                    )));
                }
                let found = blocking(shard.clone(), move |s| {
                    s.log.position_at_timestamp(timestamp)
                })
                .await?;
                found.max(trim)
            }
            IteratorType::AtSequenceNumber | IteratorType::AfterSequenceNumber => {
                let text = request.starting_sequence_number.unwrap_or_default();
                let shard_name = ShardId(shard.index).to_string();
                let invalid = || {
                    Error::InvalidArgument(format!(
                        "StartingSequenceNumber {text} used in GetShardIterator on shard \
                         {shard_name} in stream {name} under account {} is invalid.",
                        self.config.account_id
                    ))
                };
                let other_shard = |encoded: u32| {
                    Error::InvalidArgument(format!(
                        "Invalid StartingSequenceNumber. It encodes {}, while it was used in a \
                         call to a shard with {shard_name}",
                        millrace_types::encoded_shard_name(encoded)
                    ))
                };
                let sequence = match SequenceNumber::parse(text) {
                    Ok(sequence) => sequence,
                    Err(_) => {
                        // Small numbers are read in the service's older layout: the shard they
                        // encode is checked; zero fails inside the service.
                        return Err(match millrace_types::OlderLayout::parse(text) {
                            Some(older) if older.is_zero => {
                                Error::Internal("sequence number 0 in the older layout".into())
                            }
                            Some(older) if older.shard_index != shard.index => {
                                other_shard(older.shard_index)
                            }
                            _ => invalid(),
                        });
                    }
                };
                if sequence.shard_index != shard.index {
                    return Err(other_shard(sequence.shard_index));
                }
                if sequence.shard_created_secs != shard.created_secs {
                    return Err(Error::InvalidArgument(format!(
                        "StartingSequenceNumber {text} used in GetShardIterator on shard \
                         {shard_name} in stream {name} under account {} is invalid because it \
                         did not come from this stream.",
                        self.config.account_id
                    )));
                }
                let at = sequence.counter.saturating_sub(1);
                let position = if request.iterator_type == IteratorType::AtSequenceNumber {
                    at
                } else {
                    at + u64::from(sequence.counter > 0)
                };
                position.max(trim)
            }
        };
        Ok((stream, shard, record, position))
    }

    /// The oldest position still within retention.
    async fn trim_position(
        &self,
        shard: &Arc<Shard>,
        record: &StreamRecord,
        now: u64,
    ) -> Result<u64, Error> {
        let cutoff = now.saturating_sub(self.retention_ms(record));
        let start = shard.log.start_position();
        let expired_at_front =
            blocking(shard.clone(), move |s| s.log.position_at_timestamp(cutoff)).await?;
        Ok(start.max(expired_at_front))
    }

    /// GetRecords.
    pub async fn get_records(
        &self,
        iterator: &str,
        limit: Option<i64>,
    ) -> Result<GetRecordsOutput, Error> {
        let state = self
            .tokens
            .open_iterator(iterator)
            .ok_or_else(|| Error::InvalidArgument("Invalid ShardIterator.".into()))?;
        let now = now_ms();
        if now.saturating_sub(state.issued_ms) > ITERATOR_LIFETIME_MS {
            return Err(Error::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} \
                 which is further in the future than the tolerated delay of \
                 {ITERATOR_LIFETIME_MS} milliseconds.",
                java_date(state.issued_ms),
                java_date(now)
            )));
        }
        let shard_name = ShardId(state.shard_index).to_string();
        let stream = self
            .lookup_incarnation(state.incarnation)
            .ok_or_else(|| self.shard_missing(&shard_name, &state.stream_name))?;
        let shard = stream
            .shard(state.shard_index)
            .ok_or_else(|| self.shard_missing(&shard_name, &state.stream_name))?;
        let record = stream.snapshot();
        let cutoff = now.saturating_sub(self.retention_ms(&record));
        let limit = limit
            .unwrap_or(MAX_GET_RECORDS_COUNT as i64)
            .clamp(1, MAX_GET_RECORDS_COUNT as i64) as usize;
        let limits = self.config.throughput_limits;
        if limits && !shard.throughput.admit_read(now) {
            return Err(self.shard_rate_exceeded(&record.name, state.shard_index));
        }
        let from = state.position.max(shard.log.start_position());
        let end = shard.end_position();
        let until = end.map_or(shard.visible_end(), |e| e.min(shard.visible_end()));
        let entries = if from < until {
            blocking(shard.clone(), move |s| {
                s.log.read(from, until, limit, READ_BYTES_PER_CALL)
            })
            .await?
        } else {
            Vec::new()
        };
        if limits {
            shard
                .throughput
                .charge_read(entries.iter().map(|e| e.payload.len()).sum());
        }
        let next_position = entries.last().map_or(from, |e| e.position + 1);
        let mut records = retained_records(&shard, entries, cutoff);
        self.open_records(&record, &mut records)?;
        let millis_behind_latest = millis_behind(&records, next_position, until, now);
        let child_shards = match end {
            Some(end) if next_position >= end => children_of(&record, state.shard_index),
            _ => Vec::new(),
        };
        // While resharding is between closing the parent and storing its children, the shard
        // has not ended yet for readers: the next call sees the children.
        if !child_shards.is_empty() {
            return Ok(GetRecordsOutput {
                records,
                next_shard_iterator: None,
                millis_behind_latest: 0,
                child_shards,
            });
        }
        let next_shard_iterator = Some(self.tokens.iterator(&IteratorState {
            incarnation: state.incarnation,
            shard_index: state.shard_index,
            position: next_position,
            issued_ms: now,
            stream_name: state.stream_name,
        }));
        Ok(GetRecordsOutput {
            records,
            next_shard_iterator,
            millis_behind_latest,
            child_shards: Vec::new(),
        })
    }
}

impl Engine {
    /// Checks the stream's KMS key (when it is encrypted) and decrypts the sealed records in
    /// place; a sealed record that does not authenticate fails the read.
    pub(crate) fn open_records(
        &self,
        record: &StreamRecord,
        records: &mut [ReadRecord],
    ) -> Result<(), Error> {
        let account = &self.config.account_id;
        if let ("KMS", Some(key_id)) = (
            record.encryption.encryption_type.as_str(),
            record.encryption.key_id.as_deref(),
        ) {
            self.sealer.check(account, &record.region, key_id)?;
        }
        if !records
            .iter()
            .any(|r| crate::encryption::is_sealed(&r.payload))
        {
            return Ok(());
        }
        let stream_arn = self.stream_arn(&record.region, &record.name);
        let mut payloads: Vec<&mut Vec<u8>> = records.iter_mut().map(|r| &mut r.payload).collect();
        let sealed = self
            .sealer
            .open_all(account, &record.region, &stream_arn, &mut payloads)?;
        for (record, sealed) in records.iter_mut().zip(sealed) {
            record.encrypted = sealed;
        }
        Ok(())
    }
}

/// Turns log entries into records, dropping those older than `cutoff_ms` (expired but not yet
/// removed from disk by the retention pass).
pub(crate) fn retained_records(
    shard: &Shard,
    entries: Vec<ReadEntry>,
    cutoff_ms: u64,
) -> Vec<ReadRecord> {
    entries
        .into_iter()
        .filter(|entry| entry.timestamp_ms >= cutoff_ms)
        .map(|entry| ReadRecord {
            sequence_number: shard.sequence_number(entry.position, entry.timestamp_ms),
            arrival_ms: entry.timestamp_ms,
            payload: entry.payload,
            encrypted: false,
        })
        .collect()
}

/// MillisBehindLatest: zero once a reader at `next_position` has caught up with `until`,
/// else how old the last record it got is.
pub(crate) fn millis_behind(
    records: &[ReadRecord],
    next_position: u64,
    until: u64,
    now_ms: u64,
) -> u64 {
    match records.last() {
        Some(last) if next_position < until => now_ms.saturating_sub(last.arrival_ms),
        _ => 0,
    }
}

/// The shards created from `parent` by a split or merge.
pub(crate) fn children_of(record: &StreamRecord, parent: u32) -> Vec<ChildShard> {
    record
        .shards
        .iter()
        .filter(|s| s.parent == Some(parent) || s.adjacent_parent == Some(parent))
        .map(|s| ChildShard {
            shard_id: ShardId(s.index).to_string(),
            parent_shards: s
                .parent
                .into_iter()
                .chain(s.adjacent_parent)
                .map(|p| ShardId(p).to_string())
                .collect(),
            starting_hash_key: s.starting_hash_key.clone(),
            ending_hash_key: s.ending_hash_key.clone(),
        })
        .collect()
}

/// The service's validation error for entries without a partition key on a stream that routes
/// by key.
fn missing_partition_keys(batch: &Batch<'_, '_>) -> Result<(), Error> {
    let missing: Vec<String> = (0..batch.len())
        .filter(|&index| batch.partition_key(index).is_none())
        .take(10)
        .map(|index| {
            let path = if batch.len() == 1 {
                "partitionKey".to_owned()
            } else {
                format!("records.{}.member.partitionKey", index + 1)
            };
            format!("Value null at '{path}' failed to satisfy constraint: Member must not be null")
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let count = missing.len();
    Err(Error::Validation(format!(
        "{count} validation error{} detected: {}",
        if count == 1 { "" } else { "s" },
        missing.join("; ")
    )))
}

/// Runs storage work for one shard off the async runtime.
async fn blocking<T: Send + 'static>(
    shard: Arc<Shard>,
    work: impl FnOnce(&Shard) -> Result<T, millrace_log::LogError> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || work(&shard))
        .await
        .map_err(|e| Error::Internal(format!("storage task failed: {e}")))?
        .map_err(Error::from)
}

/// What became of one round of appends.
#[derive(Default)]
struct AppendRound {
    placements: Vec<Placement>,
    /// Entries whose shard was closed by resharding meanwhile: they are routed again.
    closed: Vec<usize>,
    /// Entries refused by the shard's write budget, with the shard's index.
    throttled: Vec<(usize, u32)>,
}

/// Appends each job to its shard under the shard's append lock, which also fixes the arrival
/// time and applies the write budget in request order.
fn append_groups(
    jobs: Vec<AppendJob>,
    encoded: &Encoded,
    limits: bool,
) -> Result<AppendRound, Error> {
    let mut round = AppendRound {
        placements: Vec::with_capacity(jobs.len()),
        ..AppendRound::default()
    };
    for (shard, members, range) in jobs {
        let mut last_timestamp = shard.append_lock.lock().expect("append lock");
        if shard.is_closed() {
            round.closed.extend(members);
            continue;
        }
        let now = now_ms();
        let timestamp_ms = now.max(*last_timestamp);
        let payload = |k: usize| encoded.payload(k);
        let demand: usize = range
            .clone()
            .map(|k| record_codec::record_size(payload(k)))
            .sum();
        shard
            .demand_bytes
            .fetch_add(demand as u64, std::sync::atomic::Ordering::Relaxed);
        // Without write budgets every entry is stored: the request's own index list is kept
        // and only the log's entries are collected (one allocation per shard).
        let admitted = limits.then(|| {
            shard.throughput.admit_writes(
                range.clone().map(|k| record_codec::record_size(payload(k))),
                now,
            )
        });
        let mut log_entries = Vec::with_capacity(range.len());
        let stored = match admitted {
            None => {
                log_entries.extend(range.clone().map(|k| Entry {
                    timestamp_ms,
                    payload: payload(k),
                }));
                members
            }
            Some(admitted) => {
                let mut stored = Vec::with_capacity(members.len());
                for (k, (&member, admitted)) in range.clone().zip(members.iter().zip(admitted)) {
                    if admitted {
                        stored.push(member);
                        log_entries.push(Entry {
                            timestamp_ms,
                            payload: payload(k),
                        });
                    } else {
                        round.throttled.push((member, shard.index));
                    }
                }
                stored
            }
        };
        if log_entries.is_empty() {
            continue;
        }
        let first_position = shard.log.append(&log_entries)?;
        *last_timestamp = timestamp_ms;
        drop(last_timestamp);
        round.placements.push(Placement {
            shard,
            entries: stored,
            first_position,
            timestamp_ms,
        });
    }
    Ok(round)
}

/// Formats epoch milliseconds the way Java's `Date.toString()` does in UTC:
/// `Thu Jan 22 01:22:02 UTC 2015`.
fn java_date(epoch_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = epoch_ms / 1000;
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {:02} {:02}:{:02}:{:02} UTC {}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        year
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn java_dates() {
        assert_eq!(
            super::java_date(1_421_889_722_000),
            "Thu Jan 22 01:22:02 UTC 2015"
        );
        assert_eq!(super::java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        assert_eq!(
            super::java_date(1_795_392_000_000),
            "Mon Nov 23 00:00:00 UTC 2026"
        );
    }

    #[test]
    fn prepared_records_are_laid_out_as_the_engine_encodes_them() {
        let mut prepared = super::PreparedRecords::with_capacity(3, 8);
        let filled = |data: &'static [u8]| {
            move |buffer: &mut Vec<u8>| {
                buffer.extend_from_slice(data);
                Ok::<(), ()>(())
            }
        };
        prepared
            .push_with(Some("key"), None, filled(b"\x00\xffdata"))
            .expect("the fill succeeds");
        // A failed fill (invalid base64 in the handler) leaves nothing behind.
        let failed = prepared.push_with(Some("bad"), None, |buffer: &mut Vec<u8>| {
            buffer.extend_from_slice(b"partial");
            Err(())
        });
        assert_eq!(failed, Err(()));
        prepared
            .push_with(None, Some("7"), filled(b""))
            .expect("the fill succeeds");
        assert_eq!(prepared.len(), 2);
        assert_eq!(prepared.data(0), b"\x00\xffdata");
        assert_eq!(prepared.partition_key(1), None);
        assert_eq!(prepared.entries[1].explicit_hash_key, Some("7"));
        let mut expected = Vec::new();
        super::record_codec::encode_into(&mut expected, "key", b"\x00\xffdata");
        super::record_codec::encode_into(&mut expected, "", b"");
        assert_eq!(prepared.payloads, expected);
        for entry in &prepared.entries {
            let payload = &prepared.payloads[entry.start..entry.end];
            let (key, data) = super::record_codec::decode(payload).expect("version 1");
            assert_eq!(key, entry.partition_key.unwrap_or_default());
            assert_eq!(data, &prepared.payloads[entry.data_start..entry.end]);
        }
    }
}
