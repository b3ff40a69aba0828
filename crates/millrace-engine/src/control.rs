//! Control-plane operations: stream lifecycle, retention, tags, monitoring, encryption,
//! resource policies, limits and account settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use millrace_catalog::record::STREAM_RECORD_VERSION;
use millrace_catalog::{EncryptionRecord, ShardRecord, StreamMode, StreamRecord, StreamStatus};
use millrace_types::limits::{
    MAX_RETENTION_HOURS, MAX_TAGS_PER_STREAM, MIN_RETENTION_HOURS, ON_DEMAND_INITIAL_SHARDS,
};
use millrace_types::{HashKeyRange, ShardId};

use crate::clock::now_ms;
use crate::error::Error;
use crate::registry::{Engine, Stream};
use crate::token::ListStreamsState;

/// Successful Start- and StopStreamEncryption calls allowed per stream in a rolling 24 hours.
const ENCRYPTION_CHANGES_PER_DAY: usize = 25;
use crate::view::{AccountSettingsView, LimitsView, StreamView};

/// CreateStream's parameters after wire validation.
#[derive(Clone, Debug, Default)]
pub struct CreateStreamRequest {
    pub name: String,
    pub shard_count: Option<i64>,
    /// `PROVISIONED` or `ON_DEMAND` when given.
    pub mode: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub max_record_size_kib: Option<i64>,
    pub warm_throughput_mibps: Option<i64>,
    pub record_distribution_strategy: Option<String>,
}

/// One page of ListStreams.
#[derive(Clone, Debug)]
pub struct ListStreamsPage {
    pub streams: Vec<StreamView>,
    pub has_more: bool,
    pub next_token: Option<String>,
}

/// Every shard-level metric name; `ALL` stands for these.
const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

const ACCOUNT_SETTINGS_KEY: &str = "account_settings";

impl Engine {
    fn active_record(
        &self,
        region: &str,
        name: &str,
    ) -> Result<(Arc<Stream>, StreamRecord), Error> {
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let record = stream.snapshot();
        Ok((stream, record))
    }

    /// Applies `change` to a stream's record and stores it, all under the control lock.
    pub(crate) fn modify<T>(
        &self,
        region: &str,
        name: &str,
        change: impl FnOnce(&mut StreamRecord, StreamStatus) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let _guard = self.control.lock().expect("control lock");
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let mut record = stream.snapshot();
        let status = record
            .effective_status(now_ms())
            .ok_or_else(|| self.stream_not_found(name))?;
        let output = change(&mut record, status)?;
        self.store.put_stream(&record)?;
        *stream.record.write().expect("stream lock") = record;
        Ok(output)
    }

    fn open_provisioned_shards(&self, region: &str) -> u32 {
        let now = now_ms();
        self.all_streams()
            .iter()
            .map(|s| s.snapshot())
            .filter(|r| r.region == region && r.mode == StreamMode::Provisioned)
            .filter(|r| r.effective_status(now).is_some())
            .map(|r| r.shards.iter().filter(|s| s.closed_ms.is_none()).count() as u32)
            .sum()
    }

    fn on_demand_streams(&self, region: &str) -> u32 {
        let now = now_ms();
        self.all_streams()
            .iter()
            .map(|s| s.snapshot())
            .filter(|r| r.region == region && r.mode == StreamMode::OnDemand)
            .filter(|r| r.effective_status(now).is_some())
            .count() as u32
    }

    /// CreateStream.
    pub fn create_stream(&self, region: &str, request: CreateStreamRequest) -> Result<(), Error> {
        self.reap();
        let _guard = self.control.lock().expect("control lock");
        if self.lookup(region, &request.name).is_some() {
            return Err(Error::ResourceInUse(format!(
                "Stream {} under account {} already exists.",
                request.name, self.config.account_id
            )));
        }
        let mode = match (request.mode.as_deref(), request.shard_count) {
            (Some("PROVISIONED"), None) => {
                return Err(Error::InvalidArgument(
                    "ShardCount is required for a stream in PROVISIONED mode.".into(),
                ))
            }
            (Some("ON_DEMAND"), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "ShardCount must not be specified for a stream in ON_DEMAND mode.".into(),
                ))
            }
            (Some("ON_DEMAND"), None) | (None, None) => StreamMode::OnDemand,
            _ => StreamMode::Provisioned,
        };
        let shard_count = match mode {
            StreamMode::OnDemand => ON_DEMAND_INITIAL_SHARDS,
            StreamMode::Provisioned => request
                .shard_count
                .unwrap_or(1)
                .clamp(1, i64::from(u32::MAX)) as u32,
        };
        validate_tags(&request.tags, &request.name, &self.config.account_id)?;
        if request.tags.len() > MAX_TAGS_PER_STREAM {
            return Err(too_many_tags(&request.name, &self.config.account_id));
        }
        match mode {
            StreamMode::Provisioned => self.check_shard_limit(region, shard_count)?,
            StreamMode::OnDemand => {
                if self.on_demand_streams(region) >= self.config.on_demand_stream_limit {
                    return Err(Error::LimitExceeded(format!(
                        "This request would exceed the on-demand stream count limit for the \
                         account {} in {region}. Limit: {}.",
                        self.config.account_id, self.config.on_demand_stream_limit
                    )));
                }
            }
        }
        let now = now_ms();
        // The initial shards embed a creation time a little before the stream's, as the
        // service's do.
        let shard_created_secs = (now / 1000).saturating_sub(2);
        let shards = HashKeyRange::even_split(shard_count)
            .into_iter()
            .enumerate()
            .map(|(index, range)| ShardRecord {
                index: index as u32,
                starting_hash_key: range.start.to_string(),
                ending_hash_key: range.end.to_string(),
                parent: None,
                adjacent_parent: None,
                created_secs: shard_created_secs,
                closed_ms: None,
                end_position: None,
            })
            .collect();
        let record = StreamRecord {
            version: STREAM_RECORD_VERSION,
            incarnation: self.allocate_incarnation()?,
            region: region.to_owned(),
            name: request.name.clone(),
            status: if self.config.create_stream_ms == 0 {
                StreamStatus::Active
            } else {
                StreamStatus::Creating
            },
            status_until_ms: now + self.config.create_stream_ms,
            created_ms: now,
            mode,
            retention_hours: MIN_RETENTION_HOURS,
            shards,
            next_shard_index: shard_count,
            tags: request.tags,
            encryption: EncryptionRecord {
                encryption_type: "NONE".into(),
                ..EncryptionRecord::default()
            },
            shard_level_metrics: Vec::new(),
            max_record_size_kib: request
                .max_record_size_kib
                .map(|v| v as u32)
                .unwrap_or(1024),
            warm_throughput_mibps: request.warm_throughput_mibps.map(|v| v as u32),
            record_distribution_strategy: request.record_distribution_strategy,
            scaling_history_ms: Vec::new(),
            consumers: Vec::new(),
            pending_reshard: None,
        };
        self.store.put_stream(&record)?;
        self.install(record)?;
        tracing::info!(region, stream = request.name, shard_count, "stream created");
        Ok(())
    }

    /// DeleteStream.
    pub fn delete_stream(
        &self,
        region: &str,
        name: &str,
        enforce_consumer_deletion: bool,
    ) -> Result<(), Error> {
        let delete_ms = self.config.delete_stream_ms;
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, _status| {
            let now = now_ms();
            let has_consumers = record
                .consumers
                .iter()
                .any(|c| c.effective_status(now).is_some());
            if has_consumers && !enforce_consumer_deletion {
                return Err(Error::ResourceInUse(format!(
                    "Stream {name} under account {account} has registered consumers. Deregister \
                     them or set EnforceConsumerDeletion to delete the stream."
                )));
            }
            if record.status != StreamStatus::Deleting {
                record.status = StreamStatus::Deleting;
                record.status_until_ms = now_ms() + delete_ms;
                // A reshard still pending is never applied.
                record.pending_reshard = None;
            }
            Ok(())
        })?;
        if delete_ms == 0 {
            let _guard = self.control.lock().expect("control lock");
            self.remove(region, name)?;
        }
        Ok(())
    }

    /// DescribeStream: shards from after `exclusive_start_shard_id`, at most `limit`.
    pub fn describe_stream(
        &self,
        region: &str,
        name: &str,
        limit: Option<i64>,
        exclusive_start_shard_id: Option<&str>,
    ) -> Result<StreamView, Error> {
        let (_, record) = self.active_record(region, name)?;
        let status = record
            .effective_status(now_ms())
            .ok_or_else(|| self.stream_not_found(name))?;
        let mut view = StreamView::of(&record, status, self.stream_arn(region, name));
        if matches!(status, StreamStatus::Creating | StreamStatus::Deleting) {
            return Ok(view);
        }
        let limit = limit.unwrap_or(100).clamp(1, 100) as usize;
        let after = exclusive_start_shard_id.and_then(ShardId::parse_lenient);
        let trim_horizon_ms = now_ms().saturating_sub(self.retention_ms(&record));
        let visible: Vec<_> = record
            .shards
            .iter()
            .filter(|s| after.is_none_or(|a| s.index > a.0))
            // A closed shard whose newest record has aged past retention is gone.
            .filter(|s| s.closed_ms.is_none_or(|closed| closed >= trim_horizon_ms))
            .collect();
        view.has_more_shards = visible.len() > limit;
        view.shards = visible
            .into_iter()
            .take(limit)
            .map(crate::view::ShardView::of)
            .collect();
        Ok(view)
    }

    /// DescribeStreamSummary.
    pub fn describe_stream_summary(&self, region: &str, name: &str) -> Result<StreamView, Error> {
        let (_, record) = self.active_record(region, name)?;
        let status = record
            .effective_status(now_ms())
            .ok_or_else(|| self.stream_not_found(name))?;
        Ok(StreamView::of(
            &record,
            status,
            self.stream_arn(region, name),
        ))
    }

    /// ListStreams.
    pub fn list_streams(
        &self,
        region: &str,
        limit: Option<i64>,
        exclusive_start_stream_name: Option<&str>,
        next_token: Option<&str>,
    ) -> Result<ListStreamsPage, Error> {
        let now = now_ms();
        let after = match next_token {
            Some(token) => Some(self.resume_after(token, now)?),
            None => exclusive_start_stream_name.map(str::to_owned),
        };
        let mut records: Vec<StreamRecord> = self
            .all_streams()
            .iter()
            .map(|s| s.snapshot())
            .filter(|r| r.region == region && r.effective_status(now).is_some())
            .filter(|r| after.as_deref().is_none_or(|a| r.name.as_str() > a))
            .collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        let limit = limit.unwrap_or(100).clamp(1, 100) as usize;
        let has_more = records.len() > limit;
        records.truncate(limit);
        let next_token = match (has_more, records.last()) {
            (true, Some(last)) => Some(self.tokens.list_streams(&ListStreamsState {
                issued_ms: now,
                after_name: last.name.clone(),
            })),
            _ => None,
        };
        let streams = records
            .iter()
            .map(|r| {
                let status = r.effective_status(now).unwrap_or(StreamStatus::Deleting);
                StreamView::of(r, status, self.stream_arn(region, &r.name))
            })
            .collect();
        Ok(ListStreamsPage {
            streams,
            has_more,
            next_token,
        })
    }

    /// The name a ListStreams or ListStreamConsumers NextToken resumes after.
    pub(crate) fn resume_after(&self, token: &str, now_ms: u64) -> Result<String, Error> {
        let state = self
            .tokens
            .open_list_streams(token)
            .ok_or_else(|| Error::InvalidArgument(format!("Invalid NextToken: {token}")))?;
        check_token_age(state.issued_ms, now_ms, token)?;
        Ok(state.after_name)
    }

    /// IncreaseStreamRetentionPeriod.
    pub fn increase_retention(&self, region: &str, name: &str, hours: i64) -> Result<(), Error> {
        check_retention_bounds(hours)?;
        self.modify(region, name, |record, _| {
            if hours < i64::from(record.retention_hours) {
                return Err(Error::InvalidArgument(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be \
                     shorter than existing retention period ({} hours). Use \
                     DecreaseRetentionPeriod API.",
                    record.retention_hours
                )));
            }
            record.retention_hours = hours as u32;
            Ok(())
        })
    }

    /// DecreaseStreamRetentionPeriod.
    pub fn decrease_retention(&self, region: &str, name: &str, hours: i64) -> Result<(), Error> {
        check_retention_bounds(hours)?;
        self.modify(region, name, |record, _| {
            if hours > i64::from(record.retention_hours) {
                return Err(Error::InvalidArgument(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be \
                     longer than existing retention period ({} hours). Use \
                     IncreaseRetentionPeriod API.",
                    record.retention_hours
                )));
            }
            record.retention_hours = hours as u32;
            Ok(())
        })
    }

    /// AddTagsToStream and TagResource.
    pub fn add_tags(
        &self,
        region: &str,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), Error> {
        let account = self.config.account_id.clone();
        validate_tags(tags, name, &account)?;
        self.modify(region, name, |record, _| {
            let mut merged = record.tags.clone();
            merged.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            if merged.len() > MAX_TAGS_PER_STREAM {
                return Err(too_many_tags(name, &account));
            }
            record.tags = merged;
            Ok(())
        })
    }

    /// RemoveTagsFromStream and UntagResource.
    pub fn remove_tags(&self, region: &str, name: &str, keys: &[String]) -> Result<(), Error> {
        let account = self.config.account_id.clone();
        check_tag_characters(
            keys.iter().flat_map(|k| k.chars()),
            "remove tags from",
            name,
            &account,
        )?;
        self.modify(region, name, |record, _| {
            for key in keys {
                record.tags.remove(key);
            }
            Ok(())
        })
    }

    /// ListTagsForStream: tags after `exclusive_start_key`, at most `limit`; and whether more remain.
    pub fn list_tags(
        &self,
        region: &str,
        name: &str,
        exclusive_start_key: Option<&str>,
        limit: Option<i64>,
    ) -> Result<(Vec<(String, String)>, bool), Error> {
        let (_, record) = self.active_record(region, name)?;
        let limit = limit.unwrap_or(50).clamp(1, 50) as usize;
        let mut tags: Vec<(String, String)> = record
            .tags
            .into_iter()
            .filter(|(k, _)| exclusive_start_key.is_none_or(|start| k.as_str() > start))
            .collect();
        let has_more = tags.len() > limit;
        tags.truncate(limit);
        Ok((tags, has_more))
    }

    /// Enable- and DisableEnhancedMonitoring; returns (current, desired) metric lists.
    pub fn set_enhanced_monitoring(
        &self,
        region: &str,
        name: &str,
        metrics: &[String],
        enable: bool,
    ) -> Result<(Vec<String>, Vec<String>), Error> {
        let expanded: Vec<&str> = if metrics.iter().any(|m| m == "ALL") {
            SHARD_LEVEL_METRICS.to_vec()
        } else {
            metrics.iter().map(String::as_str).collect()
        };
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &self.config.account_id, status));
            }
            let current = record.shard_level_metrics.clone();
            let desired: Vec<String> = SHARD_LEVEL_METRICS
                .iter()
                .filter(|m| {
                    let listed = expanded.contains(m);
                    let had = current.iter().any(|c| c == *m);
                    if enable {
                        had || listed
                    } else {
                        had && !listed
                    }
                })
                .map(|m| (*m).to_owned())
                .collect();
            record.shard_level_metrics = desired.clone();
            Ok((current, desired))
        })
    }

    /// The ARN of the stream's KMS key when it is encrypted (checking that the key is usable).
    pub fn encryption_key_arn(&self, region: &str, name: &str) -> Result<Option<String>, Error> {
        let Some(stream) = self.lookup(region, name) else {
            return Ok(None);
        };
        let record = stream.snapshot();
        match (
            record.encryption.encryption_type.as_str(),
            record.encryption.key_id.as_deref(),
        ) {
            ("KMS", Some(key_id)) => Ok(Some(self.sealer.check(
                &self.config.account_id,
                region,
                key_id,
            )?)),
            _ => Ok(None),
        }
    }

    /// Checks a customer managed KMS key as StartStreamEncryption does (it exists in the account
    /// and region and is enabled); the key's ARN, or the KMS error Kinesis reports. For other
    /// Kinesis resources that name a key (Kinesis Channels).
    pub fn check_encryption_key(&self, region: &str, key_id: &str) -> Result<String, Error> {
        self.sealer.check(&self.config.account_id, region, key_id)
    }

    /// Start- and StopStreamEncryption: checks the key (to start), then switches the stream;
    /// records written from now on are encrypted (or not), earlier ones stay as they are.
    pub fn set_encryption(
        &self,
        region: &str,
        name: &str,
        encryption_type: &str,
        key_id: &str,
        start: bool,
    ) -> Result<(), Error> {
        if encryption_type != "KMS" {
            return Err(Error::InvalidArgument(format!(
                "EncryptionType {encryption_type} is not supported; use KMS."
            )));
        }
        self.active_record(region, name)?;
        if start {
            self.sealer.check(&self.config.account_id, region, key_id)?;
        }
        let update_ms = self.config.update_stream_ms;
        let now = now_ms();
        let account = self.config.account_id.clone();
        let mut incarnation = 0;
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            let mut changes: Vec<u64> = record
                .encryption
                .changes_ms
                .iter()
                .copied()
                .filter(|&t| now.saturating_sub(t) < 24 * 3_600_000)
                .collect();
            if changes.len() >= ENCRYPTION_CHANGES_PER_DAY {
                return Err(Error::LimitExceeded(format!(
                    "Encryption of stream {name} under account {account} was changed \
                     {ENCRYPTION_CHANGES_PER_DAY} times in the last 24 hours, the maximum."
                )));
            }
            changes.push(now);
            incarnation = record.incarnation;
            record.encryption = EncryptionRecord {
                encryption_type: if start { "KMS" } else { "NONE" }.into(),
                key_id: start.then(|| key_id.to_owned()),
                changes_ms: changes,
            };
            if update_ms > 0 {
                record.status = StreamStatus::Updating;
                record.status_until_ms = now + update_ms;
            }
            Ok(())
        })?;
        self.sealer.forget(incarnation);
        Ok(())
    }

    /// Put-, Get- and DeleteResourcePolicy on a stream ARN.
    pub fn put_resource_policy(
        &self,
        region: &str,
        name: &str,
        arn: &str,
        policy: &str,
    ) -> Result<(), Error> {
        self.active_record(region, name)?;
        if looks_like_json_object(policy).is_none() {
            return Err(Error::InvalidArgument(
                "Policy is not a valid JSON policy document.".into(),
            ));
        }
        self.store.set_policy(arn, Some(policy))?;
        self.policy_cache
            .write()
            .expect("lock")
            .insert(arn.to_owned(), Some(std::sync::Arc::from(policy)));
        Ok(())
    }

    pub fn get_resource_policy(
        &self,
        region: &str,
        name: &str,
        arn: &str,
    ) -> Result<String, Error> {
        self.active_record(region, name)?;
        Ok(self.store.policy(arn)?.unwrap_or_else(|| "{}".to_owned()))
    }

    pub fn delete_resource_policy(&self, region: &str, name: &str, arn: &str) -> Result<(), Error> {
        self.active_record(region, name)?;
        if self.store.policy(arn)?.is_none() {
            return Err(Error::ResourceNotFound(format!(
                "No resource policy found for resource ARN {arn}."
            )));
        }
        self.store.set_policy(arn, None)?;
        self.policy_cache
            .write()
            .expect("lock")
            .insert(arn.to_owned(), None);
        Ok(())
    }

    /// DescribeLimits.
    pub fn describe_limits(&self, region: &str) -> LimitsView {
        LimitsView {
            shard_limit: self.config.shard_limit,
            open_shard_count: self.open_provisioned_shards(region),
            on_demand_stream_count: self.on_demand_streams(region),
            on_demand_stream_count_limit: self.config.on_demand_stream_limit,
        }
    }

    /// DescribeAccountSettings.
    pub fn account_settings(&self) -> Result<AccountSettingsView, Error> {
        let stored = self.store.setting(ACCOUNT_SETTINGS_KEY)?;
        Ok(stored
            .and_then(|bytes| decode_settings(&bytes))
            .unwrap_or(AccountSettingsView {
                status: "DISABLED".into(),
                started_at_ms: None,
                ended_at_ms: None,
                earliest_allowed_end_at_ms: None,
            }))
    }

    /// UpdateAccountSettings.
    pub fn update_account_settings(&self, status: &str) -> Result<AccountSettingsView, Error> {
        let _guard = self.control.lock().expect("control lock");
        let now = now_ms();
        let previous = self.account_settings()?;
        let view = match status {
            "ENABLED" => AccountSettingsView {
                status: "ENABLED".into(),
                started_at_ms: previous
                    .started_at_ms
                    .filter(|_| previous.status == "ENABLED")
                    .or(Some(now)),
                ended_at_ms: None,
                earliest_allowed_end_at_ms: Some(
                    previous
                        .started_at_ms
                        .filter(|_| previous.status == "ENABLED")
                        .unwrap_or(now)
                        + 24 * 3_600_000,
                ),
            },
            _ => AccountSettingsView {
                status: "DISABLED".into(),
                started_at_ms: previous.started_at_ms,
                ended_at_ms: previous.started_at_ms.map(|_| now),
                earliest_allowed_end_at_ms: None,
            },
        };
        self.store
            .set_setting(ACCOUNT_SETTINGS_KEY, &encode_settings(&view))?;
        Ok(view)
    }
}

/// Checks a pagination token's age: tokens live as long as shard iterators.
pub(crate) fn check_token_age(issued_ms: u64, now_ms: u64, token: &str) -> Result<(), Error> {
    if now_ms.saturating_sub(issued_ms) > millrace_types::limits::ITERATOR_LIFETIME_MS {
        return Err(Error::ExpiredNextToken(format!(
            "The NextToken has expired: {token}"
        )));
    }
    Ok(())
}

fn looks_like_json_object(policy: &str) -> Option<()> {
    let trimmed = policy.trim();
    (trimmed.starts_with('{') && trimmed.ends_with('}')).then_some(())
}

fn encode_settings(view: &AccountSettingsView) -> Vec<u8> {
    let number = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    format!(
        "{}\n{}\n{}\n{}",
        view.status,
        number(view.started_at_ms),
        number(view.ended_at_ms),
        number(view.earliest_allowed_end_at_ms)
    )
    .into_bytes()
}

fn decode_settings(bytes: &[u8]) -> Option<AccountSettingsView> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split('\n');
    let status = lines.next()?.to_owned();
    let mut number = || lines.next().and_then(|l| l.parse().ok());
    Some(AccountSettingsView {
        status,
        started_at_ms: number(),
        ended_at_ms: number(),
        earliest_allowed_end_at_ms: number(),
    })
}

fn check_retention_bounds(hours: i64) -> Result<(), Error> {
    if hours < i64::from(MIN_RETENTION_HOURS) {
        return Err(Error::InvalidArgument(format!(
            "Minimum allowed retention period is {MIN_RETENTION_HOURS} hours. Requested retention \
             period ({hours} hours) is too short."
        )));
    }
    if hours > i64::from(MAX_RETENTION_HOURS) {
        return Err(Error::InvalidArgument(format!(
            "Maximum allowed retention period is {MAX_RETENTION_HOURS} hours. Requested retention \
             period ({hours} hours) is too long."
        )));
    }
    Ok(())
}

pub(crate) fn not_active(name: &str, account: &str, status: StreamStatus) -> Error {
    Error::ResourceInUse(format!(
        "Stream {name} under account {account} not ACTIVE, instead in state {}",
        crate::view::status_name(status)
    ))
}

fn too_many_tags(name: &str, account: &str) -> Error {
    Error::InvalidArgument(format!(
        "Failed to add tags to stream {name} under account {account} because a given stream \
         cannot have more than {MAX_TAGS_PER_STREAM} tags associated with it."
    ))
}

fn validate_tags(tags: &BTreeMap<String, String>, name: &str, account: &str) -> Result<(), Error> {
    let all_text = tags.iter().flat_map(|(k, v)| k.chars().chain(v.chars()));
    check_tag_characters(all_text, "add tags to", name, account)
}

/// The characters tag keys and values may hold; `verb` names the operation in the message
/// about `%` (`add tags to`, `remove tags from`).
fn check_tag_characters(
    text: impl Iterator<Item = char> + Clone,
    verb: &str,
    name: &str,
    account: &str,
) -> Result<(), Error> {
    let allowed = |c: char| c.is_alphanumeric() || " _./=+-%@:".contains(c);
    let all_text = text;
    if !all_text.clone().all(allowed) {
        return Err(Error::InvalidArgument(
            "Some tags contain invalid characters. Valid characters: Unicode letters, digits, \
             white space, _ . / = + - % @."
                .into(),
        ));
    }
    if all_text.clone().any(|c| c == '%') {
        return Err(Error::InvalidArgument(format!(
            "Failed to {verb} stream {name} under account {account} because some tags \
             contained illegal characters. The allowed characters are Unicode letters, \
             white-spaces, '_',',','/','=','+','-','@'."
        )));
    }
    Ok(())
}
