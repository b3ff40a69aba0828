//! Set-up shared by the test modules.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use millrace_integration_tests::Server;

/// Starts a server with `args` and creates the provisioned stream `name` of `shards` shards.
pub async fn server_with_stream(args: &[&str], name: &str, shards: i32) -> (Server, Client) {
    let server = Server::start(args).expect("start server");
    let client = server.kinesis();
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .expect("create");
    (server, client)
}

/// Waits until the stream is ACTIVE (30 seconds at most).
pub async fn wait_active(client: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = client
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("summary")
            .stream_description_summary
            .map(|s| s.stream_status)
            .expect("status");
        if status == StreamStatus::Active {
            return;
        }
        assert!(Instant::now() < deadline, "{name} still {status:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
