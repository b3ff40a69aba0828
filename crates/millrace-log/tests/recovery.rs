//! Crash recovery: torn tails, garbage, damaged index files and damaged sealed segments.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use common::*;
use millrace_log::{LogError, ShardLog};

/// Frame header size, as documented in the crate's on-disk format.
const FRAME_HEADER_LEN: u64 = 24;

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let bases = segment_bases(dir);
    segment_file(dir, *bases.last().expect("at least one segment"))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create copy");
    for entry in fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), to.join(entry.file_name())).expect("copy file");
    }
}

#[test]
fn garbage_after_the_last_frame_is_cut_off() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 40);
    drop(log);
    let path = last_segment(temp.path());
    let valid_len = fs::metadata(&path).expect("stat").len();
    for garbage in [
        vec![0u8; 1],
        vec![0u8; 100],
        vec![0xa5; 37],
        b"not a frame at all".to_vec(),
    ] {
        let mut file = OpenOptions::new().append(true).open(&path).expect("open");
        file.write_all(&garbage).expect("append garbage");
        drop(file);
        let (log, warnings) =
            capture::warnings(|| ShardLog::open(temp.path(), small_config()).expect("recover"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("WARN"), "{warnings:?}");
        assert!(
            warnings[0].contains(&format!("offset={valid_len}")),
            "{warnings:?}"
        );
        assert!(
            warnings[0].contains(&format!("{}", path.display())),
            "{warnings:?}"
        );
        assert_eq!(fs::metadata(&path).expect("stat").len(), valid_len);
        assert_eq!(log.next_position(), 40);
        check_all_records(&log);
    }
    let (log, warnings) =
        capture::warnings(|| ShardLog::open(temp.path(), small_config()).expect("recover"));
    assert_eq!(
        warnings,
        Vec::<String>::new(),
        "a clean log opens without warnings"
    );
    assert_eq!(append_records(&log, 10), 40);
    check_all_records(&log);
}

#[test]
fn a_torn_last_frame_is_dropped_at_every_cut() {
    let temp = fast_tempdir();
    let original = temp.path().join("original");
    let log = ShardLog::open(&original, small_config()).expect("open");
    append_records(&log, 30);
    let last_position = log.next_position() - 1;
    drop(log);
    let path = last_segment(&original);
    let full_len = fs::metadata(&path).expect("stat").len();
    let last_frame_len = FRAME_HEADER_LEN + payload_for(last_position).len() as u64;
    let segment_name = path.file_name().expect("name").to_owned();

    for cut in 0..last_frame_len {
        let dir = temp.path().join(format!("cut-{cut}"));
        copy_dir(&original, &dir);
        let torn = dir.join(&segment_name);
        let file = OpenOptions::new().write(true).open(&torn).expect("open");
        file.set_len(full_len - last_frame_len + cut).expect("tear");
        drop(file);

        let log = ShardLog::open(&dir, small_config()).expect("recover");
        assert_eq!(log.next_position(), last_position, "cut {cut}");
        assert_eq!(
            fs::metadata(&torn).expect("stat").len(),
            full_len - last_frame_len
        );
        check_all_records(&log);
        assert_eq!(append_records(&log, 2), last_position);
        check_all_records(&log);
        drop(log);
        let log = ShardLog::open(&dir, small_config()).expect("reopen");
        assert_eq!(log.next_position(), last_position + 2);
        check_all_records(&log);
    }
}

#[test]
fn a_corrupt_frame_in_the_active_segment_ends_the_valid_data() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 12);
    drop(log);
    let path = last_segment(temp.path());
    let base = segment_bases(temp.path()).last().copied().expect("segment");
    let mut bytes = fs::read(&path).expect("read");
    // Damage the payload of the segment's second frame.
    let second_frame = 16 + FRAME_HEADER_LEN + payload_for(base).len() as u64;
    assert!(
        second_frame + FRAME_HEADER_LEN < bytes.len() as u64,
        "needs two frames"
    );
    bytes[(second_frame + FRAME_HEADER_LEN) as usize] ^= 0xff;
    fs::write(&path, &bytes).expect("write");

    let log = ShardLog::open(temp.path(), small_config()).expect("recover");
    assert_eq!(log.next_position(), base + 1);
    check_all_records(&log);
    assert_eq!(append_records(&log, 3), base + 1);
    check_all_records(&log);
}

#[test]
fn a_torn_segment_creation_is_repaired() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 20);
    let next = log.next_position();
    drop(log);
    // A crash right after creating the next segment file, before its header was written.
    for torn_len in [0u64, 7, 16] {
        let path = segment_file(temp.path(), next);
        let header = if torn_len == 16 {
            vec![0u8; 16]
        } else {
            vec![b'M'; torn_len as usize]
        };
        fs::write(&path, header).expect("write torn header");
        let log = ShardLog::open(temp.path(), small_config()).expect("recover");
        assert_eq!(log.next_position(), next);
        check_all_records(&log);
        assert_eq!(fs::metadata(&path).expect("stat").len(), 16);
        drop(log);
        fs::remove_file(&path).expect("remove");
    }
    let log = ShardLog::open(temp.path(), small_config()).expect("recover");
    assert_eq!(append_records(&log, 5), next);
    check_all_records(&log);
}

#[test]
fn corrupt_missing_or_stale_index_files_are_rebuilt() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 60);
    drop(log);
    let bases = segment_bases(temp.path());
    assert!(bases.len() >= 5);
    let originals: Vec<Vec<u8>> = bases[..4]
        .iter()
        .map(|&base| fs::read(index_file(temp.path(), base)).expect("index exists"))
        .collect();

    let mut flipped = originals[0].clone();
    flipped[30] ^= 1;
    fs::write(index_file(temp.path(), bases[0]), flipped).expect("corrupt index");
    let truncated = &originals[1][..originals[1].len() / 2];
    fs::write(index_file(temp.path(), bases[1]), truncated).expect("truncate index");
    fs::remove_file(index_file(temp.path(), bases[2])).expect("remove index");
    // A valid index that belongs to another segment.
    fs::write(index_file(temp.path(), bases[3]), &originals[0]).expect("swap index");
    fs::write(
        temp.path().join(format!("{:020}.idx.tmp", bases[3])),
        b"junk",
    )
    .expect("tmp");

    let log = ShardLog::open(temp.path(), small_config()).expect("recover");
    check_all_records(&log);
    for (i, &base) in bases[..4].iter().enumerate() {
        let rebuilt = fs::read(index_file(temp.path(), base)).expect("rebuilt index");
        assert_eq!(rebuilt, originals[i], "index of segment {base}");
    }
    assert!(files_with_suffix(temp.path(), ".tmp").is_empty());
    assert_eq!(log.position_at_timestamp(305).expect("lookup"), 31);
    assert_eq!(append_records(&log, 5), 60);
    check_all_records(&log);
}

#[test]
fn damage_inside_a_sealed_segment_is_reported_not_skipped() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 40);
    drop(log);
    let bases = segment_bases(temp.path());
    let path = segment_file(temp.path(), bases[1]);
    let mut bytes = fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    fs::write(&path, &bytes).expect("write");

    // The index is valid, so open succeeds; reading the damaged frame fails.
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    let err = log
        .read(0, u64::MAX, usize::MAX, usize::MAX)
        .expect_err("corruption");
    match &err {
        LogError::Corrupt {
            segment, offset, ..
        } => {
            assert_eq!(segment, &path);
            assert!(*offset > 16 && *offset < bytes.len() as u64);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().starts_with("corrupt log data in "));
    // Records before the damage are still readable.
    let before = log.read(0, bases[1], usize::MAX, usize::MAX).expect("read");
    assert_eq!(before.len() as u64, bases[1]);
    drop(log);

    // Without its index, the segment is scanned on open and the damage stops the open.
    fs::remove_file(index_file(temp.path(), bases[1])).expect("remove index");
    let err = ShardLog::open(temp.path(), small_config()).expect_err("corrupt sealed segment");
    assert!(
        matches!(err, LogError::Corrupt { ref segment, .. } if segment == &path),
        "{err:?}"
    );
}

#[test]
fn a_missing_middle_segment_is_corruption() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 40);
    drop(log);
    let bases = segment_bases(temp.path());
    fs::remove_file(segment_file(temp.path(), bases[2])).expect("remove segment");
    let err = ShardLog::open(temp.path(), small_config()).expect_err("gap");
    assert!(matches!(err, LogError::Corrupt { .. }), "{err:?}");
}

#[test]
fn reopening_many_times_keeps_every_record() {
    let temp = fast_tempdir();
    for round in 0..20u64 {
        let log = ShardLog::open(temp.path(), small_config()).expect("open");
        assert_eq!(log.next_position(), round * 7);
        append_records(&log, 7);
        log.sync().expect("sync");
        check_all_records(&log);
    }
}

#[test]
fn a_failed_roll_stops_appends_until_reopen() {
    let temp = fast_tempdir();
    let log = ShardLog::open(temp.path(), small_config()).expect("open");
    append_records(&log, 3);
    let acknowledged = log.next_position();
    // Directories where the next segment files would go make every roll fail.
    let blockers: Vec<_> = (acknowledged..acknowledged + 40)
        .map(|base| segment_file(temp.path(), base))
        .collect();
    for blocker in &blockers {
        fs::create_dir(blocker).expect("create blocker");
    }
    let positions = log.next_position()..log.next_position() + 30;
    let payloads: Vec<Vec<u8>> = positions.clone().map(payload_for).collect();
    let entries: Vec<millrace_log::Entry<'_>> = positions
        .zip(&payloads)
        .map(|(position, payload)| millrace_log::Entry {
            timestamp_ms: position * 10,
            payload,
        })
        .collect();
    let (result, errors) = capture::warnings(|| log.append(&entries));
    assert!(matches!(result, Err(LogError::Io { .. })), "{result:?}");
    assert!(
        errors.iter().any(|line| line.starts_with("ERROR")),
        "{errors:?}"
    );
    assert!(matches!(log.append(&entries[..1]), Err(LogError::Poisoned)));
    assert!(matches!(log.sync(), Err(LogError::Poisoned)));
    // Reads keep working.
    check_all_records(&log);
    let written = log.next_position();
    assert!(written > acknowledged);
    drop(log);

    for blocker in &blockers {
        fs::remove_dir(blocker).expect("remove blocker");
    }
    let log = ShardLog::open(temp.path(), small_config()).expect("reopen");
    assert_eq!(log.next_position(), written);
    check_all_records(&log);
    assert_eq!(append_records(&log, 50), written);
    check_all_records(&log);
}
