//! Records written through PutRecord and PutRecords come back through every iterator type,
//! in order and byte-identical.

use std::collections::BTreeMap;

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType, StreamStatus};
use aws_sdk_kinesis::Client;
use millrace_integration_tests::Server;

/// A record as read back: sequence number, partition key, data.
type Stored = (String, String, Vec<u8>);

/// Reads a shard from an iterator type until caught up; returns (sequence, key, data).
async fn drain(
    client: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    sequence: Option<&str>,
    timestamp: Option<DateTime>,
) -> Vec<Stored> {
    let mut iterator = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_starting_sequence_number(sequence.map(str::to_owned))
        .set_timestamp(timestamp)
        .send()
        .await
        .expect("get shard iterator")
        .shard_iterator
        .expect("iterator");
    let mut records = Vec::new();
    loop {
        let page = client
            .get_records()
            .shard_iterator(&iterator)
            .limit(700)
            .send()
            .await
            .expect("get records");
        let empty = page.records.is_empty();
        for record in page.records {
            records.push((
                record.sequence_number,
                record.partition_key.unwrap_or_default(),
                record.data.into_inner(),
            ));
        }
        if empty && page.millis_behind_latest == Some(0) {
            return records;
        }
        iterator = page
            .next_shard_iterator
            .expect("open shards always have a next iterator");
    }
}

#[tokio::test]
async fn records_come_back_in_order_through_every_iterator_type() {
    let server = Server::start(&[]).expect("start server");
    let client = server.kinesis();
    let streams = ["alpha", "beta", "gamma"];
    for (index, stream) in streams.iter().enumerate() {
        client
            .create_stream()
            .stream_name(*stream)
            .shard_count(index as i32 + 1)
            .send()
            .await
            .expect("create stream");
    }
    let described = client
        .describe_stream()
        .stream_name("gamma")
        .send()
        .await
        .expect("describe");
    let description = described.stream_description.expect("description");
    assert_eq!(description.stream_status, StreamStatus::Active);
    let ends: Vec<String> = description
        .shards
        .iter()
        .map(|s| {
            s.hash_key_range
                .as_ref()
                .expect("range")
                .ending_hash_key
                .clone()
        })
        .collect();
    assert_eq!(
        ends,
        [
            "113427455640312821154458202477256070484",
            "226854911280625642308916404954512140969",
            "340282366920938463463374607431768211455"
        ]
    );

    // Four concurrent writers per stream: half PutRecords batches, half single PutRecords.
    let mut writers = Vec::new();
    for stream in streams {
        for writer in 0..4 {
            let client = client.clone();
            writers.push(tokio::spawn(async move {
                let mut written: Vec<(String, String, String, Vec<u8>)> = Vec::new();
                for batch in 0..10 {
                    let entries: Vec<(String, Vec<u8>)> = (0..50)
                        .map(|i| {
                            let key = format!("w{writer}-k{}", i % 7);
                            let mut data: Vec<u8> = (0..=255u8).collect();
                            data.extend(format!("{stream}/{writer}/{batch}/{i}").into_bytes());
                            (key, data)
                        })
                        .collect();
                    if writer % 2 == 0 {
                        let request: Vec<PutRecordsRequestEntry> = entries
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
                            .stream_name(stream)
                            .set_records(Some(request))
                            .send()
                            .await
                            .expect("put records");
                        assert_eq!(reply.failed_record_count, Some(0));
                        for ((key, data), result) in entries.into_iter().zip(reply.records) {
                            written.push((
                                result.shard_id.expect("shard"),
                                result.sequence_number.expect("sequence"),
                                key,
                                data,
                            ));
                        }
                    } else {
                        for (key, data) in entries.into_iter().take(10) {
                            let reply = client
                                .put_record()
                                .stream_name(stream)
                                .partition_key(&key)
                                .data(Blob::new(data.clone()))
                                .send()
                                .await
                                .expect("put record");
                            written.push((reply.shard_id, reply.sequence_number, key, data));
                        }
                    }
                }
                (stream, written)
            }));
        }
    }
    let mut expected: BTreeMap<(&str, String), Vec<Stored>> = BTreeMap::new();
    for writer in writers {
        let (stream, written) = writer.await.expect("writer");
        for (shard, sequence, key, data) in written {
            expected
                .entry((stream, shard))
                .or_default()
                .push((sequence, key, data));
        }
    }
    // Edge cases on alpha's only shard: empty data and a maximum-size record.
    let empty = client
        .put_record()
        .stream_name("alpha")
        .partition_key("e")
        .data(Blob::new(Vec::new()))
        .send()
        .await
        .expect("empty record");
    expected
        .entry(("alpha", empty.shard_id))
        .or_default()
        .push((empty.sequence_number, "e".into(), Vec::new()));
    let big: Vec<u8> = (0..1024 * 1024 - 1).map(|i| (i * 31 % 251) as u8).collect();
    let max = client
        .put_record()
        .stream_name("alpha")
        .partition_key("m")
        .data(Blob::new(big.clone()))
        .send()
        .await
        .expect("max-size record");
    expected.entry(("alpha", max.shard_id)).or_default().push((
        max.sequence_number,
        "m".into(),
        big,
    ));

    for ((stream, shard), mut records) in expected {
        records.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        let from_horizon = drain(
            &client,
            stream,
            &shard,
            ShardIteratorType::TrimHorizon,
            None,
            None,
        )
        .await;
        assert_eq!(from_horizon, records, "{stream}/{shard} from TRIM_HORIZON");
        let middle = records.len() / 2;
        let at = drain(
            &client,
            stream,
            &shard,
            ShardIteratorType::AtSequenceNumber,
            Some(&records[middle].0),
            None,
        )
        .await;
        assert_eq!(at, records[middle..], "{stream}/{shard} AT_SEQUENCE_NUMBER");
        let after = drain(
            &client,
            stream,
            &shard,
            ShardIteratorType::AfterSequenceNumber,
            Some(&records[middle].0),
            None,
        )
        .await;
        assert_eq!(
            after,
            records[middle + 1..],
            "{stream}/{shard} AFTER_SEQUENCE_NUMBER"
        );
        let since_epoch = drain(
            &client,
            stream,
            &shard,
            ShardIteratorType::AtTimestamp,
            None,
            Some(DateTime::from_secs(1)),
        )
        .await;
        assert_eq!(
            since_epoch, records,
            "{stream}/{shard} AT_TIMESTAMP before the first record"
        );
        let latest = drain(
            &client,
            stream,
            &shard,
            ShardIteratorType::Latest,
            None,
            None,
        )
        .await;
        assert!(latest.is_empty(), "LATEST starts after the newest record");
    }
}

#[tokio::test]
async fn latest_and_at_timestamp_see_only_newer_records() {
    let server = Server::start(&[]).expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name("s")
        .shard_count(1)
        .send()
        .await
        .expect("create");
    client
        .put_record()
        .stream_name("s")
        .partition_key("k")
        .data(Blob::new(b"old".to_vec()))
        .send()
        .await
        .expect("put old");
    let latest = client
        .get_shard_iterator()
        .stream_name("s")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .expect("latest iterator")
        .shard_iterator
        .expect("iterator");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let boundary = DateTime::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64,
    );
    client
        .put_record()
        .stream_name("s")
        .partition_key("k")
        .data(Blob::new(b"new".to_vec()))
        .send()
        .await
        .expect("put new");
    let page = client
        .get_records()
        .shard_iterator(latest)
        .send()
        .await
        .expect("read latest");
    let data: Vec<Vec<u8>> = page
        .records
        .into_iter()
        .map(|r| r.data.into_inner())
        .collect();
    assert_eq!(data, [b"new".to_vec()]);
    let at = drain(
        &client,
        "s",
        "shardId-000000000000",
        ShardIteratorType::AtTimestamp,
        None,
        Some(boundary),
    )
    .await;
    assert_eq!(
        at.into_iter().map(|r| r.2).collect::<Vec<_>>(),
        [b"new".to_vec()]
    );
}
