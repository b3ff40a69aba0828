//! Resharding while producers write: a lineage-following consumer receives every acknowledged
//! record exactly once and, per partition key, in order.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;

use crate::common::{server_with_stream, wait_active};

/// Reads every shard, parents before children, until all closed shards are finished and the
/// open ones are caught up; returns records per partition key in read order.
async fn read_lineage(client: &Client, stream: &str) -> (BTreeMap<String, Vec<Vec<u8>>>, usize) {
    let shards = client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list shards")
        .shards
        .unwrap_or_default();
    let parents: HashMap<String, Vec<String>> = shards
        .iter()
        .map(|s| {
            (
                s.shard_id.clone(),
                s.parent_shard_id
                    .iter()
                    .chain(s.adjacent_parent_shard_id.iter())
                    .cloned()
                    .collect(),
            )
        })
        .collect();
    let mut finished: HashSet<String> = HashSet::new();
    let mut by_key: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    let mut total = 0;
    let mut children_seen = 0;
    while finished.len() < shards.len() {
        let ready: Vec<String> = shards
            .iter()
            .map(|s| s.shard_id.clone())
            .filter(|id| !finished.contains(id))
            .filter(|id| parents[id].iter().all(|p| finished.contains(p)))
            .collect();
        assert!(!ready.is_empty(), "lineage has no shard ready to read");
        for shard in ready {
            let mut iterator = client
                .get_shard_iterator()
                .stream_name(stream)
                .shard_id(&shard)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator;
            while let Some(current) = iterator {
                let page = client
                    .get_records()
                    .shard_iterator(&current)
                    .send()
                    .await
                    .expect("get records");
                for record in &page.records {
                    total += 1;
                    by_key
                        .entry(record.partition_key.clone().unwrap_or_default())
                        .or_default()
                        .push(record.data.clone().into_inner());
                }
                match (&page.next_shard_iterator, page.child_shards.as_deref()) {
                    (None, Some(children)) => {
                        assert!(!children.is_empty(), "shard end carries its children");
                        children_seen += children.len();
                    }
                    (None, None) => {
                        panic!("a missing NextShardIterator must come with ChildShards")
                    }
                    (Some(_), children) => {
                        assert!(
                            children.is_none_or(|c| c.is_empty()),
                            "children only at shard end"
                        );
                        if page.records.is_empty() && page.millis_behind_latest == Some(0) {
                            break;
                        }
                    }
                }
                iterator = page.next_shard_iterator;
            }
            finished.insert(shard);
        }
    }
    assert!(children_seen > 0, "closed shards reported their children");
    (by_key, total)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_consumer_gets_every_record_once_in_key_order() {
    let (_server, client) = server_with_stream(&[], "lineage", 2).await;
    let written: Arc<Mutex<BTreeMap<String, Vec<Vec<u8>>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut producers = Vec::new();
    for producer in 0..4u32 {
        let client = client.clone();
        let written = written.clone();
        let stop = stop.clone();
        producers.push(tokio::spawn(async move {
            let mut sequence = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // One record per key per call keeps each key's order defined by acknowledgement.
                let batch: Vec<(String, Vec<u8>)> = (0..8u32)
                    .map(|k| {
                        (
                            format!("p{producer}-k{k}"),
                            format!("{producer}/{k}/{sequence}").into_bytes(),
                        )
                    })
                    .collect();
                let request: Vec<PutRecordsRequestEntry> = batch
                    .iter()
                    .map(|(key, data)| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(key)
                            .data(Blob::new(data.clone()))
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let reply = client
                    .put_records()
                    .stream_name("lineage")
                    .set_records(Some(request))
                    .send()
                    .await
                    .expect("put records");
                assert_eq!(reply.failed_record_count, Some(0));
                let mut map = written.lock().expect("lock");
                for (key, data) in batch {
                    map.entry(key).or_default().push(data);
                }
                sequence += 1;
            }
        }));
    }
    let pause = || tokio::time::sleep(Duration::from_millis(150));
    pause().await;
    client
        .split_shard()
        .stream_name("lineage")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("85070591730234615865843651857942052864")
        .send()
        .await
        .expect("split 0");
    pause().await;
    client
        .merge_shards()
        .stream_name("lineage")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .expect("merge 2+3");
    pause().await;
    client
        .update_shard_count()
        .stream_name("lineage")
        .target_shard_count(3)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect("scale to 3");
    pause().await;
    client
        .update_shard_count()
        .stream_name("lineage")
        .target_shard_count(2)
        .scaling_type(aws_sdk_kinesis::types::ScalingType::UniformScaling)
        .send()
        .await
        .expect("scale to 2");
    pause().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for producer in producers {
        producer.await.expect("producer");
    }
    let written = std::mem::take(&mut *written.lock().expect("lock"));
    let expected_total: usize = written.values().map(Vec::len).sum();
    let (read, total) = read_lineage(&client, "lineage").await;
    assert_eq!(total, expected_total, "every record exactly once");
    assert_eq!(
        read, written,
        "per key, records come back in the order they were acknowledged"
    );

    let open: Vec<(String, String)> = client
        .list_shards()
        .stream_name("lineage")
        .shard_filter(
            aws_sdk_kinesis::types::ShardFilter::builder()
                .r#type(aws_sdk_kinesis::types::ShardFilterType::AtLatest)
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("open shards")
        .shards
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let range = s.hash_key_range.expect("range");
            (range.starting_hash_key, range.ending_hash_key)
        })
        .collect();
    assert_eq!(
        open,
        [
            (
                "0".to_owned(),
                "170141183460469231731687303715884105727".to_owned()
            ),
            (
                "170141183460469231731687303715884105728".to_owned(),
                "340282366920938463463374607431768211455".to_owned()
            ),
        ],
        "UpdateShardCount ends in the even layout"
    );
}

#[tokio::test]
async fn resharding_survives_kill_9() {
    let (mut server, client) = server_with_stream(&[], "s", 1).await;
    let before = client
        .put_record()
        .stream_name("s")
        .partition_key("a")
        .data(Blob::new(b"before".to_vec()))
        .send()
        .await
        .expect("put");
    client
        .split_shard()
        .stream_name("s")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .expect("split");
    let after = client
        .put_record()
        .stream_name("s")
        .partition_key("a")
        .data(Blob::new(b"after".to_vec()))
        .send()
        .await
        .expect("put");
    assert_ne!(
        before.shard_id, after.shard_id,
        "writes go to a child after the split"
    );
    server.restart().expect("restart");
    let client = server.kinesis();
    let summary = client
        .describe_stream_summary()
        .stream_name("s")
        .send()
        .await
        .expect("summary")
        .stream_description_summary
        .expect("summary");
    assert_eq!(summary.open_shard_count, 2);
    let described = client
        .describe_stream()
        .stream_name("s")
        .send()
        .await
        .expect("describe")
        .stream_description
        .expect("description");
    let parent = &described.shards[0];
    assert!(
        parent
            .sequence_number_range
            .as_ref()
            .expect("range")
            .ending_sequence_number
            .is_some(),
        "the parent stays closed"
    );
    assert_eq!(
        described.shards[1].parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    let (read, total) = read_lineage(&client, "s").await;
    assert_eq!(total, 2);
    assert_eq!(read["a"], [b"before".to_vec(), b"after".to_vec()]);
}

fn even_layout(count: u128) -> Vec<(String, String)> {
    let step = if count == 1 {
        0
    } else {
        (u128::MAX / count) + u128::from((u128::MAX % count) + 1 == count)
    };
    (0..count)
        .map(|i| {
            let end = if i + 1 == count {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            ((i * step).to_string(), end.to_string())
        })
        .collect()
}

async fn open_layout(client: &Client, stream: &str) -> Vec<(String, String)> {
    let filter = aws_sdk_kinesis::types::ShardFilter::builder()
        .r#type(aws_sdk_kinesis::types::ShardFilterType::AtLatest)
        .build()
        .expect("filter");
    let mut shards: Vec<(u128, String, String)> = client
        .list_shards()
        .stream_name(stream)
        .shard_filter(filter)
        .send()
        .await
        .expect("list shards")
        .shards
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let range = s.hash_key_range.expect("range");
            (
                range.starting_hash_key.parse().expect("number"),
                range.starting_hash_key,
                range.ending_hash_key,
            )
        })
        .collect();
    shards.sort();
    shards
        .into_iter()
        .map(|(_, start, end)| (start, end))
        .collect()
}

#[tokio::test]
async fn update_shard_count_gives_the_uniform_layout_and_checks_its_limits() {
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    use aws_sdk_kinesis::types::ScalingType;
    let (_server, client) = server_with_stream(&["--max-scaling-per-day", "4"], "u", 1).await;
    for target in [2, 4, 3] {
        let reply = client
            .update_shard_count()
            .stream_name("u")
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .expect("scale");
        assert_eq!(reply.target_shard_count, Some(target));
        assert_eq!(
            open_layout(&client, "u").await,
            even_layout(target as u128),
            "layout after scaling to {target}"
        );
    }
    let too_far = client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(7)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect_err("more than double");
    assert_eq!(too_far.code(), Some("LimitExceededException"));
    client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect("fourth call");
    let fifth = client
        .update_shard_count()
        .stream_name("u")
        .target_shard_count(3)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .expect_err("over the daily limit");
    assert_eq!(fifth.code(), Some("LimitExceededException"));

    // Every listed shard has at most two parents, and every parent is listed.
    let all = client
        .list_shards()
        .stream_name("u")
        .send()
        .await
        .expect("list")
        .shards
        .unwrap_or_default();
    let ids: HashSet<&str> = all.iter().map(|s| s.shard_id.as_str()).collect();
    for shard in &all {
        for parent in shard
            .parent_shard_id
            .iter()
            .chain(shard.adjacent_parent_shard_id.iter())
        {
            assert!(
                ids.contains(parent.as_str()),
                "parent {parent} of {} is listed",
                shard.shard_id
            );
        }
    }

    client
        .create_stream()
        .stream_name("od")
        .stream_mode_details(
            aws_sdk_kinesis::types::StreamModeDetails::builder()
                .stream_mode(aws_sdk_kinesis::types::StreamMode::OnDemand)
                .build()
                .expect("mode"),
        )
        .send()
        .await
        .expect("create on-demand");
    let on_demand = client
        .split_shard()
        .stream_name("od")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("12345")
        .send()
        .await
        .expect_err("on-demand");
    assert_eq!(on_demand.code(), Some("ValidationException"));
}

#[tokio::test]
async fn resharding_is_refused_while_updating() {
    use aws_sdk_kinesis::error::ProvideErrorMetadata;
    let (_server, client) = server_with_stream(&["--update-stream-ms", "2000"], "busy", 2).await;
    client
        .merge_shards()
        .stream_name("busy")
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .expect("merge");
    let error = client
        .split_shard()
        .stream_name("busy")
        .shard_to_split("shardId-000000000002")
        .new_starting_hash_key("12345")
        .send()
        .await
        .expect_err("updating");
    assert_eq!(error.code(), Some("ResourceInUseException"));
    assert_eq!(
        error.message(),
        Some("Stream busy under account 000000000000 not ACTIVE, instead in state UPDATING")
    );
    let closed = client
        .split_shard()
        .stream_name("busy")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("12345")
        .send()
        .await
        .expect_err("still updating");
    assert_eq!(closed.code(), Some("ResourceInUseException"));
    // While UPDATING the parents are still the open shards, taking the writes; the child is
    // listed once the stream is ACTIVE again.
    let open_shards = |shards: Vec<aws_sdk_kinesis::types::Shard>| -> Vec<String> {
        shards
            .into_iter()
            .filter(|s| {
                s.sequence_number_range()
                    .is_some_and(|r| r.ending_sequence_number().is_none())
            })
            .map(|s| s.shard_id)
            .collect()
    };
    let listed = client
        .list_shards()
        .stream_name("busy")
        .send()
        .await
        .expect("list while updating");
    assert_eq!(
        open_shards(listed.shards.unwrap_or_default()),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    let put = |key: &'static str| {
        client
            .put_record()
            .stream_name("busy")
            .partition_key("k")
            .explicit_hash_key(key)
            .data(Blob::new(b"x".to_vec()))
            .send()
    };
    let top = "340282366920938463463374607431768211455";
    let put_top = put(top).await.expect("put while updating");
    assert_eq!(put_top.shard_id, "shardId-000000000001");
    wait_active(&client, "busy").await;
    let listed = client
        .list_shards()
        .stream_name("busy")
        .send()
        .await
        .expect("list when active");
    assert_eq!(
        open_shards(listed.shards.unwrap_or_default()),
        ["shardId-000000000002"]
    );
    let after = put(top).await.expect("put when active");
    assert_eq!(after.shard_id, "shardId-000000000002");
}
