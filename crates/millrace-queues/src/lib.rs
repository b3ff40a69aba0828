//! Kinesis Queues: competing-consumer delivery from a data stream, with visibility timeouts,
//! acknowledgements, receive counts and built-in dead-letter handling (docs/queues.md).
//!
//! A queue keeps, per shard of its stream, a *cursor* (every position below it has been taken
//! into the queue) and the delivery state of the taken records that are not yet acknowledged;
//! an acknowledged record is simply forgotten. Memory and disk therefore grow with the records
//! in flight and in the dead-letter state, never with the stream's backlog. Every change is
//! appended to the account's delivery log (`log.rs`) and made durable by group commit before the
//! call that made it is answered, so an acknowledgement survives kill -9.
//!
//! Records are read from the stream through the engine's position API and long polls wake on
//! the engine's append subscription (`Engine::subscribe_shard`) or at the next visibility
//! deadline; nothing polls.
//!
//! **Invariant:** knows no HTTP; bad input changes nothing; the server authorizes the call on
//! the queue (or stream) ARN before calling in.
#![deny(clippy::unwrap_used)]

mod account;
pub mod log;
mod receipt;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use account::{AccountQueues, QueueGauges};
use millrace_engine::{Engine, Error};

/// Timings and limits of the queue service.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// How long a new queue stays CREATING, an updated one UPDATING.
    pub create_ms: u64,
    pub update_ms: u64,
    /// Records in flight per queue (the service's quota is 120,000).
    pub max_in_flight: usize,
    /// Registered consumers (enhanced fan-out consumers and queues) per stream.
    pub max_consumers_per_stream: u32,
    /// Whether changes are forced (`fdatasync`) before they are answered; off, as with the
    /// engine's `--fsync never`, they are written to the operating system only (they survive a
    /// crash of the process, not of the machine).
    pub sync: bool,
    /// The delivery log is compacted once it has grown this much past its last snapshot
    /// (plus twice the snapshot).
    pub compact_after_bytes: u64,
}

impl Default for QueueSettings {
    fn default() -> QueueSettings {
        QueueSettings {
            create_ms: 0,
            update_ms: 0,
            max_in_flight: 120_000,
            max_consumers_per_stream: 20,
            sync: true,
            compact_after_bytes: 8 << 20,
        }
    }
}

/// The queues of every account, each opened on first use under `<account data dir>/queues/`.
pub struct Queues {
    accounts: Mutex<HashMap<PathBuf, Arc<AccountQueues>>>,
    settings: QueueSettings,
}

impl Queues {
    pub fn new(settings: QueueSettings) -> Queues {
        Queues {
            accounts: Mutex::new(HashMap::new()),
            settings,
        }
    }

    /// The queues of the engine's account, opened (and recovered) on first use.
    pub fn of(&self, engine: &Engine) -> Result<Arc<AccountQueues>, Error> {
        let dir = engine.data_dir().join("queues");
        let mut accounts = self.accounts.lock().expect("queues lock");
        if let Some(found) = accounts.get(&dir) {
            return Ok(found.clone());
        }
        let mut settings = self.settings.clone();
        settings.sync = settings.sync && engine.forces_writes();
        let opened = Arc::new(AccountQueues::open(&dir, engine.account_id(), settings)?);
        accounts.insert(dir, opened.clone());
        Ok(opened)
    }

    /// Whether any queue of the engine's account reads the stream (DeleteStream and a switch to
    /// provisioned mode are refused while one does). Opens nothing that does not exist yet.
    pub fn stream_has_queues(
        &self,
        engine: &Engine,
        region: &str,
        stream: &str,
    ) -> Result<bool, Error> {
        Ok(self.count_on_stream(engine, region, stream)? > 0)
    }

    /// How many queues read the stream (they count against its registered consumers).
    pub fn count_on_stream(
        &self,
        engine: &Engine,
        region: &str,
        stream: &str,
    ) -> Result<usize, Error> {
        if !engine.data_dir().join("queues").exists() {
            return Ok(0);
        }
        Ok(self.of(engine)?.queues_on_stream(region, stream))
    }
}
