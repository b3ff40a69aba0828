//! How records are stored in a delivery stream's log, from the stream document's `frame_from`
//! position on: `flags (u8) | arrival time (u64 LE ms, when flag 1) | body`, the body being the
//! record's data or, with flag 2, the engine's sealed envelope of it (`PayloadSealer`: a data key
//! of the stream's KMS key, AES-256-GCM, the stream's ARN as authenticated data).
//!
//! The arrival time is a Kinesis source record's ApproximateArrivalTimestamp (prefixes are
//! evaluated with it); without it, the time the record reached the log (the entry's
//! timestamp) is the arrival time. Records before `frame_from` (written by an older version)
//! are their data alone.

use millrace_log::ReadEntry;

use crate::doc::StreamDoc;
use crate::Inner;

const ARRIVAL: u8 = 1;
const SEALED: u8 = 2;

/// One record as stored: `arrival` given for stream-sourced records, `sealed` when `body` is
/// a sealed envelope.
pub fn encode(arrival: Option<u64>, sealed: bool, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    let flags = if arrival.is_some() { ARRIVAL } else { 0 } | if sealed { SEALED } else { 0 };
    out.push(flags);
    if let Some(ms) = arrival {
        out.extend_from_slice(&ms.to_le_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// Turns stored entries into records: the payload becomes the data (opened with KMS when
/// sealed) and the timestamp the arrival time.
pub fn decode(inner: &Inner, doc: &StreamDoc, entries: &mut [ReadEntry]) -> Result<(), String> {
    let from = doc.frame_from.unwrap_or(u64::MAX);
    let mut sealed: Vec<&mut Vec<u8>> = Vec::new();
    for entry in entries.iter_mut() {
        if entry.position < from {
            continue;
        }
        let Some((&flags, rest)) = entry.payload.split_first() else {
            return Err(format!("record {} has no frame", entry.position));
        };
        let mut skip = 1;
        if flags & ARRIVAL != 0 {
            let bytes: [u8; 8] = rest
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("record {} is truncated", entry.position))?;
            entry.timestamp_ms = u64::from_le_bytes(bytes);
            skip += 8;
        }
        entry.payload.drain(..skip);
        if flags & SEALED != 0 {
            sealed.push(&mut entry.payload);
        }
    }
    if sealed.is_empty() {
        return Ok(());
    }
    let sealer = inner
        .sealer
        .as_ref()
        .ok_or_else(|| "encrypted records but KMS is not available (no master key)".to_owned())?;
    sealer
        .open(&doc.account, &doc.region, &doc.arn(), &mut sealed)
        .map_err(|error| format!("opening encrypted records: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_arrival_time_and_the_sealed_flag() {
        assert_eq!(encode(None, false, b"ab"), b"\x00ab");
        let framed = encode(Some(7), true, b"x");
        assert_eq!(framed[0], 3);
        assert_eq!(&framed[1..9], &7u64.to_le_bytes());
        assert_eq!(&framed[9..], b"x");
    }
}
