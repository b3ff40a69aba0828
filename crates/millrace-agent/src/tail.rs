//! Following the files of one flow: the files matching `filePattern`, each known by device and
//! inode (so a rename keeps its position) and read through a handle kept open (so a file renamed
//! away or deleted is read to its end), split into records (lines, or `multiLineStartPattern`
//! groups), with truncation (a file shorter than its position starts again at 0) and copies (a
//! new file that begins with a followed file's bytes, as copy-truncate makes, continues at that
//! file's position) recognised.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::checkpoint::FileCheckpoint;
use crate::config::{Flow, InitialPosition};

/// Bytes of a file's beginning kept to recognise it (after a restart, and in its copies).
pub const HEAD_BYTES: usize = 1024;

/// How much is read from a file at a time.
const READ_CHUNK: usize = 256 * 1024;

/// Where a file stands: the part of a checkpoint that moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub offset: u64,
    pub header_left: usize,
    pub skipping: bool,
}

struct TrackedFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
    /// `None` for a file known from the checkpoint and not seen yet.
    file: Option<File>,
    /// Everything before this is records (or skipped).
    position: Position,
    /// The position of the last acknowledged batch.
    acked: Position,
    /// Bytes read after `position.offset`, not yet records.
    pending: Vec<u8>,
    /// Of `pending`: the bytes already split into complete lines of the record being gathered
    /// (multi-line records).
    gathered: usize,
    head: Vec<u8>,
    /// The order of the file's content among the flow's files: files are read in this order,
    /// and a file started again (truncated) or new comes after every other.
    order: u64,
    /// When bytes last arrived.
    last_growth: Instant,
    /// No longer matched by the pattern (renamed away or deleted).
    gone: bool,
    at_eof: bool,
    /// A copy of a followed file (device, inode) that has not been truncated yet, and since
    /// when: not read until that file is truncated (then it continues where that file was).
    waiting_for: Option<((u64, u64), Instant)>,
}

impl TrackedFile {
    fn read_position(&self) -> u64 {
        self.position.offset + self.pending.len() as u64
    }

    fn checkpoint(&self, position: Position) -> FileCheckpoint {
        FileCheckpoint {
            path: self.path.clone(),
            dev: self.dev,
            ino: self.ino,
            offset: position.offset,
            header_left: position.header_left,
            skipping: position.skipping,
            head: self.head.clone(),
        }
    }
}

/// One record read from a file, before the data-processing options.
pub struct RawRecord {
    pub data: Vec<u8>,
}

/// Records read and where each file stands after them.
#[derive(Default)]
pub struct Batch {
    pub records: Vec<RawRecord>,
    pub bytes: usize,
    /// When the first record was read.
    pub started: Option<Instant>,
    /// (dev, ino) → position after this batch's records.
    pub positions: HashMap<(u64, u64), Position>,
}

impl Batch {
    pub fn is_full(&self, flow: &Flow) -> bool {
        self.records.len() >= flow.max_buffer_records || self.bytes >= flow.max_buffer_bytes
    }
}

/// What a new file is, compared with the followed ones.
enum Likeness {
    /// A copy of a truncated file's former content: it continues at that file's position, in
    /// that file's place in the order.
    CopyOfTruncated {
        position: Position,
        order: u64,
    },
    /// A copy of a followed file not truncated (yet).
    CopyOf((u64, u64)),
    New,
    /// Too short to tell yet.
    Undecided,
}

/// A followed file seen truncated: its former beginning, position and order, which a copy made
/// before the truncation (copy-truncate) continues from.
struct Ghost {
    key: (u64, u64),
    head: Vec<u8>,
    position: Position,
    order: u64,
    since: Instant,
}

/// How long a copy waits for its original's truncation, and a truncated file's former content
/// is remembered for a copy still being written.
fn copy_wait(flow: &Flow) -> Duration {
    flow.max_buffer_age.max(Duration::from_secs(60))
}

/// Whether a file's first bytes are enough to recognise its copies: all it has up to
/// [`HEAD_BYTES`], of a file read past its beginning.
fn recognisable(head: &[u8], position: &Position) -> bool {
    position.offset > 0
        && !head.is_empty()
        && (head.len() == HEAD_BYTES || head.len() as u64 >= position.offset)
}

/// A file matching the pattern, as listed.
struct Listed {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: SystemTime,
}

/// `*` and `?` in a file name.
fn name_matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            name_matches(&pattern[1..], name)
                || (!name.is_empty() && name_matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => name_matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => name_matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

fn read_prefix(file: &File, length: usize) -> Vec<u8> {
    let mut buffer = vec![0; length];
    let mut filled = 0;
    while filled < length {
        match file.read_at(&mut buffer[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    buffer.truncate(filled);
    buffer
}

/// The files of one flow.
pub struct FlowFiles {
    directory: PathBuf,
    name_pattern: Vec<u8>,
    files: Vec<TrackedFile>,
    /// True until the first scan: files found then are started by checkpoint or `initialPosition`.
    first_scan: bool,
    /// The flow had a checkpoint at start.
    restored: bool,
    next_order: u64,
    /// New files not yet told apart from a copy being written, with when they were first seen.
    undecided: HashMap<(u64, u64), Instant>,
    ghosts: Vec<Ghost>,
}

impl FlowFiles {
    pub fn new(flow: &Flow, checkpoint: Option<&[FileCheckpoint]>) -> FlowFiles {
        let directory = flow
            .file_pattern
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let name_pattern = flow
            .file_pattern
            .file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .unwrap_or_default();
        let files: Vec<TrackedFile> = checkpoint
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(order, c)| {
                let position = Position {
                    offset: c.offset,
                    header_left: c.header_left,
                    skipping: c.skipping,
                };
                TrackedFile {
                    path: c.path.clone(),
                    dev: c.dev,
                    ino: c.ino,
                    file: None,
                    position,
                    acked: position,
                    pending: Vec::new(),
                    gathered: 0,
                    head: c.head.clone(),
                    order: order as u64,
                    last_growth: Instant::now(),
                    gone: false,
                    at_eof: false,
                    waiting_for: None,
                }
            })
            .collect();
        FlowFiles {
            directory,
            name_pattern,
            first_scan: true,
            restored: checkpoint.is_some(),
            next_order: files.len() as u64,
            files,
            undecided: HashMap::new(),
            ghosts: Vec::new(),
        }
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Every file found from now on is new (the directory did not exist when the agent
    /// started, so `initialPosition` has nothing to apply to).
    pub fn all_new(&mut self) {
        self.first_scan = false;
    }

    fn list(&self) -> std::io::Result<Vec<Listed>> {
        let mut listed = Vec::new();
        for entry in std::fs::read_dir(&self.directory)? {
            let entry = entry?;
            if !name_matches(&self.name_pattern, entry.file_name().as_encoded_bytes()) {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // gone between listing and stat
            };
            if !meta.is_file() {
                continue;
            }
            listed.push(Listed {
                path,
                dev: meta.dev(),
                ino: meta.ino(),
                size: meta.len(),
                mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            });
        }
        Ok(listed)
    }

    /// Lists the directory and brings the followed files up to date.
    pub fn scan(&mut self, flow: &Flow) -> std::io::Result<()> {
        let mut listed = self.list()?;
        listed.sort_by(|a, b| (a.mtime, &a.path).cmp(&(b.mtime, &b.path)));
        let newest = listed
            .iter()
            .max_by_key(|l| (l.mtime, l.path.clone()))
            .map(|l| (l.dev, l.ino));
        // Followed files first: a truncation seen now is remembered (a ghost) before new files
        // are looked at, so that a copy completed just before it is recognised.
        for tracked in &mut self.files {
            match listed
                .iter()
                .find(|l| l.dev == tracked.dev && l.ino == tracked.ino)
            {
                Some(entry) => {
                    tracked.path = entry.path.clone();
                    tracked.gone = false;
                    if tracked.file.is_none() {
                        tracked.file = File::open(&entry.path).ok();
                        tracing::info!(file = %entry.path.display(), offset = tracked.position.offset, "resuming file from its checkpoint");
                    }
                    // Shorter than what was read, or beginning with other bytes: truncated (and
                    // perhaps written again past the old length before this scan).
                    let rewritten = tracked.file.as_ref().is_some_and(|handle| {
                        let compare = tracked.head.len().min(entry.size as usize);
                        compare > 0 && read_prefix(handle, compare) != tracked.head[..compare]
                    });
                    if entry.size < tracked.read_position() || rewritten {
                        tracing::info!(file = %entry.path.display(), "file truncated: reading it from its start");
                        self.ghosts.push(Ghost {
                            key: (tracked.dev, tracked.ino),
                            head: tracked.head.clone(),
                            position: tracked.position,
                            order: tracked.order,
                            since: Instant::now(),
                        });
                        tracked.pending.clear();
                        tracked.gathered = 0;
                        tracked.position = Position {
                            offset: 0,
                            header_left: flow.skip_header_lines,
                            skipping: false,
                        };
                        tracked.head.clear();
                        tracked.at_eof = false;
                        self.next_order += 1;
                        tracked.order = self.next_order;
                    }
                }
                None => tracked.gone = true,
            }
        }
        // Then new files, compared with the followed files and the ghosts of truncated ones.
        let mut added = Vec::new();
        for entry in &listed {
            let known = self
                .files
                .iter()
                .position(|f| f.dev == entry.dev && f.ino == entry.ino);
            if known.is_some() {
                continue; // followed already
            }
            let Ok(file) = File::open(&entry.path) else {
                continue;
            };
            let mut order = None;
            let mut waiting_for = None;
            let start = if self.first_scan && !self.restored {
                // No checkpoint: the newest file from initialPosition, the others are history.
                match (
                    Some((entry.dev, entry.ino)) == newest,
                    flow.initial_position,
                ) {
                    (true, InitialPosition::StartOfFile) => Position {
                        offset: 0,
                        header_left: flow.skip_header_lines,
                        skipping: false,
                    },
                    _ => Position {
                        offset: entry.size,
                        header_left: 0,
                        skipping: false,
                    },
                }
            } else {
                let from_start = Position {
                    offset: 0,
                    header_left: flow.skip_header_lines,
                    skipping: false,
                };
                match self.copy_of(&file, flow) {
                    Likeness::CopyOfTruncated { position, order: o } => {
                        tracing::info!(file = %entry.path.display(), offset = position.offset, "new file is a copy of a truncated file: continuing at its position");
                        order = Some(o);
                        position
                    }
                    Likeness::CopyOf(original) => {
                        tracing::info!(file = %entry.path.display(), "new file is a copy of a followed file: waiting for that file's truncation");
                        waiting_for = Some((original, Instant::now()));
                        from_start
                    }
                    Likeness::New => from_start,
                    Likeness::Undecided => continue,
                }
            };
            self.undecided.remove(&(entry.dev, entry.ino));
            match (waiting_for.is_some(), start.offset) {
                (true, _) => {}
                (false, 0) => {
                    tracing::info!(file = %entry.path.display(), "following new file from its start")
                }
                (false, offset) => {
                    tracing::info!(file = %entry.path.display(), offset, "following file")
                }
            }
            added.push(TrackedFile {
                path: entry.path.clone(),
                dev: entry.dev,
                ino: entry.ino,
                head: read_prefix(&file, HEAD_BYTES.min(start.offset as usize)),
                file: Some(file),
                position: start,
                acked: start,
                pending: Vec::new(),
                gathered: 0,
                order: order.unwrap_or_else(|| {
                    self.next_order += 1;
                    self.next_order
                }),
                last_growth: Instant::now(),
                gone: false,
                at_eof: false,
                waiting_for,
            });
        }
        self.undecided
            .retain(|key, _| listed.iter().any(|l| (l.dev, l.ino) == *key));
        // Files known only from the checkpoint and not found are gone for good.
        self.files.retain(|f| f.file.is_some());
        // A copy that disappears before it was needed is forgotten.
        self.files.retain(|f| !(f.gone && f.waiting_for.is_some()));
        self.files.extend(added);
        self.settle_copies(flow);
        self.first_scan = false;
        Ok(())
    }

    /// Whether a new file is a copy of a followed file (as copy-truncate makes): it begins with
    /// that file's first bytes (all of them it has, up to [`HEAD_BYTES`]). A copy of a file
    /// already truncated continues at that file's former position, so what was read from the
    /// original is not read again and the rest is read from the copy; a copy of a file not
    /// truncated yet waits for the truncation. A new file whose bytes so far are only the
    /// beginning of a followed file's (a copy being written, or a new file that has not written
    /// enough to tell) is left undecided for up to `maxBufferAgeMillis`, then taken as new.
    fn copy_of(&mut self, file: &File, flow: &Flow) -> Likeness {
        let prefix = read_prefix(file, HEAD_BYTES);
        if let Some(ghost) = self
            .ghosts
            .iter()
            .filter(|g| recognisable(&g.head, &g.position) && prefix.starts_with(&g.head))
            .max_by_key(|g| g.position.offset)
        {
            return Likeness::CopyOfTruncated {
                position: ghost.position,
                order: ghost.order,
            };
        }
        let live = || {
            self.files
                .iter()
                .filter(|f| f.waiting_for.is_none() && recognisable(&f.head, &f.position))
        };
        if let Some(original) = live()
            .filter(|f| prefix.starts_with(&f.head))
            .max_by_key(|f| f.position.offset)
        {
            return Likeness::CopyOf((original.dev, original.ino));
        }
        let maybe = live().any(|f| f.head.starts_with(&prefix))
            || self.ghosts.iter().any(|g| g.head.starts_with(&prefix));
        let Some(key) = file.metadata().ok().map(|m| (m.dev(), m.ino())) else {
            return Likeness::New;
        };
        let since = *self.undecided.entry(key).or_insert_with(Instant::now);
        if maybe && since.elapsed() < flow.max_buffer_age {
            Likeness::Undecided
        } else {
            Likeness::New
        }
    }

    /// Starts the copies whose original was truncated (at the original's former position, in
    /// its former place), or is gone (where it ended), or was not truncated within
    /// [`copy_wait`] (a copy kept beside its original: only what is appended to it is new).
    fn settle_copies(&mut self, flow: &Flow) {
        let wait = copy_wait(flow);
        self.ghosts.retain(|g| g.since.elapsed() < wait);
        for index in 0..self.files.len() {
            let Some((original, since)) = self.files[index].waiting_for else {
                continue;
            };
            // The original's truncation after the copy was seen (not an earlier one).
            let truncated = self
                .ghosts
                .iter()
                .find(|g| g.key == original && g.since >= since);
            let start = if let Some(ghost) = truncated {
                Some((
                    ghost.position,
                    Some(ghost.order),
                    "its original was truncated",
                ))
            } else {
                match self.files.iter().find(|f| (f.dev, f.ino) == original) {
                    Some(f) if !f.gone && since.elapsed() < wait => None,
                    Some(f) if f.gone => Some((f.position, None, "its original is gone")),
                    _ => {
                        let size = self.files[index]
                            .file
                            .as_ref()
                            .and_then(|h| h.metadata().ok())
                            .map_or(0, |m| m.len());
                        let position = Position {
                            offset: size,
                            header_left: 0,
                            skipping: false,
                        };
                        Some((position, None, "its original was not truncated"))
                    }
                }
            };
            let Some((position, order, why)) = start else {
                continue;
            };
            let file = &mut self.files[index];
            tracing::info!(file = %file.path.display(), offset = position.offset, why, "following copied file");
            file.waiting_for = None;
            file.position = position;
            file.acked = position;
            file.head = file
                .file
                .as_ref()
                .map(|h| read_prefix(h, HEAD_BYTES.min(position.offset as usize)))
                .unwrap_or_default();
            if let Some(order) = order {
                file.order = order;
            }
        }
        // Oldest content first, so that a rotated file is finished before its successor.
        self.files.sort_by_key(|f| f.order);
    }

    /// Reads records into `batch` until it is full or every file is read to its end. A file's
    /// last partial line (or gathered multi-line record) is taken when the file has been quiet
    /// for `maxBufferAgeMillis` and is not the one being written (or, for multi-line records,
    /// in any file).
    pub fn read(
        &mut self,
        flow: &Flow,
        batch: &mut Batch,
        max_record: usize,
    ) -> std::io::Result<()> {
        let count = self.files.len();
        let newest = self.newest();
        for index in 0..count {
            let may_flush = self.may_flush(flow, index, newest);
            let file = &mut self.files[index];
            if file.waiting_for.is_some() {
                continue;
            }
            loop {
                if batch.is_full(flow) {
                    return Ok(());
                }
                let grew = read_more(file)?;
                split_records(flow, file, batch, max_record);
                if !grew {
                    break;
                }
            }
            let quiet = file.last_growth.elapsed() >= flow.max_buffer_age;
            if !file.pending.is_empty() && quiet && may_flush && !batch.is_full(flow) {
                let rest = std::mem::take(&mut file.pending);
                file.gathered = 0;
                end_line(flow, file, batch, rest, max_record);
            }
            batch.positions.insert((file.dev, file.ino), file.position);
        }
        Ok(())
    }

    /// The file being written: the newest content of those still matched.
    fn newest(&self) -> Option<usize> {
        (0..self.files.len())
            .filter(|&i| !self.files[i].gone)
            .max_by_key(|&i| self.files[i].order)
    }

    /// Whether a file's partial data may be taken once it is quiet: always for multi-line
    /// records, else only when another file has taken over or the file is gone (the partial last
    /// line of the file being written waits for its newline).
    fn may_flush(&self, flow: &Flow, index: usize, newest: Option<usize>) -> bool {
        flow.multi_line_start.is_some() || Some(index) != newest || self.files[index].gone
    }

    /// When a quiet file's partial data is due to be taken, or an undecided new file to be
    /// decided, if any is waiting.
    pub fn next_flush(&self, flow: &Flow) -> Option<Instant> {
        let newest = self.newest();
        (0..self.files.len())
            .filter(|&i| !self.files[i].pending.is_empty() && self.may_flush(flow, i, newest))
            .map(|i| self.files[i].last_growth + flow.max_buffer_age)
            .chain(self.undecided.values().map(|&t| t + flow.max_buffer_age))
            .chain(
                self.files
                    .iter()
                    .filter_map(|f| f.waiting_for.map(|(_, since)| since + copy_wait(flow))),
            )
            .min()
    }

    /// Records a batch as acknowledged; returns the checkpoints to store. Files that are gone
    /// and fully delivered are forgotten.
    pub fn acknowledge(&mut self, batch: &Batch) -> Vec<FileCheckpoint> {
        for file in &mut self.files {
            if let Some(position) = batch.positions.get(&(file.dev, file.ino)) {
                file.acked = *position;
            }
        }
        self.files.retain(|f| {
            let finished = f.gone && f.at_eof && f.pending.is_empty() && f.acked == f.position;
            if finished {
                tracing::info!(file = %f.path.display(), "file delivered and gone: no longer followed");
            }
            !finished
        });
        self.checkpoints()
    }

    /// The checkpoints of the files followed (a copy waiting for its original's truncation is
    /// decided again after a restart).
    pub fn checkpoints(&self) -> Vec<FileCheckpoint> {
        self.files
            .iter()
            .filter(|f| f.waiting_for.is_none())
            .map(|f| f.checkpoint(f.acked))
            .collect()
    }
}

/// Reads what the file has beyond `pending`; whether anything came.
fn read_more(file: &mut TrackedFile) -> std::io::Result<bool> {
    let Some(handle) = &file.file else {
        return Ok(false);
    };
    let at = file.read_position();
    let start = file.pending.len();
    file.pending.resize(start + READ_CHUNK, 0);
    let read = match handle.read_at(&mut file.pending[start..], at) {
        Ok(n) => n,
        Err(e) => {
            file.pending.truncate(start);
            return Err(e);
        }
    };
    file.pending.truncate(start + read);
    if read == 0 {
        file.at_eof = true;
        return Ok(false);
    }
    file.at_eof = false;
    file.last_growth = Instant::now();
    // Keep the file's first bytes, as far as this read covers them.
    let have = file.head.len() as u64;
    if have < HEAD_BYTES as u64 && at <= have && have < at + read as u64 {
        let from = start + (have - at) as usize;
        let to = (start + read).min(from + HEAD_BYTES - have as usize);
        file.head.extend_from_slice(&file.pending[from..to]);
    }
    Ok(true)
}

/// Splits the complete lines of `pending` into records (the bytes taken are removed from
/// `pending` once, at the end).
fn split_records(flow: &Flow, file: &mut TrackedFile, batch: &mut Batch, max_record: usize) {
    // Of `pending`: the bytes taken in this call; `gathered` counts from here.
    let mut base = 0;
    loop {
        if batch.is_full(flow) {
            break;
        }
        let search_from = base + file.gathered;
        let Some(newline) = file.pending[search_from..].iter().position(|&b| b == b'\n') else {
            // A line longer than a record can be: cut it, skip the rest of it.
            if file.pending.len() - base > max_record && flow.multi_line_start.is_none() {
                let head = file.pending[base..].to_vec();
                base = file.pending.len();
                file.gathered = 0;
                if file.position.skipping {
                    file.position.offset += head.len() as u64;
                } else {
                    file.position.skipping = true;
                    emit(flow, file, batch, head, max_record);
                }
            }
            break;
        };
        let line_end = search_from + newline + 1;
        if file.position.header_left > 0 {
            file.position.offset += (line_end - base) as u64;
            file.position.header_left -= 1;
            base = line_end;
            file.gathered = 0;
            continue;
        }
        match &flow.multi_line_start {
            None => {
                let line = file.pending[base..line_end].to_vec();
                base = line_end;
                file.gathered = 0;
                end_line(flow, file, batch, line, max_record);
            }
            Some(start) => {
                let line = &file.pending[search_from..line_end];
                let text = String::from_utf8_lossy(line);
                let begins = start.is_match(text.trim_end_matches(['\n', '\r']));
                if begins && file.gathered > 0 {
                    let record = file.pending[base..search_from].to_vec();
                    base = search_from;
                    file.gathered = 0;
                    emit(flow, file, batch, record, max_record);
                    continue;
                }
                file.gathered = line_end - base;
                if file.gathered > max_record {
                    let record = file.pending[base..line_end].to_vec();
                    base = line_end;
                    file.gathered = 0;
                    emit(flow, file, batch, record, max_record);
                }
            }
        }
    }
    file.pending.drain(..base);
}

/// The end of a line: a record, or the skipped rest of a line cut at the size limit.
fn end_line(
    flow: &Flow,
    file: &mut TrackedFile,
    batch: &mut Batch,
    line: Vec<u8>,
    max_record: usize,
) {
    if file.position.skipping {
        file.position.offset += line.len() as u64;
        file.position.skipping = false;
    } else {
        emit(flow, file, batch, line, max_record);
    }
}

/// Adds one raw record (cut to `max_record` with the terminator) and moves the file's
/// position past its bytes.
fn emit(
    flow: &Flow,
    file: &mut TrackedFile,
    batch: &mut Batch,
    mut data: Vec<u8>,
    max_record: usize,
) {
    file.position.offset += data.len() as u64;
    if data.len() > max_record {
        let terminator = &flow.truncated_record_terminator;
        data.truncate(max_record.saturating_sub(terminator.len()));
        data.extend_from_slice(terminator);
    }
    batch.positions.insert((file.dev, file.ino), file.position);
    batch.bytes += data.len();
    batch.started.get_or_insert_with(Instant::now);
    batch.records.push(RawRecord { data });
}

/// How long until `deadline`, or `None` if there is none.
pub fn until(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::Write as _;

    fn flow(dir: &Path) -> Flow {
        let text = format!(
            r#"{{"flows": [{{"filePattern": "{}/app.log*", "kinesisStream": "s",
                "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 60000}}]}}"#,
            dir.display()
        );
        crate::config::AgentConfig::parse(&text)
            .expect("config")
            .flows
            .remove(0)
    }

    fn append(path: &Path, lines: std::ops::Range<usize>) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open");
        for i in lines {
            writeln!(file, "line-{i:06}").expect("write");
        }
    }

    /// Scans and reads everything there is; the records' text, and acknowledges them.
    fn drain(files: &mut FlowFiles, flow: &Flow) -> Vec<String> {
        files.scan(flow).expect("scan");
        let mut batch = Batch::default();
        files.read(flow, &mut batch, 1 << 20).expect("read");
        files.acknowledge(&batch);
        batch
            .records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.data).trim_end().to_owned())
            .collect()
    }

    fn lines(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("line-{i:06}")).collect()
    }

    /// A flow on `app.log*` in a new directory, its first 100 lines read.
    fn started() -> (tempfile::TempDir, Flow, PathBuf, FlowFiles) {
        let dir = tempfile::tempdir().expect("dir");
        let flow = flow(dir.path());
        let log = dir.path().join("app.log");
        append(&log, 0..100);
        let mut files = FlowFiles::new(&flow, None);
        assert_eq!(drain(&mut files, &flow), lines(0..100));
        (dir, flow, log, files)
    }

    #[test]
    fn a_copy_seen_while_still_empty_waits_and_adds_nothing_already_read() {
        let (dir, flow, log, mut files) = started();
        append(&log, 100..130);
        // The copy exists but is still empty when the original's new lines are read.
        let copy = dir.path().join("app.log.1");
        std::fs::write(&copy, b"").expect("copy");
        assert_eq!(drain(&mut files, &flow), lines(100..130));
        std::fs::write(&copy, std::fs::read(&log).expect("read")).expect("copy");
        std::fs::write(&log, b"").expect("truncate");
        append(&log, 130..140);
        // The copy holds nothing new (everything was read from the original); the original's new
        // lines come once, in order.
        assert_eq!(drain(&mut files, &flow), lines(130..140));
        assert!(drain(&mut files, &flow).is_empty());
    }

    #[test]
    fn a_copy_of_a_partly_read_file_gives_only_what_the_truncation_took() {
        let (dir, flow, log, mut files) = started();
        // Lines the agent has not read when the copy is made and the original truncated: they
        // are read from the copy, before the original's new lines.
        append(&log, 100..130);
        let copy = dir.path().join("app.log.1");
        let empty = dir.path().join("app.log.2");
        std::fs::write(&empty, b"").expect("empty");
        std::fs::write(&copy, std::fs::read(&log).expect("read")).expect("copy");
        std::fs::write(&log, b"").expect("truncate");
        append(&log, 130..140);
        let mut got = drain(&mut files, &flow);
        got.extend(drain(&mut files, &flow));
        assert_eq!(got, lines(100..140));
        // A copy made while the original is still being read waits for the truncation.
        append(&log, 140..150);
        let second = dir.path().join("app.log.3");
        std::fs::write(&second, std::fs::read(&log).expect("read")).expect("copy");
        let mut got = drain(&mut files, &flow);
        std::fs::write(&log, b"").expect("truncate");
        append(&log, 150..155);
        got.extend(drain(&mut files, &flow));
        got.extend(drain(&mut files, &flow));
        assert_eq!(got, lines(140..155));
    }

    #[test]
    fn wildcards_in_names() {
        assert!(name_matches(b"app.log*", b"app.log"));
        assert!(name_matches(b"app.log*", b"app.log.1"));
        assert!(name_matches(b"a?c", b"abc"));
        assert!(!name_matches(b"app.log", b"app.log.1"));
        assert!(!name_matches(b"*.log", b"a.txt"));
    }
}
