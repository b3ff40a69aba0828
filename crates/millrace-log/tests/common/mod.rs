//! Helpers shared by the integration tests of `millrace-log`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use millrace_log::{Entry, LogConfig, ReadEntry, ShardLog};

/// Small segments so that tests roll many of them.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 300,
        index_interval_bytes: 64,
    }
}

/// A payload that encodes its position, with a length that varies by position.
pub fn payload_for(position: u64) -> Vec<u8> {
    let len = (position % 37) as usize;
    let mut payload = format!("record-{position}-").into_bytes();
    payload.extend(std::iter::repeat_n(b'x', len));
    payload
}

/// Appends records `payload_for(next..next + count)`, one batch, with timestamp `10 * position`.
pub fn append_records(log: &ShardLog, count: u64) -> u64 {
    let first = log.next_position();
    let payloads: Vec<Vec<u8>> = (first..first + count).map(payload_for).collect();
    let entries: Vec<Entry<'_>> = payloads
        .iter()
        .zip(first..)
        .map(|(payload, position)| Entry {
            timestamp_ms: position * 10,
            payload,
        })
        .collect();
    log.append(&entries).expect("append")
}

/// Reads everything and checks it matches `append_records`.
pub fn check_all_records(log: &ShardLog) {
    let records = log
        .read(0, u64::MAX, usize::MAX, usize::MAX)
        .expect("read all");
    let expected: Vec<u64> = (log.start_position()..log.next_position()).collect();
    let got: Vec<u64> = records.iter().map(|r| r.position).collect();
    assert_eq!(got, expected);
    for record in &records {
        check_record(record);
    }
}

pub fn check_record(record: &ReadEntry) {
    assert_eq!(record.payload, payload_for(record.position));
    assert_eq!(record.timestamp_ms, record.position * 10);
}

/// Base positions of the segment files in `dir`, sorted.
pub fn segment_bases(dir: &Path) -> Vec<u64> {
    let mut bases: Vec<u64> = files_with_suffix(dir, ".seg")
        .iter()
        .map(|path| {
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("name");
            stem.parse().expect("numeric segment name")
        })
        .collect();
    bases.sort_unstable();
    bases
}

pub fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.to_str().is_some_and(|p| p.ends_with(suffix)))
        .collect();
    paths.sort();
    paths
}

pub fn segment_file(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

pub fn index_file(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.idx"))
}

/// A temporary directory on tmpfs when available, so fsync-heavy tests stay fast.
pub fn fast_tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("millrace-log-")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().expect("tempdir")
}

/// A `tracing` subscriber that records WARN and ERROR events as `"LEVEL message field=value ..."`.
pub mod capture {
    use std::fmt::{self, Write as _};
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    #[derive(Clone, Default)]
    pub struct Warnings(Arc<Mutex<Vec<String>>>);

    impl Warnings {
        pub fn lines(&self) -> Vec<String> {
            self.0.lock().expect("capture lock").clone()
        }
    }

    struct Line(String);

    impl Visit for Line {
        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if field.name() == "message" {
                let _ = write!(self.0, " {value:?}");
            } else {
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
        }
    }

    impl Subscriber for Warnings {
        fn enabled(&self, metadata: &Metadata<'_>) -> bool {
            *metadata.level() <= Level::WARN
        }
        fn new_span(&self, _span: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _span: &Id, _values: &Record<'_>) {}
        fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut line = Line(event.metadata().level().to_string());
            event.record(&mut line);
            self.0.lock().expect("capture lock").push(line.0);
        }
        fn enter(&self, _span: &Id) {}
        fn exit(&self, _span: &Id) {}
    }

    /// Runs `f` and returns its result with the warnings it logged on this thread.
    pub fn warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
        let warnings = Warnings::default();
        let result = tracing::subscriber::with_default(warnings.clone(), f);
        (result, warnings.lines())
    }
}
