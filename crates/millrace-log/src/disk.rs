//! Every filesystem operation of the log: file naming, creating, syncing and removing files.
//!
//! Keeping them in one place is the seam where a fault-injecting disk can be added later.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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
        return Ok(());
    }
    fs::create_dir_all(dir)
        .map_err(|err| LogError::io(format!("create log directory {}", dir.display()), err))?;
    // Each created directory must be recorded in its parent's entry list.
    for child in created.iter().rev() {
        if let Some(parent) = child.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Creates a segment file holding just its header, synced to disk.
/// The caller syncs the directory. A leftover file of an earlier failed attempt is replaced;
/// any other file with that name was loaded by recovery, so the log never asks for it.
pub(crate) fn create_segment(dir: &Path, base: u64) -> Result<File, LogError> {
    let path = segment_path(dir, base);
    let context = || format!("create segment {}", path.display());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|err| LogError::io(context(), err))?;
    write_segment_header(&file, &path, base)?;
    Ok(file)
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

/// Opens an existing segment for reading.
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
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(LogError::io(format!("remove {}", path.display()), err)),
    }
}

/// Removes the whole log directory, treating a missing directory as success.
pub(crate) fn remove_dir(dir: &Path) -> Result<(), LogError> {
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
