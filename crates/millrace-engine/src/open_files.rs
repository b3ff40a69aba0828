//! The open-file limit: raised to its maximum at start, and split between segment files (the
//! log's descriptor cache) and everything else (connections, the journal, the catalog).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept for sockets and other files before the segment files get half the rest.
const RESERVED_DESCRIPTORS: u64 = 128;
/// Most segment files kept open, however high the limit.
const MAX_CACHED_SEGMENTS: u64 = 16_384;

/// Raises the soft RLIMIT_NOFILE to the hard limit, logs both, and sizes the log's descriptor
/// cache from the result. Returns the soft limit now in force.
pub(crate) fn raise_open_file_limit() -> u64 {
    let before = getrlimit(Resource::Nofile);
    let mut soft = before.current.unwrap_or(u64::MAX);
    if before.current != before.maximum {
        let raised = Rlimit {
            current: before.maximum,
            maximum: before.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => soft = before.maximum.unwrap_or(u64::MAX),
            Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
        }
    }
    let budget = (soft.saturating_sub(RESERVED_DESCRIPTORS) / 2).clamp(8, MAX_CACHED_SEGMENTS);
    millrace_log::set_open_file_budget(budget as usize);
    tracing::info!(
        soft_limit_before = before.current.map_or(-1, |v| v as i64),
        soft_limit = soft as i64,
        hard_limit = before.maximum.map_or(-1, |v| v as i64),
        segment_files_kept_open = budget,
        "open-file limit"
    );
    soft
}
