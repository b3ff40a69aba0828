//! The unwritten tail of a journaled log: frames that are durable in the journal but not yet
//! written to the active segment file.
//!
//! The tail always ends at the active segment's published length and starts at a frame
//! boundary, at the offset up to which the segment file has been written. Writing it back is a
//! positional write without a sync (the journal already made the frames durable); only then
//! does `start` move forward, so a reader that does not find bytes in the tail finds them in
//! the file.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::disk::{self, SegmentFile};
use crate::error::LogError;

/// A log's tail is written back once it holds this many bytes.
pub(crate) const WRITE_BACK_BYTES: usize = 64 << 10;
/// What a tail allocates when it starts to fill: the write-back size and room for the append
/// that crosses it, below glibc's threshold for serving an allocation with its own `mmap`
/// (128 KiB), so that released tails are reused from the heap instead of mapped afresh.
pub(crate) const TAIL_CAPACITY: usize = WRITE_BACK_BYTES + (16 << 10);

pub(crate) struct Tail {
    inner: Mutex<TailInner>,
}

pub(crate) struct TailInner {
    /// Base position of the segment the tail belongs to; `None` before the first segment.
    pub(crate) base: Option<u64>,
    pub(crate) file: Option<SegmentFile>,
    /// Offset in the segment file of `bytes[0]`.
    pub(crate) start: u64,
    pub(crate) bytes: Vec<u8>,
    /// The file was written since the last checkpoint synced it.
    pub(crate) dirty: bool,
    /// Directories whose entry lists changed (the segment was created unsynced), to be synced
    /// by the next checkpoint.
    pub(crate) dirs: Vec<PathBuf>,
}

impl Tail {
    pub(crate) fn new() -> Tail {
        Tail {
            inner: Mutex::new(TailInner {
                base: None,
                file: None,
                start: 0,
                bytes: Vec::new(),
                dirty: false,
                dirs: Vec::new(),
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, TailInner> {
        self.inner
            .lock()
            .expect("shard log tail lock poisoned by a panic")
    }

    /// Points the (empty) tail at a new active segment whose data ends at `len`.
    pub(crate) fn reset(&self, base: u64, file: SegmentFile, len: u64) {
        let mut inner = self.lock();
        debug_assert!(
            inner.bytes.is_empty(),
            "a tail is written back before a roll"
        );
        inner.base = Some(base);
        inner.file = Some(file);
        inner.start = len;
        inner.bytes = Vec::new();
    }

    /// Bytes not yet written back.
    pub(crate) fn len(&self) -> usize {
        self.lock().bytes.len()
    }

    /// Records directories the next checkpoint must sync.
    pub(crate) fn dirs_to_sync(&self, dirs: Vec<PathBuf>) {
        self.lock().dirs.extend(dirs);
    }

    /// Records that the active segment was written outside the tail (replay).
    pub(crate) fn mark_dirty(&self) {
        self.lock().dirty = true;
    }

    /// Writes the tail back and returns, for the caller to sync, the file if it was written
    /// since the last call and the directories whose entries changed.
    pub(crate) fn write_back_for_sync(
        &self,
    ) -> Result<(Option<SegmentFile>, Vec<PathBuf>), LogError> {
        let mut inner = self.lock();
        inner.write_back(false)?;
        let dirs = std::mem::take(&mut inner.dirs);
        if !std::mem::take(&mut inner.dirty) {
            return Ok((None, dirs));
        }
        Ok((inner.file.clone(), dirs))
    }

    /// Writes the tail to its segment file without syncing and releases its memory; returns
    /// whether the file waits for a checkpoint's sync.
    pub(crate) fn write_back_unsynced(&self) -> Result<bool, LogError> {
        let mut inner = self.lock();
        inner.write_back(false)?;
        Ok(inner.dirty)
    }

    /// Copies `len` bytes at segment `offset` of segment `base` into `out`, if the tail still
    /// holds them; otherwise returns how many bytes from `offset` on are in the file already
    /// (`None`: all of them).
    pub(crate) fn read(&self, base: u64, offset: u64, len: usize, out: &mut Vec<u8>) -> TailRead {
        let inner = self.lock();
        if inner.base != Some(base) || inner.bytes.is_empty() {
            return TailRead::InFile(None);
        }
        if offset < inner.start {
            return TailRead::InFile(Some(inner.start - offset));
        }
        let from = usize::try_from(offset - inner.start).unwrap_or(usize::MAX);
        match inner.bytes.get(from..from.saturating_add(len)) {
            Some(bytes) => {
                out.clear();
                out.extend_from_slice(bytes);
                TailRead::Copied
            }
            None => TailRead::Missing,
        }
    }
}

/// What [`Tail::read`] found.
pub(crate) enum TailRead {
    Copied,
    /// The range starts in the file; `Some(n)`: only its first `n` bytes are there.
    InFile(Option<u64>),
    /// The range runs past the tail: a caller bug or a torn view.
    Missing,
}

impl TailInner {
    /// Writes the bytes to the segment file (no sync). `keep_capacity`: the log is being
    /// appended to, so its buffer is kept for the next appends instead of growing a new one
    /// from nothing (which cost a reallocation and copy per append at 1,000 shards).
    pub(crate) fn write_back(&mut self, keep_capacity: bool) -> Result<(), LogError> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let (Some(file), Some(_)) = (&self.file, self.base) else {
            return Ok(());
        };
        let path = file.path();
        let handle = match file.get() {
            Ok(handle) => handle,
            Err(err) if err.is_not_found() => {
                // The active segment is never deleted while its log lives: the log was
                // destroyed (its stream deleted), so its records are not wanted any more.
                self.bytes = Vec::new();
                self.dirty = false;
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        if let Err(err) = disk::write_all_at(&handle, path, &self.bytes, self.start) {
            return Err(LogError::io(
                format!("write back segment {}", path.display()),
                err,
            ));
        }
        self.start += self.bytes.len() as u64;
        self.dirty = true;
        if keep_capacity {
            self.bytes.clear();
        } else {
            // Release the memory: most shards are idle most of the time.
            self.bytes = Vec::new();
        }
        Ok(())
    }
}
