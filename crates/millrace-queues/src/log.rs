//! The delivery log: every change to an account's queues, appended as CRC-framed events and
//! made durable by group commit (one `fdatasync` for every change written meanwhile).
//!
//! File `<dir>/state-<generation>.log`: the magic `MRQ1`, the generation (u64 LE), then frames
//! `length u32 LE | crc32c u32 LE | payload`. A compaction writes the whole current state as a
//! new generation (to a temporary name, synced, renamed, directory synced), then deletes the
//! older file; recovery reads the newest generation and stops at the first torn or corrupt
//! frame, which it truncates away.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

const MAGIC: &[u8; 4] = b"MRQ1";
const HEADER_BYTES: u64 = 12;
/// A frame longer than this is corrupt (no event is near it).
const MAX_FRAME: usize = 64 << 20;

/// One durable change.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A queue's configuration (JSON), written at creation and on every change of it.
    Config(Vec<u8>),
    /// The queue is gone.
    Deleted { queue: u32 },
    /// Every position of the shard below `cursor` has been taken into the queue.
    Cursor { queue: u32, shard: u32, cursor: u64 },
    /// The delivery state of one taken record.
    Upsert {
        queue: u32,
        shard: u32,
        position: u64,
        entry: EntryState,
    },
    /// The record left the queue (acknowledged, or expired with the stream's retention).
    Remove {
        queue: u32,
        shard: u32,
        position: u64,
    },
}

/// The delivery state of one taken, unacknowledged record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryState {
    /// Receives since the record was taken or last restored.
    pub receive_count: u32,
    /// Deliveries ever (never reset): the generation a receipt handle names.
    pub serial: u32,
    pub first_receive_ms: u64,
    /// When it becomes visible again (to the normal or the dead-letter path).
    pub visible_at_ms: u64,
    pub dead_letter: bool,
}

impl Event {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Event::Config(json) => {
                out.push(1);
                out.extend_from_slice(json);
            }
            Event::Deleted { queue } => {
                out.push(2);
                out.extend_from_slice(&queue.to_le_bytes());
            }
            Event::Cursor {
                queue,
                shard,
                cursor,
            } => {
                out.push(3);
                out.extend_from_slice(&queue.to_le_bytes());
                out.extend_from_slice(&shard.to_le_bytes());
                out.extend_from_slice(&cursor.to_le_bytes());
            }
            Event::Upsert {
                queue,
                shard,
                position,
                entry,
            } => {
                out.push(4);
                out.extend_from_slice(&queue.to_le_bytes());
                out.extend_from_slice(&shard.to_le_bytes());
                out.extend_from_slice(&position.to_le_bytes());
                out.extend_from_slice(&entry.receive_count.to_le_bytes());
                out.extend_from_slice(&entry.serial.to_le_bytes());
                out.extend_from_slice(&entry.first_receive_ms.to_le_bytes());
                out.extend_from_slice(&entry.visible_at_ms.to_le_bytes());
                out.push(u8::from(entry.dead_letter));
            }
            Event::Remove {
                queue,
                shard,
                position,
            } => {
                out.push(5);
                out.extend_from_slice(&queue.to_le_bytes());
                out.extend_from_slice(&shard.to_le_bytes());
                out.extend_from_slice(&position.to_le_bytes());
            }
        }
    }

    fn decode(payload: &[u8]) -> Option<Event> {
        let (&tag, rest) = payload.split_first()?;
        let mut reader = Reader(rest);
        let event = match tag {
            1 => Event::Config(rest.to_vec()),
            2 => Event::Deleted {
                queue: reader.u32()?,
            },
            3 => Event::Cursor {
                queue: reader.u32()?,
                shard: reader.u32()?,
                cursor: reader.u64()?,
            },
            4 => Event::Upsert {
                queue: reader.u32()?,
                shard: reader.u32()?,
                position: reader.u64()?,
                entry: EntryState {
                    receive_count: reader.u32()?,
                    serial: reader.u32()?,
                    first_receive_ms: reader.u64()?,
                    visible_at_ms: reader.u64()?,
                    dead_letter: reader.u8()? != 0,
                },
            },
            5 => Event::Remove {
                queue: reader.u32()?,
                shard: reader.u32()?,
                position: reader.u64()?,
            },
            _ => return None,
        };
        Some(event)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.0.len() < N {
            return None;
        }
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
}

/// Appends events in memory-order; `commit` makes everything appended so far durable.
pub struct DeliveryLog {
    dir: PathBuf,
    generation: u64,
    /// The current file, shared with committers (replaced by a compaction).
    file: Arc<Mutex<Arc<File>>>,
    /// Bytes in the current file.
    file_bytes: u64,
    /// Bytes of the last snapshot, so compaction runs when the log has outgrown it.
    snapshot_bytes: u64,
    frame: Vec<u8>,
    durability: Arc<Durability>,
}

/// Group commit: a logical count of bytes written ever and of bytes known durable.
pub struct Durability {
    written: AtomicU64,
    synced: Mutex<u64>,
    failed: AtomicBool,
    file: Arc<Mutex<Arc<File>>>,
    /// Whether `commit` forces the file (else the writes themselves are enough).
    forcing: AtomicBool,
}

impl Durability {
    pub fn set_forcing(&self, forcing: bool) {
        self.forcing.store(forcing, Ordering::Release);
    }

    /// Waits until everything written up to `upto` (a value of `written`) is durable: the
    /// first waiter syncs the file once for every writer waiting behind it.
    pub fn commit(&self, upto: u64) -> std::io::Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(std::io::Error::other(
                "the delivery log failed to sync earlier",
            ));
        }
        if !self.forcing.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut synced = self.synced.lock().expect("sync lock");
        if *synced >= upto {
            return Ok(());
        }
        let target = self.written.load(Ordering::Acquire);
        let file = self.file.lock().expect("file lock").clone();
        if let Err(error) = file.sync_data() {
            self.failed.store(true, Ordering::Release);
            return Err(error);
        }
        *synced = (*synced).max(target);
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }
}

fn file_name(generation: u64) -> String {
    format!("state-{generation:020}.log")
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DeliveryLog {
    /// Opens the newest generation in `dir` (creating the directory and a first file) and
    /// returns the log with every event it holds.
    pub fn open(dir: &Path) -> std::io::Result<(DeliveryLog, Vec<Event>)> {
        std::fs::create_dir_all(dir)?;
        let mut generations: Vec<u64> = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(number) = name
                .strip_prefix("state-")
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                generations.push(number);
            } else if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(dir.join(&*name));
            }
        }
        generations.sort_unstable();
        let Some(&newest) = generations.last() else {
            let log = DeliveryLog::create(dir, 1, &[])?;
            return Ok((log, Vec::new()));
        };
        for &older in &generations[..generations.len() - 1] {
            let _ = std::fs::remove_file(dir.join(file_name(older)));
        }
        let path = dir.join(file_name(newest));
        let mut bytes = Vec::new();
        File::open(&path)?.read_to_end(&mut bytes)?;
        if bytes.len() < HEADER_BYTES as usize || &bytes[..4] != MAGIC {
            return Err(std::io::Error::other(format!(
                "{} is not a delivery log",
                path.display()
            )));
        }
        let mut events = Vec::new();
        let mut offset = HEADER_BYTES as usize;
        while offset + 8 <= bytes.len() {
            let length =
                u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
            let crc = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().expect("4"));
            let start = offset + 8;
            if length > MAX_FRAME || start + length > bytes.len() {
                break;
            }
            let payload = &bytes[start..start + length];
            if crc32c::crc32c(payload) != crc {
                break;
            }
            let Some(event) = Event::decode(payload) else {
                break;
            };
            events.push(event);
            offset = start + length;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        if (offset as u64) < bytes.len() as u64 {
            tracing::warn!(
                path = %path.display(),
                kept = offset,
                dropped = bytes.len() - offset,
                "truncating a torn tail of the delivery log"
            );
            file.set_len(offset as u64)?;
            file.sync_all()?;
        }
        let file = Arc::new(Mutex::new(Arc::new(file)));
        let durability = Arc::new(Durability {
            written: AtomicU64::new(offset as u64),
            synced: Mutex::new(offset as u64),
            failed: AtomicBool::new(false),
            file: file.clone(),
            forcing: AtomicBool::new(true),
        });
        let mut log = DeliveryLog {
            dir: dir.to_owned(),
            generation: newest,
            file,
            file_bytes: offset as u64,
            snapshot_bytes: offset as u64,
            frame: Vec::new(),
            durability,
        };
        log.seek_end()?;
        Ok((log, events))
    }

    fn seek_end(&mut self) -> std::io::Result<()> {
        use std::io::Seek;
        let file = self.file.lock().expect("file lock").clone();
        (&*file).seek(std::io::SeekFrom::End(0))?;
        Ok(())
    }

    /// Writes a new generation holding `events`, synced and renamed into place.
    fn create(dir: &Path, generation: u64, events: &[Event]) -> std::io::Result<DeliveryLog> {
        let temporary = dir.join(format!("{}.tmp", file_name(generation)));
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&generation.to_le_bytes());
        let mut frame = Vec::new();
        for event in events {
            push_frame(&mut bytes, &mut frame, event);
        }
        {
            let mut file = File::create(&temporary)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
        }
        let path = dir.join(file_name(generation));
        std::fs::rename(&temporary, &path)?;
        sync_dir(dir)?;
        let file = OpenOptions::new().read(true).append(true).open(&path)?;
        let file = Arc::new(Mutex::new(Arc::new(file)));
        let length = bytes.len() as u64;
        Ok(DeliveryLog {
            dir: dir.to_owned(),
            generation,
            durability: Arc::new(Durability {
                written: AtomicU64::new(length),
                synced: Mutex::new(length),
                failed: AtomicBool::new(false),
                file: file.clone(),
                forcing: AtomicBool::new(true),
            }),
            file,
            file_bytes: length,
            snapshot_bytes: length,
            frame,
        })
    }

    /// Appends events (written to the file, not yet forced); returns the value to `commit` to.
    pub fn append(&mut self, events: &[Event]) -> std::io::Result<u64> {
        if events.is_empty() {
            return Ok(self.durability.written());
        }
        let mut bytes = Vec::with_capacity(events.len() * 48);
        for event in events {
            push_frame(&mut bytes, &mut self.frame, event);
        }
        let file = self.file.lock().expect("file lock").clone();
        (&*file).write_all(&bytes)?;
        self.file_bytes += bytes.len() as u64;
        let written = self
            .durability
            .written
            .fetch_add(bytes.len() as u64, Ordering::AcqRel)
            + bytes.len() as u64;
        Ok(written)
    }

    /// Whether the file has outgrown its last snapshot enough to be compacted.
    pub fn wants_compaction(&self, slack: u64) -> bool {
        self.file_bytes > slack + 2 * self.snapshot_bytes
    }

    /// Replaces the file by a new generation holding `snapshot` (the whole current state);
    /// everything appended before is durable in it once this returns.
    pub fn compact(&mut self, snapshot: &[Event]) -> std::io::Result<()> {
        let next = DeliveryLog::create(&self.dir, self.generation + 1, snapshot)?;
        let old = self.dir.join(file_name(self.generation));
        // Committers keep their logical offsets: the new file holds all of it, durably.
        {
            let mut synced = self.durability.synced.lock().expect("sync lock");
            let new_file = next.file.lock().expect("file lock").clone();
            *self.file.lock().expect("file lock") = new_file;
            *synced = self.durability.written();
        }
        self.generation = next.generation;
        self.file_bytes = next.file_bytes;
        self.snapshot_bytes = next.snapshot_bytes;
        std::fs::remove_file(old)?;
        Ok(())
    }

    pub fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }
}

fn push_frame(out: &mut Vec<u8>, frame: &mut Vec<u8>, event: &Event) {
    frame.clear();
    event.encode(frame);
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(frame).to_le_bytes());
    out.extend_from_slice(frame);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upsert(position: u64) -> Event {
        Event::Upsert {
            queue: 1,
            shard: 2,
            position,
            entry: EntryState {
                receive_count: 1,
                serial: 3,
                first_receive_ms: 10,
                visible_at_ms: 20,
                dead_letter: true,
            },
        }
    }

    #[test]
    fn events_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut log, events) = DeliveryLog::open(dir.path()).expect("open");
        assert!(events.is_empty());
        let upto = log
            .append(&[Event::Config(b"{}".to_vec()), upsert(7)])
            .expect("append");
        log.durability().commit(upto).expect("commit");
        drop(log);
        let path = dir.path().join(file_name(1));
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&[9, 0, 0, 0, 1, 2]).expect("torn frame");
        drop(file);
        let (mut log, events) = DeliveryLog::open(dir.path()).expect("reopen");
        assert_eq!(events, vec![Event::Config(b"{}".to_vec()), upsert(7)]);
        log.append(&[Event::Remove {
            queue: 1,
            shard: 2,
            position: 7,
        }])
        .expect("append after truncation");
        log.compact(&[upsert(8)]).expect("compact");
        drop(log);
        let (_, events) = DeliveryLog::open(dir.path()).expect("reopen compacted");
        assert_eq!(events, vec![upsert(8)]);
        assert!(!path.exists());
    }
}
