//! Opening a log directory: validating sealed segments and repairing the active one.
//!
//! Sealed segments are trusted through their `.idx` file when it is valid and consistent with
//! its neighbours; otherwise they are scanned and the index file is rewritten.
//! The last (active) segment is always scanned, and a torn or garbled tail is cut off.

use std::collections::VecDeque;
use std::fs::File;
use std::path::Path;

use crate::disk;
use crate::error::LogError;
use crate::index::{decode_index_file, encode_index_file, IndexBuilder};
use crate::segment::{scan_segment, SegmentMeta, SEGMENT_HEADER_LEN};

/// The state of a log directory after recovery.
pub(crate) struct Recovered {
    /// Segments, oldest first; the last one is the active segment.
    pub(crate) segments: VecDeque<SegmentMeta>,
    /// The active segment; `None` when there is no segment.
    pub(crate) active: Option<disk::SegmentFile>,
    /// Index state of the active segment.
    pub(crate) builder: IndexBuilder,
}

/// Recovers the log stored in `dir`, which may not exist yet. A `journaled` log creates its
/// first segment without syncing it (the journal holds the records), so after a power cut its
/// header may be lost while later bytes survived: that is repaired like a torn creation.
pub(crate) fn recover(
    dir: &Path,
    index_interval: u32,
    journaled: bool,
) -> Result<Recovered, LogError> {
    let mut recovered = Recovered {
        segments: VecDeque::new(),
        active: None,
        builder: IndexBuilder::new(index_interval),
    };
    let Some(listing) = disk::list_dir(dir)? else {
        return Ok(recovered);
    };
    for temporary in &listing.temporary {
        disk::remove_file(temporary)?;
    }
    for &base in listing.indexes.difference(&listing.segments) {
        tracing::info!(dir = %dir.display(), base, "removing index of a deleted segment");
        disk::remove_file(&disk::index_path(dir, base))?;
    }
    let bases: Vec<u64> = listing.segments.iter().copied().collect();
    let Some((&active_base, sealed)) = bases.split_last() else {
        return Ok(recovered);
    };
    let mut rewrote_index = false;
    for (i, &base) in sealed.iter().enumerate() {
        let next_base = bases.get(i + 1).copied().unwrap_or(active_base);
        let has_index = listing.indexes.contains(&base);
        let (meta, rebuilt) = recover_sealed(dir, base, next_base, index_interval, has_index)?;
        rewrote_index |= rebuilt;
        recovered.segments.push_back(meta);
    }
    let first_segment = sealed.is_empty();
    let (meta, file, builder) =
        recover_active(dir, active_base, index_interval, journaled && first_segment)?;
    recovered.segments.push_back(meta);
    recovered.active = Some(disk::cache_segment(
        disk::segment_path(dir, active_base),
        file,
    ));
    recovered.builder = builder;
    if rewrote_index {
        disk::sync_dir(dir)?;
    }
    Ok(recovered)
}

/// Loads a sealed segment that must hold exactly the positions `[base, next_base)`.
/// Returns its metadata and whether its index file was rewritten.
fn recover_sealed(
    dir: &Path,
    base: u64,
    next_base: u64,
    index_interval: u32,
    has_index: bool,
) -> Result<(SegmentMeta, bool), LogError> {
    let path = disk::segment_path(dir, base);
    let file_len = disk::file_len(&path)?;
    if has_index {
        let bytes = disk::read_index_file(dir, base)?;
        let problem = match decode_index_file(&bytes, base) {
            Ok(meta) if meta.end == next_base && meta.len <= file_len => {
                if meta.len < file_len {
                    tracing::warn!(
                        segment = %path.display(),
                        offset = meta.len,
                        "ignoring unexpected bytes after the last record of a sealed segment"
                    );
                }
                return Ok((meta, false));
            }
            Ok(meta) => format!(
                "index covers positions up to {} and {} bytes, expected {next_base} and at most {file_len}",
                meta.end, meta.len
            ),
            Err(reason) => reason,
        };
        tracing::warn!(segment = %path.display(), reason = %problem, "rebuilding invalid segment index");
    } else {
        tracing::warn!(segment = %path.display(), "rebuilding missing segment index");
    }
    let file = disk::open_segment_read(&path)?;
    let outcome = scan_segment(
        &file,
        &path,
        base,
        file_len,
        index_interval,
        Some(next_base),
    )?;
    if outcome.meta.end != next_base {
        let (offset, reason) = match outcome.stop {
            Some(stop) => (stop.offset, stop.reason),
            None => (outcome.meta.len, "segment ends early".to_owned()),
        };
        return Err(LogError::corrupt(
            path,
            offset,
            format!(
                "sealed segment ends at position {} but the next segment starts at {next_base}: {reason}",
                outcome.meta.end
            ),
        ));
    }
    if let Some(stop) = outcome.stop {
        tracing::warn!(
            segment = %path.display(),
            offset = stop.offset,
            reason = %stop.reason,
            "ignoring unexpected bytes after the last record of a sealed segment"
        );
    }
    disk::write_index_file(dir, base, &encode_index_file(&outcome.meta))?;
    Ok((outcome.meta, true))
}

/// Scans the active segment, truncating it after its last valid frame.
fn recover_active(
    dir: &Path,
    base: u64,
    index_interval: u32,
    created_unsynced: bool,
) -> Result<(SegmentMeta, File, IndexBuilder), LogError> {
    let path = disk::segment_path(dir, base);
    let file = disk::open_segment_rw(&path)?;
    let file_len = file
        .metadata()
        .map_err(|err| LogError::io(format!("stat {}", path.display()), err))?
        .len();
    let outcome = scan_segment(&file, &path, base, file_len, index_interval, None)?;
    let Some(stop) = outcome.stop else {
        return Ok((outcome.meta, file, outcome.builder));
    };
    if stop.offset == 0 {
        // The header is written and synced before any frame, so a bad header is only a torn
        // creation when nothing follows it.
        if file_len > SEGMENT_HEADER_LEN && !created_unsynced {
            return Err(LogError::corrupt(path, 0, stop.reason));
        }
        tracing::warn!(
            segment = %path.display(),
            reason = %stop.reason,
            "rewriting the header of a newly created segment"
        );
        disk::write_segment_header(&file, &path, base)?;
        return Ok((
            SegmentMeta::empty(base),
            file,
            IndexBuilder::new(index_interval),
        ));
    }
    tracing::warn!(
        segment = %path.display(),
        offset = stop.offset,
        reason = %stop.reason,
        dropped_bytes = file_len.saturating_sub(stop.offset),
        "truncating the log after its last valid record"
    );
    file.set_len(stop.offset)
        .and_then(|()| file.sync_data())
        .map_err(|err| LogError::io(format!("truncate segment {}", path.display()), err))?;
    Ok((outcome.meta, file, outcome.builder))
}
