//! Enhanced fan-out through the Rust SDK over HTTP/2 (TLS with ALPN): registered consumers get
//! every record pushed in order, and a subscriber that stops reading stalls nobody.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    PutRecordsRequestEntry, ShardIteratorType, StartingPosition, SubscribeToShardEventStream,
};
use aws_sdk_kinesis::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use millrace_integration_tests::Server;

/// An HTTPS client (HTTP/2 through ALPN) trusting a `--tls self-signed` server's certificate.
pub(crate) fn tls_http(server: &Server) -> aws_sdk_kinesis::config::SharedHttpClient {
    let trust = TrustStore::empty()
        .with_pem_certificate(server.self_signed_certificate().expect("certificate"));
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("tls context"),
        )
        .build_https()
}

fn http2_client(server: &Server) -> Client {
    server.kinesis_tls(tls_http(server))
}

fn position(kind: ShardIteratorType) -> StartingPosition {
    StartingPosition::builder()
        .r#type(kind)
        .build()
        .expect("a starting position with a type")
}

async fn consumer(client: &Client, stream_arn: &str, name: &str) -> String {
    client
        .register_stream_consumer()
        .stream_arn(stream_arn)
        .consumer_name(name)
        .send()
        .await
        .expect("register")
        .consumer
        .expect("consumer")
        .consumer_arn
}

/// Reads one subscription until `count` records arrived; returns (sequence number, data).
async fn receive(
    client: Client,
    consumer_arn: String,
    shard: String,
    count: usize,
) -> Vec<(String, Vec<u8>)> {
    let output = client
        .subscribe_to_shard()
        .consumer_arn(consumer_arn)
        .shard_id(shard)
        .starting_position(position(ShardIteratorType::TrimHorizon))
        .send()
        .await
        .expect("subscribe");
    let mut events = output.event_stream;
    let mut records = Vec::new();
    while records.len() < count {
        let event = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("an event within 20 s")
            .expect("event stream");
        match event {
            Some(SubscribeToShardEventStream::SubscribeToShardEvent(event)) => {
                assert!(!event.continuation_sequence_number.is_empty());
                for record in event.records {
                    records.push((record.sequence_number, record.data.into_inner()));
                }
            }
            Some(other) => panic!("unexpected event {other:?}"),
            None => panic!("subscription ended after {} records", records.len()),
        }
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_receive_every_record_in_order_over_http2() {
    let server = Server::start(&["--tls", "self-signed"]).expect("start server");
    let client = http2_client(&server);
    client
        .create_stream()
        .stream_name("fan")
        .shard_count(2)
        .send()
        .await
        .expect("create over TLS");
    let stream_arn = client
        .describe_stream_summary()
        .stream_name("fan")
        .send()
        .await
        .expect("summary")
        .stream_description_summary
        .expect("summary")
        .stream_arn;
    let consumers = [
        consumer(&client, &stream_arn, "one").await,
        consumer(&client, &stream_arn, "two").await,
    ];
    assert_eq!(
        client
            .describe_stream_summary()
            .stream_name("fan")
            .send()
            .await
            .expect("summary")
            .stream_description_summary
            .expect("summary")
            .consumer_count,
        Some(2)
    );

    let per_shard = 300;
    // Write first half, subscribe, then write the second half while the subscriptions run.
    let mut expected: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    let write = |client: Client, start: usize| async move {
        let mut written = Vec::new();
        for batch in 0..3 {
            let entries: Vec<PutRecordsRequestEntry> = (0..100)
                .map(|i| {
                    let n = start + batch * 100 + i;
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("key-{n}"))
                        .explicit_hash_key(if n.is_multiple_of(2) {
                            "1"
                        } else {
                            "340282366920938463463374607431768211454"
                        })
                        .data(Blob::new(format!("record-{n}").into_bytes()))
                        .build()
                        .expect("entry")
                })
                .collect();
            let reply = client
                .put_records()
                .stream_name("fan")
                .set_records(Some(entries.clone()))
                .send()
                .await
                .expect("put");
            for (entry, result) in entries.into_iter().zip(reply.records) {
                written.push((
                    result.shard_id.expect("shard"),
                    result.sequence_number.expect("sequence"),
                    entry.data.into_inner(),
                ));
            }
        }
        written
    };
    let first = write(client.clone(), 0).await;
    let mut subscriptions = Vec::new();
    for consumer_arn in &consumers {
        for shard in ["shardId-000000000000", "shardId-000000000001"] {
            subscriptions.push((
                shard,
                tokio::spawn(receive(
                    client.clone(),
                    consumer_arn.clone(),
                    shard.to_owned(),
                    per_shard,
                )),
            ));
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = write(client.clone(), 300).await;
    for (shard, sequence, data) in first.into_iter().chain(second) {
        expected.entry(shard).or_default().push((sequence, data));
    }
    for (shard, subscription) in subscriptions {
        let received = subscription.await.expect("subscription task");
        assert_eq!(
            received, expected[shard],
            "{shard}: every record, in order, byte-identical"
        );
    }

    // A second subscription for the same consumer and shard within 5 s is refused.
    let again = client
        .subscribe_to_shard()
        .consumer_arn(&consumers[0])
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest))
        .send()
        .await;
    let first_live = client
        .subscribe_to_shard()
        .consumer_arn(&consumers[0])
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::Latest))
        .send()
        .await;
    let refused = match (again, first_live) {
        (Ok(_keep), Err(error)) => error,
        (Err(error), _) => error,
        (Ok(_), Ok(_)) => panic!("two live subscriptions for one consumer and shard"),
    };
    assert_eq!(refused.code(), Some("ResourceInUseException"));

    let error = client
        .delete_stream()
        .stream_name("fan")
        .send()
        .await
        .expect_err("consumers registered");
    assert_eq!(error.code(), Some("ResourceInUseException"));
    client
        .delete_stream()
        .stream_name("fan")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .expect("enforced delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_stops_reading_stalls_nobody() {
    let server = Server::start(&["--tls", "self-signed"]).expect("start server");
    let client = http2_client(&server);
    client
        .create_stream()
        .stream_name("slow")
        .shard_count(1)
        .send()
        .await
        .expect("create");
    let stream_arn = client
        .describe_stream_summary()
        .stream_name("slow")
        .send()
        .await
        .expect("summary")
        .stream_description_summary
        .expect("summary")
        .stream_arn;
    let stalled = consumer(&client, &stream_arn, "stalled").await;
    let healthy = consumer(&client, &stream_arn, "healthy").await;
    // The stalled subscriber subscribes and never reads its events.
    let _never_read = client
        .subscribe_to_shard()
        .consumer_arn(&stalled)
        .shard_id("shardId-000000000000")
        .starting_position(position(ShardIteratorType::TrimHorizon))
        .send()
        .await
        .expect("subscribe");
    let batches = 40;
    let reader = tokio::spawn(receive(
        client.clone(),
        healthy,
        "shardId-000000000000".into(),
        batches * 100,
    ));
    for batch in 0..batches {
        let entries: Vec<PutRecordsRequestEntry> = (0..100)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(format!("k{i}"))
                    .data(Blob::new(vec![batch as u8; 8 * 1024]))
                    .build()
                    .expect("entry")
            })
            .collect();
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            client
                .put_records()
                .stream_name("slow")
                .set_records(Some(entries))
                .send(),
        )
        .await
        .expect("producers are not stalled")
        .expect("put");
        assert_eq!(reply.failed_record_count, Some(0));
    }
    let received = reader.await.expect("healthy subscriber");
    assert_eq!(
        received.len(),
        batches * 100,
        "the healthy consumer got all 32 MiB"
    );
}
