//! The narrow storage interface the engine writes records through.
//!
//! A shard's records live in a `ShardStorage`; `LocalLogs` opens them as `millrace_log`
//! directories on local disk, all writing through one shared journal (`GroupSync`), so a commit
//! round costs one `fdatasync` however many shards it touched. An encrypted log or a cluster
//! backend implements the same traits.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use millrace_log::{
    Entry, Journal, JournalConfig, JournalReplay, LogConfig, LogError, ReadEntry, ShardLog,
};

/// One shard's durable, position-addressed record log.
pub trait ShardStorage: Send + Sync {
    /// Appends without forcing; returns the first new position.
    fn append(&self, entries: &[Entry<'_>]) -> Result<u64, LogError>;
    /// Forces everything appended so far; returns the durable end position.
    fn sync(&self) -> Result<u64, LogError>;
    fn next_position(&self) -> u64;
    fn start_position(&self) -> u64;
    fn last_timestamp(&self) -> Option<u64>;
    /// Reads `[from, until)` within the given caps.
    fn read(
        &self,
        from: u64,
        until: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<ReadEntry>, LogError>;
    /// First position at or after `timestamp_ms`.
    fn position_at_timestamp(&self, timestamp_ms: u64) -> Result<u64, LogError>;
    /// Deletes whole segments older than `timestamp_ms`.
    fn trim_before_timestamp(&self, timestamp_ms: u64) -> Result<usize, LogError>;
    /// Whether appending about `bytes` would only copy memory (no system call), so that it may
    /// run on an async worker thread. A hint; `false` is always safe.
    fn append_stays_in_memory(&self, _bytes: usize) -> bool {
        false
    }
}

impl ShardStorage for ShardLog {
    fn append(&self, entries: &[Entry<'_>]) -> Result<u64, LogError> {
        ShardLog::append(self, entries)
    }
    fn sync(&self) -> Result<u64, LogError> {
        ShardLog::sync(self)
    }
    fn next_position(&self) -> u64 {
        ShardLog::next_position(self)
    }
    fn start_position(&self) -> u64 {
        ShardLog::start_position(self)
    }
    fn last_timestamp(&self) -> Option<u64> {
        ShardLog::last_timestamp(self)
    }
    fn read(
        &self,
        from: u64,
        until: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<ReadEntry>, LogError> {
        ShardLog::read(self, from, until, max_records, max_bytes)
    }
    fn position_at_timestamp(&self, timestamp_ms: u64) -> Result<u64, LogError> {
        ShardLog::position_at_timestamp(self, timestamp_ms)
    }
    fn trim_before_timestamp(&self, timestamp_ms: u64) -> Result<usize, LogError> {
        ShardLog::trim_before_timestamp(self, timestamp_ms)
    }
    fn append_stays_in_memory(&self, bytes: usize) -> bool {
        ShardLog::append_stays_in_memory(self, bytes)
    }
}

/// One durability barrier shared by every log of a factory (the journal of `LocalLogs`).
pub trait GroupSync: Send + Sync {
    /// Makes everything appended to any of the factory's logs before the call durable.
    fn sync(&self) -> Result<(), LogError>;
    /// Hands appended records to the operating system without forcing them, so they survive
    /// a crash of the process (used when fsync is `never` or an interval).
    fn write(&self) -> Result<(), LogError>;
}

impl GroupSync for Journal {
    fn sync(&self) -> Result<(), LogError> {
        Journal::sync(self)
    }
    fn write(&self) -> Result<(), LogError> {
        Journal::write(self)
    }
}

/// Where shard logs come from.
pub trait LogFactory: Send + Sync {
    /// Opens (recovering if needed) the log of one shard of one stream incarnation.
    fn open(&self, incarnation: u64, shard_index: u32) -> Result<Box<dyn ShardStorage>, LogError>;
    /// Removes every log of a stream incarnation.
    fn destroy(&self, incarnation: u64) -> std::io::Result<()>;
    /// Incarnations that have logs, so the engine can remove orphans after a crash.
    fn incarnations(&self) -> std::io::Result<Vec<u64>>;
    /// The barrier that makes every log durable at once, if the logs share one; without it
    /// each shard's log is synced on its own.
    fn group_sync(&self) -> Option<Arc<dyn GroupSync>> {
        None
    }
    /// Called once every stored shard has been opened: recovery work kept until then (the
    /// journal's records of logs that were still to be opened) may be dropped.
    fn finish_recovery(&self) -> Result<(), LogError> {
        Ok(())
    }
}

/// Shard logs under `<data-dir>/streams/<incarnation>/<shard-index>/`, journaled in
/// `<data-dir>/journal/`.
pub struct LocalLogs {
    root: PathBuf,
    config: LogConfig,
    journal: Arc<Journal>,
    /// Records found in the journal at start, handed to each log as it is opened.
    replay: Mutex<JournalReplay>,
}

impl LocalLogs {
    /// Opens the journal of `data_dir` (reading what a crash left in it).
    pub fn open(
        data_dir: &Path,
        segment_bytes: u64,
        journal_file_bytes: u64,
    ) -> Result<LocalLogs, LogError> {
        let config = JournalConfig {
            file_bytes: journal_file_bytes,
            ..JournalConfig::default()
        };
        let (journal, replay) = Journal::open(&data_dir.join("journal"), config)?;
        Ok(LocalLogs {
            root: data_dir.join("streams"),
            config: LogConfig {
                segment_bytes,
                ..LogConfig::default()
            },
            journal,
            replay: Mutex::new(replay),
        })
    }
}

/// The journal's name for a shard log: the incarnation in the high 32 bits, the shard index
/// in the low ones.
fn log_id(incarnation: u64, shard_index: u32) -> Result<u64, LogError> {
    if incarnation >= 1 << 32 {
        return Err(LogError::Io {
            context: format!("open the log of stream incarnation {incarnation}"),
            source: std::io::Error::other("incarnation numbers above 2^32 are not supported"),
        });
    }
    Ok(incarnation << 32 | u64::from(shard_index))
}

impl LogFactory for LocalLogs {
    fn open(&self, incarnation: u64, shard_index: u32) -> Result<Box<dyn ShardStorage>, LogError> {
        let dir = self
            .root
            .join(incarnation.to_string())
            .join(shard_index.to_string());
        let id = log_id(incarnation, shard_index)?;
        let frames = self.replay.lock().expect("journal replay lock").take(id);
        Ok(Box::new(ShardLog::open_journaled(
            &dir,
            self.config,
            &self.journal,
            id,
            frames.as_deref(),
        )?))
    }

    fn group_sync(&self) -> Option<Arc<dyn GroupSync>> {
        Some(self.journal.clone())
    }

    fn finish_recovery(&self) -> Result<(), LogError> {
        let left = std::mem::take(&mut *self.replay.lock().expect("journal replay lock"));
        if !left.log_ids().is_empty() {
            tracing::info!(
                logs = left.log_ids().len(),
                bytes = left.bytes(),
                "dropping journal records of deleted streams"
            );
        }
        self.journal.finish_recovery()
    }

    fn destroy(&self, incarnation: u64) -> std::io::Result<()> {
        let dir = self.root.join(incarnation.to_string());
        millrace_log::forget_files_under(&dir);
        match std::fs::remove_dir_all(&dir) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn incarnations(&self) -> std::io::Result<Vec<u64>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut found = Vec::new();
        for entry in entries {
            if let Some(number) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                found.push(number);
            }
        }
        Ok(found)
    }
}
