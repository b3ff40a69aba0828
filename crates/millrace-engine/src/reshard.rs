//! Resharding: SplitShard, MergeShards, UpdateShardCount and UpdateStreamMode.
//!
//! Every change of shape is one catalog transaction: parents are closed in memory (their
//! appends drained and their logs forced), then the new shape is stored, then the children
//! are opened. A crash before the commit leaves the old shape, after it the new one; writers
//! that meet a closed parent route again to the children.

use std::sync::Arc;

use millrace_catalog::{ShardRecord, StreamMode, StreamRecord, StreamStatus};
use millrace_types::{HashKeyRange, ShardId};

use crate::clock::now_ms;
use crate::control::not_active;
use crate::error::Error;
use crate::registry::{Engine, Shard, Stream};

/// A shard to create: its range and parents.
struct NewShard {
    range: HashKeyRange,
    parent: u32,
    adjacent_parent: Option<u32>,
}

/// UpdateShardCount's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalingOutcome {
    pub current_shard_count: u32,
    pub target_shard_count: u32,
}

fn range_of(shard: &ShardRecord) -> HashKeyRange {
    HashKeyRange {
        start: shard.starting_hash_key.parse().unwrap_or(0),
        end: shard.ending_hash_key.parse().unwrap_or(u128::MAX),
    }
}

impl Engine {
    fn could_not_find_shard(&self, shard: &str, name: &str) -> Error {
        Error::ResourceNotFound(format!(
            "Could not find shard {shard} in stream {name} under account {}.",
            self.config.account_id
        ))
    }

    /// Looks up a stream for resharding: it must exist, be ACTIVE and be provisioned.
    fn reshardable(&self, region: &str, name: &str) -> Result<(Arc<Stream>, StreamRecord), Error> {
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let record = stream.snapshot();
        let status = record
            .effective_status(now_ms())
            .ok_or_else(|| self.stream_not_found(name))?;
        if status != StreamStatus::Active {
            return Err(not_active(name, &self.config.account_id, status));
        }
        if record.mode == StreamMode::OnDemand {
            return Err(Error::Validation(format!(
                "Request is invalid. Stream {name} under account {} is in On-Demand mode.",
                self.config.account_id
            )));
        }
        Ok((stream, record))
    }

    fn open_shard_record<'a>(
        &self,
        record: &'a StreamRecord,
        id: ShardId,
        name: &str,
    ) -> Result<&'a ShardRecord, Error> {
        let shard = record
            .shards
            .iter()
            .find(|s| s.index == id.0)
            .ok_or_else(|| self.could_not_find_shard(&id.to_string(), name))?;
        if shard.closed_ms.is_some() {
            return Err(Error::InvalidArgument(format!(
                "Shard {id} in stream {name} under account {} has already been merged or split, \
                 and thus is not eligible for merging or splitting.",
                self.config.account_id
            )));
        }
        Ok(shard)
    }

    pub(crate) fn check_shard_limit(&self, region: &str, additional: u32) -> Result<(), Error> {
        let current = self.describe_limits(region).open_shard_count;
        if u64::from(current) + u64::from(additional) > u64::from(self.config.shard_limit) {
            return Err(Error::LimitExceeded(format!(
                "This request would exceed the shard limit for the account {} in {region}. \
                 Current shard count for the account: {current}. Limit: {}. Number of \
                 additional shards that would have resulted from this request: {additional}. \
                 Refer to the AWS Service Limits page \
                 (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for \
                 current limits and how to request higher limits.",
                self.config.account_id, self.config.shard_limit
            )));
        }
        Ok(())
    }

    /// SplitShard.
    pub fn split_shard(
        &self,
        region: &str,
        name: &str,
        shard_to_split: &str,
        new_starting_hash_key: &str,
    ) -> Result<(), Error> {
        let id = ShardId::parse_lenient(shard_to_split)
            .ok_or_else(|| self.could_not_find_shard(shard_to_split, name))?;
        let _guard = self.control.lock().expect("control lock");
        let (stream, record) = self.reshardable(region, name)?;
        let parent = self.open_shard_record(&record, id, name)?;
        let range = range_of(parent);
        let key = millrace_types::hash_key::parse_hash_key(new_starting_hash_key);
        let valid =
            key.is_some_and(|k| range.start.checked_add(1).is_some_and(|s| k > s) && k < range.end);
        let Some(key) = key.filter(|_| valid) else {
            return Err(Error::InvalidArgument(format!(
                "NewStartingHashKey {new_starting_hash_key} used in SplitShard() on shard {id} in \
                 stream {name} under account {} is not both greater than one plus the shard's \
                 StartingHashKey {} and less than the shard's EndingHashKey {}.",
                self.config.account_id, range.start, range.end
            )));
        };
        self.check_shard_limit(region, 1)?;
        let children = vec![
            NewShard {
                range: HashKeyRange {
                    start: range.start,
                    end: key - 1,
                },
                parent: id.0,
                adjacent_parent: None,
            },
            NewShard {
                range: HashKeyRange {
                    start: key,
                    end: range.end,
                },
                parent: id.0,
                adjacent_parent: None,
            },
        ];
        self.reshape(&stream, record, vec![vec![id.0]], vec![children])
    }

    /// MergeShards.
    pub fn merge_shards(
        &self,
        region: &str,
        name: &str,
        shard_to_merge: &str,
        adjacent_shard_to_merge: &str,
    ) -> Result<(), Error> {
        let first = ShardId::parse_lenient(shard_to_merge)
            .ok_or_else(|| self.could_not_find_shard(shard_to_merge, name))?;
        let second = ShardId::parse_lenient(adjacent_shard_to_merge)
            .ok_or_else(|| self.could_not_find_shard(adjacent_shard_to_merge, name))?;
        let _guard = self.control.lock().expect("control lock");
        let (stream, record) = self.reshardable(region, name)?;
        let a = range_of(self.open_shard_record(&record, first, name)?);
        let b = range_of(self.open_shard_record(&record, second, name)?);
        if a.end.checked_add(1) != Some(b.start) {
            return Err(Error::InvalidArgument(format!(
                "Shards {first} and {second} in stream {name} under account {} are not an \
                 adjacent pair of shards eligible for merging",
                self.config.account_id
            )));
        }
        let child = NewShard {
            range: HashKeyRange {
                start: a.start,
                end: b.end,
            },
            parent: first.0,
            adjacent_parent: Some(second.0),
        };
        self.reshape(
            &stream,
            record,
            vec![vec![first.0, second.0]],
            vec![vec![child]],
        )
    }

    /// Splits an open shard at the middle of its range (the on-demand scaler's step).
    pub(crate) fn split_in_half(&self, region: &str, name: &str, index: u32) -> Result<(), Error> {
        let _guard = self.control.lock().expect("control lock");
        let stream = self
            .lookup(region, name)
            .ok_or_else(|| self.stream_not_found(name))?;
        let record = stream.snapshot();
        let parent = self.open_shard_record(&record, ShardId(index), name)?;
        let range = range_of(parent);
        let middle = range.start + (range.end - range.start) / 2 + 1;
        if middle <= range.start + 1 || middle >= range.end {
            return Ok(());
        }
        let children = vec![
            NewShard {
                range: HashKeyRange {
                    start: range.start,
                    end: middle - 1,
                },
                parent: index,
                adjacent_parent: None,
            },
            NewShard {
                range: HashKeyRange {
                    start: middle,
                    end: range.end,
                },
                parent: index,
                adjacent_parent: None,
            },
        ];
        self.reshape(&stream, record, vec![vec![index]], vec![children])
    }

    /// UpdateShardCount with UNIFORM_SCALING: splits and merges until the open shards are the
    /// even split of the key space into `target` ranges.
    pub fn update_shard_count(
        &self,
        region: &str,
        name: &str,
        target: i64,
    ) -> Result<ScalingOutcome, Error> {
        let _guard = self.control.lock().expect("control lock");
        let (stream, record) = self.reshardable(region, name)?;
        let mut open: Vec<(u32, HashKeyRange)> = record
            .shards
            .iter()
            .filter(|s| s.closed_ms.is_none())
            .map(|s| (s.index, range_of(s)))
            .collect();
        open.sort_by_key(|(_, r)| r.start);
        let current = open.len() as u32;
        let account = &self.config.account_id;
        if !(1..=10_000).contains(&target)
            || target > i64::from(current) * 2
            || target * 2 < i64::from(current)
        {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount cannot scale stream {name} under account {account} from \
                 {current} to {target} shards: the target must be between half and double the \
                 current open shard count, and at most 10000."
            )));
        }
        let target = target as u32;
        let now = now_ms();
        let day_ago = now.saturating_sub(24 * 3_600_000);
        let recent: Vec<u64> = record
            .scaling_history_ms
            .iter()
            .copied()
            .filter(|t| *t > day_ago)
            .collect();
        if recent.len() >= self.config.max_scaling_per_day as usize {
            return Err(Error::LimitExceeded(format!(
                "UpdateShardCount for stream {name} under account {account} has been called {} \
                 times in the last 24 hours; the limit is {}.",
                recent.len(),
                self.config.max_scaling_per_day
            )));
        }
        if target > current {
            self.check_shard_limit(region, target - current)?;
        }
        let goal = HashKeyRange::even_split(target);
        let mut closes = Vec::new();
        let mut creates = Vec::new();
        // Stage 1: split every open shard at each target boundary strictly inside it.
        let mut next_index = record.next_shard_index;
        let mut pieces: Vec<(u32, HashKeyRange)> = Vec::new();
        let mut stage_close = Vec::new();
        let mut stage_create = Vec::new();
        for (index, range) in &open {
            let cuts: Vec<u128> = goal
                .iter()
                .map(|g| g.start)
                .filter(|b| *b > range.start && *b <= range.end)
                .collect();
            if cuts.is_empty() {
                pieces.push((*index, *range));
                continue;
            }
            // Split repeatedly: the upper piece of one split is split again at the next cut.
            let mut remaining = (*index, *range);
            for cut in cuts {
                stage_close.push(vec![remaining.0]);
                let lower = HashKeyRange {
                    start: remaining.1.start,
                    end: cut - 1,
                };
                let upper = HashKeyRange {
                    start: cut,
                    end: remaining.1.end,
                };
                stage_create.push(vec![
                    NewShard {
                        range: lower,
                        parent: remaining.0,
                        adjacent_parent: None,
                    },
                    NewShard {
                        range: upper,
                        parent: remaining.0,
                        adjacent_parent: None,
                    },
                ]);
                pieces.push((next_index, lower));
                remaining = (next_index + 1, upper);
                next_index += 2;
            }
            pieces.push(remaining);
        }
        closes.extend(stage_close);
        creates.extend(stage_create);
        // Stage 2: merge the pieces inside each target range, left to right.
        for wanted in &goal {
            let inside: Vec<(u32, HashKeyRange)> = pieces
                .iter()
                .copied()
                .filter(|(_, r)| r.start >= wanted.start && r.end <= wanted.end)
                .collect();
            let mut merged = inside[0];
            for piece in &inside[1..] {
                closes.push(vec![merged.0, piece.0]);
                let range = HashKeyRange {
                    start: merged.1.start,
                    end: piece.1.end,
                };
                creates.push(vec![NewShard {
                    range,
                    parent: merged.0,
                    adjacent_parent: Some(piece.0),
                }]);
                merged = (next_index, range);
                next_index += 1;
            }
        }
        let mut record = record;
        record.scaling_history_ms = recent;
        record.scaling_history_ms.push(now);
        self.reshape(&stream, record, closes, creates)?;
        Ok(ScalingOutcome {
            current_shard_count: current,
            target_shard_count: target,
        })
    }

    /// UpdateStreamMode.
    pub fn update_stream_mode(&self, region: &str, name: &str, mode: &str) -> Result<(), Error> {
        let mode = match mode {
            "ON_DEMAND" => StreamMode::OnDemand,
            _ => StreamMode::Provisioned,
        };
        let update_ms = self.config.update_stream_ms;
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            if record.mode == mode {
                return Err(Error::InvalidArgument(format!(
                    "Stream {name} under account {account} is already in {} mode.",
                    crate::view::mode_name(mode)
                )));
            }
            record.mode = mode;
            if update_ms > 0 {
                record.status = StreamStatus::Updating;
                record.status_until_ms = now_ms() + update_ms;
            }
            Ok(())
        })
    }

    /// Applies a sequence of steps, each closing some shards and creating their children, as
    /// one stored change. The caller holds the control lock.
    fn reshape(
        &self,
        stream: &Arc<Stream>,
        mut record: StreamRecord,
        closes: Vec<Vec<u32>>,
        creates: Vec<Vec<NewShard>>,
    ) -> Result<(), Error> {
        let now = now_ms();
        let live: Vec<Arc<Shard>> = stream.shards.read().expect("shard lock").clone();
        let mut closed_now: Vec<Arc<Shard>> = Vec::new();
        let mut next_index = record.next_shard_index;
        let mut created_secs_of: std::collections::HashMap<u32, u64> = record
            .shards
            .iter()
            .map(|s| (s.index, s.created_secs))
            .collect();
        for (step_closes, step_creates) in closes.iter().zip(creates) {
            let mut parent_created = 0;
            for index in step_closes {
                // Shards created earlier in this change are empty and have no log open yet.
                let end = match live.iter().find(|s| s.index == *index) {
                    Some(shard) => {
                        let end = shard.close();
                        match end {
                            Ok(end) => {
                                closed_now.push(shard.clone());
                                end
                            }
                            Err(error) => {
                                closed_now.iter().for_each(|s| s.reopen());
                                return Err(error);
                            }
                        }
                    }
                    None => 0,
                };
                let entry = record
                    .shards
                    .iter_mut()
                    .find(|s| s.index == *index)
                    .expect("resharding closes known shards");
                entry.closed_ms = Some(now);
                entry.end_position = Some(end);
                parent_created =
                    parent_created.max(created_secs_of.get(index).copied().unwrap_or(0));
            }
            let created_secs = (now / 1000).max(parent_created) + 1;
            for child in step_creates {
                record.shards.push(ShardRecord {
                    index: next_index,
                    starting_hash_key: child.range.start.to_string(),
                    ending_hash_key: child.range.end.to_string(),
                    parent: Some(child.parent),
                    adjacent_parent: child.adjacent_parent,
                    created_secs,
                    closed_ms: None,
                    end_position: None,
                });
                created_secs_of.insert(next_index, created_secs);
                next_index += 1;
            }
        }
        record.next_shard_index = next_index;
        if self.config.update_stream_ms > 0 {
            record.status = StreamStatus::Updating;
            record.status_until_ms = now + self.config.update_stream_ms;
        }
        if let Err(error) = self.store.put_stream(&record) {
            closed_now.iter().for_each(|s| s.reopen());
            return Err(error.into());
        }
        let mut shards = live;
        let known: Vec<u32> = shards.iter().map(|s| s.index).collect();
        for shard in record.shards.iter().filter(|s| !known.contains(&s.index)) {
            let log = self.logs.open(record.incarnation, shard.index)?;
            shards.push(Arc::new(Shard::new(
                shard.index,
                range_of(shard),
                shard.created_secs,
                log,
                shard.end_position,
            )));
        }
        // Shards created and closed within this change have no records.
        for shard in &shards {
            if let Some(end) = record
                .shards
                .iter()
                .find(|s| s.index == shard.index)
                .and_then(|s| s.end_position)
            {
                if !shard.is_closed() {
                    shard.close_empty(end);
                }
            }
        }
        shards.sort_by_key(|s| s.index);
        stream.set_shards(shards);
        tracing::info!(
            stream = record.name,
            open = record
                .shards
                .iter()
                .filter(|s| s.closed_ms.is_none())
                .count(),
            "stream resharded"
        );
        *stream.record.write().expect("stream lock") = record;
        Ok(())
    }
}

impl Engine {
    /// UpdateMaxRecordSize.
    pub fn update_max_record_size(&self, region: &str, name: &str, kib: i64) -> Result<(), Error> {
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            record.max_record_size_kib = kib.clamp(1024, 10_240) as u32;
            Ok(())
        })
    }

    /// UpdateStreamWarmThroughput; returns the new target.
    pub fn update_warm_throughput(
        &self,
        region: &str,
        name: &str,
        mibps: i64,
    ) -> Result<u32, Error> {
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            if record.mode != StreamMode::OnDemand {
                return Err(Error::Validation(format!(
                    "Warm throughput can only be set for stream {name} under account {account} \
                     in ON_DEMAND mode."
                )));
            }
            let target = mibps.max(0) as u32;
            record.warm_throughput_mibps = Some(target);
            Ok(target)
        })
    }

    /// UpdateStreamRecordDistributionStrategy.
    pub fn update_record_distribution(
        &self,
        region: &str,
        name: &str,
        strategy: &str,
    ) -> Result<(), Error> {
        let account = self.config.account_id.clone();
        self.modify(region, name, |record, status| {
            if status != StreamStatus::Active {
                return Err(not_active(name, &account, status));
            }
            record.record_distribution_strategy = Some(strategy.to_owned());
            Ok(())
        })
    }
}
