//! Segment files: their header, in-memory metadata, buffered frame reading and recovery scans.
//!
//! A segment file starts with a 16-byte header (magic `MRSG`, format version u32, base
//! position u64, little-endian) followed by frames (see [`crate::frame`]) back to back.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::byte_reader::ByteReader;
use crate::error::LogError;
use crate::frame::{FrameHeader, FRAME_HEADER_LEN};
use crate::index::{IndexBuilder, IndexEntry};
use crate::tail::{Tail, TailRead};

/// Size of the header at the start of every segment file.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;

const SEGMENT_MAGIC: [u8; 4] = *b"MRSG";
const SEGMENT_VERSION: u32 = 1;

/// Bytes read at a time when scanning a whole segment during recovery.
const SCAN_CHUNK: usize = 1 << 20;

/// What the log knows about one segment without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentMeta {
    /// Position of the first record; also the file name.
    pub(crate) base: u64,
    /// One past the position of the last record (`== base` when empty).
    pub(crate) end: u64,
    /// Bytes of valid data in the file, header included.
    pub(crate) len: u64,
    /// Timestamp of the first record; meaningless while empty.
    pub(crate) first_timestamp_ms: u64,
    /// Timestamp of the last record; meaningless while empty.
    pub(crate) last_timestamp_ms: u64,
    pub(crate) index: Vec<IndexEntry>,
}

impl SegmentMeta {
    pub(crate) fn empty(base: u64) -> SegmentMeta {
        SegmentMeta {
            base,
            end: base,
            len: SEGMENT_HEADER_LEN,
            first_timestamp_ms: 0,
            last_timestamp_ms: 0,
            index: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.end == self.base
    }
}

/// Encodes the header written at the start of the segment whose first record is `base`.
pub(crate) fn encode_segment_header(base: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    header[0..4].copy_from_slice(&SEGMENT_MAGIC);
    header[4..8].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    header[8..16].copy_from_slice(&base.to_le_bytes());
    header
}

/// Checks a segment header read from disk; the error is a human-readable reason.
fn check_segment_header(bytes: &[u8], base: u64) -> Result<(), String> {
    let mut reader = ByteReader::new(bytes);
    let short = || "segment header cut short".to_owned();
    if reader.array::<4>().ok_or_else(short)? != SEGMENT_MAGIC {
        return Err("bad segment magic".to_owned());
    }
    let version = reader.u32().ok_or_else(short)?;
    if version != SEGMENT_VERSION {
        return Err(format!("unsupported segment version {version}"));
    }
    let stored_base = reader.u64().ok_or_else(short)?;
    if stored_base != base {
        return Err(format!(
            "segment header names base {stored_base}, expected {base}"
        ));
    }
    Ok(())
}

/// Result of looking at the frame that starts at some offset.
pub(crate) enum FrameAt {
    /// The offset is exactly the end of the data.
    End,
    /// A complete frame header whose frame fits before the end of the data.
    Frame(FrameHeader),
    /// The bytes there cannot be a complete frame.
    Invalid(String),
}

/// Reads frames from one segment file with positional reads through a reusable buffer.
///
/// Each refill reads twice as much as the previous one, up to a maximum, so short lookups
/// read little and long scans use few system calls.
/// Nothing at or beyond `limit` is ever read, so concurrent appends past it are harmless.
pub(crate) struct FrameCursor<'a> {
    file: &'a File,
    path: &'a Path,
    limit: u64,
    chunk: usize,
    max_chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
    /// The unwritten tail of a journaled log's active segment, with the segment's base.
    tail: Option<(&'a Tail, u64)>,
}

impl<'a> FrameCursor<'a> {
    pub(crate) fn new(
        file: &'a File,
        path: &'a Path,
        limit: u64,
        first_chunk: usize,
        max_chunk: usize,
    ) -> FrameCursor<'a> {
        let chunk = first_chunk.max(FRAME_HEADER_LEN);
        FrameCursor {
            file,
            path,
            limit,
            chunk,
            max_chunk: max_chunk.max(chunk),
            buf: Vec::new(),
            buf_start: 0,
            tail: None,
        }
    }

    /// Also reads the bytes of segment `base` that are still in `tail` (journaled logs).
    pub(crate) fn with_tail(mut self, tail: &'a Tail, base: u64) -> FrameCursor<'a> {
        self.tail = Some((tail, base));
        self
    }

    /// Returns `len` bytes at `offset`; the caller guarantees `offset + len <= limit`.
    pub(crate) fn bytes(&mut self, offset: u64, len: usize) -> Result<&[u8], LogError> {
        let buf_end = self.buf_start + self.buf.len() as u64;
        let cached = offset >= self.buf_start && offset + len as u64 <= buf_end;
        if !cached {
            let available = self.limit.saturating_sub(offset);
            let read_len = (len.max(self.chunk) as u64).min(available);
            let mut read_len = usize::try_from(read_len).unwrap_or(usize::MAX);
            self.chunk = self.chunk.saturating_mul(2).min(self.max_chunk);
            self.buf_start = offset;
            if let Some((tail, base)) = self.tail {
                match tail.read(base, offset, read_len, &mut self.buf) {
                    TailRead::Copied => return self.buffered(offset, len),
                    TailRead::InFile(Some(in_file)) => {
                        // Frames never straddle the tail's start, so `len` fits in the file.
                        let in_file = usize::try_from(in_file).unwrap_or(usize::MAX);
                        read_len = read_len.min(in_file).max(len);
                    }
                    TailRead::InFile(None) => {}
                    TailRead::Missing => {
                        self.buf.clear();
                        return Err(LogError::corrupt(
                            self.path,
                            offset,
                            "read beyond the unwritten tail",
                        ));
                    }
                }
            }
            self.buf.resize(read_len, 0);
            if let Err(err) = self.file.read_exact_at(&mut self.buf, offset) {
                self.buf.clear();
                return Err(match err.kind() {
                    io::ErrorKind::UnexpectedEof => LogError::corrupt(
                        self.path,
                        offset,
                        "segment file is shorter than its recorded length",
                    ),
                    _ => LogError::io(format!("read segment {}", self.path.display()), err),
                });
            }
        }
        self.buffered(offset, len)
    }

    fn buffered(&self, offset: u64, len: usize) -> Result<&[u8], LogError> {
        let start = usize::try_from(offset - self.buf_start).unwrap_or(usize::MAX);
        self.buf
            .get(start..start.saturating_add(len))
            .ok_or_else(|| LogError::corrupt(self.path, offset, "read beyond the buffered range"))
    }

    /// Looks at the frame starting at `offset`.
    pub(crate) fn frame_at(&mut self, offset: u64) -> Result<FrameAt, LogError> {
        let remaining = self.limit.saturating_sub(offset);
        if remaining == 0 {
            return Ok(FrameAt::End);
        }
        if remaining < FRAME_HEADER_LEN as u64 {
            return Ok(FrameAt::Invalid(format!(
                "frame header cut short ({remaining} bytes left)"
            )));
        }
        let Some(header) = FrameHeader::parse(self.bytes(offset, FRAME_HEADER_LEN)?) else {
            return Ok(FrameAt::Invalid("frame header cut short".to_owned()));
        };
        if header.frame_len() > remaining {
            return Ok(FrameAt::Invalid(format!(
                "frame of {} bytes runs past the end of the data",
                header.frame_len()
            )));
        }
        Ok(FrameAt::Frame(header))
    }

    /// Returns the payload of the frame at `offset` whose header is `header`.
    pub(crate) fn payload(&mut self, offset: u64, header: &FrameHeader) -> Result<&[u8], LogError> {
        self.bytes(
            offset + FRAME_HEADER_LEN as u64,
            header.payload_len as usize,
        )
    }
}

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanStop {
    pub(crate) offset: u64,
    pub(crate) reason: String,
}

/// What a full scan of one segment file found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Metadata of the valid prefix.
    pub(crate) meta: SegmentMeta,
    /// Index state after the last valid frame, for continuing appends.
    pub(crate) builder: IndexBuilder,
    /// `None` if the valid frames run exactly to the end of the file.
    pub(crate) stop: Option<ScanStop>,
}

/// Scans a segment file from the start, verifying every frame.
///
/// Stops at the first invalid frame, or once position `stop_at` is reached.
/// A bad segment header is reported as a stop at offset 0.
pub(crate) fn scan_segment(
    file: &File,
    path: &Path,
    base: u64,
    file_len: u64,
    index_interval: u32,
    stop_at: Option<u64>,
) -> Result<ScanOutcome, LogError> {
    let mut cursor = FrameCursor::new(file, path, file_len, SCAN_CHUNK, SCAN_CHUNK);
    let mut outcome = ScanOutcome {
        meta: SegmentMeta::empty(base),
        builder: IndexBuilder::new(index_interval),
        stop: None,
    };
    let header_len = usize::try_from(SEGMENT_HEADER_LEN.min(file_len)).unwrap_or(0);
    if let Err(reason) = check_segment_header(cursor.bytes(0, header_len)?, base) {
        outcome.meta.len = 0;
        outcome.stop = Some(ScanStop { offset: 0, reason });
        return Ok(outcome);
    }
    let mut offset = SEGMENT_HEADER_LEN;
    let meta = &mut outcome.meta;
    let reason = loop {
        if stop_at == Some(meta.end) {
            if offset == file_len {
                break None;
            }
            break Some("unexpected bytes after the last record".to_owned());
        }
        let header = match cursor.frame_at(offset)? {
            FrameAt::End => break None,
            FrameAt::Invalid(reason) => break Some(reason),
            FrameAt::Frame(header) => header,
        };
        if header.position != meta.end {
            break Some(format!(
                "frame has position {}, expected {}",
                header.position, meta.end
            ));
        }
        if !header.checksum_matches(cursor.payload(offset, &header)?) {
            break Some("frame checksum mismatch".to_owned());
        }
        let (Ok(rel_position), Ok(index_offset)) =
            (u32::try_from(meta.end - base), u32::try_from(offset))
        else {
            break Some("segment too large to index".to_owned());
        };
        let frame_len = header.frame_len();
        let entry =
            outcome
                .builder
                .observe(rel_position, index_offset, header.timestamp_ms, frame_len);
        meta.index.extend(entry);
        if meta.is_empty() {
            meta.first_timestamp_ms = header.timestamp_ms;
        }
        meta.last_timestamp_ms = header.timestamp_ms;
        meta.end += 1;
        offset += frame_len;
        meta.len = offset;
    };
    outcome.stop = reason.map(|reason| ScanStop { offset, reason });
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_header_round_trips() {
        let header = encode_segment_header(77);
        assert_eq!(check_segment_header(&header, 77), Ok(()));
        assert!(check_segment_header(&header, 78).is_err());
        assert!(check_segment_header(&header[..15], 77).is_err());
        assert!(check_segment_header(&[0u8; 16], 77).is_err());
        let mut future = header;
        future[4] = 2;
        assert!(check_segment_header(&future, 77).is_err());
    }
}
