//! Property test: random operation sequences checked against an in-memory model of the log.

mod common;

use std::path::Path;

use common::{fast_tempdir, segment_bases};
use millrace_log::{Entry, LogConfig, ShardLog};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Records as (timestamp increase over the previous record, payload).
    Append(Vec<(u64, Vec<u8>)>),
    Read {
        from: u64,
        len: u64,
        max_records: usize,
        max_bytes: usize,
    },
    PositionAtTimestamp(u64),
    Trim(u64),
    Sync,
    /// Drop and reopen, with this index interval.
    Reopen(u32),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let record = (0u64..3, prop::collection::vec(any::<u8>(), 0..80));
    prop_oneof![
        6 => prop::collection::vec(record, 1..8).prop_map(Op::Append),
        3 => (any::<u64>(), 0u64..40, 0usize..12, 0usize..400).prop_map(
            |(from, len, max_records, max_bytes)| Op::Read { from, len, max_records, max_bytes }
        ),
        2 => any::<u64>().prop_map(Op::PositionAtTimestamp),
        1 => any::<u64>().prop_map(Op::Trim),
        1 => Just(Op::Sync),
        1 => prop::sample::select(vec![0u32, 40, 64, 1000]).prop_map(Op::Reopen),
    ]
}

/// The expected content of the log.
#[derive(Default)]
struct Model {
    start: u64,
    /// Records from `start` on, as (timestamp, payload).
    records: Vec<(u64, Vec<u8>)>,
    last_timestamp: u64,
}

impl Model {
    fn next(&self) -> u64 {
        self.start + self.records.len() as u64
    }

    fn timestamp_of(&self, position: u64) -> u64 {
        self.records[(position - self.start) as usize].0
    }
}

fn config(index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes,
    }
}

fn check_positions(log: &ShardLog, model: &Model) {
    assert_eq!(log.start_position(), model.start);
    assert_eq!(log.next_position(), model.next());
    assert_eq!(log.last_timestamp(), model.records.last().map(|r| r.0));
}

/// Which records a trim must delete, derived from the segment files and the model.
fn expected_trim(dir: &Path, model: &Model, ts: u64) -> (usize, u64) {
    let bases = segment_bases(dir);
    let Some(&active_base) = bases.last() else {
        return (0, model.start);
    };
    let newest_before = |end: u64| model.timestamp_of(end - 1);
    if model.next() > active_base && newest_before(model.next()) < ts {
        return (bases.len(), model.next());
    }
    let mut deleted = 0;
    for window in bases.windows(2) {
        if newest_before(window[1]) >= ts {
            break;
        }
        deleted += 1;
    }
    (deleted, bases[deleted])
}

fn run(ops: Vec<Op>) {
    let temp = fast_tempdir();
    let dir = temp.path().join("shard");
    let mut log = ShardLog::open(&dir, config(64)).expect("open");
    let mut model = Model::default();
    for op in ops {
        match op {
            Op::Append(records) => {
                let mut ts = model.last_timestamp;
                let stamped: Vec<(u64, Vec<u8>)> = records
                    .into_iter()
                    .map(|(step, payload)| {
                        ts += step;
                        (ts, payload)
                    })
                    .collect();
                let entries: Vec<Entry<'_>> = stamped
                    .iter()
                    .map(|(timestamp_ms, payload)| Entry {
                        timestamp_ms: *timestamp_ms,
                        payload,
                    })
                    .collect();
                assert_eq!(log.append(&entries).expect("append"), model.next());
                model.last_timestamp = ts;
                model.records.extend(stamped);
            }
            Op::Read {
                from,
                len,
                max_records,
                max_bytes,
            } => {
                let from = from % (model.next() + 5);
                let until = from + len;
                let got = log.read(from, until, max_records, max_bytes).expect("read");
                let mut expected = Vec::new();
                let mut bytes = 0;
                for position in from.max(model.start)..until.min(model.next()) {
                    let (ts, payload) = &model.records[(position - model.start) as usize];
                    let too_big = bytes + payload.len() > max_bytes && !expected.is_empty();
                    if expected.len() == max_records || too_big {
                        break;
                    }
                    bytes += payload.len();
                    expected.push((position, *ts, payload.clone()));
                }
                let got: Vec<_> = got
                    .into_iter()
                    .map(|r| (r.position, r.timestamp_ms, r.payload))
                    .collect();
                assert_eq!(got, expected);
            }
            Op::PositionAtTimestamp(ts) => {
                let ts = ts % (model.last_timestamp + 3);
                let expected = model
                    .records
                    .iter()
                    .position(|r| r.0 >= ts)
                    .map_or(model.next(), |i| model.start + i as u64);
                assert_eq!(
                    log.position_at_timestamp(ts).expect("lookup"),
                    expected,
                    "ts {ts}"
                );
            }
            Op::Trim(ts) => {
                let ts = ts % (model.last_timestamp + 3);
                let (deleted, new_start) = expected_trim(&dir, &model, ts);
                assert_eq!(log.trim_before_timestamp(ts).expect("trim"), deleted);
                model.records.drain(..(new_start - model.start) as usize);
                model.start = new_start;
            }
            Op::Sync => assert_eq!(log.sync().expect("sync"), model.next()),
            Op::Reopen(index_interval) => {
                drop(log);
                log = ShardLog::open(&dir, config(index_interval)).expect("reopen");
            }
        }
        check_positions(&log, &model);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(96)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op_strategy(), 1..60)) {
        run(ops);
    }
}
