//! Errors surface through the Rust SDK with the service's codes and messages.

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;
use millrace_integration_tests::Server;

#[tokio::test]
async fn missing_streams_and_bad_iterators() {
    let server = Server::start(&[]).expect("start server");
    let client = server.kinesis();
    let error = client
        .describe_stream()
        .stream_name("nope")
        .send()
        .await
        .expect_err("missing stream");
    assert_eq!(error.code(), Some("ResourceNotFoundException"));
    assert_eq!(
        error.message(),
        Some("Stream nope under account 000000000000 not found.")
    );
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));

    client
        .create_stream()
        .stream_name("s")
        .shard_count(2)
        .send()
        .await
        .expect("create");
    let error = client
        .create_stream()
        .stream_name("s")
        .shard_count(2)
        .send()
        .await
        .expect_err("exists");
    assert_eq!(error.code(), Some("ResourceInUseException"));
    assert_eq!(
        error.message(),
        Some("Stream s under account 000000000000 already exists.")
    );

    let other_shard = client
        .put_record()
        .stream_name("s")
        .partition_key("b")
        .explicit_hash_key("340282366920938463463374607431768211455")
        .data(Blob::new(b"x".to_vec()))
        .send()
        .await
        .expect("put");
    assert_eq!(other_shard.shard_id, "shardId-000000000001");
    let error = client
        .get_shard_iterator()
        .stream_name("s")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&other_shard.sequence_number)
        .send()
        .await
        .expect_err("sequence of another shard");
    assert_eq!(error.code(), Some("InvalidArgumentException"));
    assert_eq!(error.message(), Some("Invalid StartingSequenceNumber. It encodes shardId-000000000001, while it was used in a call to a shard with shardId-000000000000"));

    let error = client
        .get_records()
        .shard_iterator("AAAAAAAAAAEforged")
        .send()
        .await
        .expect_err("forged");
    assert_eq!(error.code(), Some("InvalidArgumentException"));
    assert_eq!(error.message(), Some("Invalid ShardIterator."));

    let error = client
        .increase_stream_retention_period()
        .stream_name("s")
        .retention_period_hours(23)
        .send()
        .await
        .expect_err("too short");
    assert_eq!(error.message(), Some("Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."));
}

#[tokio::test]
async fn regions_are_separate_namespaces() {
    let server = Server::start(&[]).expect("start server");
    server
        .kinesis_in("eu-west-1")
        .create_stream()
        .stream_name("s")
        .shard_count(1)
        .send()
        .await
        .expect("create");
    let listed = server.kinesis().list_streams().send().await.expect("list");
    assert!(listed.stream_names.is_empty());
    let summary = server
        .kinesis_in("eu-west-1")
        .describe_stream_summary()
        .stream_name("s")
        .send()
        .await
        .expect("describe");
    assert_eq!(
        summary
            .stream_description_summary
            .expect("summary")
            .stream_arn,
        "arn:aws:kinesis:eu-west-1:000000000000:stream/s"
    );
}

/// Other fsync policies: records are readable at once, and a clean shutdown (SIGTERM) flushes
/// them so a restart finds them all.
#[tokio::test]
async fn fsync_never_and_interval_keep_records_across_a_clean_restart() {
    for policy in ["never", "10ms"] {
        let mut server = Server::start(&["--fsync", policy]).expect("start server");
        let client = server.kinesis();
        client
            .create_stream()
            .stream_name("s")
            .shard_count(8)
            .send()
            .await
            .expect("create");
        let entries: Vec<aws_sdk_kinesis::types::PutRecordsRequestEntry> = (0..200)
            .map(|i| {
                aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .data(Blob::new(format!("{policy}-{i}").into_bytes()))
                    .build()
                    .expect("entry")
            })
            .collect();
        let reply = client
            .put_records()
            .stream_name("s")
            .set_records(Some(entries))
            .send()
            .await
            .expect("put");
        assert_eq!(reply.failed_record_count, Some(0));
        let status = server.terminate().expect("SIGTERM");
        assert!(
            status.success(),
            "clean exit on SIGTERM with fsync {policy}"
        );
        server.restart().expect("restart");
        let client = server.kinesis();
        let mut total = 0;
        for shard in 0..8 {
            let iterator = client
                .get_shard_iterator()
                .stream_name("s")
                .shard_id(format!("shardId-{shard:012}"))
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("iterator")
                .shard_iterator
                .expect("iterator");
            total += client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .expect("records")
                .records
                .len();
        }
        assert_eq!(
            total, 200,
            "fsync {policy}: every record is back after a clean restart"
        );
    }
}
