//! Control-plane call rates per account and region, as the service documents them.
//!
//! Calls above the rate get `LimitExceededException` with a message starting `Rate exceeded`,
//! which the SDKs treat as throttling and retry with back-off.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::ApiError;

/// Calls per second allowed for an operation, if it is rate-limited.
fn calls_per_second(operation: &str) -> Option<f64> {
    Some(match operation {
        "CreateStream"
        | "DeleteStream"
        | "ListStreams"
        | "AddTagsToStream"
        | "RemoveTagsFromStream"
        | "ListTagsForStream"
        | "SplitShard"
        | "MergeShards"
        | "IncreaseStreamRetentionPeriod"
        | "DecreaseStreamRetentionPeriod"
        | "RegisterStreamConsumer"
        | "CreateChannel"
        | "DescribeChannel"
        | "ListChannels"
        | "UpdateChannel"
        | "DeleteChannel" => 5.0,
        "DescribeStream" | "UpdateShardCount" => 10.0,
        "DescribeStreamSummary" => 20.0,
        "DescribeLimits" => 1.0,
        _ => return None,
    })
}

/// Token buckets per (region, operation), each holding one second of calls.
#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<(String, String), (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one call from the bucket, or says the caller is over the rate.
    pub fn admit(&self, region: &str, operation: &str) -> Result<(), ApiError> {
        let Some(rate) = calls_per_second(operation) else {
            return Ok(());
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let (tokens, updated) = buckets
            .entry((region.to_owned(), operation.to_owned()))
            .or_insert((rate, now));
        *tokens = (*tokens + now.duration_since(*updated).as_secs_f64() * rate).min(rate);
        *updated = now;
        if *tokens < 1.0 {
            return Err(ApiError::new(
                "LimitExceededException",
                format!("Rate exceeded for operation {operation} in region {region}."),
            ));
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn describe_limits_allows_one_call_per_second() {
        let limiter = super::RateLimiter::default();
        assert!(limiter.admit("us-east-1", "DescribeLimits").is_ok());
        let error = limiter
            .admit("us-east-1", "DescribeLimits")
            .expect_err("second call");
        assert_eq!(error.code, "LimitExceededException");
        assert!(error
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Rate exceeded")));
        assert!(limiter.admit("eu-west-1", "DescribeLimits").is_ok());
        assert!((0..100).all(|_| limiter.admit("us-east-1", "PutRecords").is_ok()));
    }
}
