//! Throughput limits and on-demand scaling, observed through the Rust SDK.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, StreamMode, StreamModeDetails};
use millrace_integration_tests::Server;

/// The same client with another retry strategy.
fn with_retries(client: &aws_sdk_kinesis::Client, retries: RetryConfig) -> aws_sdk_kinesis::Client {
    aws_sdk_kinesis::Client::from_conf(client.config().to_builder().retry_config(retries).build())
}

fn batch(records: usize, size: usize) -> Vec<PutRecordsRequestEntry> {
    keyed_batch(records, size, |i| format!("k{i}"))
}

fn keyed_batch(
    records: usize,
    size: usize,
    key: impl Fn(usize) -> String,
) -> Vec<PutRecordsRequestEntry> {
    (0..records)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(key(i))
                .data(Blob::new(vec![b'x'; size]))
                .build()
                .expect("entry")
        })
        .collect()
}

#[tokio::test]
async fn a_producer_above_a_mebibyte_per_second_is_throttled() {
    let server = Server::start(&["--throughput-limits", "on"]).expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name("hot")
        .shard_count(1)
        .send()
        .await
        .expect("create");
    // 3 MiB in well under a second: the first MiB (the burst budget) passes, the rest fails.
    let reply = client
        .put_records()
        .stream_name("hot")
        .set_records(Some(batch(300, 10 * 1024)))
        .send()
        .await
        .expect("put records");
    let failed = reply.failed_record_count.unwrap_or(0);
    assert!(
        failed > 100 && failed < 300,
        "partial failure, got {failed} failed of 300"
    );
    let throttled = reply
        .records
        .iter()
        .find(|r| r.error_code.is_some())
        .expect("a failed entry");
    assert_eq!(
        throttled.error_code.as_deref(),
        Some("ProvisionedThroughputExceededException")
    );
    assert_eq!(throttled.error_message.as_deref(), Some("Rate exceeded for shard shardId-000000000000 in stream hot under account 000000000000."));
    assert!(throttled.sequence_number.is_none());
    // A request whose every record is refused must not disturb the commit path
    // (regression: a group commit with no shard once stopped the commit thread).
    // Each attempt spends what the budget regained meanwhile; 900 KiB records need 0.9 s of
    // refill each, so on all but a very slow machine an attempt meets an empty bucket. When
    // none does, the requests that follow still show the commit path alive.
    let mut all_refused = false;
    for _ in 0..10 {
        let reply = client
            .put_records()
            .stream_name("hot")
            .set_records(Some(batch(5, 900 * 1024)))
            .send()
            .await
            .expect("put records");
        if reply.failed_record_count == Some(5) {
            all_refused = true;
            break;
        }
    }
    if !all_refused {
        eprintln!("every attempt had a record admitted by the refill (slow machine)");
    }
    let first_failure = reply
        .records
        .iter()
        .position(|r| r.error_code.is_some())
        .expect("failure");
    assert!(
        reply.records[..first_failure]
            .iter()
            .all(|r| r.sequence_number.is_some()),
        "the budget is spent in request order"
    );

    // A single PutRecord over the limit fails as a whole call, with a retryable error that
    // the SDK's own retries get through once the budget refills.
    let bare = with_retries(&client, RetryConfig::disabled());
    // Spend the budget again right before, so a slow machine's pauses cannot refill it.
    client
        .put_records()
        .stream_name("hot")
        .set_records(Some(batch(100, 10 * 1024)))
        .send()
        .await
        .expect("drain the budget");
    // 900 KiB needs almost a second of refill: a loaded machine's debug-build SDK, signing the
    // body, took about half a second between the two requests and let 512 KiB through.
    let error = bare
        .put_record()
        .stream_name("hot")
        .partition_key("k")
        .data(Blob::new(vec![b'y'; 900 * 1024]))
        .send()
        .await
        .expect_err("over the budget");
    assert_eq!(error.code(), Some("ProvisionedThroughputExceededException"));
    assert_eq!(error.raw_response().map(|r| r.status().as_u16()), Some(400));
    let started = Instant::now();
    // The SDK's standard retry strategy with more attempts than its default three, so that
    // jittered back-off always spans the half second the budget needs to refill.
    let retrying = with_retries(&client, RetryConfig::standard().with_max_attempts(10));
    let retried = retrying
        .put_record()
        .stream_name("hot")
        .partition_key("k")
        .data(Blob::new(vec![b'y'; 512 * 1024]))
        .send()
        .await;
    assert!(
        retried.is_ok(),
        "the SDK retries until the shard has budget again: {retried:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn reads_are_limited_to_five_calls_per_second_per_shard() {
    let server = Server::start(&["--throughput-limits", "on"]).expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name("r")
        .shard_count(1)
        .send()
        .await
        .expect("create");
    let iterator = client
        .get_shard_iterator()
        .stream_name("r")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .expect("iterator")
        .shard_iterator
        .expect("iterator");
    let bare = with_retries(&client, RetryConfig::disabled());
    let mut throttled = 0;
    for _ in 0..12 {
        if let Err(error) = bare.get_records().shard_iterator(&iterator).send().await {
            assert_eq!(error.code(), Some("ProvisionedThroughputExceededException"));
            assert_eq!(
                error.message(),
                Some("Rate exceeded for Shard - 000000000000/r/shardId-000000000000")
            );
            throttled += 1;
        }
    }
    // Five calls fit the first second's budget; twelve calls in quick succession cannot all
    // fit even on a slow machine (the budget refills at five calls per second).
    assert!(
        throttled >= 1,
        "calls beyond the budget are refused, got {throttled}"
    );
    // GetShardIterator has its own budget of five calls per second per shard.
    let mut refused = 0;
    for _ in 0..12 {
        let result = bare
            .get_shard_iterator()
            .stream_name("r")
            .shard_id("shardId-000000000000")
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::Latest)
            .send()
            .await;
        if let Err(error) = result {
            assert_eq!(error.code(), Some("ProvisionedThroughputExceededException"));
            refused += 1;
        }
    }
    assert!(
        refused >= 1,
        "GetShardIterator calls beyond the budget are refused"
    );
}

#[tokio::test]
async fn with_limits_off_the_same_load_passes() {
    let server = Server::start(&["--throughput-limits", "off"]).expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name("hot")
        .shard_count(1)
        .send()
        .await
        .expect("create");
    for _ in 0..3 {
        let reply = client
            .put_records()
            .stream_name("hot")
            .set_records(Some(batch(300, 10 * 1024)))
            .send()
            .await
            .expect("put records");
        assert_eq!(reply.failed_record_count, Some(0));
    }
}

#[tokio::test]
async fn control_plane_calls_are_rate_limited() {
    let server = Server::start(&["--throughput-limits", "on"]).expect("start server");
    let client = with_retries(&server.kinesis(), RetryConfig::disabled());
    client.describe_limits().send().await.expect("first call");
    let error = client
        .describe_limits()
        .send()
        .await
        .expect_err("second call within a second");
    assert_eq!(error.code(), Some("LimitExceededException"));
    assert!(error
        .message()
        .is_some_and(|m| m.starts_with("Rate exceeded")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_on_demand_stream_grows_under_sustained_load_without_losing_records() {
    let server = Server::start(&["--on-demand-scale-window-ms", "400"]).expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name("grow")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .expect("mode"),
        )
        .send()
        .await
        .expect("create");
    let open = |client: aws_sdk_kinesis::Client| async move {
        client
            .describe_stream_summary()
            .stream_name("grow")
            .send()
            .await
            .expect("summary")
            .stream_description_summary
            .expect("summary")
            .open_shard_count
    };
    assert_eq!(open(client.clone()).await, 4);
    let started = Instant::now();
    let mut written = 0usize;
    while started.elapsed() < Duration::from_secs(3) {
        // Two hot keys, each far above half a shard's write limit.
        let hot = keyed_batch(200, 8 * 1024, |i| format!("hot-{}", i % 2));
        let reply = client
            .put_records()
            .stream_name("grow")
            .set_records(Some(hot))
            .send()
            .await
            .expect("put records");
        assert_eq!(reply.failed_record_count, Some(0));
        written += 200;
    }
    let grown = open(client.clone()).await;
    assert!(
        grown > 4,
        "the stream split hot shards, open shards: {grown}"
    );
    // Every record is still there, across parents and children.
    let shards = client
        .list_shards()
        .stream_name("grow")
        .send()
        .await
        .expect("list")
        .shards
        .unwrap_or_default();
    let mut read = 0usize;
    for shard in shards {
        let mut iterator = client
            .get_shard_iterator()
            .stream_name("grow")
            .shard_id(shard.shard_id)
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator;
        while let Some(current) = iterator {
            let page = client
                .get_records()
                .shard_iterator(current)
                .send()
                .await
                .expect("records");
            read += page.records.len();
            if page.records.is_empty()
                && page.next_shard_iterator.is_some()
                && page.millis_behind_latest == Some(0)
            {
                break;
            }
            iterator = page.next_shard_iterator;
        }
    }
    assert_eq!(read, written);
}
