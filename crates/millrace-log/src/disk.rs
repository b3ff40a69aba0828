//! Every filesystem operation of the log: file naming, creating, syncing and removing files.
//!
//! Keeping them in one place is the IO seam: data writes and syncs go through
//! [`write_all_at`] and [`sync_data`], where `faults` injects short writes and errors in tests.
//!
//! Segment files are opened through one process-wide descriptor cache ([`SegmentFile`]): at
//! most [`open_file_budget`] of them stay open, least recently used first out, so the number
//! of shards is not bounded by the open-file limit.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::LogError;
use crate::segment::encode_segment_header;

const SEGMENT_SUFFIX: &str = ".seg";
const INDEX_SUFFIX: &str = ".idx";
const TEMP_SUFFIX: &str = ".tmp";

pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{INDEX_SUFFIX}"))
}

fn temp_index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}{INDEX_SUFFIX}{TEMP_SUFFIX}"))
}

/// The files found in a log directory, by kind.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub(crate) segments: BTreeSet<u64>,
    pub(crate) indexes: BTreeSet<u64>,
    pub(crate) temporary: Vec<PathBuf>,
}

fn parse_base(stem: &str) -> Option<u64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Lists the log files in `dir`; `None` if the directory does not exist.
pub(crate) fn list_dir(dir: &Path) -> Result<Option<Listing>, LogError> {
    let context = || format!("list log directory {}", dir.display());
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(LogError::io(context(), err)),
    };
    let mut listing = Listing::default();
    for entry in entries {
        let entry = entry.map_err(|err| LogError::io(context(), err))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.ends_with(TEMP_SUFFIX) {
            listing.temporary.push(entry.path());
        } else if let Some(base) = name.strip_suffix(SEGMENT_SUFFIX).and_then(parse_base) {
            listing.segments.insert(base);
        } else if let Some(base) = name.strip_suffix(INDEX_SUFFIX).and_then(parse_base) {
            listing.indexes.insert(base);
        } else {
            tracing::debug!(dir = %dir.display(), file = name, "ignoring unknown file in log directory");
        }
    }
    Ok(Some(listing))
}

/// Flushes the directory entry list of `dir` to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|err| LogError::io(format!("sync directory {}", dir.display()), err))
}

/// Creates `dir` and any missing parents, making the new entries durable.
pub(crate) fn create_dir(dir: &Path) -> Result<(), LogError> {
    // Each created directory must be recorded in its parent's entry list.
    for parent in create_dir_unsynced(dir)? {
        sync_dir(&parent)?;
    }
    Ok(())
}

/// Creates `dir` and any missing parents without syncing; returns the directories whose entry
/// lists changed (the parents of the created ones), outermost first, for the caller to sync.
pub(crate) fn create_dir_unsynced(dir: &Path) -> Result<Vec<PathBuf>, LogError> {
    let mut existing = dir;
    let mut created = Vec::new();
    while !existing.exists() {
        created.push(existing);
        match existing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
            _ => break,
        }
    }
    if created.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(dir)
        .map_err(|err| LogError::io(format!("create log directory {}", dir.display()), err))?;
    Ok(created
        .iter()
        .rev()
        .filter_map(|child| child.parent().filter(|p| !p.as_os_str().is_empty()))
        .map(Path::to_path_buf)
        .collect())
}

/// Most segment files kept open at once by the descriptor cache (default 1,024).
static OPEN_FILE_BUDGET: AtomicUsize = AtomicUsize::new(1024);

/// Sets how many segment files the process keeps open at most (at least 8). Call it once at
/// start, from the open-file limit, leaving room for sockets and other files.
pub fn set_open_file_budget(files: usize) {
    OPEN_FILE_BUDGET.store(files.max(8), Ordering::Relaxed);
}

/// How many segment files the process keeps open at most.
pub fn open_file_budget() -> usize {
    OPEN_FILE_BUDGET.load(Ordering::Relaxed)
}

/// Open segment files by path, with the tick of their last use.
struct FileCache {
    files: HashMap<PathBuf, (Arc<File>, u64)>,
    tick: u64,
}

static FILE_CACHE: Mutex<Option<FileCache>> = Mutex::new(None);

fn lock_cache() -> MutexGuard<'static, Option<FileCache>> {
    FILE_CACHE
        .lock()
        .expect("descriptor cache lock poisoned by a panic")
}

fn with_cache<T>(f: impl FnOnce(&mut FileCache) -> T) -> T {
    let mut guard = lock_cache();
    let cache = guard.get_or_insert_with(|| FileCache {
        files: HashMap::new(),
        tick: 0,
    });
    f(cache)
}

impl FileCache {
    fn insert(&mut self, path: PathBuf, file: Arc<File>) -> Arc<File> {
        self.tick += 1;
        let tick = self.tick;
        let file = self
            .files
            .entry(path)
            .or_insert_with(|| (file, tick))
            .0
            .clone();
        self.shrink_to(open_file_budget());
        file
    }

    /// Closes the least recently used files until at most `budget` stay open (a file still in
    /// use elsewhere closes when its last user drops it).
    fn shrink_to(&mut self, budget: usize) {
        while self.files.len() > budget {
            let oldest = self
                .files
                .iter()
                .min_by_key(|(_, (_, tick))| *tick)
                .map(|(path, _)| path.clone());
            match oldest {
                Some(path) => self.files.remove(&path),
                None => return,
            };
        }
    }
}

/// Number of segment files the descriptor cache holds open.
pub fn cached_open_files() -> usize {
    with_cache(|cache| cache.files.len())
}

/// A segment file that is opened on demand through the descriptor cache.
#[derive(Clone, Debug)]
pub(crate) struct SegmentFile {
    path: Arc<PathBuf>,
}

impl SegmentFile {
    pub(crate) fn new(path: PathBuf) -> SegmentFile {
        SegmentFile {
            path: Arc::new(path),
        }
    }

    /// A handle to a file just opened or created, which enters the cache.
    fn with_open(path: PathBuf, file: File) -> SegmentFile {
        let handle = SegmentFile::new(path);
        with_cache(|cache| cache.insert((*handle.path).clone(), Arc::new(file)));
        handle
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, opening it (read-write) if the cache closed it.
    pub(crate) fn get(&self) -> Result<Arc<File>, LogError> {
        let cached = with_cache(|cache| {
            cache.tick += 1;
            let tick = cache.tick;
            cache.files.get_mut(&*self.path).map(|entry| {
                entry.1 = tick;
                entry.0.clone()
            })
        });
        if let Some(file) = cached {
            return Ok(file);
        }
        let open = || OpenOptions::new().read(true).write(true).open(&*self.path);
        let file = match open() {
            Err(err) if is_out_of_descriptors(&err) => {
                // Other files (sockets) took the room: give back half of the cache and retry.
                with_cache(|cache| cache.shrink_to(cache.files.len() / 2));
                open()
            }
            other => other,
        }
        .map_err(|err| LogError::io(format!("open segment {}", self.path.display()), err))?;
        Ok(with_cache(|cache| {
            cache.insert((*self.path).clone(), Arc::new(file))
        }))
    }
}

/// Whether `err` says the process or the system ran out of file descriptors.
pub(crate) fn is_out_of_descriptors(err: &io::Error) -> bool {
    // EMFILE and ENFILE on Linux.
    matches!(err.raw_os_error(), Some(24) | Some(23))
}

/// Closes the cached descriptors of files under `dir`: call it when deleting a directory of
/// logs by other means, or the deleted files keep their disk space until the cache drops them.
pub fn forget_files_under(dir: &Path) {
    with_cache(|cache| cache.files.retain(|path, _| !path.starts_with(dir)));
}

/// Closes the cached descriptor of `path` (before it is deleted or replaced).
pub(crate) fn forget_file(path: &Path) {
    with_cache(|cache| {
        cache.files.remove(path);
    });
}

/// Creates a segment file holding just its header, synced to disk.
/// The caller syncs the directory. A leftover file of an earlier failed attempt is replaced;
/// any other file with that name was loaded by recovery, so the log never asks for it.
pub(crate) fn create_segment(dir: &Path, base: u64) -> Result<SegmentFile, LogError> {
    create_segment_file(dir, base, true)
}

/// Like [`create_segment`] without the sync: for journaled logs, whose journal holds every
/// record until a checkpoint has synced the file and its directory.
pub(crate) fn create_segment_unsynced(dir: &Path, base: u64) -> Result<SegmentFile, LogError> {
    create_segment_file(dir, base, false)
}

fn create_segment_file(dir: &Path, base: u64, sync: bool) -> Result<SegmentFile, LogError> {
    let path = segment_path(dir, base);
    forget_file(&path);
    let context = || format!("create segment {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|err| LogError::io(context(), err))?;
    if sync {
        write_segment_header(&file, &path, base)?;
    } else {
        file.write_all_at(&encode_segment_header(base), 0)
            .map_err(|err| LogError::io(format!("write segment header {}", path.display()), err))?;
    }
    Ok(SegmentFile::with_open(path, file))
}

/// Writes all of `buf` at `offset`, retrying short writes (through the fault-injection seam).
pub(crate) fn write_all_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match crate::faults::write_at(file, path, &buf[done..], offset + done as u64) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// `fdatasync` of `file` (through the fault-injection seam).
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    crate::faults::sync_data(file, path)
}

/// Hands a file opened by recovery to the descriptor cache.
pub(crate) fn cache_segment(path: PathBuf, file: File) -> SegmentFile {
    SegmentFile::with_open(path, file)
}

/// Replaces the contents of `file` with a fresh segment header and syncs it.
pub(crate) fn write_segment_header(file: &File, path: &Path, base: u64) -> Result<(), LogError> {
    file.set_len(0)
        .and_then(|()| file.write_all_at(&encode_segment_header(base), 0))
        .and_then(|()| file.sync_data())
        .map_err(|err| LogError::io(format!("write segment header {}", path.display()), err))
}

/// Opens an existing segment for reading and appending.
pub(crate) fn open_segment_rw(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|err| LogError::io(format!("open segment {}", path.display()), err))
}

/// Opens an existing segment for reading (recovery scans; not cached).
pub(crate) fn open_segment_read(path: &Path) -> Result<File, LogError> {
    File::open(path).map_err(|err| LogError::io(format!("open segment {}", path.display()), err))
}

/// Length of the file at `path`.
pub(crate) fn file_len(path: &Path) -> Result<u64, LogError> {
    fs::metadata(path)
        .map(|metadata| metadata.len())
        .map_err(|err| LogError::io(format!("stat {}", path.display()), err))
}

/// Reads a whole index file.
pub(crate) fn read_index_file(dir: &Path, base: u64) -> Result<Vec<u8>, LogError> {
    let path = index_path(dir, base);
    fs::read(&path).map_err(|err| LogError::io(format!("read index {}", path.display()), err))
}

/// Atomically replaces the index file of segment `base` with `bytes`.
/// The caller syncs the directory.
pub(crate) fn write_index_file(dir: &Path, base: u64, bytes: &[u8]) -> Result<(), LogError> {
    let temp = temp_index_path(dir, base);
    let path = index_path(dir, base);
    let write = || -> io::Result<()> {
        let mut file = File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        fs::rename(&temp, &path)
    };
    write().map_err(|err| LogError::io(format!("write index {}", path.display()), err))
}

/// Removes a file, treating an already missing file as success.
pub(crate) fn remove_file(path: &Path) -> Result<(), LogError> {
    forget_file(path);
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(LogError::io(format!("remove {}", path.display()), err)),
    }
}

/// Removes the whole log directory, treating a missing directory as success.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), LogError> {
    forget_files_under(dir);
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => {
            return Err(LogError::io(
                format!("remove log directory {}", dir.display()),
                err,
            ))
        }
    }
    match dir.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_by_position() {
        let dir = Path::new("/x");
        assert_eq!(
            segment_path(dir, 42),
            Path::new("/x/00000000000000000042.seg")
        );
        assert_eq!(
            index_path(dir, u64::MAX),
            Path::new("/x/18446744073709551615.idx")
        );
        assert_eq!(parse_base("00000000000000000042"), Some(42));
        assert_eq!(parse_base("42"), None);
        assert_eq!(parse_base("0000000000000000004x"), None);
        assert_eq!(parse_base("99999999999999999999"), None);
    }
}
