//! ListShards: shard filters, paging and pagination tokens.

use millrace_catalog::{ShardRecord, StreamRecord};
use millrace_types::ShardId;

use crate::clock::now_ms;
use crate::error::Error;
use crate::registry::Engine;
use crate::token::ListShardsState;
use crate::view::ShardView;

/// The ShardFilter types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardFilterType {
    AfterShardId,
    AtTrimHorizon,
    FromTrimHorizon,
    AtLatest,
    AtTimestamp,
    FromTimestamp,
}

impl ShardFilterType {
    const ALL: [ShardFilterType; 6] = [
        ShardFilterType::AfterShardId,
        ShardFilterType::AtTrimHorizon,
        ShardFilterType::FromTrimHorizon,
        ShardFilterType::AtLatest,
        ShardFilterType::AtTimestamp,
        ShardFilterType::FromTimestamp,
    ];

    /// Parses the wire name (`AT_LATEST`, …).
    pub fn parse(name: &str) -> Option<ShardFilterType> {
        Some(match name {
            "AFTER_SHARD_ID" => ShardFilterType::AfterShardId,
            "AT_TRIM_HORIZON" => ShardFilterType::AtTrimHorizon,
            "FROM_TRIM_HORIZON" => ShardFilterType::FromTrimHorizon,
            "AT_LATEST" => ShardFilterType::AtLatest,
            "AT_TIMESTAMP" => ShardFilterType::AtTimestamp,
            "FROM_TIMESTAMP" => ShardFilterType::FromTimestamp,
            _ => return None,
        })
    }

    fn code(self) -> u8 {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0) as u8
    }
}

/// A ShardFilter after wire validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardFilter {
    pub filter_type: ShardFilterType,
    pub shard_id: Option<String>,
    pub timestamp_ms: Option<u64>,
}

/// ListShards' parameters after wire validation.
#[derive(Clone, Debug, Default)]
pub struct ListShardsRequest {
    pub stream_name: Option<String>,
    pub next_token: Option<String>,
    pub exclusive_start_shard_id: Option<String>,
    pub max_results: Option<i64>,
    pub stream_creation_timestamp_ms: Option<u64>,
    pub filter: Option<ShardFilter>,
}

struct Selection {
    after_index: Option<u32>,
    filter: ShardFilterType,
    timestamp_ms: u64,
}

impl Engine {
    /// ListShards; returns the page and the token for the next one.
    pub fn list_shards(
        &self,
        region: &str,
        request: &ListShardsRequest,
    ) -> Result<(Vec<ShardView>, Option<String>), Error> {
        let now = now_ms();
        let (region, name, selection) = match (&request.next_token, &request.stream_name) {
            (Some(_), Some(_)) => {
                return Err(Error::InvalidArgument(
                    "NextToken and StreamName cannot be provided together.".into(),
                ))
            }
            (None, None) => {
                return Err(Error::InvalidArgument(
                    "Either NextToken or StreamName should be provided.".into(),
                ))
            }
            (Some(token), None) => {
                if request.exclusive_start_shard_id.is_some() {
                    return Err(Error::InvalidArgument(
                        "NextToken and ExclusiveStartShardId cannot be provided together.".into(),
                    ));
                }
                if request.stream_creation_timestamp_ms.is_some() {
                    return Err(Error::InvalidArgument(
                        "NextToken and StreamCreationTimestamp cannot be provided together.".into(),
                    ));
                }
                let state = self
                    .tokens
                    .open_list_shards(token)
                    .ok_or_else(|| Error::InvalidArgument(format!("Invalid NextToken: {token}")))?;
                crate::control::check_token_age(state.issued_ms, now, token)?;
                let filter = ShardFilterType::ALL
                    .get(usize::from(state.filter))
                    .copied()
                    .unwrap_or(ShardFilterType::FromTrimHorizon);
                let selection = Selection {
                    after_index: Some(state.after_index),
                    filter,
                    timestamp_ms: state.filter_timestamp_ms,
                };
                (state.region, state.stream_name, selection)
            }
            (None, Some(name)) => {
                let mut after_index = request
                    .exclusive_start_shard_id
                    .as_deref()
                    .map(|id| ShardId::parse_lenient(id).map_or(u32::MAX, |s| s.0));
                let (filter, timestamp_ms) = match &request.filter {
                    None => (ShardFilterType::FromTrimHorizon, 0),
                    Some(filter) => {
                        let timestamp_ms = self.filter_timestamp(filter)?;
                        if filter.filter_type == ShardFilterType::AfterShardId {
                            let id = filter.shard_id.as_deref().unwrap_or_default();
                            after_index =
                                Some(ShardId::parse_lenient(id).map_or(u32::MAX, |s| s.0));
                        }
                        (filter.filter_type, timestamp_ms)
                    }
                };
                let selection = Selection {
                    after_index,
                    filter,
                    timestamp_ms,
                };
                (region.to_owned(), name.clone(), selection)
            }
        };
        let stream = self
            .lookup(&region, &name)
            .ok_or_else(|| self.stream_not_found(&name))?;
        let record = stream.snapshot();
        if let Some(created) = request.stream_creation_timestamp_ms {
            if created / 1000 != record.created_ms / 1000 {
                return Err(self.stream_not_found(&name));
            }
        }
        let trim_horizon_ms = now.saturating_sub(self.retention_ms(&record));
        let matching: Vec<&ShardRecord> = record
            .shards
            .iter()
            .filter(|s| selection.after_index.is_none_or(|a| s.index > a))
            // A closed shard whose newest record has aged past retention is gone.
            .filter(|s| s.closed_ms.is_none_or(|closed| closed >= trim_horizon_ms))
            .filter(|s| shard_matches(s, &record, &selection, trim_horizon_ms))
            .collect();
        let limit = request.max_results.unwrap_or(1000).clamp(1, 1000) as usize;
        let next_token = match matching.get(limit) {
            Some(_) => Some(self.tokens.list_shards(&ListShardsState {
                issued_ms: now,
                incarnation: record.incarnation,
                after_index: matching[limit - 1].index,
                filter: selection.filter.code(),
                filter_timestamp_ms: selection.timestamp_ms,
                region: region.clone(),
                stream_name: name.clone(),
            })),
            None => None,
        };
        let shards = matching
            .into_iter()
            .take(limit)
            .map(ShardView::of)
            .collect();
        Ok((shards, next_token))
    }

    fn filter_timestamp(&self, filter: &ShardFilter) -> Result<u64, Error> {
        match filter.filter_type {
            ShardFilterType::AtTimestamp | ShardFilterType::FromTimestamp => {
                filter.timestamp_ms.ok_or_else(|| {
                    Error::InvalidArgument(
                        "Timestamp must be specified for the shard filter type.".into(),
                    )
                })
            }
            ShardFilterType::AfterShardId if filter.shard_id.is_none() => {
                Err(Error::InvalidArgument(
                    "ShardId must be specified for the AFTER_SHARD_ID filter.".into(),
                ))
            }
            _ => Ok(0),
        }
    }

    /// Retention of a stream in real milliseconds.
    pub(crate) fn retention_ms(&self, record: &StreamRecord) -> u64 {
        u64::from(record.retention_hours) * self.config.retention_hour_ms
    }
}

/// Whether a shard was open at `at_ms` (shards without parents count as open from the start).
fn open_at(shard: &ShardRecord, at_ms: u64) -> bool {
    let started = shard.parent.is_none() || shard.created_secs * 1000 <= at_ms;
    let not_closed = shard.closed_ms.is_none_or(|closed| closed >= at_ms);
    started && not_closed
}

fn shard_matches(
    shard: &ShardRecord,
    _record: &StreamRecord,
    selection: &Selection,
    trim_horizon_ms: u64,
) -> bool {
    match selection.filter {
        ShardFilterType::AfterShardId | ShardFilterType::FromTrimHorizon => true,
        ShardFilterType::AtLatest => shard.closed_ms.is_none(),
        ShardFilterType::AtTrimHorizon => open_at(shard, trim_horizon_ms),
        ShardFilterType::AtTimestamp => open_at(shard, selection.timestamp_ms),
        ShardFilterType::FromTimestamp => {
            let from = selection.timestamp_ms.max(trim_horizon_ms);
            shard.closed_ms.is_none_or(|closed| closed >= from)
        }
    }
}
