//! The producer's Kinesis client: the shared signed-JSON client of `millrace-client` (HTTP or
//! HTTPS, the AWS CLI's credential chain) with the Kinesis calls the producer makes.

pub use millrace_client::{ApiError, ClientConfig};
use millrace_client::{AwsClient, CLOUDWATCH, KINESIS};
use serde_json::Value;

/// A cloneable Kinesis client; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct KinesisClient {
    inner: AwsClient,
}

impl KinesisClient {
    pub fn new(config: ClientConfig, max_connections: usize) -> Result<KinesisClient, ApiError> {
        Ok(KinesisClient {
            inner: AwsClient::new(config, max_connections)?,
        })
    }

    pub fn config(&self) -> &ClientConfig {
        self.inner.config()
    }

    /// The shared client underneath, for other services on the same endpoint and credentials.
    pub fn aws(&self) -> &AwsClient {
        &self.inner
    }

    /// Calls the Kinesis `operation` (`PutRecords`, `ListShards`, …) with a JSON document.
    pub async fn call(&self, operation: &str, input: &Value) -> Result<Value, ApiError> {
        self.inner.call(&KINESIS, operation, input).await
    }

    /// Calls a CloudWatch `operation` (awsJson 1.0, signing name `monitoring`) on the same
    /// endpoint, as Millrace serves it (AWS's CloudWatch has its own endpoint).
    pub async fn call_cloudwatch(&self, operation: &str, input: &Value) -> Result<Value, ApiError> {
        self.inner.call(&CLOUDWATCH, operation, input).await
    }

    /// Every shard of a stream (open and closed), through ListShards' pages.
    pub async fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, ApiError> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let input = match &token {
                Some(t) => serde_json::json!({ "NextToken": t }),
                None => serde_json::json!({ "StreamName": stream }),
            };
            let reply = self.call("ListShards", &input).await?;
            for shard in reply["Shards"].as_array().into_iter().flatten() {
                shards.push(ShardInfo::from_json(shard)?);
            }
            match reply["NextToken"].as_str() {
                Some(t) => token = Some(t.to_owned()),
                None => break,
            }
        }
        Ok(shards)
    }
}

/// One shard as ListShards describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    pub starting_hash_key: u128,
    pub ending_hash_key: u128,
    pub open: bool,
}

impl ShardInfo {
    fn from_json(shard: &Value) -> Result<ShardInfo, ApiError> {
        let hash = |name: &str| -> Result<u128, ApiError> {
            shard["HashKeyRange"][name]
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ApiError::Transport(format!("shard without {name}")))
        };
        Ok(ShardInfo {
            shard_id: shard["ShardId"].as_str().unwrap_or_default().to_owned(),
            parent_shard_id: shard["ParentShardId"].as_str().map(str::to_owned),
            adjacent_parent_shard_id: shard["AdjacentParentShardId"].as_str().map(str::to_owned),
            starting_hash_key: hash("StartingHashKey")?,
            ending_hash_key: hash("EndingHashKey")?,
            open: shard["SequenceNumberRange"]["EndingSequenceNumber"].is_null(),
        })
    }
}
