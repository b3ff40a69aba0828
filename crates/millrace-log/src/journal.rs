//! The shared write-ahead journal: one file that takes the records of every shard log, so that
//! a request touching many shards costs one `write` and a commit round one `fdatasync`.
//!
//! Journaled logs ([`crate::ShardLog::open_journaled`]) keep the frames they have not written
//! to their segment files yet in memory (module `tail`) and write them back lazily, in large
//! batches, and all of them whenever a journal file is closed. A checkpoint writes every such
//! tail back, syncs each segment file written since the previous checkpoint (only the log's
//! own files: a neighbour's dirty data is never flushed), and then deletes the journal files
//! that are fully covered; it waits for enough closed files that each sync covers a good
//! amount of data ([`Journal::checkpoint_when_due`]).
//!
//! File layout (little-endian), `<dir>/<sequence, 20 digits>.wal`:
//!
//! * header, 16 bytes: magic `MRJL`, version u32 = 1, file sequence number u64;
//! * records back to back. A record is a 16-byte header (CRC32C u32 of the next 12 bytes,
//!   body length u32, log id u64) and a body of segment frames (module `frame`) of that log,
//!   with consecutive positions. Each frame keeps its own checksum, so the payload is
//!   checksummed once.
//! * the newest file may end with zeros: small commit rounds write zeros past their records
//!   ([`JournalConfig::preallocate_bytes`]) so that later rounds overwrite allocated blocks and
//!   their `fdatasync` has no inode to write. A file is cut to its last record before the next
//!   one is started, so every older file ends with a record.
//!
//! Recovery reads the files in sequence order. The first record that is cut short or fails a
//! checksum ends the valid journal when it lies in the newest file (a torn write that was never
//! acknowledged; the file is truncated there and a warning logged); in an older file it is
//! reported as [`LogError::Corrupt`].

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::byte_reader::ByteReader;
use crate::disk;
use crate::error::LogError;
use crate::frame::{FrameHeader, FRAME_HEADER_LEN};
use crate::tail::Tail;

const JOURNAL_SUFFIX: &str = ".wal";
const JOURNAL_MAGIC: [u8; 4] = *b"MRJL";
const JOURNAL_VERSION: u32 = 1;
const JOURNAL_HEADER_LEN: usize = 16;
/// Size of the header in front of each record's frames.
pub(crate) const RECORD_HEADER_LEN: usize = 16;

/// How often the checkpoint thread looks for work when nobody wakes it.
const CHECKPOINT_POLL: Duration = Duration::from_millis(500);
/// Segment files synced at the same time by a checkpoint.
const PARALLEL_SYNCS: usize = 8;
/// A checkpoint syncs every segment file written since the previous one, and a sync costs
/// about the same for a few kilobytes as for hundreds: closed journal files wait (their tails
/// written back, unsynced) until they hold this many bytes per segment file to sync, so that
/// a stream of 1,000 shards does not pay 1,000 syncs per journal file.
const CHECKPOINT_BYTES_PER_SEGMENT: u64 = 256 << 10;
/// Closed journal files kept waiting for a checkpoint at most (they bound the journal's disk
/// space and what recovery replays, which it holds in memory until the logs take it: at 1,000
/// shards 4 files made a restart after kill -9 take 280 MB instead of 144; 2 take 232).
const MAX_CLOSED_FILES: usize = 2;

/// Tuning knobs of a [`Journal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalConfig {
    /// A new journal file is started once the current one holds this many bytes. Closing a
    /// file writes every log's tail back (unsynced); the file is deleted by the checkpoint
    /// that follows once enough bytes wait per segment file to sync (at most
    /// [`MAX_CLOSED_FILES`] closed files). It bounds, with that count, the journal's disk space
    /// and the time recovery spends replaying.
    pub file_bytes: u64,
    /// When a small commit round (below [`PREALLOCATE_BELOW_ROUND_BYTES`]) gets within this
    /// many bytes of the end of what the file holds, the round also writes this many zero
    /// bytes past its records, so that the following rounds overwrite allocated, written blocks
    /// and their `fdatasync` has no metadata (block allocation, file size) to commit: on ext4
    /// that is the difference between a journal commit and a plain data flush per round.
    /// 0 turns it off.
    pub preallocate_bytes: u64,
}

impl Default for JournalConfig {
    fn default() -> JournalConfig {
        JournalConfig {
            file_bytes: 64 << 20,
            preallocate_bytes: 1 << 20,
        }
    }
}

/// Rounds at least this large write enough to amortise the metadata of growing the file, and
/// writing zeros ahead of them would double the journal's disk traffic: they never preallocate.
pub const PREALLOCATE_BELOW_ROUND_BYTES: usize = 256 << 10;

/// The zeros written ahead of the records (the file ends with them until records overwrite
/// them; recovery stops at the first record header that fails its checksum, as it does at a
/// torn write).
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// The shared journal. Cheap to share: logs hold an `Arc` of it.
pub struct Journal {
    dir: PathBuf,
    file_bytes: u64,
    preallocate_bytes: u64,
    /// Records appended since the last write, in append order.
    pending: Mutex<Vec<u8>>,
    /// The file being written; held across writes and syncs, never by appends.
    writer: Mutex<JournalWriter>,
    /// Files replaced by newer ones, waiting for a checkpoint to make them redundant.
    closed: Mutex<Vec<u64>>,
    /// Files found at open; deleted by [`Journal::finish_recovery`].
    recovered: Mutex<Vec<u64>>,
    /// Tails of the logs that write through this journal.
    tails: Mutex<Vec<Weak<Tail>>>,
    /// Set when a write or sync failed: nothing is acknowledged any more.
    poisoned: AtomicBool,
    /// Set when a checkpoint's flush failed: journal files are never deleted again.
    keep_files: AtomicBool,
    /// Serialises checkpoints (the thread's and explicit ones).
    checkpointing: Mutex<()>,
    wake: Condvar,
    wake_flag: Mutex<bool>,
}

struct JournalWriter {
    sequence: u64,
    file: File,
    /// The file's path, for errors (formatted once, not per write).
    path: PathBuf,
    len: u64,
    /// How far the file has been written (records, then zeros preallocated past them).
    written: u64,
    /// The buffer the next write swaps in for `pending`, so that rounds reuse two buffers
    /// instead of allocating (and fragmenting the heap with) a new one each time.
    spare: Vec<u8>,
}

/// A spare journal buffer larger than this is released after its write.
const MAX_SPARE_BYTES: usize = 16 << 20;

/// Records found in the journal at open, to be replayed into their logs.
#[derive(Debug, Default)]
pub struct JournalReplay {
    /// The frames of each log id, in journal order.
    by_log: HashMap<u64, Vec<u8>>,
}

impl JournalReplay {
    /// Removes and returns the frames journaled for `log_id`.
    pub fn take(&mut self, log_id: u64) -> Option<Vec<u8>> {
        self.by_log.remove(&log_id)
    }

    /// Log ids that still have frames to replay.
    pub fn log_ids(&self) -> Vec<u64> {
        self.by_log.keys().copied().collect()
    }

    /// Total bytes of frames still to replay.
    pub fn bytes(&self) -> usize {
        self.by_log.values().map(Vec::len).sum()
    }
}

fn journal_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}{JOURNAL_SUFFIX}"))
}

fn encode_journal_header(sequence: u64) -> [u8; JOURNAL_HEADER_LEN] {
    let mut header = [0u8; JOURNAL_HEADER_LEN];
    header[0..4].copy_from_slice(&JOURNAL_MAGIC);
    header[4..8].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&sequence.to_le_bytes());
    header
}

/// Appends a record header for `body_len` bytes of frames of `log_id`.
pub(crate) fn encode_record_header(out: &mut Vec<u8>, log_id: u64, body_len: usize) {
    let body_len = u32::try_from(body_len).expect("a journal record is below 4 GiB");
    let mut covered = [0u8; RECORD_HEADER_LEN - 4];
    covered[0..4].copy_from_slice(&body_len.to_le_bytes());
    covered[4..12].copy_from_slice(&log_id.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&covered).to_le_bytes());
    out.extend_from_slice(&covered);
}

/// Checks the frames of one record body; the error is a human-readable reason.
pub(crate) fn check_frames(mut body: &[u8]) -> Result<(), String> {
    while !body.is_empty() {
        let header = FrameHeader::parse(body).ok_or("frame header cut short")?;
        let len = usize::try_from(header.frame_len()).map_err(|_| "frame too large")?;
        let payload = body
            .get(FRAME_HEADER_LEN..len)
            .ok_or("frame runs past its record")?;
        if !header.checksum_matches(payload) {
            return Err("frame checksum mismatch".into());
        }
        body = &body[len..];
    }
    Ok(())
}

/// Parses the records of one journal file into `replay`; returns the length of the valid
/// prefix and, if the file does not end there, why.
fn parse_file(bytes: &[u8], sequence: u64, replay: &mut JournalReplay) -> (usize, Option<String>) {
    if bytes.len() < JOURNAL_HEADER_LEN {
        return (0, Some("journal header cut short".into()));
    }
    if bytes[..JOURNAL_HEADER_LEN] != encode_journal_header(sequence) {
        return (0, Some("bad journal header".into()));
    }
    let mut offset = JOURNAL_HEADER_LEN;
    while offset < bytes.len() {
        let mut reader = ByteReader::new(&bytes[offset..]);
        let (Some(crc), Some(body_len), Some(log_id)) = (reader.u32(), reader.u32(), reader.u64())
        else {
            return (offset, Some("record header cut short".into()));
        };
        let covered = &bytes[offset + 4..offset + RECORD_HEADER_LEN];
        if crc32c::crc32c(covered) != crc {
            return (offset, Some("record header checksum mismatch".into()));
        }
        let start = offset + RECORD_HEADER_LEN;
        let Some(body) = bytes.get(start..start + body_len as usize) else {
            return (offset, Some("record cut short".into()));
        };
        if let Err(reason) = check_frames(body) {
            return (offset, Some(reason));
        }
        replay
            .by_log
            .entry(log_id)
            .or_default()
            .extend_from_slice(body);
        offset = start + body.len();
    }
    (offset, None)
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir`: reads what earlier runs left there and
    /// starts a new file for new records. The returned replay must be applied to the logs
    /// (through [`crate::ShardLog::open_journaled`]) before [`Journal::finish_recovery`] is
    /// called; until then the old files are kept, so a crash during recovery loses nothing.
    pub fn open(
        dir: &Path,
        config: JournalConfig,
    ) -> Result<(Arc<Journal>, JournalReplay), LogError> {
        disk::create_dir(dir)?;
        let mut sequences = list_journal_files(dir)?;
        sequences.sort_unstable();
        let mut replay = JournalReplay::default();
        for (i, &sequence) in sequences.iter().enumerate() {
            let path = journal_path(dir, sequence);
            let bytes =
                fs::read(&path).map_err(|e| LogError::io(format!("read {}", path.display()), e))?;
            let (valid, problem) = parse_file(&bytes, sequence, &mut replay);
            let Some(reason) = problem else {
                continue;
            };
            let newest = i + 1 == sequences.len();
            if !newest {
                return Err(LogError::corrupt(path, valid as u64, reason));
            }
            if bytes[valid..].iter().all(|&b| b == 0) {
                // The zeros preallocated past the last record (no torn write).
                tracing::debug!(journal = %path.display(), offset = valid, "the journal ends before its preallocated zeros");
            } else {
                tracing::warn!(
                    journal = %path.display(),
                    offset = valid,
                    reason = %reason,
                    dropped_bytes = bytes.len() - valid,
                    "truncating the journal after its last valid record"
                );
            }
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| LogError::io(format!("open {}", path.display()), e))?;
            file.set_len(valid as u64)
                .and_then(|()| file.sync_data())
                .map_err(|e| LogError::io(format!("truncate {}", path.display()), e))?;
        }
        let sequence = sequences.last().map_or(1, |last| last + 1);
        let file = create_journal_file(dir, sequence)?;
        if !sequences.is_empty() {
            tracing::info!(
                dir = %dir.display(),
                files = sequences.len(),
                logs = replay.by_log.len(),
                bytes = replay.bytes(),
                "journal records to replay"
            );
        }
        let journal = Arc::new(Journal {
            dir: dir.to_path_buf(),
            file_bytes: config.file_bytes.max(JOURNAL_HEADER_LEN as u64 + 1),
            preallocate_bytes: config.preallocate_bytes,
            pending: Mutex::new(Vec::new()),
            writer: Mutex::new(JournalWriter {
                sequence,
                file,
                path: journal_path(dir, sequence),
                len: JOURNAL_HEADER_LEN as u64,
                written: JOURNAL_HEADER_LEN as u64,
                spare: Vec::new(),
            }),
            closed: Mutex::new(Vec::new()),
            recovered: Mutex::new(sequences),
            tails: Mutex::new(Vec::new()),
            poisoned: AtomicBool::new(false),
            keep_files: AtomicBool::new(false),
            checkpointing: Mutex::new(()),
            wake: Condvar::new(),
            wake_flag: Mutex::new(false),
        });
        spawn_checkpointer(&journal);
        Ok((journal, replay))
    }

    /// The directory holding the journal files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str) -> MutexGuard<'a, T> {
        mutex
            .lock()
            .unwrap_or_else(|_| panic!("journal {what} lock poisoned by a panic"))
    }

    pub(crate) fn check_not_poisoned(&self) -> Result<(), LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(LogError::Poisoned);
        }
        Ok(())
    }

    fn poison(&self, err: &LogError) {
        self.poisoned.store(true, Ordering::Release);
        tracing::error!(dir = %self.dir.display(), error = %err, "journal stopped after an i/o failure; no write is acknowledged until restart");
    }

    pub(crate) fn register(&self, tail: &Arc<Tail>) {
        let mut tails = Journal::lock(&self.tails, "tails");
        tails.retain(|t| t.strong_count() > 0);
        tails.push(Arc::downgrade(tail));
    }

    /// Queues `frames` (consecutive frames of one log) as one record. The caller holds the
    /// log's append lock, so each log's records enter the journal in position order.
    pub(crate) fn append(&self, log_id: u64, frames: &[u8]) -> Result<(), LogError> {
        self.check_not_poisoned()?;
        let mut pending = Journal::lock(&self.pending, "pending");
        encode_record_header(&mut pending, log_id, frames.len());
        pending.extend_from_slice(frames);
        Ok(())
    }

    /// Writes the queued records to the journal file without forcing them: they survive a
    /// crash of the process, not of the machine.
    pub fn write(&self) -> Result<(), LogError> {
        let mut writer = Journal::lock(&self.writer, "writer");
        self.write_pending(&mut writer)
    }

    fn write_pending(&self, writer: &mut JournalWriter) -> Result<(), LogError> {
        self.check_not_poisoned()?;
        let mut bytes = std::mem::take(&mut writer.spare);
        std::mem::swap(&mut bytes, &mut *Journal::lock(&self.pending, "pending"));
        if bytes.is_empty() {
            writer.spare = bytes;
            return Ok(());
        }
        if let Err(err) = disk::write_all_at(&writer.file, &writer.path, &bytes, writer.len) {
            // Part of the records may be in the file; nothing after them may follow.
            let err = LogError::io(format!("write journal {}", writer.path.display()), err);
            self.poison(&err);
            return Err(err);
        }
        writer.len += bytes.len() as u64;
        writer.written = writer.written.max(writer.len);
        if bytes.len() < PREALLOCATE_BELOW_ROUND_BYTES {
            self.preallocate(writer);
        }
        bytes.clear();
        if bytes.capacity() <= MAX_SPARE_BYTES {
            writer.spare = bytes;
        }
        Ok(())
    }

    /// Writes zeros past the records when a small round comes near the end of what the file
    /// holds (see [`JournalConfig::preallocate_bytes`]); the round's own sync makes them
    /// durable with the records. A failure only costs the speed-up: the next record write
    /// meets the same problem and stops the journal if it is real.
    fn preallocate(&self, writer: &mut JournalWriter) {
        let wanted = self.preallocate_bytes;
        if wanted == 0 || writer.written >= self.file_bytes {
            return;
        }
        if writer.written - writer.len >= wanted / 2 {
            return;
        }
        let until = (writer.written + wanted).min(self.file_bytes);
        let mut offset = writer.written;
        while offset < until {
            let len = usize::try_from(until - offset)
                .unwrap_or(usize::MAX)
                .min(ZEROS.len());
            if let Err(error) =
                disk::write_all_at(&writer.file, &writer.path, &ZEROS[..len], offset)
            {
                tracing::debug!(%error, journal = %writer.path.display(), "cannot preallocate the journal");
                // Whatever part of the zeros landed is past the records, where zeros belong.
                writer.written = writer.written.max(offset);
                return;
            }
            offset += len as u64;
        }
        writer.written = until;
    }

    /// Makes every record queued before this call durable with one `fdatasync`.
    /// Syncs are serialised; appends continue while one runs.
    pub fn sync(&self) -> Result<(), LogError> {
        let mut writer = Journal::lock(&self.writer, "writer");
        self.write_pending(&mut writer)?;
        if let Err(err) = disk::sync_data(&writer.file, &writer.path) {
            let err = LogError::io(format!("sync journal {}", writer.path.display()), err);
            self.poison(&err);
            return Err(err);
        }
        if writer.len >= self.file_bytes {
            self.roll(&mut writer);
        }
        Ok(())
    }

    /// Starts a new journal file after a sync; the old one waits for the next checkpoint.
    fn roll(&self, writer: &mut JournalWriter) {
        if writer.written > writer.len {
            // A closed file ends at its last record: recovery reads closed files to their end
            // and reports anything else there as corruption. Done before the next file exists,
            // so that until then this one is the newest (whose tail may hold zeros).
            let cut = writer
                .file
                .set_len(writer.len)
                .and_then(|()| disk::sync_data(&writer.file, &writer.path));
            if let Err(error) = cut {
                // The current file keeps taking records; the next sync tries again.
                tracing::error!(%error, journal = %writer.path.display(), "failed to cut the journal's preallocated tail");
                return;
            }
            writer.written = writer.len;
        }
        let sequence = writer.sequence + 1;
        match create_journal_file(&self.dir, sequence) {
            Ok(file) => {
                let spare = std::mem::take(&mut writer.spare);
                let old = std::mem::replace(
                    writer,
                    JournalWriter {
                        sequence,
                        file,
                        path: journal_path(&self.dir, sequence),
                        len: JOURNAL_HEADER_LEN as u64,
                        written: JOURNAL_HEADER_LEN as u64,
                        spare,
                    },
                );
                Journal::lock(&self.closed, "closed").push(old.sequence);
                *Journal::lock(&self.wake_flag, "wake") = true;
                self.wake.notify_one();
                tracing::debug!(dir = %self.dir.display(), sequence, "started a new journal file");
            }
            Err(error) => {
                // The current file keeps taking records; the next sync tries again.
                tracing::error!(%error, "failed to start a new journal file");
            }
        }
    }

    /// Writes every log's tail back to its segment file, flushes the file system, and deletes
    /// the journal files that were closed before it started. Returns how many were deleted.
    pub fn checkpoint(&self) -> Result<usize, LogError> {
        let _only_one = Journal::lock(&self.checkpointing, "checkpoint");
        let closed = Journal::lock(&self.closed, "closed").clone();
        if closed.is_empty() || self.keep_files.load(Ordering::Acquire) {
            return Ok(0);
        }
        // Every record of a closed file entered its log's tail before the file was closed.
        self.write_back_and_sync()?;
        for &sequence in &closed {
            disk::remove_file(&journal_path(&self.dir, sequence))?;
        }
        disk::sync_dir(&self.dir)?;
        Journal::lock(&self.closed, "closed").retain(|s| !closed.contains(s));
        tracing::debug!(dir = %self.dir.display(), deleted = closed.len(), "journal checkpoint");
        Ok(closed.len())
    }

    /// What the checkpoint thread runs when a journal file is closed: every tail written back
    /// (no sync), then a [`Journal::checkpoint`] if the closed files hold at least
    /// [`CHECKPOINT_BYTES_PER_SEGMENT`] per segment file it would sync, or there are
    /// [`MAX_CLOSED_FILES`] of them. Returns how many files were deleted.
    pub fn checkpoint_when_due(&self) -> Result<usize, LogError> {
        let closed = Journal::lock(&self.closed, "closed").len();
        if closed == 0 || self.keep_files.load(Ordering::Acquire) {
            return Ok(0);
        }
        if closed < MAX_CLOSED_FILES {
            let mut dirty = 0u64;
            for tail in self.live_tails() {
                dirty += u64::from(tail.write_back_unsynced()?);
            }
            if (closed as u64).saturating_mul(self.file_bytes)
                < dirty.saturating_mul(CHECKPOINT_BYTES_PER_SEGMENT)
            {
                return Ok(0);
            }
        }
        self.checkpoint()
    }

    /// The tails of the logs still open.
    fn live_tails(&self) -> Vec<Arc<Tail>> {
        Journal::lock(&self.tails, "tails")
            .iter()
            .filter_map(Weak::upgrade)
            .collect()
    }

    /// Writes every tail back and syncs each segment file written since the last call.
    fn write_back_and_sync(&self) -> Result<(), LogError> {
        let mut dirty = Vec::new();
        let mut dirs = std::collections::BTreeSet::new();
        for tail in self.live_tails() {
            let (file, changed) = tail.write_back_for_sync()?;
            dirty.extend(file);
            dirs.extend(changed);
        }
        if let Err(err) = self.sync_files(&dirty) {
            return Err(self.checkpoint_failed(err));
        }
        // New segment files (and new log directories) are durable once their directories are.
        for dir in &dirs {
            match disk::sync_dir(dir) {
                Err(err) if err.is_not_found() => {} // a destroyed log's directory
                Err(err) => return Err(self.checkpoint_failed(err)),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    fn checkpoint_failed(&self, err: LogError) -> LogError {
        // After a failed sync the page cache may have dropped the data: only the journal still
        // holds it, so its files are never deleted again.
        self.keep_files.store(true, Ordering::Release);
        tracing::error!(error = %err, "checkpoint failed; journal files are kept from now on");
        err
    }

    /// Syncs segment files, several at a time.
    fn sync_files(&self, dirty: &[crate::disk::SegmentFile]) -> Result<(), LogError> {
        if dirty.is_empty() {
            return Ok(());
        }
        let chunk = dirty.len().div_ceil(PARALLEL_SYNCS);
        let failure = std::thread::scope(|scope| {
            let handles: Vec<_> = dirty
                .chunks(chunk)
                .map(|group| {
                    scope.spawn(move || {
                        // Opened one at a time: the descriptor cache stays bounded. A descriptor
                        // opened after the write still reports the write's errors (Linux 4.13+).
                        for segment in group {
                            let synced = match segment.get() {
                                // A destroyed log's file: nothing to keep.
                                Err(err) if err.is_not_found() => Ok(()),
                                Err(err) => Err(err),
                                Ok(file) => disk::sync_data(&file, segment.path()).map_err(|err| {
                                    let path = segment.path().display();
                                    LogError::io(format!("sync segment {path}"), err)
                                }),
                            };
                            if let Err(err) = synced {
                                return Some(err);
                            }
                        }
                        None
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().expect("sync threads do not panic"))
                .next()
        });
        failure.map_or(Ok(()), Err)
    }

    /// Ends recovery: once every log has been opened with its replayed records, flushes them
    /// and deletes the journal files found at open.
    pub fn finish_recovery(&self) -> Result<(), LogError> {
        let _only_one = Journal::lock(&self.checkpointing, "checkpoint");
        let recovered = std::mem::take(&mut *Journal::lock(&self.recovered, "recovered"));
        if recovered.is_empty() {
            return Ok(());
        }
        self.write_back_and_sync()?;
        for &sequence in &recovered {
            disk::remove_file(&journal_path(&self.dir, sequence))?;
        }
        disk::sync_dir(&self.dir)?;
        tracing::info!(dir = %self.dir.display(), files = recovered.len(), "journal replay finished");
        Ok(())
    }
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("dir", &self.dir).finish()
    }
}

fn list_journal_files(dir: &Path) -> Result<Vec<u64>, LogError> {
    let entries =
        fs::read_dir(dir).map_err(|e| LogError::io(format!("list {}", dir.display()), e))?;
    let mut sequences = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(format!("list {}", dir.display()), e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(JOURNAL_SUFFIX)) else {
            continue;
        };
        if stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(sequence) = stem.parse() {
                sequences.push(sequence);
            }
        }
    }
    Ok(sequences)
}

/// Creates a journal file holding just its header, synced, with the directory synced.
fn create_journal_file(dir: &Path, sequence: u64) -> Result<File, LogError> {
    let path = journal_path(dir, sequence);
    let create = || -> std::io::Result<File> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        file.write_all(&encode_journal_header(sequence))?;
        file.sync_data()?;
        Ok(file)
    };
    let file = create().map_err(|e| LogError::io(format!("create {}", path.display()), e))?;
    disk::sync_dir(dir)?;
    Ok(file)
}

/// Runs checkpoints when a journal file is closed, until the journal is dropped.
fn spawn_checkpointer(journal: &Arc<Journal>) {
    let weak = Arc::downgrade(journal);
    let spawned = std::thread::Builder::new()
        .name("millrace-checkpoint".into())
        .spawn(move || loop {
            let Some(journal) = weak.upgrade() else {
                return;
            };
            {
                let flag = Journal::lock(&journal.wake_flag, "wake");
                let (mut flag, _) = journal
                    .wake
                    .wait_timeout_while(flag, CHECKPOINT_POLL, |woken| !*woken)
                    .unwrap_or_else(|_| panic!("journal wake lock poisoned by a panic"));
                *flag = false;
            }
            if let Err(error) = journal.checkpoint_when_due() {
                tracing::error!(%error, "journal checkpoint failed");
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the journal checkpoint thread; checkpoints run only when asked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    #[test]
    fn records_parse_back_and_a_torn_one_ends_the_file() {
        let mut file = encode_journal_header(7).to_vec();
        let mut frames = Vec::new();
        encode_frame(&mut frames, 0, 10, b"a");
        encode_frame(&mut frames, 1, 10, b"bc");
        encode_record_header(&mut file, 42, frames.len());
        file.extend_from_slice(&frames);
        let valid = file.len();
        let mut replay = JournalReplay::default();
        assert_eq!(parse_file(&file, 7, &mut replay), (valid, None));
        assert_eq!(replay.take(42), Some(frames.clone()));
        for cut in 1..frames.len() + RECORD_HEADER_LEN {
            let mut torn = file.clone();
            encode_record_header(&mut torn, 43, frames.len());
            torn.extend_from_slice(&frames);
            torn.truncate(valid + cut);
            let mut replay = JournalReplay::default();
            let (len, problem) = parse_file(&torn, 7, &mut replay);
            assert_eq!(len, valid);
            assert!(problem.is_some());
            assert_eq!(replay.log_ids(), vec![42]);
        }
        assert_eq!(parse_file(&file, 8, &mut JournalReplay::default()).0, 0);
    }
}
