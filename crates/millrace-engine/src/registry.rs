//! The engine object: open streams and shards in memory, backed by the metadata store and logs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use millrace_catalog::{Catalog, MetadataStore, StreamRecord};
use millrace_types::{HashKeyRange, SequenceNumber};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::committer::Committer;
use crate::config::{EngineConfig, FsyncPolicy};
use crate::error::Error;
use crate::storage::{GroupSync, LocalLogs, LogFactory, ShardStorage};
use crate::throughput::ShardThroughput;
use crate::token::TokenSigner;

/// One shard in memory: its log, its append order and what readers may see.
pub struct Shard {
    pub(crate) index: u32,
    pub(crate) range: HashKeyRange,
    pub(crate) created_secs: u64,
    pub(crate) log: Box<dyn ShardStorage>,
    /// Serializes appends and holds the newest arrival time, which never goes backwards.
    pub(crate) append_lock: Mutex<u64>,
    /// Set (under the append lock) when resharding closes the shard; no append follows.
    pub(crate) closed: AtomicBool,
    /// Position just after the last record of a closed shard; `u64::MAX` while open.
    end_position: AtomicU64,
    /// End (exclusive) of the records readers may see.
    visible: AtomicU64,
    /// Publishes `visible` to internal subscribers, which wake on every append.
    wake: watch::Sender<u64>,
    /// Write and read budgets, used when throughput limits are on.
    pub(crate) throughput: ShardThroughput,
    /// Bytes (data plus partition keys) producers tried to write, accepted or throttled.
    pub(crate) demand_bytes: AtomicU64,
    /// Where the on-demand scaler's current window started: demand bytes and time.
    pub(crate) demand_sample: Mutex<(u64, u64)>,
}

impl Shard {
    pub(crate) fn new(
        index: u32,
        range: HashKeyRange,
        created_secs: u64,
        log: Box<dyn ShardStorage>,
        end_position: Option<u64>,
    ) -> Shard {
        let end = log.next_position();
        let last = log.last_timestamp().unwrap_or(0);
        Shard {
            index,
            range,
            created_secs,
            log,
            append_lock: Mutex::new(last),
            closed: AtomicBool::new(end_position.is_some()),
            end_position: AtomicU64::new(end_position.unwrap_or(u64::MAX)),
            visible: AtomicU64::new(end),
            wake: watch::channel(end).0,
            throughput: ShardThroughput::new(crate::clock::now_ms()),
            demand_bytes: AtomicU64::new(0),
            demand_sample: Mutex::new((0, crate::clock::now_ms())),
        }
    }

    /// The sequence number of the record at log `position`, which arrived at `arrival_ms`
    /// (the counter is the position plus one, so the starting number's counter 0 precedes all).
    pub(crate) fn sequence_number(&self, position: u64, arrival_ms: u64) -> SequenceNumber {
        SequenceNumber {
            shard_created_secs: self.created_secs,
            counter: position + 1,
            arrival_secs: arrival_ms / 1000,
            shard_index: self.index,
        }
    }

    /// End (exclusive) of the records readers may see.
    pub(crate) fn visible_end(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Position just after the last record, if the shard is closed.
    pub(crate) fn end_position(&self) -> Option<u64> {
        let end = self.end_position.load(Ordering::Acquire);
        (end != u64::MAX).then_some(end)
    }

    /// Closes the shard: waits for in-flight appends, forces the log, and fixes its end.
    /// Returns the end position.
    pub(crate) fn close(&self) -> Result<u64, Error> {
        let _appends = self.append_lock.lock().expect("append lock");
        self.closed.store(true, Ordering::Release);
        let end = self.log.sync()?;
        self.publish(end);
        self.end_position.store(end, Ordering::Release);
        // Subscribers waiting at the tip must learn that the shard has ended.
        self.wake.send_replace(self.visible_end());
        Ok(end)
    }

    /// Marks a shard that never took a record as closed at `end`.
    pub(crate) fn close_empty(&self, end: u64) {
        let _appends = self.append_lock.lock().expect("append lock");
        self.closed.store(true, Ordering::Release);
        self.end_position.store(end, Ordering::Release);
        self.wake.send_replace(self.visible_end());
    }

    /// Wakes the shard's subscribers without new records: once resharding has stored the new
    /// shape, readers that found the closed shard not yet ended read again and find its end.
    pub(crate) fn wake_readers(&self) {
        self.wake.send_replace(self.visible_end());
    }

    /// Undoes `close` when the new shape could not be stored.
    pub(crate) fn reopen(&self) {
        let _appends = self.append_lock.lock().expect("append lock");
        self.end_position.store(u64::MAX, Ordering::Release);
        self.closed.store(false, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Makes records up to `end` visible and wakes subscribers.
    pub(crate) fn publish(&self, end: u64) {
        let previous = self.visible.fetch_max(end, Ordering::AcqRel);
        if end > previous {
            self.wake.send_replace(end);
        }
    }

    /// Forces the shard's log and publishes what became durable.
    pub(crate) fn sync_and_publish(&self) -> Result<(), String> {
        match self.log.sync() {
            Ok(end) => {
                self.publish(end);
                Ok(())
            }
            Err(error) => {
                tracing::error!(shard = self.index, %error, "failed to sync shard log");
                Err(error.to_string())
            }
        }
    }

    /// A receiver that changes whenever new records become visible.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}

/// One stream in memory.
pub(crate) struct Stream {
    pub(crate) record: RwLock<StreamRecord>,
    /// Every shard of the stream, ordered by index.
    pub(crate) shards: RwLock<Vec<Arc<Shard>>>,
    /// The open shards ordered by the start of their hash-key range (see `open_shards`).
    open_sorted: RwLock<Arc<Vec<Arc<Shard>>>>,
}

impl Stream {
    pub(crate) fn snapshot(&self) -> StreamRecord {
        self.record.read().expect("stream lock").clone()
    }

    /// Reads the record in place, under the stream's lock (no copy of it).
    pub(crate) fn with_record<T>(&self, read: impl FnOnce(&StreamRecord) -> T) -> T {
        read(&self.record.read().expect("stream lock"))
    }

    /// The open shards ordered by hash-key range, cached until the shard set changes; shards
    /// closed since (by resharding in progress) are filtered out.
    pub(crate) fn open_shards(&self) -> Arc<Vec<Arc<Shard>>> {
        let cached = self.open_sorted.read().expect("open shard cache").clone();
        if cached.iter().all(|s| !s.is_closed()) {
            return cached;
        }
        let mut open: Vec<Arc<Shard>> = self
            .shards
            .read()
            .expect("shard lock")
            .iter()
            .filter(|s| !s.is_closed())
            .cloned()
            .collect();
        open.sort_by_key(|s| s.range.start);
        let open = Arc::new(open);
        *self.open_sorted.write().expect("open shard cache") = open.clone();
        open
    }

    /// Replaces the shard set (after resharding) and refreshes the open-shard cache.
    pub(crate) fn set_shards(&self, shards: Vec<Arc<Shard>>) {
        let mut open: Vec<Arc<Shard>> = shards.iter().filter(|s| !s.is_closed()).cloned().collect();
        open.sort_by_key(|s| s.range.start);
        *self.shards.write().expect("shard lock") = shards;
        *self.open_sorted.write().expect("open shard cache") = Arc::new(open);
    }

    pub(crate) fn shard(&self, index: u32) -> Option<Arc<Shard>> {
        let shards = self.shards.read().expect("shard lock");
        shards
            .binary_search_by_key(&index, |s| s.index)
            .ok()
            .map(|i| shards[i].clone())
    }
}

type StreamKey = (String, String);

/// The Kinesis Data Streams engine.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) store: Box<dyn MetadataStore>,
    pub(crate) logs: Box<dyn LogFactory>,
    streams: RwLock<HashMap<StreamKey, Arc<Stream>>>,
    incarnations: RwLock<HashMap<u64, Arc<Stream>>>,
    /// Serializes control-plane changes so the store and the maps change together.
    pub(crate) control: Mutex<()>,
    pub(crate) committer: Committer,
    /// The logs' shared durability barrier (their journal), if they have one.
    pub(crate) group_sync: Option<Arc<dyn GroupSync>>,
    pub(crate) tokens: TokenSigner,
    /// Resource policies read so far, by ARN (`None`: none stored), kept in step by
    /// Put- and DeleteResourcePolicy so authorization reads no database.
    pub(crate) policy_cache: RwLock<HashMap<String, Option<Arc<str>>>>,
    next_incarnation: AtomicU64,
    pub(crate) subscriptions: crate::fanout::Subscriptions,
    pub(crate) sealer: crate::encryption::Sealer,
    /// Wakes the timer that applies pending reshards (a new one was stored, or the engine is
    /// dropped).
    pub(crate) reshard_wake: Arc<tokio::sync::Notify>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.reshard_wake.notify_one();
    }
}

const TOKEN_KEY_SETTING: &str = "token_key";
const NEXT_INCARNATION_SETTING: &str = "next_incarnation";

impl Engine {
    /// Opens the data directory, recovers every stream and removes logs orphaned by a crash.
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>, Error> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|e| Error::Internal(format!("create data directory: {e}")))?;
        crate::open_files::raise_open_file_limit();
        let store = Catalog::open(&config.data_dir.join("catalog.redb"))?;
        let logs = LocalLogs::open(
            &config.data_dir,
            config.segment_bytes,
            config.journal_file_bytes,
        )?;
        Engine::open_with(config, Box::new(store), Box::new(logs))
    }

    /// Opens the engine over any metadata store and log factory.
    pub fn open_with(
        config: EngineConfig,
        store: Box<dyn MetadataStore>,
        logs: Box<dyn LogFactory>,
    ) -> Result<Arc<Engine>, Error> {
        let key = match store.setting(TOKEN_KEY_SETTING)? {
            Some(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let key: [u8; 32] = rand::random();
                store.set_setting(TOKEN_KEY_SETTING, &key)?;
                key
            }
        };
        let mut next_incarnation = store
            .setting(NEXT_INCARNATION_SETTING)?
            .and_then(|b| b.try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(1);
        let records = store.all_streams()?;
        for record in &records {
            next_incarnation = next_incarnation.max(record.incarnation + 1);
        }
        let known: std::collections::HashSet<u64> = records.iter().map(|r| r.incarnation).collect();
        let on_disk = logs
            .incarnations()
            .map_err(|e| Error::Internal(format!("list stream logs: {e}")))?;
        for orphan in on_disk.into_iter().filter(|i| !known.contains(i)) {
            tracing::warn!(
                incarnation = orphan,
                "removing logs of a stream that no longer exists"
            );
            logs.destroy(orphan)
                .map_err(|e| Error::Internal(format!("remove orphaned logs: {e}")))?;
            next_incarnation = next_incarnation.max(orphan + 1);
        }
        let group_sync = logs.group_sync();
        let sealer = crate::encryption::Sealer::new(config.record_keys.clone().map(|p| p.0));
        let engine = Arc::new(Engine {
            config,
            store,
            logs,
            streams: RwLock::new(HashMap::new()),
            incarnations: RwLock::new(HashMap::new()),
            control: Mutex::new(()),
            committer: Committer::start(group_sync.clone()),
            group_sync,
            tokens: TokenSigner::new(key),
            policy_cache: RwLock::new(HashMap::new()),
            next_incarnation: AtomicU64::new(next_incarnation),
            subscriptions: Default::default(),
            sealer,
            reshard_wake: Arc::new(tokio::sync::Notify::new()),
        });
        for record in records {
            engine.install(record)?;
        }
        engine.logs.finish_recovery()?;
        tracing::info!(
            streams = engine.streams.read().expect("lock").len(),
            "engine opened"
        );
        Ok(engine)
    }

    /// Starts the background work (retention, on-demand scaling, the timer that applies
    /// pending reshards, interval syncs); call once inside a runtime.
    pub fn start_background(self: &Arc<Self>) {
        crate::retention::spawn(self.clone());
        crate::reshard::spawn_scheduler(self.clone());
        crate::autoscale::spawn(self.clone());
        if let FsyncPolicy::Interval(period) = self.config.fsync {
            let engine = Arc::downgrade(self);
            std::thread::Builder::new()
                .name("millrace-fsync".into())
                .spawn(move || loop {
                    std::thread::sleep(period);
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    engine.sync_all();
                })
                .expect("spawn the fsync thread");
        }
    }

    /// Forces every shard's log (used by interval syncing and at shutdown).
    /// Blocks the calling thread; call it from a plain thread or `spawn_blocking`. The commit
    /// thread forces all shards with one sync of the shared journal, so an interval sync stays
    /// cheap however many shards exist.
    pub fn sync_all(&self) {
        let shards: Vec<Arc<Shard>> = self
            .all_streams()
            .iter()
            .flat_map(|stream| stream.shards.read().expect("shard lock").clone())
            .collect();
        if let Err(error) = self.committer.commit_blocking(shards) {
            tracing::error!(%error, "failed to sync the shard logs");
        }
    }

    pub(crate) fn allocate_incarnation(&self) -> Result<u64, Error> {
        let incarnation = self.next_incarnation.fetch_add(1, Ordering::SeqCst);
        self.store
            .set_setting(NEXT_INCARNATION_SETTING, &(incarnation + 1).to_be_bytes())?;
        Ok(incarnation)
    }

    /// Puts a stored stream into the in-memory maps, opening its shard logs.
    pub(crate) fn install(&self, record: StreamRecord) -> Result<Arc<Stream>, Error> {
        let mut shards = Vec::with_capacity(record.shards.len());
        for shard in &record.shards {
            let range = HashKeyRange {
                start: shard.starting_hash_key.parse().unwrap_or(0),
                end: shard.ending_hash_key.parse().unwrap_or(u128::MAX),
            };
            let log = self.logs.open(record.incarnation, shard.index)?;
            shards.push(Arc::new(Shard::new(
                shard.index,
                range,
                shard.created_secs,
                log,
                shard.end_position,
            )));
        }
        let key = (record.region.clone(), record.name.clone());
        let incarnation = record.incarnation;
        let stream = Arc::new(Stream {
            record: RwLock::new(record),
            shards: RwLock::new(Vec::new()),
            open_sorted: RwLock::new(Arc::new(Vec::new())),
        });
        stream.set_shards(shards);
        self.streams
            .write()
            .expect("lock")
            .insert(key, stream.clone());
        self.incarnations
            .write()
            .expect("lock")
            .insert(incarnation, stream.clone());
        Ok(stream)
    }

    /// Removes a stream from memory, the store and the disk.
    pub(crate) fn remove(&self, region: &str, name: &str) -> Result<(), Error> {
        let key = (region.to_owned(), name.to_owned());
        let Some(stream) = self.streams.write().expect("lock").remove(&key) else {
            return Ok(());
        };
        let incarnation = stream.snapshot().incarnation;
        self.incarnations
            .write()
            .expect("lock")
            .remove(&incarnation);
        self.sealer.forget(incarnation);
        self.store.delete_stream(region, name)?;
        self.logs
            .destroy(incarnation)
            .map_err(|e| Error::Internal(format!("remove stream logs: {e}")))?;
        tracing::info!(region, stream = name, "stream deleted");
        Ok(())
    }

    /// Finishes deletions whose DELETING time has passed.
    pub(crate) fn reap(&self) {
        let now = now_ms();
        for stream in self.all_streams() {
            let record = stream.snapshot();
            if record.effective_status(now).is_none() {
                let _guard = self.control.lock().expect("control lock");
                if let Err(error) = self.remove(&record.region, &record.name) {
                    tracing::error!(%error, stream = record.name, "failed to finish deleting a stream");
                }
            }
        }
    }

    pub(crate) fn all_streams(&self) -> Vec<Arc<Stream>> {
        self.streams
            .read()
            .expect("lock")
            .values()
            .cloned()
            .collect()
    }

    /// The stream of that name, unless its deletion has completed.
    pub(crate) fn lookup(&self, region: &str, name: &str) -> Option<Arc<Stream>> {
        let key = (region.to_owned(), name.to_owned());
        let stream = self.streams.read().expect("lock").get(&key).cloned()?;
        let alive = stream
            .record
            .read()
            .expect("lock")
            .effective_status(now_ms())
            .is_some();
        alive.then_some(stream)
    }

    pub(crate) fn lookup_incarnation(&self, incarnation: u64) -> Option<Arc<Stream>> {
        let stream = self
            .incarnations
            .read()
            .expect("lock")
            .get(&incarnation)
            .cloned()?;
        let alive = stream
            .record
            .read()
            .expect("lock")
            .effective_status(now_ms())
            .is_some();
        alive.then_some(stream)
    }

    /// `Stream <s> under account <acct> not found.`
    pub(crate) fn stream_not_found(&self, name: &str) -> Error {
        Error::ResourceNotFound(format!(
            "Stream {name} under account {} not found.",
            self.config.account_id
        ))
    }

    /// The stream's ARN.
    pub fn stream_arn(&self, region: &str, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{region}:{}:stream/{name}",
            self.config.account_id
        )
    }

    /// The account this server answers for.
    pub fn account_id(&self) -> &str {
        &self.config.account_id
    }

    /// The resource policy stored for `arn` (a stream or consumer), for authorization.
    pub fn resource_policy(&self, arn: &str) -> Result<Option<Arc<str>>, Error> {
        if let Some(cached) = self.policy_cache.read().expect("lock").get(arn) {
            return Ok(cached.clone());
        }
        let stored: Option<Arc<str>> = self.store.policy(arn)?.map(Arc::from);
        let mut cache = self.policy_cache.write().expect("lock");
        if cache.len() >= 100_000 {
            cache.clear();
        }
        cache.insert(arn.to_owned(), stored.clone());
        Ok(stored)
    }

    /// The tags of a live stream (empty when it does not exist), for `aws:ResourceTag` keys.
    pub fn stream_tags(&self, region: &str, name: &str) -> Vec<(String, String)> {
        self.lookup(region, name)
            .map(|stream| {
                let record = stream.record.read().expect("lock");
                record
                    .tags
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The (region, stream) a ListShards pagination token lists, when the token is genuine.
    pub fn list_shards_token_stream(&self, token: &str) -> Option<(String, String)> {
        self.tokens
            .open_list_shards(token)
            .map(|state| (state.region, state.stream_name))
    }

    /// The name of the stream a shard iterator reads, when the iterator is genuine.
    pub fn iterator_stream(&self, iterator: &str) -> Option<String> {
        self.tokens
            .open_iterator(iterator)
            .map(|state| state.stream_name)
    }

    /// The stream and shard index a shard iterator reads, when the iterator is genuine (for the
    /// server's shard-level metrics).
    pub fn iterator_shard(&self, iterator: &str) -> Option<(String, u32)> {
        self.tokens
            .open_iterator(iterator)
            .map(|state| (state.stream_name, state.shard_index))
    }

    /// Wakes on new records of one shard: the seam for fan-out and other internal readers.
    pub fn subscribe_shard(
        &self,
        region: &str,
        name: &str,
        shard_index: u32,
    ) -> Option<watch::Receiver<u64>> {
        Some(self.lookup(region, name)?.shard(shard_index)?.subscribe())
    }
}
