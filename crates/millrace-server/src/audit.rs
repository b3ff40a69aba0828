//! The audit log: one JSON line per control-plane call and per denied request, in the style of
//! CloudTrail records (eventTime, eventSource, eventName, awsRegion, sourceIPAddress,
//! userIdentity, requestParameters, errorCode, errorMessage, requestID).
//!
//! Lines go through a bounded channel to a writer thread, so a slow disk never holds up a
//! request (when the channel is full the line is counted as dropped and a warning says so).
//! The file `<dir>/audit.log` is rotated when it reaches the size limit: `audit.log.1` … up to
//! the number of files kept. Request parameters never carry secrets or record data.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use serde_json::{json, Map, Value};

/// Members whose values never reach the audit log.
const REDACTED: &[&str] = &[
    "Data",
    "Records",
    "SecretAccessKey",
    "SessionToken",
    "Password",
    "NewPassword",
    "OldPassword",
    "Plaintext",
    "CiphertextBlob",
    "ShardIterator",
];

/// Where and how much to keep.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub keep_files: u32,
}

/// The writer's handle.
pub struct AuditLog {
    sender: SyncSender<String>,
    dropped: AtomicU64,
}

/// One event.
pub struct AuditEvent<'a> {
    pub event_source: &'a str,
    pub event_name: &'a str,
    pub region: &'a str,
    pub source_ip: &'a str,
    pub user_arn: &'a str,
    pub account: &'a str,
    pub access_key_id: Option<&'a str>,
    pub identity_type: &'a str,
    pub request_parameters: Option<&'a Value>,
    pub error_code: Option<&'a str>,
    pub error_message: Option<&'a str>,
    pub request_id: &'a str,
}

/// Request parameters with secrets and record data removed.
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, item) in map {
                if REDACTED.contains(&key.as_str()) {
                    out.insert(
                        key.clone(),
                        Value::String("HIDDEN_DUE_TO_SECURITY_REASONS".into()),
                    );
                } else {
                    out.insert(key.clone(), redact(item));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

fn event_time() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    crate::sigv4::iso8601(secs)
}

/// One call as the request path knows it.
pub struct Call<'a> {
    pub event_source: &'a str,
    pub operation: &'a str,
    pub region: &'a str,
    pub source_ip: &'a str,
    pub caller: &'a millrace_iam::Caller,
    pub parameters: Option<&'a Value>,
    /// The error's code and message, when the call failed.
    pub error: Option<(&'a str, Option<&'a str>)>,
    pub request_id: &'a str,
}

/// CloudTrail's `userIdentity.type` of a caller.
pub fn identity_type(caller: &millrace_iam::Caller) -> &'static str {
    match caller.kind {
        millrace_iam::CallerKind::Root => "Root",
        millrace_iam::CallerKind::User { .. } => "IAMUser",
        millrace_iam::CallerKind::AssumedRole { .. } => "AssumedRole",
    }
}

impl AuditLog {
    /// Records one call of any service.
    pub fn record_call(&self, call: &Call<'_>) {
        self.record(&AuditEvent {
            event_source: call.event_source,
            event_name: call.operation,
            region: call.region,
            source_ip: call.source_ip,
            user_arn: &call.caller.arn,
            account: &call.caller.account,
            access_key_id: call.caller.access_key_id.as_deref(),
            identity_type: identity_type(call.caller),
            request_parameters: call.parameters,
            error_code: call.error.map(|(code, _)| code),
            error_message: call.error.and_then(|(_, message)| message),
            request_id: call.request_id,
        });
    }

    /// Starts the writer thread.
    pub fn start(config: AuditConfig) -> std::io::Result<AuditLog> {
        std::fs::create_dir_all(&config.dir)?;
        let (sender, receiver) = sync_channel(16_384);
        let file = open_append(&config.dir.join("audit.log"))?;
        std::thread::Builder::new()
            .name("millrace-audit".into())
            .spawn(move || write_loop(config, file, receiver))?;
        Ok(AuditLog {
            sender,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn record(&self, event: &AuditEvent<'_>) {
        let mut line = json!({
            "eventVersion": "1.08",
            "eventTime": event_time(),
            "eventSource": event.event_source,
            "eventName": event.event_name,
            "awsRegion": event.region,
            "sourceIPAddress": event.source_ip,
            "userIdentity": {
                "type": event.identity_type,
                "arn": event.user_arn,
                "accountId": event.account,
            },
            "requestParameters": event.request_parameters.map(redact),
            "requestID": event.request_id,
            "eventType": "AwsApiCall",
        });
        if let Some(key) = event.access_key_id {
            line["userIdentity"]["accessKeyId"] = Value::String(key.to_owned());
        }
        if let Some(code) = event.error_code {
            line["errorCode"] = Value::String(code.to_owned());
        }
        if let Some(message) = event.error_message {
            line["errorMessage"] = Value::String(message.to_owned());
        }
        let text = line.to_string();
        match self.sender.try_send(text) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "audit log writer is behind; events dropped");
                }
            }
        }
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_loop(config: AuditConfig, mut file: File, receiver: Receiver<String>) {
    let path = config.dir.join("audit.log");
    let mut size = file.metadata().map(|m| m.len()).unwrap_or(0);
    while let Ok(line) = receiver.recv() {
        let mut batch = line;
        batch.push('\n');
        // Take whatever else is waiting, so a burst is one write.
        while let Ok(more) = receiver.try_recv() {
            batch.push_str(&more);
            batch.push('\n');
            if batch.len() > 1 << 20 {
                break;
            }
        }
        if let Err(error) = file.write_all(batch.as_bytes()) {
            tracing::error!(%error, "audit log write failed");
            continue;
        }
        size += batch.len() as u64;
        if size >= config.max_bytes {
            match rotate(&config, &path) {
                Ok(fresh) => {
                    file = fresh;
                    size = 0;
                }
                Err(error) => tracing::error!(%error, "audit log rotation failed"),
            }
        }
    }
    let _ = file.sync_all();
}

fn rotate(config: &AuditConfig, path: &Path) -> std::io::Result<File> {
    let numbered = |n: u32| config.dir.join(format!("audit.log.{n}"));
    let keep = config.keep_files.max(1);
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let from = numbered(n);
        if from.exists() {
            std::fs::rename(&from, numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))?;
    open_append(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_data_are_redacted() {
        let value = json!({"StreamName": "s", "Records": [{"Data": "AAAA"}], "Nested": {"SecretAccessKey": "x"}});
        let out = redact(&value);
        assert_eq!(out["StreamName"], "s");
        assert_eq!(out["Records"], "HIDDEN_DUE_TO_SECURITY_REASONS");
        assert_eq!(
            out["Nested"]["SecretAccessKey"],
            "HIDDEN_DUE_TO_SECURITY_REASONS"
        );
    }

    #[test]
    fn rotates_at_the_size_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = AuditConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 200,
            keep_files: 2,
        };
        let log = AuditLog::start(config).expect("start");
        for i in 0..20 {
            let name = format!("Op{i}");
            log.record(&AuditEvent {
                event_source: "kinesis.amazonaws.com",
                event_name: &name,
                region: "us-east-1",
                source_ip: "127.0.0.1",
                user_arn: "arn:aws:iam::000000000000:root",
                account: "000000000000",
                access_key_id: None,
                identity_type: "Root",
                request_parameters: None,
                error_code: None,
                error_message: None,
                request_id: "r",
            });
        }
        drop(log);
        for _ in 0..100 {
            if dir.path().join("audit.log.2").exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(dir.path().join("audit.log.1").exists());
        assert!(!dir.path().join("audit.log.3").exists());
    }
}
