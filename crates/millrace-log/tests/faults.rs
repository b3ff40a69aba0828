//! Injected IO faults: short writes, failed syncs and a full disk (ENOSPC), for standalone and
//! journaled logs. A failed sync or write must stop every later acknowledgement; what was
//! acknowledged before must survive a restart.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use millrace_log::faults::{self, Fault, Operation, Rule};
use millrace_log::{Journal, JournalConfig, LogConfig, LogError, ShardLog};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn rule(dir: &Path, what: &str, operation: Operation, skip: u32, times: u32, fault: Fault) -> Rule {
    Rule {
        path_contains: format!("{}/{what}", dir.display()),
        operation,
        skip,
        times,
        fault,
    }
}

/// Clears the rules of one test directory when dropped, even if the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        faults::clear(&self.0);
    }
}

fn cleanup(dir: &Path) -> Cleanup {
    Cleanup(dir.display().to_string())
}

fn open_journaled(root: &Path) -> (Arc<Journal>, ShardLog) {
    let (journal, mut replay) =
        Journal::open(&root.join("journal"), JournalConfig::default()).expect("open journal");
    let frames = replay.take(0);
    let log = ShardLog::open_journaled(
        &root.join("log"),
        LogConfig::default(),
        &journal,
        0,
        frames.as_deref(),
    )
    .expect("open log");
    (journal, log)
}

#[test]
fn short_journal_writes_are_completed_and_lose_nothing() {
    let temp = fast_tempdir();
    let _cleanup = cleanup(temp.path());
    let (journal, log) = open_journaled(temp.path());
    faults::inject(rule(
        temp.path(),
        "journal/",
        Operation::Write,
        0,
        50,
        Fault::Short(7),
    ));
    for _ in 0..5 {
        append_records(&log, 3);
        log.sync().expect("sync despite short writes");
    }
    faults::clear(&temp.path().display().to_string());
    drop(log);
    drop(journal);
    let (_journal, log) = open_journaled(temp.path());
    assert_eq!(log.next_position(), 15);
    check_all_records(&log);
}

#[test]
fn a_full_disk_during_a_journal_write_stops_acknowledgements() {
    let temp = fast_tempdir();
    let _cleanup = cleanup(temp.path());
    let (journal, log) = open_journaled(temp.path());
    append_records(&log, 10);
    log.sync().expect("sync");
    // Part of the next write lands, then the disk is full.
    faults::inject(rule(
        temp.path(),
        "journal/",
        Operation::Write,
        0,
        1,
        Fault::Short(30),
    ));
    faults::inject(rule(
        temp.path(),
        "journal/",
        Operation::Write,
        0,
        1,
        Fault::Error(ENOSPC),
    ));
    append_records(&log, 10);
    let err = log.sync().expect_err("the journal write fails");
    assert!(
        matches!(&err, LogError::Io { source, .. } if source.raw_os_error() == Some(ENOSPC)),
        "{err}"
    );
    // The disk has room again, but nothing more is acknowledged by this process.
    faults::clear(&temp.path().display().to_string());
    assert!(matches!(log.sync(), Err(LogError::Poisoned)));
    assert!(matches!(journal.sync(), Err(LogError::Poisoned)));
    let appended = log.append(&[millrace_log::Entry {
        timestamp_ms: 1000,
        payload: b"x",
    }]);
    assert!(matches!(appended, Err(LogError::Poisoned)), "{appended:?}");
    drop(log);
    drop(journal);
    // A restart keeps the acknowledged records and drops the torn one.
    let ((_journal, log), warnings) = capture::warnings(|| open_journaled(temp.path()));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("truncating the journal")),
        "{warnings:?}"
    );
    assert_eq!(log.next_position(), 10);
    check_all_records(&log);
}

#[test]
fn a_failed_journal_fsync_is_never_retried_into_an_acknowledgement() {
    let temp = fast_tempdir();
    let _cleanup = cleanup(temp.path());
    let (journal, log) = open_journaled(temp.path());
    append_records(&log, 4);
    log.sync().expect("sync");
    faults::inject(rule(
        temp.path(),
        "journal/",
        Operation::Sync,
        0,
        1,
        Fault::Error(EIO),
    ));
    append_records(&log, 4);
    assert!(log.sync().is_err());
    // The next sync would succeed at the OS level, but the data it covers may be gone.
    assert!(matches!(log.sync(), Err(LogError::Poisoned)));
    assert!(matches!(journal.sync(), Err(LogError::Poisoned)));
    let appended = log.append(&[millrace_log::Entry {
        timestamp_ms: 100,
        payload: b"x",
    }]);
    assert!(matches!(appended, Err(LogError::Poisoned)), "{appended:?}");
    drop(log);
    drop(journal);
    let (_journal, log) = open_journaled(temp.path());
    // The acknowledged four are there; the unacknowledged ones may or may not be.
    assert!(log.next_position() >= 4);
    check_all_records(&log);
}

#[test]
fn a_failed_segment_fsync_stops_a_standalone_log() {
    let temp = fast_tempdir();
    let _cleanup = cleanup(temp.path());
    let log = ShardLog::open(temp.path(), LogConfig::default()).expect("open");
    append_records(&log, 3);
    log.sync().expect("sync");
    faults::inject(rule(
        temp.path(),
        "",
        Operation::Sync,
        0,
        1,
        Fault::Error(EIO),
    ));
    append_records(&log, 3);
    assert!(log.sync().is_err());
    assert!(matches!(log.sync(), Err(LogError::Poisoned)));
    assert!(matches!(
        log.append(&[millrace_log::Entry {
            timestamp_ms: 100,
            payload: b"x"
        }]),
        Err(LogError::Poisoned)
    ));
}

#[test]
fn a_full_disk_during_a_standalone_append_leaves_no_partial_frame() {
    let temp = fast_tempdir();
    let _cleanup = cleanup(temp.path());
    let log = ShardLog::open(temp.path(), LogConfig::default()).expect("open");
    append_records(&log, 3);
    faults::inject(rule(
        temp.path(),
        "",
        Operation::Write,
        0,
        1,
        Fault::Short(5),
    ));
    faults::inject(rule(
        temp.path(),
        "",
        Operation::Write,
        0,
        1,
        Fault::Error(ENOSPC),
    ));
    let payload = b"does not fit".to_vec();
    let failed = log.append(&[millrace_log::Entry {
        timestamp_ms: 1000,
        payload: &payload,
    }]);
    assert!(failed.is_err());
    faults::clear(&temp.path().display().to_string());
    // The partial frame was cut off again, so the log goes on at the same position.
    assert_eq!(log.next_position(), 3);
    append_records(&log, 2);
    log.sync().expect("sync");
    drop(log);
    let log = ShardLog::open(temp.path(), LogConfig::default()).expect("reopen");
    assert_eq!(log.next_position(), 5);
    check_all_records(&log);
}

#[test]
fn a_failed_write_back_keeps_the_records_in_the_journal() {
    let temp = fast_tempdir();
    let _cleanup = cleanup(temp.path());
    let (journal, log) = open_journaled(temp.path());
    faults::inject(rule(
        temp.path(),
        "log/",
        Operation::Write,
        0,
        1,
        Fault::Error(ENOSPC),
    ));
    // Enough for one write-back (64 KiB) of the tail.
    let payload = vec![3u8; 9000];
    let entries: Vec<millrace_log::Entry<'_>> = (0..10)
        .map(|_| millrace_log::Entry {
            timestamp_ms: 1,
            payload: &payload,
        })
        .collect();
    log.append(&entries)
        .expect("append: the journal has the records");
    // The log refuses to acknowledge; the journal (synced for every log) still makes the
    // records durable.
    assert!(matches!(log.sync(), Err(LogError::Poisoned)));
    journal.sync().expect("the journal is durable");
    // The log stops taking records; a checkpoint cannot delete the journal.
    assert!(matches!(log.append(&entries), Err(LogError::Poisoned)));
    faults::clear(&temp.path().display().to_string());
    drop(log);
    drop(journal);
    let (_journal, log) = open_journaled(temp.path());
    assert_eq!(log.next_position(), 10);
    let records = log.read(0, 10, 100, usize::MAX).expect("read");
    assert!(records.iter().all(|r| r.payload == payload));
}

#[test]
fn a_failed_checkpoint_sync_keeps_every_journal_file() {
    let temp = fast_tempdir();
    let _cleanup = cleanup(temp.path());
    let (journal, mut replay) = Journal::open(
        &temp.path().join("journal"),
        JournalConfig {
            file_bytes: 1000,
            ..JournalConfig::default()
        },
    )
    .expect("open");
    let log = ShardLog::open_journaled(
        &temp.path().join("log"),
        LogConfig::default(),
        &journal,
        0,
        replay.take(0).as_deref(),
    )
    .expect("open log");
    faults::inject(rule(
        temp.path(),
        "log/",
        Operation::Sync,
        0,
        u32::MAX,
        Fault::Error(EIO),
    ));
    for _ in 0..10 {
        log.append(&[millrace_log::Entry {
            timestamp_ms: 1,
            payload: &[1u8; 2000],
        }])
        .expect("append");
        // Each sync fills a journal file and starts the next; checkpoints fail to sync the
        // segment, so they must delete nothing, now or later.
        log.sync().expect("sync");
    }
    let _ = journal.checkpoint();
    faults::clear(&temp.path().display().to_string());
    let _ = journal.checkpoint();
    assert_eq!(
        files_with_suffix(&temp.path().join("journal"), ".wal").len(),
        11
    );
    drop(log);
    drop(journal);
    let (_journal, log) = open_journaled(temp.path());
    assert_eq!(log.next_position(), 10);
}
