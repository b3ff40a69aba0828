//! The [`ShardLog`] handle: opening, appending, syncing, rolling, retention and deletion.
//!
//! Locking: `writer` serialises appends and rolls; `state` (a read-write lock) publishes what
//! is on disk. An append writes its frames while holding only `writer`, then takes `state`
//! briefly to publish them, so readers and `sync` never wait for a write to finish.

use crate::disk::SegmentFile;
use std::collections::VecDeque;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::disk;
use crate::error::LogError;
use crate::frame::{encode_frame, frame_len, FrameHeader, FRAME_HEADER_LEN, MAX_PAYLOAD_LEN};
use crate::index::{encode_index_file, IndexBuilder};
use crate::journal::Journal;
use crate::recovery::recover;
use crate::segment::SegmentMeta;
use crate::tail::{Tail, TAIL_CAPACITY, WRITE_BACK_BYTES};
use crate::{Entry, LogConfig};

/// Largest segment the index can address (its offsets are 32-bit).
const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;

/// A durable append-only log of one shard, stored in its own directory.
///
/// All methods take `&self`; appends, reads, syncs and retention may run from many threads.
pub struct ShardLog {
    pub(crate) dir: PathBuf,
    segment_bytes: u64,
    pub(crate) index_interval: u32,
    state: RwLock<State>,
    writer: Mutex<Writer>,
    /// Serialises retention runs, which delete segments without holding `writer`.
    trim: Mutex<()>,
    /// Set when a failed write, roll or sync left the files in an unknown state.
    poisoned: AtomicBool,
    /// Frames not yet written to the active segment (journaled logs only; empty otherwise).
    pub(crate) tail: Arc<Tail>,
    /// The shared journal this log writes through, and its id there.
    journal: Option<(Arc<Journal>, u64)>,
}

/// What readers may see: the published extent of every segment.
pub(crate) struct State {
    /// Segments, oldest first. All but the last are sealed and non-empty.
    pub(crate) segments: VecDeque<SegmentMeta>,
    /// The last segment's file; `Some` exactly when `segments` is non-empty.
    pub(crate) active: Option<SegmentFile>,
    pub(crate) next_position: u64,
}

impl State {
    pub(crate) fn start_position(&self) -> u64 {
        self.segments
            .front()
            .map_or(self.next_position, |segment| segment.base)
    }

    fn last_timestamp(&self) -> Option<u64> {
        let newest = self
            .segments
            .iter()
            .rev()
            .find(|segment| !segment.is_empty());
        newest.map(|segment| segment.last_timestamp_ms)
    }
}

/// State only the appending thread touches.
struct Writer {
    /// Index state of the active segment.
    builder: IndexBuilder,
}

impl ShardLog {
    /// Opens the log in `dir`, recovering it if it exists.
    /// A new log gives its first record position 0.
    pub fn open(dir: &Path, config: LogConfig) -> Result<ShardLog, LogError> {
        ShardLog::open_with_first_position(dir, config, 0)
    }

    /// Opens the log in `dir`; if the log holds no segment yet, the first record appended
    /// gets `first_position`. The directory itself is only created by the first append.
    pub fn open_with_first_position(
        dir: &Path,
        config: LogConfig,
        first_position: u64,
    ) -> Result<ShardLog, LogError> {
        ShardLog::open_inner(dir, config, first_position, None)
    }

    /// Opens the log in `dir` as a journaled log: appends go to `journal` under `log_id` and
    /// to memory, and reach the segment files later in large writes; [`ShardLog::sync`] syncs
    /// the journal. `replay` holds this log's frames found in the journal at open
    /// ([`crate::JournalReplay::take`]); those the segment files lack are written back first.
    pub fn open_journaled(
        dir: &Path,
        config: LogConfig,
        journal: &Arc<Journal>,
        log_id: u64,
        replay: Option<&[u8]>,
    ) -> Result<ShardLog, LogError> {
        let log = ShardLog::open_inner(dir, config, 0, Some((journal.clone(), log_id)))?;
        let replayed = match replay {
            Some(frames) => log.replay(frames)?,
            None => false,
        };
        log.reset_tail();
        if replayed {
            // Written directly; the journal's next checkpoint or `finish_recovery` syncs it.
            log.tail.mark_dirty();
        }
        journal.register(&log.tail);
        Ok(log)
    }

    fn open_inner(
        dir: &Path,
        config: LogConfig,
        first_position: u64,
        journal: Option<(Arc<Journal>, u64)>,
    ) -> Result<ShardLog, LogError> {
        let recovered = recover(dir, config.index_interval_bytes, journal.is_some())?;
        let next_position = recovered
            .segments
            .back()
            .map_or(first_position, |segment| segment.end);
        let state = State {
            segments: recovered.segments,
            active: recovered.active,
            next_position,
        };
        tracing::debug!(
            dir = %dir.display(),
            segments = state.segments.len(),
            start_position = state.start_position(),
            next_position,
            "opened shard log"
        );
        Ok(ShardLog {
            dir: dir.to_path_buf(),
            segment_bytes: config.segment_bytes.min(MAX_SEGMENT_BYTES),
            index_interval: config.index_interval_bytes,
            state: RwLock::new(state),
            writer: Mutex::new(Writer {
                builder: recovered.builder,
            }),
            trim: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            tail: Arc::new(Tail::new()),
            journal,
        })
    }

    /// Points the tail at the end of the active segment (which must be fully written).
    fn reset_tail(&self) {
        let active = {
            let state = self.read_state();
            state
                .active
                .clone()
                .zip(state.segments.back().map(|s| (s.base, s.len)))
        };
        if let Some((file, (base, len))) = active {
            self.tail.reset(base, file, len);
        }
    }

    /// Writes the journaled frames that the segment files lack (recovery after a crash).
    /// Returns whether anything was written.
    fn replay(&self, mut frames: &[u8]) -> Result<bool, LogError> {
        let mut entries = Vec::new();
        let mut expected = self.next_position();
        let skipped_from = expected;
        while !frames.is_empty() {
            let header = FrameHeader::parse(frames).expect("the journal checked its frames");
            let len = usize::try_from(header.frame_len()).expect("checked by the journal");
            let payload = &frames[FRAME_HEADER_LEN..len];
            frames = &frames[len..];
            if header.position < expected {
                continue;
            }
            if header.position > expected {
                return Err(LogError::corrupt(
                    &self.dir,
                    0,
                    format!(
                        "the journal continues at position {} but the log ends at {expected}",
                        header.position
                    ),
                ));
            }
            entries.push(Entry {
                timestamp_ms: header.timestamp_ms,
                payload,
            });
            expected += 1;
        }
        if entries.is_empty() {
            return Ok(false);
        }
        self.append_entries(&entries, false)?;
        tracing::info!(
            dir = %self.dir.display(),
            from = skipped_from,
            records = entries.len(),
            "replayed records from the journal"
        );
        Ok(true)
    }

    pub(crate) fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .expect("shard log state lock poisoned by a panic")
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .expect("shard log state lock poisoned by a panic")
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .expect("shard log writer lock poisoned by a panic")
    }

    /// Appends `entries` without syncing and returns the position of the first one.
    ///
    /// Timestamps must not decrease, within the batch and relative to earlier appends.
    /// On error, a prefix of the batch may have been appended (positions are not reused).
    pub fn append(&self, entries: &[Entry<'_>]) -> Result<u64, LogError> {
        self.append_entries(entries, self.journal.is_some())
    }

    fn append_entries(&self, entries: &[Entry<'_>], journaled: bool) -> Result<u64, LogError> {
        if let Some(entry) = entries
            .iter()
            .find(|e| e.payload.len() as u64 > MAX_PAYLOAD_LEN)
        {
            return Err(LogError::PayloadTooLarge {
                len: entry.payload.len(),
                limit: MAX_PAYLOAD_LEN,
            });
        }
        let mut writer = self.lock_writer();
        self.check_not_poisoned()?;
        let first_position = self.read_state().next_position;
        debug_assert!(
            timestamps_non_decreasing(self.last_timestamp(), entries),
            "append timestamps must not decrease"
        );
        if entries.is_empty() {
            return Ok(first_position);
        }
        if self.read_state().active.is_none() {
            self.create_first_segment()?;
        }
        let mut rest = entries;
        loop {
            let written = self.write_to_active(&mut writer, rest, journaled)?;
            rest = rest.get(written..).unwrap_or_default();
            if rest.is_empty() {
                return Ok(first_position);
            }
            self.roll_or_poison(&mut writer)?;
        }
    }

    fn check_not_poisoned(&self) -> Result<(), LogError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(LogError::Poisoned);
        }
        Ok(())
    }

    /// Stops appends and syncs after a failure that leaves the files in an unknown state.
    /// Appending past a half-done roll, or retrying a failed fsync, could lose acknowledged
    /// records; recovery on the next open sorts the files out instead.
    fn poison(&self, err: &LogError) {
        self.poisoned.store(true, Ordering::Release);
        tracing::error!(dir = %self.dir.display(), error = %err, "shard log stopped after an i/o failure");
    }

    /// Writes as many of `entries` as fit into the active segment (at least one if it is
    /// empty) and publishes them. Returns how many were written.
    fn write_to_active(
        &self,
        writer: &mut Writer,
        entries: &[Entry<'_>],
        journaled: bool,
    ) -> Result<usize, LogError> {
        let (file, base, start_len, start_end) = {
            let state = self.read_state();
            assert!(state.active.is_some(), "the first append created a segment");
            // A journaled log writes through its tail, which holds the file itself.
            let active = (!journaled).then(|| state.active.clone()).flatten();
            let segment = state.segments.back().expect("an active file has a segment");
            (active, segment.base, segment.len, segment.end)
        };
        let mut builder = writer.builder.clone();
        let mut new_index = Vec::new();
        let room = self.segment_bytes.saturating_sub(start_len);
        let wanted: u64 = entries.iter().map(|e| frame_len(e.payload.len())).sum();
        let wanted = usize::try_from(wanted.min(room)).unwrap_or(0);
        // Journaled: frames are encoded straight into the tail, under its lock.
        let mut tail = journaled.then(|| self.tail.lock());
        let mut local = Vec::new();
        let buf = match &mut tail {
            Some(tail) => &mut tail.bytes,
            None => &mut local,
        };
        if journaled && !buf.is_empty() && buf.capacity() - buf.len() < wanted {
            // A tail fills up to the write-back size a few frames at a time when a request
            // spreads over many shards: growing it by doubling cost a reallocation and copy
            // every few appends at 1,000 shards (5 % of samples). The second append takes
            // all the room at once; the first takes only its own, for the shards that get
            // one record and then stay idle.
            buf.reserve_exact((buf.len() + wanted).max(TAIL_CAPACITY) - buf.len());
        } else {
            buf.reserve(wanted);
        }
        let buf_start = buf.len();
        let (mut len, mut end) = (start_len, start_end);
        for entry in entries {
            let frame_len = frame_len(entry.payload.len());
            if end > base && len + frame_len > self.segment_bytes {
                break;
            }
            let rel_position = u32::try_from(end - base).expect("a segment has < 2^32 records");
            let offset = u32::try_from(len).expect("rolling keeps frame offsets below 4 GiB");
            new_index.extend(builder.observe(rel_position, offset, entry.timestamp_ms, frame_len));
            encode_frame(buf, end, entry.timestamp_ms, entry.payload);
            len += frame_len;
            end += 1;
        }
        let written = usize::try_from(end - start_end).expect("bounded by entries.len()");
        if written == 0 {
            return Ok(0);
        }
        if let (Some(tail), Some((journal, log_id))) = (&mut tail, &self.journal) {
            if let Err(err) = journal.append(*log_id, &tail.bytes[buf_start..]) {
                tail.bytes.truncate(buf_start);
                return Err(err);
            }
            if tail.bytes.len() >= WRITE_BACK_BYTES {
                // The frames are in the journal already, so this append stands; the log stops
                // taking more until it is reopened and replays them.
                if let Err(err) = tail.write_back(true) {
                    self.poison(&err);
                }
            }
        } else {
            let file = file.expect("an unjournaled append holds its file").get()?;
            let path = disk::segment_path(&self.dir, base);
            if let Err(err) = disk::write_all_at(&file, &path, &local, start_len) {
                let err = LogError::io(format!("write segment {}", path.display()), err);
                // A partial write must not stay behind the published length.
                if file.set_len(start_len).is_err() {
                    self.poison(&err);
                }
                return Err(err);
            }
        }
        // The tail holds the frames before they are published (lock order: tail, then state).
        drop(tail);
        let mut state = self.write_state();
        let segment = state
            .segments
            .back_mut()
            .expect("an active file has a segment");
        if segment.is_empty() {
            segment.first_timestamp_ms = entries[0].timestamp_ms;
        }
        segment.last_timestamp_ms = entries[written - 1].timestamp_ms;
        segment.end = end;
        segment.len = len;
        segment.index.extend(new_index);
        state.next_position = end;
        writer.builder = builder;
        Ok(written)
    }

    /// Creates the directory and the first segment of a log that has none.
    /// A journaled log syncs nothing here: its journal holds every record until a checkpoint
    /// has synced the segment and the directories whose entries changed (no `fsync` on the
    /// first write to a shard).
    fn create_first_segment(&self) -> Result<(), LogError> {
        let base = self.read_state().next_position;
        let file = if self.journal.is_some() {
            let mut changed = disk::create_dir_unsynced(&self.dir)?;
            let file = disk::create_segment_unsynced(&self.dir, base)?;
            changed.push(self.dir.clone());
            self.tail.dirs_to_sync(changed);
            file
        } else {
            disk::create_dir(&self.dir)?;
            let file = disk::create_segment(&self.dir, base)?;
            disk::sync_dir(&self.dir)?;
            file
        };
        self.tail
            .reset(base, file.clone(), SegmentMeta::empty(base).len);
        self.tail.mark_dirty();
        let mut state = self.write_state();
        state.segments.push_back(SegmentMeta::empty(base));
        state.active = Some(file);
        tracing::debug!(dir = %self.dir.display(), base, "created first segment");
        Ok(())
    }

    fn roll_or_poison(&self, writer: &mut Writer) -> Result<(), LogError> {
        self.roll(writer).inspect_err(|err| self.poison(err))
    }

    /// Seals the active segment, if it holds records, and starts a new empty one.
    fn roll(&self, writer: &mut Writer) -> Result<(), LogError> {
        let (file, base, index_file, next_position) = {
            let state = self.read_state();
            let (Some(file), Some(segment)) = (&state.active, state.segments.back()) else {
                return Ok(());
            };
            if segment.is_empty() {
                return Ok(());
            }
            let index_file = encode_index_file(segment);
            (file.clone(), segment.base, index_file, state.next_position)
        };
        let path = disk::segment_path(&self.dir, base);
        self.tail.write_back_unsynced()?;
        disk::sync_data(&*file.get()?, &path)
            .map_err(|err| LogError::io(format!("sync segment {}", path.display()), err))?;
        disk::write_index_file(&self.dir, base, &index_file)?;
        let new_file = disk::create_segment(&self.dir, next_position)?;
        disk::sync_dir(&self.dir)?;
        self.tail.reset(
            next_position,
            new_file.clone(),
            SegmentMeta::empty(next_position).len,
        );
        let mut state = self.write_state();
        state.segments.push_back(SegmentMeta::empty(next_position));
        state.active = Some(new_file);
        writer.builder = IndexBuilder::new(self.index_interval);
        tracing::debug!(dir = %self.dir.display(), sealed = base, next_position, "rolled segment");
        Ok(())
    }

    /// Makes every record appended before this call durable and returns the position up to
    /// which (exclusive) the log is durable. Appends continue while the sync runs.
    pub fn sync(&self) -> Result<u64, LogError> {
        self.check_not_poisoned()?;
        let (file, position) = {
            let state = self.read_state();
            (state.active.clone(), state.next_position)
        };
        if let Some((journal, _)) = &self.journal {
            // Everything below `position` entered the journal before it was published.
            journal.sync()?;
            return Ok(position);
        }
        // Segments before the active one were synced when they were sealed.
        if let Some(file) = file {
            let synced = file.get().and_then(|handle| {
                disk::sync_data(&handle, file.path())
                    .map_err(|err| LogError::io(format!("sync log {}", self.dir.display()), err))
            });
            if let Err(err) = synced {
                self.poison(&err);
                return Err(err);
            }
        }
        Ok(position)
    }

    /// Whether appending about `bytes` of payload would, as things stand, only copy memory:
    /// the log is journaled, its active segment exists and has room, and its tail would not
    /// reach the write-back size. A hint for callers that avoid blocking (races make it wrong
    /// now and then, which costs time, never correctness).
    pub fn append_stays_in_memory(&self, bytes: usize) -> bool {
        if self.journal.is_none() || self.poisoned.load(Ordering::Relaxed) {
            return false;
        }
        let room = {
            let state = self.read_state();
            match (&state.active, state.segments.back()) {
                (Some(_), Some(segment)) => self.segment_bytes.saturating_sub(segment.len),
                _ => return false,
            }
        };
        let bytes = bytes as u64 * 2 + 1024;
        bytes < room && self.tail.len() as u64 + bytes < WRITE_BACK_BYTES as u64
    }

    /// Position the next appended record gets.
    pub fn next_position(&self) -> u64 {
        self.read_state().next_position
    }

    /// Oldest position still stored (`== next_position()` when the log is empty).
    pub fn start_position(&self) -> u64 {
        self.read_state().start_position()
    }

    /// Timestamp of the newest stored record, if any.
    pub fn last_timestamp(&self) -> Option<u64> {
        self.read_state().last_timestamp()
    }

    /// Retention: deletes, oldest first, every whole segment whose newest record is older
    /// than `ts_ms`, and returns how many were deleted. When even the active segment's newest
    /// record is older, it is sealed first so that it can go too.
    pub fn trim_before_timestamp(&self, ts_ms: u64) -> Result<usize, LogError> {
        let _trim = self
            .trim
            .lock()
            .expect("shard log trim lock poisoned by a panic");
        {
            let mut writer = self.lock_writer();
            let seal_active =
                self.read_state().segments.back().is_some_and(|segment| {
                    !segment.is_empty() && segment.last_timestamp_ms < ts_ms
                });
            if seal_active {
                self.check_not_poisoned()?;
                self.roll_or_poison(&mut writer)?;
            }
        }
        let mut deleted = 0;
        loop {
            let base = {
                let mut state = self.write_state();
                let sealed_count = state.segments.len().saturating_sub(1);
                match state.segments.front() {
                    Some(oldest) if sealed_count > 0 && oldest.last_timestamp_ms < ts_ms => {
                        let base = oldest.base;
                        state.segments.pop_front();
                        base
                    }
                    _ => break,
                }
            };
            // Oldest first, one directory sync each: a crash never leaves a gap.
            disk::remove_file(&disk::segment_path(&self.dir, base))?;
            disk::remove_file(&disk::index_path(&self.dir, base))?;
            disk::sync_dir(&self.dir)?;
            deleted += 1;
        }
        if deleted > 0 {
            tracing::debug!(
                dir = %self.dir.display(),
                deleted,
                start_position = self.start_position(),
                "trimmed shard log"
            );
        }
        Ok(deleted)
    }

    /// Deletes the log and its directory.
    pub fn destroy(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        disk::remove_dir(&dir)?;
        tracing::debug!(dir = %dir.display(), "destroyed shard log");
        Ok(())
    }
}

/// Whether `entries` keep timestamps in order after a record with timestamp `last`.
fn timestamps_non_decreasing(last: Option<u64>, entries: &[Entry<'_>]) -> bool {
    let mut previous = last.unwrap_or(0);
    entries.iter().all(|entry| {
        let ordered = previous <= entry.timestamp_ms;
        previous = entry.timestamp_ms;
        ordered
    })
}

impl fmt::Debug for ShardLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read_state();
        f.debug_struct("ShardLog")
            .field("dir", &self.dir)
            .field("segments", &state.segments.len())
            .field("start_position", &state.start_position())
            .field("next_position", &state.next_position)
            .finish()
    }
}
