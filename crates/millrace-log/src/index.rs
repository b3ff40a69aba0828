//! The sparse per-segment index and its on-disk `.idx` file format.
//!
//! Every segment keeps one [`IndexEntry`] for its first frame and then one for the first frame
//! that starts at least `index_interval_bytes` after the previous entry.
//! A lookup by position or by timestamp therefore reads at most about one interval of frames.
//!
//! Layout of an `.idx` file (little-endian), written when a segment is sealed:
//!
//! | offset | size   | field                                                  |
//! | ------ | ------ | ------------------------------------------------------ |
//! | 0      | 4      | magic `MRLI`                                           |
//! | 4      | 4      | format version (1)                                     |
//! | 8      | 8      | base position of the segment                           |
//! | 16     | 8      | end position (one past the last record)                |
//! | 24     | 8      | length of the valid segment data in bytes              |
//! | 32     | 8      | timestamp of the first record                          |
//! | 40     | 8      | timestamp of the last record                           |
//! | 48     | 4      | number of entries `n`                                  |
//! | 52     | 16 * n | entries: relative position u32, offset u32, timestamp u64 |
//! | end-4  | 4      | CRC32C of every byte before it                         |

use crate::byte_reader::ByteReader;
use crate::frame::FRAME_HEADER_LEN;
use crate::segment::{SegmentMeta, SEGMENT_HEADER_LEN};

const INDEX_MAGIC: [u8; 4] = *b"MRLI";
const INDEX_VERSION: u32 = 1;
const INDEX_HEADER_LEN: usize = 52;
const INDEX_ENTRY_LEN: usize = 16;
const INDEX_CRC_LEN: usize = 4;

/// One sparse index point: where a frame starts and when it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Position of the frame minus the segment's base position.
    pub(crate) rel_position: u32,
    /// Byte offset of the frame in the segment file.
    pub(crate) offset: u32,
    pub(crate) timestamp_ms: u64,
}

/// Decides which frames of a segment get an index entry, in append order.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    interval: u64,
    /// Frame bytes since the last entry; `None` while the segment has no frame yet.
    bytes_since_entry: Option<u64>,
}

impl IndexBuilder {
    /// A builder for a segment without frames.
    pub(crate) fn new(interval: u32) -> IndexBuilder {
        IndexBuilder {
            interval: u64::from(interval),
            bytes_since_entry: None,
        }
    }

    /// Records one frame and returns the index entry to store for it, if it gets one.
    pub(crate) fn observe(
        &mut self,
        rel_position: u32,
        offset: u32,
        timestamp_ms: u64,
        frame_len: u64,
    ) -> Option<IndexEntry> {
        match self.bytes_since_entry {
            Some(since) if since < self.interval => {
                self.bytes_since_entry = Some(since.saturating_add(frame_len));
                None
            }
            _ => {
                self.bytes_since_entry = Some(frame_len);
                Some(IndexEntry {
                    rel_position,
                    offset,
                    timestamp_ms,
                })
            }
        }
    }
}

/// The last entry whose relative position is at most `rel_position`.
pub(crate) fn entry_at_or_before(entries: &[IndexEntry], rel_position: u64) -> Option<IndexEntry> {
    let after = entries.partition_point(|entry| u64::from(entry.rel_position) <= rel_position);
    entries.get(after.checked_sub(1)?).copied()
}

/// Where to look for the first frame with a timestamp of at least some value in one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimestampScan {
    /// The segment's first frame already qualifies.
    FirstFrame,
    /// Scan frames starting at `from`, stopping at byte offset `until` (or the segment end).
    From {
        from: IndexEntry,
        until: Option<u32>,
    },
}

/// Plans the lookup of the first frame with timestamp `>= timestamp_ms` in a segment.
pub(crate) fn timestamp_scan(entries: &[IndexEntry], timestamp_ms: u64) -> TimestampScan {
    let first_not_older = entries.partition_point(|entry| entry.timestamp_ms < timestamp_ms);
    let Some(from) = first_not_older.checked_sub(1).and_then(|i| entries.get(i)) else {
        return TimestampScan::FirstFrame;
    };
    TimestampScan::From {
        from: *from,
        until: entries.get(first_not_older).map(|entry| entry.offset),
    }
}

/// Encodes the `.idx` file of a sealed segment.
pub(crate) fn encode_index_file(meta: &SegmentMeta) -> Vec<u8> {
    let capacity = INDEX_HEADER_LEN + meta.index.len() * INDEX_ENTRY_LEN + INDEX_CRC_LEN;
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&meta.base.to_le_bytes());
    out.extend_from_slice(&meta.end.to_le_bytes());
    out.extend_from_slice(&meta.len.to_le_bytes());
    out.extend_from_slice(&meta.first_timestamp_ms.to_le_bytes());
    out.extend_from_slice(&meta.last_timestamp_ms.to_le_bytes());
    let count = u32::try_from(meta.index.len()).expect("a segment below 4 GiB has < 2^32 entries");
    out.extend_from_slice(&count.to_le_bytes());
    for entry in &meta.index {
        out.extend_from_slice(&entry.rel_position.to_le_bytes());
        out.extend_from_slice(&entry.offset.to_le_bytes());
        out.extend_from_slice(&entry.timestamp_ms.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and validates an `.idx` file for the segment starting at `base`.
/// The error is a human-readable reason; the caller rebuilds the index by scanning.
pub(crate) fn decode_index_file(bytes: &[u8], base: u64) -> Result<SegmentMeta, String> {
    let Some(body_len) = bytes.len().checked_sub(INDEX_CRC_LEN) else {
        return Err(format!("index file of {} bytes is too short", bytes.len()));
    };
    let (body, crc_bytes) = bytes.split_at(body_len);
    let stored_crc = ByteReader::new(crc_bytes).u32().ok_or("missing checksum")?;
    if crc32c::crc32c(body) != stored_crc {
        return Err("index checksum mismatch".to_owned());
    }
    let mut reader = ByteReader::new(body);
    let too_short = || "index header cut short".to_owned();
    if reader.array::<4>().ok_or_else(too_short)? != INDEX_MAGIC {
        return Err("bad index magic".to_owned());
    }
    let version = reader.u32().ok_or_else(too_short)?;
    if version != INDEX_VERSION {
        return Err(format!("unsupported index version {version}"));
    }
    let mut meta = SegmentMeta::empty(reader.u64().ok_or_else(too_short)?);
    meta.end = reader.u64().ok_or_else(too_short)?;
    meta.len = reader.u64().ok_or_else(too_short)?;
    meta.first_timestamp_ms = reader.u64().ok_or_else(too_short)?;
    meta.last_timestamp_ms = reader.u64().ok_or_else(too_short)?;
    let count = reader.u32().ok_or_else(too_short)?;
    if meta.base != base {
        return Err(format!("index is for base {} not {base}", meta.base));
    }
    let records = meta.end.saturating_sub(meta.base);
    if records == 0 || records > u64::from(u32::MAX) {
        return Err(format!("implausible record count for end {}", meta.end));
    }
    let min_len = SEGMENT_HEADER_LEN + records.saturating_mul(FRAME_HEADER_LEN as u64);
    if meta.len < min_len {
        return Err(format!(
            "segment length {} too small for {records} records",
            meta.len
        ));
    }
    if count == 0 {
        return Err("index of a non-empty segment has no entries".to_owned());
    }
    if reader.remaining() != count as usize * INDEX_ENTRY_LEN {
        return Err(format!("entry count {count} does not match the file size"));
    }
    meta.index = Vec::with_capacity(count as usize);
    while reader.remaining() > 0 {
        let entry = IndexEntry {
            rel_position: reader.u32().ok_or_else(too_short)?,
            offset: reader.u32().ok_or_else(too_short)?,
            timestamp_ms: reader.u64().ok_or_else(too_short)?,
        };
        check_entry_order(meta.index.last(), &entry, records, meta.len)?;
        meta.index.push(entry);
    }
    Ok(meta)
}

fn check_entry_order(
    previous: Option<&IndexEntry>,
    entry: &IndexEntry,
    records: u64,
    segment_len: u64,
) -> Result<(), String> {
    let in_bounds = u64::from(entry.rel_position) < records
        && u64::from(entry.offset) + FRAME_HEADER_LEN as u64 <= segment_len;
    let ordered = match previous {
        None => entry.rel_position == 0 && u64::from(entry.offset) == SEGMENT_HEADER_LEN,
        Some(previous) => {
            entry.rel_position > previous.rel_position
                && entry.offset > previous.offset
                && entry.timestamp_ms >= previous.timestamp_ms
        }
    };
    if in_bounds && ordered {
        Ok(())
    } else {
        Err(format!("index entry {entry:?} is out of order or bounds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel_position: u32, offset: u32, timestamp_ms: u64) -> IndexEntry {
        IndexEntry {
            rel_position,
            offset,
            timestamp_ms,
        }
    }

    fn sample_meta() -> SegmentMeta {
        let mut meta = SegmentMeta::empty(100);
        meta.end = 110;
        meta.len = 2000;
        meta.first_timestamp_ms = 5;
        meta.last_timestamp_ms = 9;
        meta.index = vec![entry(0, 16, 5), entry(4, 500, 6), entry(8, 1200, 9)];
        meta
    }

    #[test]
    fn builder_indexes_first_frame_and_then_every_interval() {
        let mut builder = IndexBuilder::new(100);
        let mut indexed = Vec::new();
        let mut offset = 16u32;
        for rel in 0..10u32 {
            if let Some(entry) = builder.observe(rel, offset, 0, 40) {
                indexed.push(entry.rel_position);
            }
            offset += 40;
        }
        assert_eq!(indexed, vec![0, 3, 6, 9]);
    }

    #[test]
    fn zero_interval_indexes_every_frame() {
        let mut builder = IndexBuilder::new(0);
        assert!((0..5).all(|rel| builder.observe(rel, 16 + rel * 30, 0, 30).is_some()));
    }

    #[test]
    fn lookup_by_position() {
        let entries = sample_meta().index;
        assert_eq!(entry_at_or_before(&entries, 0), Some(entries[0]));
        assert_eq!(entry_at_or_before(&entries, 3), Some(entries[0]));
        assert_eq!(entry_at_or_before(&entries, 4), Some(entries[1]));
        assert_eq!(entry_at_or_before(&entries, 1000), Some(entries[2]));
        assert_eq!(entry_at_or_before(&[], 1), None);
    }

    #[test]
    fn lookup_by_timestamp() {
        let entries = sample_meta().index;
        assert_eq!(timestamp_scan(&entries, 0), TimestampScan::FirstFrame);
        assert_eq!(timestamp_scan(&entries, 5), TimestampScan::FirstFrame);
        let scan_second = TimestampScan::From {
            from: entries[0],
            until: Some(500),
        };
        assert_eq!(timestamp_scan(&entries, 6), scan_second);
        let scan_last = TimestampScan::From {
            from: entries[2],
            until: None,
        };
        assert_eq!(timestamp_scan(&entries, 10), scan_last);
    }

    #[test]
    fn index_file_round_trips() {
        let meta = sample_meta();
        let decoded = decode_index_file(&encode_index_file(&meta), 100).expect("valid index");
        assert_eq!(decoded, meta);
    }

    #[test]
    fn damaged_index_files_are_rejected() {
        let bytes = encode_index_file(&sample_meta());
        for len in 0..bytes.len() {
            assert!(
                decode_index_file(&bytes[..len], 100).is_err(),
                "prefix {len}"
            );
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(decode_index_file(&damaged, 100).is_err(), "byte {at}");
        }
        assert!(decode_index_file(&bytes, 101).is_err());
    }

    #[test]
    fn checksummed_but_inconsistent_entries_are_rejected() {
        let mut meta = sample_meta();
        meta.index[1].offset = 10_000;
        assert!(decode_index_file(&encode_index_file(&meta), 100).is_err());
        let mut meta = sample_meta();
        meta.index[0].rel_position = 1;
        assert!(decode_index_file(&encode_index_file(&meta), 100).is_err());
        let mut meta = sample_meta();
        meta.index.clear();
        assert!(decode_index_file(&encode_index_file(&meta), 100).is_err());
    }
}
