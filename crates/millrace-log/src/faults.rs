//! Fault injection for tests: makes chosen writes and syncs fail, or write less than asked.
//!
//! Every data write and sync of the log and the journal goes through `disk::write_all_at` and
//! `disk::sync_data`, which consult the rules installed here. Rules match by a substring of the
//! file's path, so tests running in parallel (each in its own directory) do not disturb each
//! other. With no rule installed the cost is one relaxed atomic load per call.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Which file operation a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// A positional data write (segment frames, tail write-back, journal records).
    Write,
    /// An `fdatasync` of a segment or journal file.
    Sync,
}

/// What happens to a matching operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The call fails with this OS error (for example 28, ENOSPC, or 5, EIO) and does nothing.
    Error(i32),
    /// A write stores only its first `n` bytes and reports that (a short write); the caller
    /// must write the rest itself.
    Short(usize),
}

/// One injected fault.
#[derive(Debug, Clone)]
pub struct Rule {
    pub path_contains: String,
    pub operation: Operation,
    /// Matching calls that pass untouched before the fault applies.
    pub skip: u32,
    /// How many matching calls the fault applies to (after `skip`).
    pub times: u32,
    pub fault: Fault,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static RULES: Mutex<Vec<Rule>> = Mutex::new(Vec::new());

/// Installs a rule; rules are tried in the order they were installed.
pub fn inject(rule: Rule) {
    let mut rules = RULES.lock().expect("fault rules lock");
    rules.push(rule);
    ACTIVE.store(true, Ordering::Release);
}

/// Removes every rule whose path filter contains `path_part`.
pub fn clear(path_part: &str) {
    let mut rules = RULES.lock().expect("fault rules lock");
    rules.retain(|rule| !rule.path_contains.contains(path_part));
    ACTIVE.store(!rules.is_empty(), Ordering::Release);
}

/// The fault for this call, if a rule applies; consumes one use of the rule.
fn fault_for(path: &Path, operation: Operation) -> Option<Fault> {
    if !ACTIVE.load(Ordering::Acquire) {
        return None;
    }
    let path = path.to_string_lossy();
    let mut rules = RULES.lock().expect("fault rules lock");
    let rule = rules
        .iter_mut()
        .find(|r| r.operation == operation && r.times > 0 && path.contains(&r.path_contains))?;
    if rule.skip > 0 {
        rule.skip -= 1;
        return None;
    }
    rule.times -= 1;
    Some(rule.fault)
}

/// One positional write, possibly faulty; returns how many bytes were written.
pub(crate) fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> io::Result<usize> {
    match fault_for(path, Operation::Write) {
        None => file.write_at(buf, offset),
        Some(Fault::Error(code)) => Err(io::Error::from_raw_os_error(code)),
        Some(Fault::Short(n)) => file.write_at(&buf[..n.min(buf.len())], offset),
    }
}

/// One `fdatasync`, possibly faulty.
pub(crate) fn sync_data(file: &File, path: &Path) -> io::Result<()> {
    match fault_for(path, Operation::Sync) {
        Some(Fault::Error(code)) => Err(io::Error::from_raw_os_error(code)),
        _ => file.sync_data(),
    }
}
