//! Property test: no damage to the files on disk makes the log panic.
//!
//! Opening, reading, looking up and appending may fail with an error, but must not panic, and
//! whatever is read back must be records that were written.

mod common;

use std::fs::{self, OpenOptions};

use common::*;
use millrace_log::ShardLog;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Damage {
    /// XOR a byte at a (scaled) offset of the (scaled) n-th file.
    Flip { file: usize, at: usize, mask: u8 },
    /// Cut a file to a (scaled) length.
    Truncate { file: usize, at: usize },
    /// Append bytes to a file.
    Extend { file: usize, bytes: Vec<u8> },
}

fn damage_strategy() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), any::<usize>(), 1u8..).prop_map(|(file, at, mask)| Damage::Flip {
            file,
            at,
            mask
        }),
        (any::<usize>(), any::<usize>()).prop_map(|(file, at)| Damage::Truncate { file, at }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(file, bytes)| Damage::Extend { file, bytes }),
    ]
}

fn apply(dir: &std::path::Path, damage: &Damage) {
    let mut files = files_with_suffix(dir, ".seg");
    files.extend(files_with_suffix(dir, ".idx"));
    let pick = |n: usize| &files[n % files.len()];
    match damage {
        Damage::Flip { file, at, mask } => {
            let path = pick(*file);
            let mut bytes = fs::read(path).expect("read");
            if !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] ^= mask;
                fs::write(path, bytes).expect("write");
            }
        }
        Damage::Truncate { file, at } => {
            let path = pick(*file);
            let len = fs::metadata(path).expect("stat").len();
            let file = OpenOptions::new().write(true).open(path).expect("open");
            file.set_len(*at as u64 % (len + 1)).expect("truncate");
        }
        Damage::Extend { file, bytes } => {
            let path = pick(*file);
            let mut existing = fs::read(path).expect("read");
            existing.extend_from_slice(bytes);
            fs::write(path, existing).expect("write");
        }
    }
}

fn exercise(dir: &std::path::Path) {
    let Ok(log) = ShardLog::open(dir, small_config()) else {
        return;
    };
    if let Ok(records) = log.read(0, u64::MAX, usize::MAX, usize::MAX) {
        records.iter().for_each(check_record);
    }
    for ts in [0, 55, 150, 10_000] {
        let _ = log.position_at_timestamp(ts);
    }
    let _ = log.read(17, 25, 3, 100);
    if log.next_position() < 1000 && append_records(&log, 3) > 0 {
        let _ = log.read(0, u64::MAX, usize::MAX, usize::MAX);
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn damaged_files_never_cause_a_panic(damages in prop::collection::vec(damage_strategy(), 1..4)) {
        let temp = fast_tempdir();
        let log = ShardLog::open(temp.path(), small_config()).expect("open");
        append_records(&log, 40);
        drop(log);
        for damage in &damages {
            apply(temp.path(), damage);
        }
        exercise(temp.path());
    }
}
