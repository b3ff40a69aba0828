//! The record-processor interface (initialize, process_records, lease_lost, shard_ended,
//! shutdown_requested) and the checkpointer it is handed, with the KCL's checkpoint errors.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::Mutex;

use crate::lease::{Lease, LeaseTable, Outcome, SHARD_END};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One record as the processor sees it.
#[derive(Clone, Debug)]
pub struct Record {
    pub data: Vec<u8>,
    pub partition_key: String,
    pub sequence_number: String,
    pub sub_sequence_number: u64,
    /// Milliseconds since the epoch.
    pub approximate_arrival_millis: i64,
}

/// A processor failed; the worker stops the shard consumer and gives the lease up.
#[derive(Debug, thiserror::Error)]
#[error("record processor failed: {0}")]
pub struct ProcessorError(pub String);

/// Why a checkpoint was refused, named as the KCL's exceptions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Outside the range from the last checkpoint to the largest record delivered.
    #[error("IllegalArgumentException")]
    OutOfRange,
    /// The lease is no longer ours.
    #[error("ShutdownException")]
    Shutdown,
    /// The lease table refused or failed.
    #[error("KinesisClientLibDependencyException")]
    Dependency,
    /// Not allowed now (a SHARD_END checkpoint before the end of the shard).
    #[error("InvalidStateException")]
    InvalidState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sequence_numbers_order() {
        let a =
            parse_sequence("49680733365112251851438149441791963892085320886515662882").expect("a");
        let b =
            parse_sequence("49680733365112251851438149441791963892085320886515662883").expect("b");
        let short = parse_sequence("999").expect("short");
        assert!(a < b);
        assert!(short < a);
        assert_eq!(parse_sequence("007"), parse_sequence("7"));
        assert_eq!(parse_sequence("TRIM_HORIZON"), None);
    }
}

impl CheckpointError {
    /// The exception's simple name, as the multi-language protocol reports it.
    pub fn name(&self) -> String {
        self.to_string()
    }
}

/// A sequence number as an orderable value: Kinesis sequence numbers are decimal strings of up
/// to 128+ bits (56 digits today), so they compare by length, then digit by digit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SequenceKey {
    digits: usize,
    text: String,
}

fn parse_sequence(text: &str) -> Option<SequenceKey> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = text.trim_start_matches('0');
    Some(SequenceKey {
        digits: trimmed.len(),
        text: trimmed.to_owned(),
    })
}

/// Checkpoints one shard's lease; shared with the worker's renewer through the lease lock.
pub struct Checkpointer {
    table: LeaseTable,
    lease: Arc<Mutex<Lease>>,
    /// The largest (sequence, sub-sequence) delivered to the processor.
    largest: Option<(SequenceKey, u64)>,
    shard_ended: bool,
}

impl Checkpointer {
    pub fn new(table: LeaseTable, lease: Arc<Mutex<Lease>>) -> Checkpointer {
        Checkpointer {
            table,
            lease,
            largest: None,
            shard_ended: false,
        }
    }

    pub(crate) fn delivered(&mut self, sequence: &str, sub_sequence: u64) {
        if let Some(value) = parse_sequence(sequence) {
            let position = (value, sub_sequence);
            if self.largest.as_ref().is_none_or(|l| position > *l) {
                self.largest = Some(position);
            }
        }
    }

    pub(crate) fn set_shard_ended(&mut self) {
        self.shard_ended = true;
    }

    /// Checkpoints at the last record delivered, or at `SHARD_END` once the shard has ended.
    pub async fn checkpoint(&mut self) -> Result<(), CheckpointError> {
        if self.shard_ended {
            return self.store(SHARD_END, 0).await;
        }
        match self.largest.clone() {
            Some((sequence, sub)) => self.store(&sequence.text, sub).await,
            None => Ok(()),
        }
    }

    /// Checkpoints at a sequence number (and sub-sequence number).
    pub async fn checkpoint_at(
        &mut self,
        sequence: &str,
        sub_sequence: u64,
    ) -> Result<(), CheckpointError> {
        if sequence == SHARD_END {
            if !self.shard_ended {
                return Err(CheckpointError::InvalidState);
            }
            return self.store(SHARD_END, 0).await;
        }
        let value = parse_sequence(sequence).ok_or(CheckpointError::OutOfRange)?;
        let wanted = (value, sub_sequence);
        let last = {
            let lease = self.lease.lock().await;
            parse_sequence(&lease.checkpoint).map(|c| (c, lease.checkpoint_sub_sequence))
        };
        let in_range =
            last.is_none_or(|l| wanted >= l) && self.largest.as_ref().is_some_and(|l| wanted <= *l);
        if !in_range {
            return Err(CheckpointError::OutOfRange);
        }
        self.store(sequence, sub_sequence).await
    }

    /// The first phase of a two-phase checkpoint, as the Java KCL's `prepareCheckpoint`: checks
    /// the position as [`Checkpointer::checkpoint_at`] does and records it, with `state` if
    /// given, as the lease's `pendingCheckpoint`, leaving the checkpoint itself unchanged. The
    /// returned [`PreparedCheckpoint`] commits it. Preparing the current checkpoint again
    /// writes nothing.
    pub async fn prepare_checkpoint(
        &mut self,
        sequence: &str,
        sub_sequence: u64,
        state: Option<&[u8]>,
    ) -> Result<PreparedCheckpoint, CheckpointError> {
        let prepared = PreparedCheckpoint {
            sequence: sequence.to_owned(),
            sub_sequence,
        };
        if sequence == SHARD_END {
            if !self.shard_ended {
                return Err(CheckpointError::InvalidState);
            }
        } else {
            let wanted = (
                parse_sequence(sequence).ok_or(CheckpointError::OutOfRange)?,
                sub_sequence,
            );
            let last = {
                let lease = self.lease.lock().await;
                parse_sequence(&lease.checkpoint).map(|c| (c, lease.checkpoint_sub_sequence))
            };
            if last.as_ref() == Some(&wanted) {
                return Ok(prepared);
            }
            let in_range = last.is_none_or(|l| wanted >= l)
                && self.largest.as_ref().is_some_and(|l| wanted <= *l);
            if !in_range {
                return Err(CheckpointError::OutOfRange);
            }
        }
        let mut lease = self.lease.lock().await;
        match self
            .table
            .prepare_checkpoint(&mut lease, sequence, sub_sequence, state)
            .await
        {
            Ok(Outcome::Done) => Ok(prepared),
            Ok(Outcome::Lost) => Err(CheckpointError::Shutdown),
            Err(error) => {
                tracing::warn!(%error, lease = %lease.key, "prepare checkpoint failed");
                Err(CheckpointError::Dependency)
            }
        }
    }

    /// The prepared checkpoint of the lease, if one is pending.
    pub async fn pending_checkpoint(&self) -> Option<(String, u64)> {
        self.lease.lock().await.pending_checkpoint.clone()
    }

    async fn store(&mut self, sequence: &str, sub_sequence: u64) -> Result<(), CheckpointError> {
        let mut lease = self.lease.lock().await;
        match self
            .table
            .checkpoint(&mut lease, sequence, sub_sequence)
            .await
        {
            Ok(Outcome::Done) => {
                if sequence == SHARD_END {
                    tracing::info!(shard = %lease.key, "checkpointed SHARD_END");
                }
                Ok(())
            }
            Ok(Outcome::Lost) => Err(CheckpointError::Shutdown),
            Err(error) => {
                tracing::warn!(%error, lease = %lease.key, "checkpoint failed");
                Err(CheckpointError::Dependency)
            }
        }
    }
}

/// A prepared checkpoint; [`PreparedCheckpoint::checkpoint`] is the second phase.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedCheckpoint {
    pub sequence: String,
    pub sub_sequence: u64,
}

impl PreparedCheckpoint {
    /// Commits the prepared position as the lease's checkpoint (clearing `pendingCheckpoint`);
    /// it must still be in range, as for any checkpoint.
    pub async fn checkpoint(&self, checkpointer: &mut Checkpointer) -> Result<(), CheckpointError> {
        checkpointer
            .checkpoint_at(&self.sequence, self.sub_sequence)
            .await
    }
}

pub struct InitializeInput {
    pub shard_id: String,
    pub sequence_number: String,
    pub sub_sequence_number: u64,
    /// A checkpoint prepared (by this or an earlier owner) and not yet committed: sequence and
    /// sub-sequence number. Reading resumes from `sequence_number` all the same.
    pub pending_checkpoint: Option<(String, u64)>,
    /// The application state stored with the prepared checkpoint.
    pub pending_checkpoint_state: Option<Vec<u8>>,
}

pub struct ProcessRecordsInput {
    pub records: Vec<Record>,
    pub millis_behind_latest: i64,
}

/// What an application implements; one instance per shard lease.
pub trait RecordProcessor: Send {
    fn initialize(&mut self, input: InitializeInput) -> BoxFuture<'_, Result<(), ProcessorError>>;
    fn process_records<'a>(
        &'a mut self,
        input: ProcessRecordsInput,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>>;
    fn lease_lost(&mut self) -> BoxFuture<'_, Result<(), ProcessorError>>;
    fn shard_ended<'a>(
        &'a mut self,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>>;
    fn shutdown_requested<'a>(
        &'a mut self,
        checkpointer: &'a mut Checkpointer,
    ) -> BoxFuture<'a, Result<(), ProcessorError>>;
}

/// Makes a processor for each lease the worker starts.
pub trait ProcessorFactory: Send + Sync {
    fn create(&self, shard_id: &str) -> Result<Box<dyn RecordProcessor>, ProcessorError>;
}
