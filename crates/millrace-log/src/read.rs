//! Reading records by position and finding positions by timestamp, concurrently with appends.
//!
//! Each lookup captures a [`SegmentView`] under the state lock and then reads the file with
//! positional reads and no lock held. Only bytes published before the view was taken are read.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::disk::{self, SegmentFile};
use crate::error::LogError;
use crate::frame::{FrameHeader, FRAME_HEADER_LEN};
use crate::index::{entry_at_or_before, timestamp_scan, TimestampScan};
use crate::segment::{FrameAt, FrameCursor, SegmentMeta};
use crate::shard_log::{ShardLog, State};
use crate::ReadEntry;

/// Smallest first read of a lookup.
const READ_CHUNK_MIN: usize = 4 << 10;
/// Largest single read.
const READ_CHUNK_MAX: usize = 1 << 20;

/// How often a lookup retries after retention deleted the segment it was about to open.
const MAX_VANISHED_RETRIES: usize = 8;

/// A stretch of one segment to read, captured under the state lock.
struct SegmentView {
    base: u64,
    /// Stop before this position.
    end: u64,
    /// Never read at or beyond this byte offset.
    limit: u64,
    /// The indexed frame to start scanning from.
    scan_position: u64,
    scan_offset: u64,
    /// The file, if it is the active segment (sealed ones are found by name).
    active: Option<SegmentFile>,
}

impl State {
    /// Views the segment holding `position` (at least `start_position()`), reading no
    /// further than position `end`.
    fn view_for_position(
        &self,
        dir: &Path,
        position: u64,
        end: u64,
    ) -> Result<SegmentView, LogError> {
        let after = self
            .segments
            .partition_point(|segment| segment.base <= position);
        let index = after.saturating_sub(1);
        let Some(segment) = self.segments.get(index) else {
            return Err(LogError::corrupt(
                dir,
                0,
                format!("no segment holds position {position}"),
            ));
        };
        let Some(entry) = entry_at_or_before(&segment.index, position - segment.base) else {
            let path = disk::segment_path(dir, segment.base);
            return Err(LogError::corrupt(
                path,
                0,
                format!("no index entry for position {position}"),
            ));
        };
        Ok(SegmentView {
            base: segment.base,
            end: segment.end.min(end),
            limit: segment.len,
            scan_position: segment.base + u64::from(entry.rel_position),
            scan_offset: u64::from(entry.offset),
            active: self.active_file_of(index),
        })
    }

    fn active_file_of(&self, index: usize) -> Option<SegmentFile> {
        if index + 1 == self.segments.len() {
            self.active.clone()
        } else {
            None
        }
    }
}

/// Index of the first of `segments[..count]` whose newest record is at least `timestamp_ms`.
fn first_segment_not_older(
    segments: &VecDeque<SegmentMeta>,
    count: usize,
    timestamp_ms: u64,
) -> usize {
    let (mut low, mut high) = (0, count);
    while low < high {
        let mid = low + (high - low) / 2;
        if segments[mid].last_timestamp_ms < timestamp_ms {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}

/// Result of a lookup that may have lost a race with retention.
enum Attempt<T> {
    Done(T),
    SegmentVanished,
}

impl ShardLog {
    /// Reads records with positions in `[from, until)`: at most `max_records`, and no more
    /// payload bytes than `max_bytes` unless that would return nothing (one record is always
    /// returned when available and `max_records > 0`). Reading starts at `start_position()`
    /// when `from` is older. A frame failing its checksum is reported as
    /// [`LogError::Corrupt`].
    pub fn read(
        &self,
        from: u64,
        until: u64,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<ReadEntry>, LogError> {
        let mut out = Vec::with_capacity(max_records.min(256));
        if max_records == 0 {
            return Ok(out);
        }
        // Enough for the scan from the index entry plus a small first batch; later reads grow.
        let chunk = (self.index_interval as usize)
            .saturating_add(max_bytes.min(READ_CHUNK_MIN))
            .saturating_add(FRAME_HEADER_LEN)
            .clamp(READ_CHUNK_MIN, READ_CHUNK_MAX);
        let mut budget = ReadBudget {
            max_records,
            max_bytes,
            payload_bytes: 0,
        };
        let mut position = from;
        let mut vanished = 0;
        loop {
            let view = {
                let state = self.read_state();
                let start = state.start_position();
                if position < start {
                    if !out.is_empty() {
                        // Retention removed records we had not read yet; keep the batch gap-free.
                        break;
                    }
                    position = start;
                }
                let end = state.next_position.min(until);
                if position >= end {
                    break;
                }
                state.view_for_position(&self.dir, position, end)?
            };
            match self.read_view(&view, position, chunk, &mut budget, &mut out)? {
                Attempt::Done(true) => break,
                Attempt::Done(false) => position = view.end,
                Attempt::SegmentVanished if vanished < MAX_VANISHED_RETRIES => vanished += 1,
                Attempt::SegmentVanished => return Err(self.vanished_error(view.base)),
            }
        }
        Ok(out)
    }

    /// Reads the records of one view from `position` on; `Done(true)` when a limit was hit.
    fn read_view(
        &self,
        view: &SegmentView,
        position: u64,
        chunk: usize,
        budget: &mut ReadBudget,
        out: &mut Vec<ReadEntry>,
    ) -> Result<Attempt<bool>, LogError> {
        let Some(file) = self.view_file(view)? else {
            return Ok(Attempt::SegmentVanished);
        };
        let path = disk::segment_path(&self.dir, view.base);
        let mut cursor = FrameCursor::new(&file, &path, view.limit, chunk, READ_CHUNK_MAX)
            .with_tail(&self.tail, view.base);
        let (mut expected, mut offset) = (view.scan_position, view.scan_offset);
        while expected < view.end {
            let header = expect_frame(&mut cursor, &path, offset, expected)?;
            if expected >= position {
                let len = header.payload_len as usize;
                if !out.is_empty() && budget.payload_bytes.saturating_add(len) > budget.max_bytes {
                    return Ok(Attempt::Done(true));
                }
                let payload = cursor.payload(offset, &header)?;
                if !header.checksum_matches(payload) {
                    return Err(LogError::corrupt(path, offset, "frame checksum mismatch"));
                }
                out.push(ReadEntry {
                    position: expected,
                    timestamp_ms: header.timestamp_ms,
                    payload: payload.to_vec(),
                });
                budget.payload_bytes = budget.payload_bytes.saturating_add(len);
                if out.len() >= budget.max_records {
                    return Ok(Attempt::Done(true));
                }
            }
            offset += header.frame_len();
            expected += 1;
        }
        Ok(Attempt::Done(false))
    }

    /// First position whose timestamp is at least `ts_ms`, or `next_position()` if none.
    /// Uses the segment timestamps and the sparse index; scans at most about one index
    /// interval of frames.
    pub fn position_at_timestamp(&self, ts_ms: u64) -> Result<u64, LogError> {
        let mut vanished = 0;
        loop {
            let view = {
                let state = self.read_state();
                let segments = &state.segments;
                let empty_tail = segments.back().is_some_and(SegmentMeta::is_empty);
                let count = segments.len() - usize::from(empty_tail);
                let index = first_segment_not_older(segments, count, ts_ms);
                let Some(segment) = segments.get(index).filter(|_| index < count) else {
                    return Ok(state.next_position);
                };
                let (from, until) = match timestamp_scan(&segment.index, ts_ms) {
                    TimestampScan::FirstFrame => return Ok(segment.base),
                    TimestampScan::From { from, until } => (from, until),
                };
                SegmentView {
                    base: segment.base,
                    end: segment.end,
                    limit: until.map_or(segment.len, u64::from).min(segment.len),
                    scan_position: segment.base + u64::from(from.rel_position),
                    scan_offset: u64::from(from.offset),
                    active: state.active_file_of(index),
                }
            };
            match self.scan_for_timestamp(&view, ts_ms)? {
                Attempt::Done(position) => return Ok(position),
                Attempt::SegmentVanished if vanished < MAX_VANISHED_RETRIES => vanished += 1,
                Attempt::SegmentVanished => return Err(self.vanished_error(view.base)),
            }
        }
    }

    fn scan_for_timestamp(&self, view: &SegmentView, ts_ms: u64) -> Result<Attempt<u64>, LogError> {
        let Some(file) = self.view_file(view)? else {
            return Ok(Attempt::SegmentVanished);
        };
        let path = disk::segment_path(&self.dir, view.base);
        let chunk = (self.index_interval as usize).clamp(READ_CHUNK_MIN, READ_CHUNK_MAX);
        let mut cursor = FrameCursor::new(&file, &path, view.limit, chunk, READ_CHUNK_MAX)
            .with_tail(&self.tail, view.base);
        let (mut expected, mut offset) = (view.scan_position, view.scan_offset);
        while expected < view.end && offset < view.limit {
            let header = expect_frame(&mut cursor, &path, offset, expected)?;
            if header.timestamp_ms >= ts_ms {
                break;
            }
            offset += header.frame_len();
            expected += 1;
        }
        // Stopping at the next index entry means that entry is the first match.
        Ok(Attempt::Done(expected))
    }

    /// The file of a view, or `None` if retention deleted the segment meanwhile.
    fn view_file(&self, view: &SegmentView) -> Result<Option<Arc<File>>, LogError> {
        let segment = match &view.active {
            Some(active) => active.clone(),
            None => SegmentFile::new(disk::segment_path(&self.dir, view.base)),
        };
        match segment.get() {
            Ok(file) => {
                if self.read_state().start_position() > view.base {
                    // Retention is deleting the segment: do not keep its descriptor.
                    disk::forget_file(segment.path());
                }
                Ok(Some(file))
            }
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn vanished_error(&self, base: u64) -> LogError {
        let path: PathBuf = disk::segment_path(&self.dir, base);
        LogError::io(
            format!("open segment {}", path.display()),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "segment deleted while reading",
            ),
        )
    }
}

/// Limits of one `read` call and what has been used of them.
struct ReadBudget {
    max_records: usize,
    max_bytes: usize,
    payload_bytes: usize,
}

/// Reads the frame header at `offset`, which must hold the record at `position`.
fn expect_frame(
    cursor: &mut FrameCursor<'_>,
    path: &Path,
    offset: u64,
    position: u64,
) -> Result<FrameHeader, LogError> {
    let header = match cursor.frame_at(offset)? {
        FrameAt::Frame(header) => header,
        FrameAt::End => {
            let reason = format!("data ends before position {position}");
            return Err(LogError::corrupt(path, offset, reason));
        }
        FrameAt::Invalid(reason) => return Err(LogError::corrupt(path, offset, reason)),
    };
    if header.position != position {
        let reason = format!(
            "frame has position {}, expected {position}",
            header.position
        );
        return Err(LogError::corrupt(path, offset, reason));
    }
    Ok(header)
}
