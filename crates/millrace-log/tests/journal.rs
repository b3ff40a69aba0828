//! Journaled logs: appends reach a shared journal first and their segment files later; after a
//! crash (simulated by dropping the logs without writing their tails back) the journal replays.

mod common;

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use common::*;
use millrace_log::{Journal, JournalConfig, JournalReplay, LogConfig, ShardLog};

fn journal_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files_with_suffix(dir, ".wal")
}

fn open_all(root: &Path, config: JournalConfig, logs: u64) -> (Arc<Journal>, Vec<ShardLog>) {
    open_all_with(root, config, small_config(), logs)
}

fn open_all_with(
    root: &Path,
    config: JournalConfig,
    log_config: LogConfig,
    logs: u64,
) -> (Arc<Journal>, Vec<ShardLog>) {
    let (journal, mut replay): (Arc<Journal>, JournalReplay) =
        Journal::open(&root.join("journal"), config).expect("open journal");
    let opened = (0..logs)
        .map(|id| {
            let frames = replay.take(id);
            ShardLog::open_journaled(
                &root.join(id.to_string()),
                log_config,
                &journal,
                id,
                frames.as_deref(),
            )
            .expect("open journaled log")
        })
        .collect();
    (journal, opened)
}

#[test]
fn synced_records_survive_losing_every_unwritten_tail() {
    let temp = fast_tempdir();
    let (journal, logs) = open_all(temp.path(), JournalConfig::default(), 3);
    for round in 0..20 {
        for log in &logs {
            append_records(log, 1 + round % 3);
        }
        // Readers see records that exist only in memory and in the journal.
        for log in &logs {
            check_all_records(log);
        }
    }
    for log in &logs {
        log.sync().expect("sync");
    }
    let ends: Vec<u64> = logs.iter().map(ShardLog::next_position).collect();
    // A crash: the tails are lost, the journal is not.
    drop(logs);
    drop(journal);
    let (journal, logs) = open_all(temp.path(), JournalConfig::default(), 3);
    for (log, end) in logs.iter().zip(&ends) {
        assert_eq!(log.next_position(), *end);
        check_all_records(log);
    }
    journal.finish_recovery().expect("finish recovery");
    assert_eq!(journal_files(&temp.path().join("journal")).len(), 1);
    // Replayed records are in the segment files now: a second crash needs no journal.
    for log in &logs {
        append_records(log, 5);
        log.sync().expect("sync");
    }
    drop(logs);
    drop(journal);
    let (_journal, logs) = open_all(temp.path(), JournalConfig::default(), 3);
    for (log, end) in logs.iter().zip(&ends) {
        assert_eq!(log.next_position(), end + 5);
        check_all_records(log);
    }
}

#[test]
fn checkpoints_wait_until_each_segment_sync_covers_enough_journal() {
    let temp = fast_tempdir();
    let config = JournalConfig {
        file_bytes: 512 << 10,
        preallocate_bytes: 0,
    };
    let log_config = LogConfig {
        segment_bytes: 64 << 20,
        ..LogConfig::default()
    };
    let (journal, logs) = open_all_with(temp.path(), config, log_config, 4);
    let journal_dir = temp.path().join("journal");
    let fill_until = |done: &dyn Fn(usize) -> bool| {
        while !done(journal_files(&journal_dir).len()) {
            for log in &logs {
                append_records(log, 50);
            }
            logs[0].sync().expect("sync");
        }
    };
    // Four dirty segment files want 1 MiB of closed journal per checkpoint: one closed file of
    // 512 KiB is not enough, for the checkpoint thread nor for this call.
    fill_until(&|files| files >= 2);
    assert_eq!(journal.checkpoint_when_due().expect("checkpoint"), 0);
    assert_eq!(journal_files(&journal_dir).len(), 2);
    // The tails were written back all the same: everything reads from the segment files.
    for (id, log) in logs.iter().enumerate() {
        check_all_records(log);
        let segment = segment_file(&temp.path().join(id.to_string()), 0);
        assert!(fs::metadata(segment).expect("segment").len() > 0);
    }
    // A second closed file makes it due.
    fill_until(&|files| files != 2);
    journal.checkpoint_when_due().expect("checkpoint");
    assert_eq!(journal_files(&journal_dir).len(), 1);
    for log in &logs {
        check_all_records(log);
    }
}

#[test]
fn checkpoints_delete_covered_journal_files_and_keep_everything_readable() {
    let temp = fast_tempdir();
    let config = JournalConfig {
        file_bytes: 2000,
        ..JournalConfig::default()
    };
    let (journal, logs) = open_all(temp.path(), config, 2);
    for _ in 0..100 {
        for log in &logs {
            append_records(log, 2);
            log.sync().expect("sync");
        }
    }
    let journal_dir = temp.path().join("journal");
    // The checkpoint thread deletes files as the journal rolls; this one catches up.
    journal.checkpoint().expect("checkpoint");
    assert_eq!(journal_files(&journal_dir).len(), 1);
    for log in &logs {
        check_all_records(log);
    }
    let ends: Vec<u64> = logs.iter().map(ShardLog::next_position).collect();
    drop(logs);
    drop(journal);
    let (_journal, logs) = open_all(temp.path(), config, 2);
    for (log, end) in logs.iter().zip(&ends) {
        assert_eq!(log.next_position(), *end);
        check_all_records(log);
    }
}

#[test]
fn a_torn_journal_tail_loses_only_the_unsynced_record() {
    let temp = fast_tempdir();
    // Large segments, so that no roll writes the tail back.
    let big = LogConfig::default();
    let (journal, logs) = open_all_with(temp.path(), JournalConfig::default(), big, 1);
    append_records(&logs[0], 10);
    logs[0].sync().expect("sync");
    append_records(&logs[0], 10);
    logs[0].sync().expect("sync");
    drop(logs);
    drop(journal);
    let journal_dir = temp.path().join("journal");
    let newest = journal_files(&journal_dir).pop().expect("a journal file");
    // The file ends with zeros preallocated past its records: the last 7 bytes of the last
    // record never reached the disk.
    let bytes = fs::read(&newest).expect("read journal file");
    let end = bytes.iter().rposition(|&b| b != 0).expect("records") + 1;
    assert!(
        end < bytes.len(),
        "the journal file is preallocated past its records"
    );
    let file = OpenOptions::new()
        .write(true)
        .open(&newest)
        .expect("open journal file");
    file.write_all_at(&[0; 7], end as u64 - 7)
        .expect("tear the last record");
    drop(file);
    let ((_journal, logs), warnings) =
        capture::warnings(|| open_all_with(temp.path(), JournalConfig::default(), big, 1));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("truncating the journal")),
        "{warnings:?}"
    );
    assert_eq!(logs[0].next_position(), 10);
    check_all_records(&logs[0]);
}

#[test]
fn a_preallocated_journal_replays_every_synced_record_without_a_warning() {
    let temp = fast_tempdir();
    let big = LogConfig::default();
    let (journal, logs) = open_all_with(temp.path(), JournalConfig::default(), big, 2);
    for _ in 0..5 {
        append_records(&logs[0], 3);
        append_records(&logs[1], 2);
        journal.sync().expect("sync");
    }
    drop(logs);
    drop(journal);
    let newest = journal_files(&temp.path().join("journal"))
        .pop()
        .expect("a journal file");
    let len = fs::metadata(&newest).expect("stat").len();
    assert!(len >= 1 << 20, "zeros preallocated past the records: {len}");
    let ((_journal, logs), warnings) =
        capture::warnings(|| open_all_with(temp.path(), JournalConfig::default(), big, 2));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(logs[0].next_position(), 15);
    assert_eq!(logs[1].next_position(), 10);
    check_all_records(&logs[0]);
    check_all_records(&logs[1]);
}

#[test]
fn records_of_logs_that_no_longer_exist_are_skipped() {
    let temp = fast_tempdir();
    let (journal, logs) = open_all(temp.path(), JournalConfig::default(), 2);
    for log in &logs {
        append_records(log, 4);
        log.sync().expect("sync");
    }
    drop(logs);
    drop(journal);
    // Log 1 was deleted (its stream was) before the crash recovery.
    let (journal, mut replay) =
        Journal::open(&temp.path().join("journal"), JournalConfig::default()).expect("open");
    let frames = replay.take(0);
    let log = ShardLog::open_journaled(
        &temp.path().join("0"),
        LogConfig::default(),
        &journal,
        0,
        frames.as_deref(),
    )
    .expect("open");
    assert_eq!(log.next_position(), 4);
    assert_eq!(replay.log_ids(), vec![1]);
    journal.finish_recovery().expect("finish");
}

#[test]
fn retention_works_on_journaled_logs() {
    let temp = fast_tempdir();
    let (_journal, logs) = open_all(temp.path(), JournalConfig::default(), 1);
    append_records(&logs[0], 100);
    let before = logs[0].start_position();
    let deleted = logs[0].trim_before_timestamp(500).expect("trim");
    assert!(deleted > 0);
    assert!(logs[0].start_position() > before);
    check_all_records(&logs[0]);
    append_records(&logs[0], 10);
    check_all_records(&logs[0]);
}

/// Copies every file under `from` (recursively) to `to`.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

#[test]
fn a_crash_in_the_middle_of_a_write_back_is_repaired_from_the_journal() {
    let temp = fast_tempdir();
    let big = LogConfig::default();
    let (journal, logs) = open_all_with(temp.path(), JournalConfig::default(), big, 1);
    // Large records, so that the tail is written back (at 64 KiB) while the journal holds them.
    let payload = vec![7u8; 10_000];
    let entries: Vec<millrace_log::Entry<'_>> = (0..20)
        .map(|_| millrace_log::Entry {
            timestamp_ms: 5,
            payload: &payload,
        })
        .collect();
    logs[0].append(&entries).expect("append");
    logs[0].sync().expect("sync");
    let segment = segment_file(&temp.path().join("0"), 0);
    let written = fs::metadata(&segment).expect("stat").len();
    assert!(written > 16, "the tail was written back");
    drop(logs);
    drop(journal);
    // Every cut of the write-back leaves a segment whose torn frame recovery removes, and
    // the journal replays the rest.
    for cut in [17, 40, written / 2, written - 1] {
        let copy = tempfile::tempdir().expect("tempdir");
        copy_tree(temp.path(), copy.path());
        let file = OpenOptions::new()
            .write(true)
            .open(segment_file(&copy.path().join("0"), 0))
            .expect("open");
        file.set_len(cut).expect("cut the write-back");
        drop(file);
        let ((journal, logs), _) =
            capture::warnings(|| open_all_with(copy.path(), JournalConfig::default(), big, 1));
        assert_eq!(logs[0].next_position(), 20, "cut at {cut}");
        let records = logs[0].read(0, 20, 100, usize::MAX).expect("read");
        assert_eq!(records.len(), 20);
        assert!(records.iter().all(|r| r.payload == payload));
        journal.finish_recovery().expect("finish");
    }
}

#[test]
fn a_crash_in_the_middle_of_trimming_the_journal_loses_nothing() {
    let temp = fast_tempdir();
    let config = JournalConfig {
        file_bytes: 1500,
        ..JournalConfig::default()
    };
    let (journal, logs) = open_all(temp.path(), config, 2);
    let journal_dir = temp.path().join("journal");
    let saved = tempfile::tempdir().expect("tempdir");
    for round in 0..60 {
        for log in &logs {
            append_records(log, 1 + round % 4);
            log.sync().expect("sync");
        }
        if round == 30 {
            // What the journal held before a checkpoint ran.
            journal.checkpoint().expect("checkpoint");
            for path in journal_files(&journal_dir) {
                // As a roll leaves a file once a newer one exists: cut after its last record
                // (the newest file may end with preallocated zeros; the records end with
                // payload bytes, which are not zero).
                let mut bytes = fs::read(&path).expect("read journal file");
                bytes.truncate(bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1));
                fs::write(saved.path().join(path.file_name().expect("name")), bytes).expect("save");
            }
        }
    }
    journal.checkpoint().expect("checkpoint");
    let ends: Vec<u64> = logs.iter().map(ShardLog::next_position).collect();
    drop(logs);
    drop(journal);
    // Deletion goes oldest first: put back every suffix of the deleted files, as a crash
    // between two deletions would leave them.
    let mut deleted: Vec<std::path::PathBuf> = files_with_suffix(saved.path(), ".wal");
    deleted.retain(|p| !journal_dir.join(p.file_name().expect("name")).exists());
    assert!(!deleted.is_empty());
    for keep_from in 0..deleted.len() {
        let copy = tempfile::tempdir().expect("tempdir");
        copy_tree(temp.path(), copy.path());
        for path in &deleted[keep_from..] {
            let name = path.file_name().expect("name");
            fs::copy(path, copy.path().join("journal").join(name)).expect("restore");
        }
        let (journal, logs) = open_all(copy.path(), config, 2);
        for (log, end) in logs.iter().zip(&ends) {
            assert_eq!(log.next_position(), *end);
            check_all_records(log);
        }
        journal.finish_recovery().expect("finish");
    }
}

#[test]
fn a_deleted_log_does_not_block_checkpoints() {
    let temp = fast_tempdir();
    let config = JournalConfig {
        file_bytes: 1000,
        ..JournalConfig::default()
    };
    let (journal, logs) = open_all_with(temp.path(), config, LogConfig::default(), 2);
    append_records(&logs[0], 3);
    append_records(&logs[1], 3);
    // Log 1's stream is deleted while a reader still holds the log, its tail unwritten.
    let deleted = temp.path().join("1");
    millrace_log::forget_files_under(&deleted);
    fs::remove_dir_all(&deleted).expect("delete the log directory");
    for _ in 0..20 {
        append_records(&logs[0], 5);
        logs[0].sync().expect("sync");
    }
    journal
        .checkpoint()
        .expect("the checkpoint skips the deleted log");
    assert_eq!(journal_files(&temp.path().join("journal")).len(), 1);
    check_all_records(&logs[0]);
}

#[test]
fn a_first_segment_that_lost_its_header_in_a_power_cut_is_rebuilt_from_the_journal() {
    let temp = fast_tempdir();
    let big = LogConfig::default();
    let (journal, logs) = open_all_with(temp.path(), JournalConfig::default(), big, 1);
    // More than one write-back: the segment file holds frames after its header.
    let payload = vec![9u8; 30_000];
    let entries: Vec<millrace_log::Entry<'_>> = (0..5)
        .map(|_| millrace_log::Entry {
            timestamp_ms: 2,
            payload: &payload,
        })
        .collect();
    logs[0].append(&entries).expect("append");
    logs[0].sync().expect("sync");
    drop(logs);
    drop(journal);
    // The segment was created without a sync: its first bytes may not have reached the disk.
    let segment = segment_file(&temp.path().join("0"), 0);
    let file = OpenOptions::new().write(true).open(&segment).expect("open");
    std::os::unix::fs::FileExt::write_all_at(&file, &[0u8; 16], 0).expect("lose the header");
    drop(file);
    let ((_journal, logs), warnings) =
        capture::warnings(|| open_all_with(temp.path(), JournalConfig::default(), big, 1));
    assert!(
        warnings.iter().any(|w| w.contains("rewriting the header")),
        "{warnings:?}"
    );
    assert_eq!(logs[0].next_position(), 5);
    let records = logs[0].read(0, 5, 10, usize::MAX).expect("read");
    assert!(records.iter().all(|r| r.payload == payload));
}
