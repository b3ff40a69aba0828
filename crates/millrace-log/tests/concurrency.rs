//! Reads, lookups, syncs and retention running while another thread appends.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use millrace_log::{LogConfig, ShardLog};

const TOTAL: u64 = 20_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
    }
}

/// Appends `TOTAL` records in batches of varying size.
fn write_all(log: &ShardLog) {
    let mut batch = 1;
    while log.next_position() < TOTAL {
        let count = batch.min(TOTAL - log.next_position());
        append_records(log, count);
        batch = batch % 47 + 1;
    }
}

/// Checks that `records` are consecutive and hold the expected payloads.
fn check_batch(records: &[millrace_log::ReadEntry]) {
    for pair in records.windows(2) {
        assert_eq!(pair[1].position, pair[0].position + 1);
    }
    records.iter().for_each(check_record);
}

#[test]
fn readers_see_a_consistent_prefix_while_appending() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), config()).expect("open");
    std::thread::scope(|scope| {
        scope.spawn(|| write_all(&log));
        for reader in 0..2usize {
            let log = &log;
            scope.spawn(move || {
                let mut cursor = 0;
                while cursor < TOTAL {
                    let records = log
                        .read(cursor, u64::MAX, 50 + reader * 100, 3000)
                        .expect("read");
                    if let Some(first) = records.first() {
                        assert_eq!(first.position, cursor);
                    }
                    check_batch(&records);
                    cursor += records.len() as u64;
                }
            });
        }
        scope.spawn(|| {
            let mut durable = 0;
            while durable < TOTAL {
                let synced = log.sync().expect("sync");
                assert!(synced >= durable && synced <= log.next_position());
                durable = synced;
            }
        });
        scope.spawn(|| {
            let mut probe = 7u64;
            while log.next_position() < TOTAL {
                probe = probe
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let ts = (probe >> 20) % (TOTAL * 10);
                let next_before = log.next_position();
                let found = log.position_at_timestamp(ts).expect("lookup");
                let first_match = ts.div_ceil(10);
                assert!(
                    found == first_match || (found < first_match && found >= next_before),
                    "ts {ts}: found {found}, next before {next_before}"
                );
            }
        });
    });
    check_all_records(&log);
}

#[test]
fn readers_stay_gap_free_while_retention_deletes_segments() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), config()).expect("open");
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            write_all(&log);
            done.store(true, Ordering::Release);
        });
        scope.spawn(|| {
            while !done.load(Ordering::Acquire) {
                let keep_from = log.next_position().saturating_sub(300);
                log.trim_before_timestamp(keep_from * 10).expect("trim");
            }
        });
        scope.spawn(|| {
            let mut cursor = 0;
            while cursor < TOTAL {
                let records = log.read(cursor, u64::MAX, 40, usize::MAX).expect("read");
                let Some(first) = records.first() else {
                    continue;
                };
                if first.position != cursor {
                    assert!(first.position > cursor);
                    assert!(
                        log.start_position() > cursor,
                        "skipped records that still exist"
                    );
                }
                check_batch(&records);
                cursor = first.position + records.len() as u64;
            }
        });
    });
    assert!(log.start_position() > 0);
    check_all_records(&log);
    drop(log);
    let log = ShardLog::open(temp.path(), config()).expect("reopen");
    assert_eq!(log.next_position(), TOTAL);
    check_all_records(&log);
}

#[test]
fn shard_log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ShardLog>();
}
