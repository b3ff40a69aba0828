//! The error type of the log: I/O failures, detected corruption and invalid arguments.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in a [`crate::ShardLog`] operation.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The operating system refused a file operation.
    /// `context` is a short verb phrase naming the operation and the file.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },

    /// Bytes on disk failed a checksum or a structural check.
    /// The log never skips such data silently.
    #[error("corrupt log data in {} at offset {offset}: {reason}", segment.display())]
    Corrupt {
        segment: PathBuf,
        offset: u64,
        reason: String,
    },

    /// An earlier write, roll or sync failed, so the log no longer accepts appends or syncs
    /// (what is durable is unknown). Reopening the log recovers it from disk.
    #[error("log stopped after an earlier i/o failure; reopen it to recover")]
    Poisoned,

    /// A payload is too large to be stored in one frame.
    #[error("payload of {len} bytes exceeds the frame limit of {limit} bytes")]
    PayloadTooLarge { len: usize, limit: u64 },
}

impl LogError {
    /// Wraps an I/O error with a short description of the failed operation.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> LogError {
        let mut context = context.into();
        if crate::disk::is_out_of_descriptors(&source) {
            context.push_str(
                ": out of file descriptors (raise the open-file limit, `ulimit -n`, or lower the \
                 number of shards)",
            );
            tracing::error!(error = %source, "{context}");
        }
        LogError::Io { context, source }
    }

    /// Builds a corruption error for `segment` at byte `offset`.
    pub(crate) fn corrupt(
        segment: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> LogError {
        LogError::Corrupt {
            segment: segment.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Whether this is an I/O error caused by a missing file.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_descriptors_says_so() {
        let err = LogError::io("open segment x", io::Error::from_raw_os_error(24));
        let text = err.to_string();
        assert!(
            text.starts_with("open segment x: out of file descriptors"),
            "{text}"
        );
        assert!(text.contains("ulimit -n"), "{text}");
        let other = LogError::io("open segment x", io::Error::from_raw_os_error(2));
        assert_eq!(other.to_string(), "open segment x");
    }
}
