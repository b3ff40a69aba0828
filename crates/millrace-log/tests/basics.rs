//! Behaviour of the public `ShardLog` API on a healthy disk.

mod common;

use common::*;
use millrace_log::{Entry, LogConfig, LogError, ShardLog};

#[test]
fn a_new_log_touches_the_disk_only_on_first_append() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("stream").join("shard-0");
    let log = ShardLog::open(&dir, LogConfig::default()).expect("open");
    assert!(!dir.exists());
    assert!(
        std::mem::size_of::<ShardLog>() <= 256,
        "{}",
        std::mem::size_of::<ShardLog>()
    );
    assert_eq!(log.next_position(), 0);
    assert_eq!(log.start_position(), 0);
    assert_eq!(log.last_timestamp(), None);
    assert_eq!(log.read(0, 10, 10, 100).expect("read"), vec![]);
    assert_eq!(log.position_at_timestamp(5).expect("lookup"), 0);
    assert_eq!(log.trim_before_timestamp(1000).expect("trim"), 0);
    assert_eq!(log.sync().expect("sync"), 0);
    assert_eq!(log.append(&[]).expect("empty append"), 0);
    assert!(!dir.exists());

    let entry = Entry {
        timestamp_ms: 7,
        payload: b"hello",
    };
    assert_eq!(log.append(&[entry, entry]).expect("append"), 0);
    assert!(dir.exists());
    assert_eq!(log.next_position(), 2);
    assert_eq!(log.last_timestamp(), Some(7));
    assert_eq!(log.sync().expect("sync"), 2);
}

#[test]
fn first_position_applies_to_a_new_log_only() {
    let temp = tempfile::tempdir().expect("tempdir");
    let log = ShardLog::open_with_first_position(temp.path(), small_config(), 1000).expect("open");
    assert_eq!(log.next_position(), 1000);
    assert_eq!(append_records(&log, 3), 1000);
    drop(log);
    let log = ShardLog::open_with_first_position(temp.path(), small_config(), 5).expect("reopen");
    assert_eq!(log.start_position(), 1000);
    assert_eq!(log.next_position(), 1003);
    check_all_records(&log);
}

#[test]
fn read_respects_range_and_limits() {
    let temp = tempfile::tempdir().expect("tempdir");
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 100);
    assert!(segment_bases(temp.path()).len() > 10);

    let positions = |records: Vec<millrace_log::ReadEntry>| -> Vec<u64> {
        records
            .iter()
            .inspect(|r| check_record(r))
            .map(|r| r.position)
            .collect()
    };
    let read = |from, until, max_records, max_bytes| {
        positions(log.read(from, until, max_records, max_bytes).expect("read"))
    };
    assert_eq!(read(10, 20, 100, usize::MAX), (10..20).collect::<Vec<_>>());
    assert_eq!(read(10, 200, 5, usize::MAX), (10..15).collect::<Vec<_>>());
    assert_eq!(read(10, 20, 0, usize::MAX), Vec::<u64>::new());
    assert_eq!(read(10, 20, 100, 0), vec![10]);
    assert_eq!(read(20, 10, 100, 100), Vec::<u64>::new());
    assert_eq!(read(100, 200, 100, 100), Vec::<u64>::new());

    // Payload sizes decide where max_bytes cuts the batch.
    let sizes: Vec<usize> = (30..40).map(|p| payload_for(p).len()).collect();
    let budget = sizes[0] + sizes[1] + sizes[2];
    assert_eq!(read(30, 40, 100, budget), vec![30, 31, 32]);
    assert_eq!(read(30, 40, 100, budget - 1), vec![30, 31]);
}

#[test]
fn position_at_timestamp_finds_the_first_record_not_older() {
    let temp = tempfile::tempdir().expect("tempdir");
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    // Timestamps 0, 0, 0, 1, 1, 1, ... to exercise ties across index entries and segments.
    let payload = [7u8; 20];
    let entries: Vec<Entry<'_>> = (0..90)
        .map(|i| Entry {
            timestamp_ms: i / 3,
            payload: &payload,
        })
        .collect();
    log.append(&entries).expect("append");
    for ts in 0..30 {
        assert_eq!(log.position_at_timestamp(ts).expect("lookup"), ts * 3);
    }
    assert_eq!(log.position_at_timestamp(30).expect("lookup"), 90);
    assert_eq!(log.position_at_timestamp(u64::MAX).expect("lookup"), 90);
}

#[test]
fn trim_deletes_whole_old_segments_and_never_reuses_positions() {
    let temp = tempfile::tempdir().expect("tempdir");
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 50);
    let bases = segment_bases(temp.path());
    // Records have timestamp 10 * position; trim everything strictly older than record 20.
    let deleted = log.trim_before_timestamp(200).expect("trim");
    let kept = segment_bases(temp.path());
    assert_eq!(deleted, bases.len() - kept.len());
    assert!(kept[0] <= 20, "the segment holding record 20 stays");
    assert!(kept[0] > 0);
    assert_eq!(log.start_position(), kept[0]);
    assert_eq!(log.position_at_timestamp(0).expect("lookup"), kept[0]);
    check_all_records(&log);

    // Everything is older: the active segment is sealed and deleted too.
    log.trim_before_timestamp(u64::MAX).expect("trim all");
    assert_eq!(segment_bases(temp.path()), vec![50]);
    assert_eq!(log.start_position(), 50);
    assert_eq!(log.next_position(), 50);
    assert_eq!(log.last_timestamp(), None);
    assert_eq!(log.read(0, u64::MAX, 10, 10).expect("read"), vec![]);
    assert!(common::files_with_suffix(temp.path(), ".idx").is_empty());
    drop(log);

    let log = ShardLog::open(temp.path(), small_config()).expect("reopen");
    assert_eq!(log.start_position(), 50);
    assert_eq!(append_records(&log, 5), 50);
    check_all_records(&log);
}

#[test]
fn destroy_removes_the_directory() {
    let temp = tempfile::tempdir().expect("tempdir");
    let dir = temp.path().join("shard");
    let log = ShardLog::open(&dir, small_config()).expect("open");
    append_records(&log, 20);
    log.destroy().expect("destroy");
    assert!(!dir.exists());
    let never_written = ShardLog::open(&dir, small_config()).expect("open");
    never_written
        .destroy()
        .expect("destroy of a log without directory");
}

#[test]
fn oversized_segment_config_and_big_payloads_work() {
    let temp = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: u64::MAX,
        index_interval_bytes: 0,
    };
    let log = ShardLog::open(temp.path(), config).expect("open");
    let big = vec![3u8; 3 << 20];
    let entry = Entry {
        timestamp_ms: 1,
        payload: &big,
    };
    log.append(&[entry, entry]).expect("append");
    let records = log.read(0, 2, 10, 1).expect("read");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].payload, big);
    assert_eq!(
        log.read(1, 2, 10, usize::MAX).expect("read")[0].payload,
        big
    );
}

#[test]
fn errors_have_lowercase_messages() {
    let err = LogError::PayloadTooLarge { len: 5, limit: 4 };
    assert_eq!(
        err.to_string(),
        "payload of 5 bytes exceeds the frame limit of 4 bytes"
    );
}
