//! Durable, segmented, append-only log for one shard.
//!
//! `millrace-log` stores opaque byte payloads at consecutive `u64` positions, each with a
//! millisecond timestamp, in one directory per shard ([`ShardLog`]).
//! It never interprets payloads and knows nothing about Kinesis: sequence numbers, partition
//! keys and retention policy belong to `millrace-engine`.
//!
//! # On-disk format
//!
//! A log directory holds segment files named by the position of their first record, as 20
//! zero-padded decimal digits: `00000000000000000000.seg`, `00000000000000001234.seg`, ...
//! Segments cover consecutive, gap-free position ranges; the newest one is the *active*
//! segment and the only one that is written to.
//!
//! * **Segment file**: a 16-byte header (magic `MRSG`, version u32 = 1, base position u64)
//!   followed by frames.
//! * **Frame**: a 24-byte header (CRC32C u32, payload length u32, timestamp u64,
//!   position u64) and the payload. The CRC covers the other header fields and the payload.
//!   Storing the position lets recovery and reads check continuity (module `frame`).
//! * **Index file** `<base>.idx`: written (to a temporary file, then renamed) when a segment
//!   is sealed. It holds the segment's end position, valid length, first and last
//!   timestamps and the sparse index: one entry `(relative position, offset, timestamp)`
//!   for the first frame and then every `index_interval_bytes`. It carries a magic, a
//!   version and a CRC32C; an invalid or inconsistent index is rebuilt by scanning
//!   (module `index`).
//!
//! * **Journal file** `<journal-dir>/<sequence>.wal` (shared by many logs, see [`Journal`]):
//!   a 16-byte header (magic `MRJL`, version u32 = 1, sequence u64), then records: a 16-byte
//!   header (CRC32C u32 of the next 12 bytes, body length u32, log id u64) and a body of
//!   segment frames of that log with consecutive positions (module `journal`).
//!
//! All integers are little-endian.
//!
//! # Durability and recovery
//!
//! A log is either *standalone* ([`ShardLog::open`]) or *journaled*
//! ([`ShardLog::open_journaled`]).
//! A standalone log's [`ShardLog::append`] writes to the active segment without syncing, and
//! [`ShardLog::sync`] makes everything appended before it durable with one `fdatasync` of the
//! active segment.
//! A journaled log's append encodes the frames into an in-memory *tail* and queues the same
//! bytes as one record of the shared [`Journal`]; [`ShardLog::sync`] (or [`Journal::sync`],
//! once for many logs) writes the queued records and syncs the journal file once.
//! The tail is written back to the segment file, without a sync, when it reaches 64 KiB, when
//! the segment rolls, and at checkpoints; reads serve the frames still in the tail from memory.
//! When a journal file reaches [`JournalConfig::file_bytes`] the journal starts a new one; a
//! checkpoint (a background thread) then writes every tail back, syncs each segment file
//! written since the previous checkpoint (only the logs' own files) and the directories of
//! segments created since, and deletes the older journal files, oldest first.
//! A journaled log creates its directory and first segment without any sync (the journal
//! holds the records until a checkpoint made them durable), so the first write to a shard
//! costs no `fsync`; recovery therefore repairs a first segment whose header was lost in a
//! power cut like a torn creation, and the journal replays its records.
//! On open, [`Journal::open`] reads the journal files (cutting a torn tail of the newest one);
//! each journaled log writes the journaled frames its segments lack (after their own recovery)
//! before it is used, and [`Journal::finish_recovery`] flushes them and deletes the old files.
//! A journaled frame the segments already hold is skipped; one that would leave a gap is
//! reported as [`LogError::Corrupt`].
//! If a journal write or sync fails, the journal stops: no journaled log accepts appends or
//! acknowledges syncs until the process restarts and replays. If a checkpoint's sync fails,
//! journal files are never deleted again (the page cache may have dropped the data).
//! A segment is rolled when the next frame would take it past `segment_bytes`: the old
//! segment is synced, its index file written, the new segment created with its header
//! synced, and the directory synced, in that order.
//!
//! If a write cannot be undone, a roll fails halfway or an `fdatasync` fails, the log stops
//! accepting appends and syncs ([`LogError::Poisoned`]) until it is reopened: continuing could
//! acknowledge records that recovery would later drop.
//!
//! Retention ([`ShardLog::trim_before_timestamp`]) deletes whole segments, oldest first, with
//! a directory sync after each, so a crash never leaves a gap between segments. When every
//! record is old, the active segment is sealed and an empty segment named after the next
//! position is kept, so positions are never reused.
//!
//! On open, sealed segments are loaded from their index files without reading their data, so
//! opening is fast for large logs. The active segment is scanned, and the first frame that
//! is cut short, fails its checksum or has the wrong position ends the valid data: the file is
//! truncated there and a warning is logged. A sealed segment with a missing, damaged or
//! inconsistent index is scanned and its index rewritten; if its frames do not run exactly
//! up to the next segment's base position, opening fails with [`LogError::Corrupt`].
//! Damage that the index hides is found by the checksum when the frame is read, and is
//! reported as [`LogError::Corrupt`], never skipped.
//!
//! # Resource use
//!
//! An opened log whose directory does not exist yet uses a few hundred bytes and no file
//! descriptor; the directory and first segment are created by the first append.
//! A journaled log also holds up to 64 KiB of unwritten tail; all tails together hold at most
//! about what the journal files since the last checkpoint hold.
//! Segment files are opened through one process-wide descriptor cache that keeps at most
//! [`open_file_budget`] files open ([`set_open_file_budget`]), closing the least recently used
//! first, so a process can hold many more logs than its open-file limit; a log itself keeps no
//! descriptor between calls. Running out of descriptors anyway is reported in the error (and
//! logged at ERROR) as such. Memory use is dominated by the sparse index, about 16 bytes
//! per `index_interval_bytes` of stored data (4 KiB per 1 MiB with the default interval).

#![forbid(unsafe_code)]

mod byte_reader;
mod disk;
mod error;
#[doc(hidden)]
pub mod faults;
mod frame;
mod index;
mod journal;
mod read;
mod recovery;
mod segment;
mod shard_log;
mod tail;

pub use crate::disk::{
    cached_open_files, forget_files_under, open_file_budget, set_open_file_budget,
};
pub use crate::error::LogError;
pub use crate::journal::{Journal, JournalConfig, JournalReplay};
pub use crate::shard_log::ShardLog;

/// Tuning knobs of a [`ShardLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A new segment is started when the next frame would make the active segment larger
    /// than this. Values above 4 GiB are treated as 4 GiB.
    pub segment_bytes: u64,
    /// Bytes of frames between two entries of the sparse index.
    pub index_interval_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 64 << 20,
            index_interval_bytes: 4096,
        }
    }
}

/// One record to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    pub timestamp_ms: u64,
    pub payload: &'a [u8],
}

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadEntry {
    pub position: u64,
    pub timestamp_ms: u64,
    pub payload: Vec<u8>,
}
