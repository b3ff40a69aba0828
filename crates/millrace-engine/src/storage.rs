//! The narrow storage interface the engine writes records through.
//!
//! A shard's records live in a `ShardStorage`; `LocalLogs` opens them as `millrace_log`
//! directories on local disk. An encrypted log or a cluster backend implements the same traits.

use std::path::{Path, PathBuf};

use millrace_log::{Entry, LogConfig, LogError, ReadEntry, ShardLog};

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
}

/// Where shard logs come from.
pub trait LogFactory: Send + Sync {
    /// Opens (recovering if needed) the log of one shard of one stream incarnation.
    fn open(&self, incarnation: u64, shard_index: u32) -> Result<Box<dyn ShardStorage>, LogError>;
    /// Removes every log of a stream incarnation.
    fn destroy(&self, incarnation: u64) -> std::io::Result<()>;
    /// Incarnations that have logs, so the engine can remove orphans after a crash.
    fn incarnations(&self) -> std::io::Result<Vec<u64>>;
}

/// Shard logs under `<data-dir>/streams/<incarnation>/<shard-index>/`.
pub struct LocalLogs {
    root: PathBuf,
    config: LogConfig,
}

impl LocalLogs {
    pub fn new(data_dir: &Path, segment_bytes: u64) -> LocalLogs {
        LocalLogs {
            root: data_dir.join("streams"),
            config: LogConfig {
                segment_bytes,
                ..LogConfig::default()
            },
        }
    }
}

impl LogFactory for LocalLogs {
    fn open(&self, incarnation: u64, shard_index: u32) -> Result<Box<dyn ShardStorage>, LogError> {
        let dir = self
            .root
            .join(incarnation.to_string())
            .join(shard_index.to_string());
        Ok(Box::new(ShardLog::open(&dir, self.config)?))
    }

    fn destroy(&self, incarnation: u64) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.root.join(incarnation.to_string())) {
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
