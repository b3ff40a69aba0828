//! Position-addressed reads for internal readers that keep their own delivery state (queues):
//! each shard's retained position range, records by position, and positions by time.
//!
//! These are the narrow seams a reader beside the engine needs; it wakes on new records through
//! `Engine::subscribe_shard`.

use std::path::Path;
use std::sync::Arc;

use millrace_catalog::{StreamMode, StreamStatus};

use crate::clock::now_ms;
use crate::data::retained_records;
use crate::error::Error;
use crate::registry::{Engine, Shard};

/// One shard's readable positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPositions {
    pub index: u32,
    /// The oldest position still within retention.
    pub start: u64,
    /// End (exclusive) of the records readers may see now.
    pub end: u64,
    /// Whether the shard is closed (no record follows `end` once it is reached).
    pub closed: bool,
}

/// A stream's identity and shards, as a position-keeping reader needs them.
#[derive(Clone, Debug)]
pub struct StreamPositions {
    /// Unique per CreateStream: a re-created stream of the same name has another.
    pub incarnation: u64,
    pub created_ms: u64,
    pub on_demand: bool,
    /// `CREATING`, `ACTIVE`, `UPDATING` or `DELETING`.
    pub status: &'static str,
    pub shards: Vec<ShardPositions>,
}

/// One record read by position.
#[derive(Clone, Debug)]
pub struct PositionedRecord {
    pub position: u64,
    pub arrival_ms: u64,
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

impl Engine {
    /// The data directory of this engine's account (where services beside the engine keep
    /// their own files).
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// Whether acknowledged writes are forced to stable storage before they are answered
    /// (`--fsync always` or an interval); with `never` they only reach the operating system.
    pub fn forces_writes(&self) -> bool {
        !matches!(self.config.fsync, crate::config::FsyncPolicy::Never)
    }

    /// The stream's incarnation, mode and each shard's retained range. `with_ranges: false`
    /// skips the retention lookups (one index lookup per shard).
    pub async fn stream_positions(
        &self,
        region: &str,
        name: &str,
        with_ranges: bool,
    ) -> Result<StreamPositions, Error> {
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let record = stream.snapshot();
        let now = now_ms();
        let status = match record.effective_status(now) {
            None => return Err(self.stream_not_found(name)),
            Some(status) => status,
        };
        let shards: Vec<Arc<Shard>> = stream.shards.read().expect("shard lock").clone();
        let cutoff = now.saturating_sub(self.retention_ms(&record));
        let mut views = Vec::with_capacity(shards.len());
        for shard in shards {
            let end = shard
                .end_position()
                .map_or(shard.visible_end(), |e| e.min(shard.visible_end()));
            let start = if with_ranges {
                let log_start = shard.log.start_position();
                let held = shard.clone();
                let expired =
                    tokio::task::spawn_blocking(move || held.log.position_at_timestamp(cutoff))
                        .await
                        .map_err(|e| Error::Internal(format!("storage task failed: {e}")))??;
                log_start.max(expired).min(end)
            } else {
                shard.log.start_position().min(end)
            };
            views.push(ShardPositions {
                index: shard.index,
                start,
                end,
                closed: shard.is_closed(),
            });
        }
        Ok(StreamPositions {
            incarnation: record.incarnation,
            created_ms: record.created_ms,
            on_demand: record.mode == StreamMode::OnDemand,
            status: crate::view::status_name(status),
            shards: views,
        })
    }

    /// The first position of a shard at or after `timestamp_ms`.
    pub async fn shard_position_at(
        &self,
        region: &str,
        name: &str,
        shard_index: u32,
        timestamp_ms: u64,
    ) -> Result<u64, Error> {
        let shard = self
            .lookup(region, name)
            .and_then(|s| s.shard(shard_index))
            .ok_or_else(|| self.stream_not_found(name))?;
        tokio::task::spawn_blocking(move || shard.log.position_at_timestamp(timestamp_ms))
            .await
            .map_err(|e| Error::Internal(format!("storage task failed: {e}")))?
            .map_err(Error::from)
    }

    /// Reads the retained records of `[from, until)` of one shard of the stream incarnation
    /// `incarnation` (at most `max_records`; decrypted when the stream is encrypted). Records
    /// older than the retention period are left out. Also returns the position after the last
    /// one read (at most `until`; reads stop early at a byte cap).
    pub async fn read_positions(
        &self,
        incarnation: u64,
        shard_index: u32,
        from: u64,
        until: u64,
        max_records: usize,
    ) -> Result<(Vec<PositionedRecord>, u64), Error> {
        let stream = self
            .lookup_incarnation(incarnation)
            .ok_or_else(|| Error::ResourceNotFound("The stream no longer exists.".into()))?;
        let shard = stream
            .shard(shard_index)
            .ok_or_else(|| Error::ResourceNotFound("The shard no longer exists.".into()))?;
        let record = stream.snapshot();
        if matches!(
            record.effective_status(now_ms()),
            None | Some(StreamStatus::Deleting)
        ) {
            return Err(Error::ResourceNotFound(
                "The stream no longer exists.".into(),
            ));
        }
        let visible = shard.visible_end();
        let until = until.min(visible);
        if from >= until {
            return Ok((Vec::new(), from));
        }
        let held = shard.clone();
        let entries =
            tokio::task::spawn_blocking(move || held.log.read(from, until, max_records, 4 << 20))
                .await
                .map_err(|e| Error::Internal(format!("storage task failed: {e}")))??;
        let next = entries.last().map_or(from, |e| e.position + 1);
        let cutoff = now_ms().saturating_sub(self.retention_ms(&record));
        let kept: Vec<u64> = entries
            .iter()
            .filter(|e| e.timestamp_ms >= cutoff)
            .map(|e| e.position)
            .collect();
        let mut records = retained_records(&shard, entries, cutoff);
        self.open_records(&record, &mut records)?;
        Ok((
            records
                .into_iter()
                .zip(kept)
                .map(|(r, position)| PositionedRecord {
                    position,
                    arrival_ms: r.arrival_ms,
                    sequence_number: r.sequence_number.to_string(),
                    partition_key: r.partition_key().to_owned(),
                    data: r.data().to_vec(),
                })
                .collect(),
            next,
        ))
    }
}
