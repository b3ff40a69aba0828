//! Kinesis Channels through the Rust SDK: the lifecycle, the defaults in the description, a
//! channel surviving kill -9, and S3 Tables refused.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::types::{
    ChannelStatus, ChannelStreamConfiguration, DeadLetterQueueS3Configuration, RecordConfiguration,
    RecordFormatType, S3CompressionType, S3DestinationConfiguration, S3DestinationUpdateInput,
    S3StorageClass, S3StorageConfiguration, S3TablesConfiguration,
    S3TablesDestinationConfiguration, StreamFilter, StreamMode, StreamModeDetails, StreamStatus,
};
use aws_sdk_kinesis::Client;
use millrace_integration_tests::Server;

const ACCOUNT: &str = "000000000000";

async fn wait_stream(client: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let summary = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("describe stream");
        if summary
            .stream_description_summary()
            .map(|s| &s.stream_status)
            == Some(&StreamStatus::Active)
        {
            return;
        }
        assert!(Instant::now() < deadline, "stream not ACTIVE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_channel(client: &Client, arn: &str, status: ChannelStatus) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = client
            .describe_channel()
            .channel_arn(arn)
            .send()
            .await
            .expect("describe channel");
        if described.channel_description().map(|d| &d.channel_status) == Some(&status) {
            return;
        }
        assert!(Instant::now() < deadline, "channel not {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn source(stream_arn: &str) -> ChannelStreamConfiguration {
    ChannelStreamConfiguration::builder()
        .stream_arn(stream_arn)
        .record_configuration(
            RecordConfiguration::builder()
                .record_format_type(RecordFormatType::Json)
                .build()
                .expect("record configuration"),
        )
        .build()
        .expect("stream configuration")
}

#[tokio::test]
async fn channel_lifecycle_through_the_rust_sdk() {
    let mut server = Server::start(&[
        "--create-stream-ms",
        "50",
        "--update-stream-ms",
        "50",
        "--delete-stream-ms",
        "50",
    ])
    .expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name("orders")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .expect("mode"),
        )
        .send()
        .await
        .expect("create stream");
    wait_stream(&client, "orders").await;
    let stream_arn = format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/orders");
    let storage = S3StorageConfiguration::builder()
        .bucket_arn("arn:aws:s3:::orders-bucket")
        .expected_bucket_owner(ACCOUNT)
        .compression_type(S3CompressionType::Gzip)
        .build()
        .expect("storage");
    let created = client
        .create_channel()
        .channel_name("orders-to-s3")
        .service_execution_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/delivery"))
        .stream_configuration_list(source(&stream_arn))
        .s3_destination_configuration(
            S3DestinationConfiguration::builder()
                .storage_configuration(storage)
                .build(),
        )
        .send()
        .await
        .expect("create channel");
    let description = created.channel_description().expect("description");
    let arn = description.channel_arn.clone();
    assert_eq!(
        arn,
        format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:channel/orders-to-s3")
    );
    assert_eq!(description.channel_status, ChannelStatus::Creating);
    assert!(description.channel_creation_timestamp.secs() > 1_700_000_000);
    let s3 = description
        .s3_destination_configuration
        .as_ref()
        .expect("s3 destination");
    assert_eq!(s3.data_freshness_in_seconds, 300);
    assert_eq!(
        s3.storage_configuration
            .as_ref()
            .and_then(|s| s.storage_class.clone()),
        Some(S3StorageClass::Standard)
    );
    assert_eq!(
        s3.dead_letter_queue_s3_configuration
            .as_ref()
            .map(|d| d.bucket_arn.as_str()),
        Some("arn:aws:s3:::orders-bucket")
    );
    wait_channel(&client, &arn, ChannelStatus::Active).await;

    // Acknowledged, then killed: the channel is still there after the restart.
    server.kill9();
    server.restart().expect("restart");
    let client = server.kinesis();
    wait_channel(&client, &arn, ChannelStatus::Active).await;
    let listed = client
        .list_channels()
        .stream_filter(
            StreamFilter::builder()
                .stream_arn(&stream_arn)
                .build()
                .expect("filter"),
        )
        .send()
        .await
        .expect("list channels");
    assert_eq!(
        listed
            .channel_summaries()
            .iter()
            .map(|c| c.channel_name.as_str())
            .collect::<Vec<_>>(),
        ["orders-to-s3"]
    );

    let updated = client
        .update_channel()
        .channel_arn(&arn)
        .s3_destination_configuration(
            S3DestinationUpdateInput::builder()
                .data_freshness_in_seconds(30)
                .build()
                .expect("update"),
        )
        .send()
        .await
        .expect("update channel");
    assert_eq!(
        updated.channel_description().map(|d| &d.channel_status),
        Some(&ChannelStatus::Updating)
    );
    wait_channel(&client, &arn, ChannelStatus::Active).await;

    // S3 Tables destinations are refused until Iceberg support exists.
    let tables = S3TablesDestinationConfiguration::builder()
        .dead_letter_queue_s3_configuration(
            DeadLetterQueueS3Configuration::builder()
                .bucket_arn("arn:aws:s3:::dead-letters")
                .expected_bucket_owner(ACCOUNT)
                .build()
                .expect("dead letters"),
        )
        .s3_tables_configuration_list(
            S3TablesConfiguration::builder()
                .table_bucket_arn(format!(
                    "arn:aws:s3tables:us-east-1:{ACCOUNT}:bucket/tables"
                ))
                .namespace("events")
                .table_name("orders")
                .compression_type(aws_sdk_kinesis::types::S3TablesCompressionType::Zstd)
                .build()
                .expect("table"),
        )
        .build()
        .expect("tables");
    let refused = client
        .create_channel()
        .channel_name("to-tables")
        .service_execution_role_arn(format!("arn:aws:iam::{ACCOUNT}:role/delivery"))
        .stream_configuration_list(source(&stream_arn))
        .s3_tables_destination_configuration(tables)
        .send()
        .await
        .expect_err("S3 Tables refused");
    assert_eq!(refused.code(), Some("InvalidArgumentException"));

    client
        .delete_channel()
        .channel_arn(&arn)
        .send()
        .await
        .expect("delete channel");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.describe_channel().channel_arn(&arn).send().await {
            Ok(described) => assert_eq!(
                described.channel_description().map(|d| &d.channel_status),
                Some(&ChannelStatus::Deleting)
            ),
            Err(error) => {
                assert_eq!(error.code(), Some("ResourceNotFoundException"));
                assert_eq!(
                    error.message(),
                    Some("Channel orders-to-s3 under account 000000000000 not found.")
                );
                break;
            }
        }
        assert!(Instant::now() < deadline, "channel not gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
