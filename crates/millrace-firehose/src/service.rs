//! The `Firehose_20150804` JSON API: each operation authorizes `firehose:<Operation>` on the
//! delivery stream's ARN before it reads or changes anything, and answers in the model's shape.

use std::sync::Arc;

use base64::Engine as _;
use millrace_service::{BoxFuture, CallContext, JsonService, ServiceError};
use millrace_wire::model::ServiceModel;
use serde_json::{json, Value};

use crate::doc::{self, Kind, StreamDoc, DESTINATION_ID};
use crate::error::{in_use, internal, invalid_argument, not_found};
use crate::{now_ms, open_stream, Firehose, Stream};

fn text<'a>(input: &'a Value, member: &str) -> &'a str {
    input.get(member).and_then(Value::as_str).unwrap_or("")
}

/// Records and bytes PutRecordBatch takes in one call.
const MAX_BATCH_BYTES: usize = 4 << 20;

const KINESIS_SOURCE_REFUSAL: &str =
    "This operation is not permitted on KinesisStreamAsSource delivery stream type.";

impl JsonService for Firehose {
    fn model(&self) -> &'static ServiceModel {
        &millrace_wire::generated::firehose_model::FIREHOSE
    }

    fn audits(&self, operation: &str) -> bool {
        !matches!(operation, "PutRecord" | "PutRecordBatch")
    }

    fn before_validation(&self, operation: &str, input: &mut Value) {
        if self.inner.config.allow_http_loopback {
            crate::httpdest::mark_loopback_url(operation, input);
        }
    }

    fn shutdown(&self) {
        self.stop();
    }

    fn audit_parameters(&self, operation: &str, input: &Value) -> Value {
        let _ = operation;
        hide_endpoint_secrets(input)
    }

    fn call<'a>(
        &'a self,
        context: CallContext<'a>,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, ServiceError>> {
        Box::pin(async move {
            let account = context.caller.account.clone();
            let region = context.region.to_owned();
            let action = format!("firehose:{operation}");
            let resource = if operation == "ListDeliveryStreams" {
                "*".to_owned()
            } else {
                doc::arn(&account, &region, text(&input, "DeliveryStreamName"))
            };
            context.authz.check(&action, &resource, None)?;
            let scope = Scope {
                account: &account,
                region: &region,
            };
            match operation {
                "CreateDeliveryStream" => self.create(scope, input).await,
                "DeleteDeliveryStream" => self.delete(scope, &input).await,
                "DescribeDeliveryStream" => {
                    let stream = self.stream(scope, &input)?;
                    let doc = stream.snapshot();
                    Ok(json!({"DeliveryStreamDescription": doc.description(now_ms(), &input)}))
                }
                "ListDeliveryStreams" => Ok(self.list(scope, &input)),
                "UpdateDestination" => self.update(scope, &input).await,
                "PutRecord" | "PutRecordBatch" => self.put(scope, operation, &input).await,
                "TagDeliveryStream" | "UntagDeliveryStream" => {
                    self.change_tags(scope, operation, &input).await
                }
                "ListTagsForDeliveryStream" => {
                    let stream = self.stream(scope, &input)?;
                    Ok(list_tags(&stream.snapshot(), &input))
                }
                "StartDeliveryStreamEncryption" | "StopDeliveryStreamEncryption" => {
                    self.encryption(scope, operation, &input).await
                }
                _ => Err(ServiceError::bare("UnknownOperationException", 400)),
            }
        })
    }
}

#[derive(Clone, Copy)]
struct Scope<'a> {
    account: &'a str,
    region: &'a str,
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, ServiceError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(detail)) => Err(internal(detail)),
        Err(error) => Err(internal(error)),
    }
}

impl Firehose {
    /// A CUSTOMER_MANAGED_CMK needs a KeyARN of an enabled key; an AWS_OWNED_CMK takes none.
    fn check_key(&self, scope: Scope<'_>, config: &Value) -> Result<(), ServiceError> {
        let key_type = config
            .get("KeyType")
            .and_then(Value::as_str)
            .unwrap_or("AWS_OWNED_CMK");
        let key_arn = config.get("KeyARN").and_then(Value::as_str);
        match (key_type, key_arn) {
            ("CUSTOMER_MANAGED_CMK", None) => Err(invalid_argument(
                "KeyARN is required when KeyType is CUSTOMER_MANAGED_CMK.",
            )),
            ("CUSTOMER_MANAGED_CMK", Some(arn)) => match &self.inner.config.keys {
                Some(keys) => keys
                    .check(scope.account, scope.region, arn)
                    .map_err(|reason| ServiceError::client("InvalidKMSResourceException", reason)),
                None => Err(ServiceError::client(
                    "InvalidKMSResourceException",
                    "KMS is not available on this server (no master key).",
                )),
            },
            (_, Some(_)) => Err(invalid_argument(
                "KeyARN must not be given when KeyType is AWS_OWNED_CMK.",
            )),
            // Without a master key nothing could be sealed: refused, as StartStreamEncryption
            // is, rather than reported as encryption that does not happen.
            _ if self.inner.sealer.is_none() => Err(ServiceError::client(
                "InvalidKMSResourceException",
                "KMS is not available on this server (no master key).",
            )),
            _ => Ok(()),
        }
    }

    fn stream(&self, scope: Scope<'_>, input: &Value) -> Result<Arc<Stream>, ServiceError> {
        let name = text(input, "DeliveryStreamName");
        self.inner
            .lookup(scope.account, scope.region, name)
            .ok_or_else(|| not_found(name, scope.account))
    }

    async fn create(&self, scope: Scope<'_>, input: Value) -> Result<Value, ServiceError> {
        let name = text(&input, "DeliveryStreamName").to_owned();
        let stream_type = input
            .get("DeliveryStreamType")
            .and_then(Value::as_str)
            .unwrap_or("DirectPut")
            .to_owned();
        let source = match stream_type.as_str() {
            "DirectPut" => {
                if input.get("KinesisStreamSourceConfiguration").is_some() {
                    return Err(invalid_argument(
                        "KinesisStreamSourceConfiguration is only allowed for the KinesisStreamAsSource delivery stream type.",
                    ));
                }
                None
            }
            "KinesisStreamAsSource" => {
                let source = input
                    .get("KinesisStreamSourceConfiguration")
                    .cloned()
                    .ok_or_else(|| {
                        invalid_argument(
                            "KinesisStreamSourceConfiguration is required for the KinesisStreamAsSource delivery stream type.",
                        )
                    })?;
                crate::source::check_source(&self.inner, scope.account, &source)?;
                Some(source)
            }
            other => {
                return Err(invalid_argument(format!(
                    "Delivery stream type {other} is not supported by Millrace yet."
                )))
            }
        };
        for (member, what) in doc::UNSUPPORTED_DESTINATIONS {
            if input.get(*member).is_some() {
                return Err(invalid_argument(format!(
                    "The {what} destination is not supported by Millrace yet."
                )));
            }
        }
        let s3 = input
            .get("ExtendedS3DestinationConfiguration")
            .or_else(|| input.get("S3DestinationConfiguration"));
        let http = input.get("HttpEndpointDestinationConfiguration");
        let given = [s3.is_some(), http.is_some()]
            .iter()
            .filter(|given| **given)
            .count();
        if given != 1
            || (input.get("ExtendedS3DestinationConfiguration").is_some()
                && input.get("S3DestinationConfiguration").is_some())
        {
            return Err(invalid_argument(
                "Exactly one destination configuration must be supplied.",
            ));
        }
        let (kind, destination, access_key) = match (s3, http) {
            (Some(s3), _) => (Kind::S3, doc::s3_description(s3, None)?, None),
            (_, Some(http)) => {
                crate::httpdest::check_url(&self.inner.config, http)?;
                let (description, key) = doc::http_description(http, None)?;
                if description.get("S3DestinationDescription").is_none() {
                    return Err(invalid_argument(
                        "S3Configuration is required for an HTTP endpoint destination.",
                    ));
                }
                (Kind::Http, description, key)
            }
            _ => unreachable_destination()?,
        };
        let tags: Vec<(String, String)> = input
            .get("Tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .map(|t| (text(t, "Key").to_owned(), text(t, "Value").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let encryption = match input.get("DeliveryStreamEncryptionConfigurationInput") {
            Some(config) => {
                self.check_key(scope, config)?;
                Some(encryption_description(config, "ENABLED"))
            }
            None => None,
        };
        let _control = self.inner.control.lock().await;
        if self
            .inner
            .lookup(scope.account, scope.region, &name)
            .is_some()
        {
            return Err(in_use(format!(
                "Firehose {name} under accountId {} already exists",
                scope.account
            )));
        }
        let inner = self.inner.clone();
        let now = now_ms();
        let mut doc = StreamDoc {
            account: scope.account.to_owned(),
            region: scope.region.to_owned(),
            name: name.clone(),
            incarnation: 0,
            stream_type,
            version: 1,
            created_ms: now,
            updated_ms: None,
            active_at_ms: now + self.inner.config.create_ms,
            kind,
            destination,
            access_key,
            source,
            tags,
            encryption,
            frame_from: Some(0),
            deleted_at_ms: None,
        };
        let stream = blocking(move || {
            doc.incarnation = inner.allocate_incarnation()?;
            inner.save(&doc)?;
            let stream =
                open_stream(&inner.config.data_dir, doc).map_err(|error| error.to_string())?;
            Ok(stream)
        })
        .await?;
        let arn = stream.snapshot().arn();
        self.inner.streams.lock().expect("streams lock").insert(
            (scope.account.to_owned(), scope.region.to_owned(), name),
            stream.clone(),
        );
        self.spawn(stream);
        Ok(json!({"DeliveryStreamARN": arn}))
    }

    /// DeleteDeliveryStream: the stream stops delivering at once (buffered records are
    /// dropped with it, as the service deletes a stream "and its data"), is DELETING for
    /// `delete_ms`, then gone. AllowForceDelete concerns KMS grants, which Millrace does not
    /// create, so it changes nothing.
    async fn delete(&self, scope: Scope<'_>, input: &Value) -> Result<Value, ServiceError> {
        let _control = self.inner.control.lock().await;
        let stream = self.stream(scope, input)?;
        let mut doc = stream.snapshot();
        match doc.status(now_ms()) {
            "DELETING" => return Ok(json!({})),
            "CREATING" => {
                return Err(in_use(format!(
                    "Firehose {} under accountId {} is in CREATING state and cannot be deleted.",
                    doc.name, scope.account
                )))
            }
            _ => {}
        }
        let _ = stream.stop.send(true);
        let delay = self.inner.options.delete_ms;
        doc.deleted_at_ms = Some(now_ms() + delay);
        let inner = self.inner.clone();
        let saved = doc.clone();
        blocking(move || inner.save(&saved)).await?;
        *stream.doc.lock().expect("stream document lock") = doc.clone();
        if delay == 0 {
            let inner = self.inner.clone();
            blocking(move || crate::remove_stream(&inner, &doc)).await?;
        } else {
            crate::schedule_removal(self.inner.clone(), doc);
        }
        Ok(json!({}))
    }

    /// The stream, refused while it is being deleted (for changes other than deletion).
    fn changeable(&self, scope: Scope<'_>, input: &Value) -> Result<Arc<Stream>, ServiceError> {
        let stream = self.stream(scope, input)?;
        let doc = stream.snapshot();
        if doc.deleted_at_ms.is_some() {
            return Err(in_use(format!(
                "Firehose {} under accountId {} is in DELETING state.",
                doc.name, scope.account
            )));
        }
        Ok(stream)
    }

    fn list(&self, scope: Scope<'_>, input: &Value) -> Value {
        let limit = input.get("Limit").and_then(Value::as_u64).unwrap_or(10) as usize;
        let wanted = input.get("DeliveryStreamType").and_then(Value::as_str);
        let start = input
            .get("ExclusiveStartDeliveryStreamName")
            .and_then(Value::as_str);
        let streams = self.inner.streams.lock().expect("streams lock");
        let names: Vec<String> = streams
            .iter()
            .filter(|((account, region, _), _)| account == scope.account && region == scope.region)
            .filter(|((_, _, name), _)| start.is_none_or(|start| name.as_str() > start))
            .filter(|(_, stream)| {
                wanted.is_none_or(|wanted| stream.snapshot().stream_type == wanted)
            })
            .map(|((_, _, name), _)| name.clone())
            .collect();
        let more = names.len() > limit;
        json!({
            "DeliveryStreamNames": names.into_iter().take(limit).collect::<Vec<_>>(),
            "HasMoreDeliveryStreams": more,
        })
    }

    async fn update(&self, scope: Scope<'_>, input: &Value) -> Result<Value, ServiceError> {
        let _control = self.inner.control.lock().await;
        let stream = self.changeable(scope, input)?;
        let mut doc = stream.snapshot();
        if text(input, "CurrentDeliveryStreamVersionId") != doc.version.to_string() {
            return Err(ServiceError::client(
                "ConcurrentModificationException",
                format!(
                    "Cannot update firehose: {} since the current version id: {} and specified version id: {} do not match",
                    doc.name,
                    doc.version,
                    text(input, "CurrentDeliveryStreamVersionId")
                ),
            ));
        }
        if text(input, "DestinationId") != DESTINATION_ID {
            return Err(invalid_argument(format!(
                "Destination Id {} not found",
                text(input, "DestinationId")
            )));
        }
        for (member, what) in doc::UNSUPPORTED_DESTINATIONS {
            let update = member.replace("Configuration", "Update");
            if input.get(update.as_str()).is_some() {
                return Err(invalid_argument(format!(
                    "The {what} destination is not supported by Millrace yet."
                )));
            }
        }
        let s3 = input
            .get("ExtendedS3DestinationUpdate")
            .or_else(|| input.get("S3DestinationUpdate"));
        let http = input.get("HttpEndpointDestinationUpdate");
        match (s3, http) {
            (Some(s3), None) => {
                let current = (doc.kind == Kind::S3).then_some(&doc.destination);
                if current.is_none()
                    && (s3.get("RoleARN").is_none() || s3.get("BucketARN").is_none())
                {
                    return Err(invalid_argument(
                        "RoleARN and BucketARN are required when changing the destination type to Amazon S3.",
                    ));
                }
                doc.destination = doc::s3_description(s3, current)?;
                doc.kind = Kind::S3;
                doc.access_key = None;
            }
            (None, Some(http)) => {
                if http.get("EndpointConfiguration").is_some() {
                    crate::httpdest::check_url(&self.inner.config, http)?;
                }
                let current = (doc.kind == Kind::Http).then_some(&doc.destination);
                let (description, key) = doc::http_description(http, current)?;
                if description.get("EndpointConfiguration").is_none()
                    || description.get("S3DestinationDescription").is_none()
                {
                    return Err(invalid_argument(
                        "EndpointConfiguration and S3Update are required when changing the destination type to an HTTP endpoint.",
                    ));
                }
                doc.destination = description;
                if key.is_some() || doc.kind != Kind::Http {
                    doc.access_key = key;
                }
                doc.kind = Kind::Http;
            }
            _ => {
                return Err(invalid_argument(
                    "Exactly one destination update must be supplied.",
                ))
            }
        }
        doc.version += 1;
        doc.updated_ms = Some(now_ms());
        let inner = self.inner.clone();
        let saved = doc.clone();
        blocking(move || inner.save(&saved)).await?;
        *stream.doc.lock().expect("stream document lock") = doc;
        // The delivery task applies the new hints to what it buffers now.
        stream.appended.send_modify(|_| {});
        Ok(json!({}))
    }

    async fn put(
        &self,
        scope: Scope<'_>,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let stream = self.stream(scope, input)?;
        let doc = stream.snapshot();
        if doc.status(now_ms()) != "ACTIVE" {
            return Err(not_found(&doc.name, scope.account));
        }
        if doc.source.is_some() {
            return Err(invalid_argument(KINESIS_SOURCE_REFUSAL));
        }
        let records: Vec<&Value> = match operation {
            "PutRecord" => input.get("Record").into_iter().collect(),
            _ => input
                .get("Records")
                .and_then(Value::as_array)
                .map(|records| records.iter().collect())
                .unwrap_or_default(),
        };
        let mut payloads = Vec::with_capacity(records.len());
        let mut total = 0usize;
        for record in records {
            let data = base64::engine::general_purpose::STANDARD
                .decode(text(record, "Data"))
                .map_err(|_| ServiceError::client("SerializationException", "Invalid base64"))?;
            total += data.len();
            payloads.push(data);
        }
        if total > MAX_BATCH_BYTES {
            return Err(invalid_argument(format!(
                "Records size exceeds 4 MiB limit: {total} bytes were sent."
            )));
        }
        let started = std::time::Instant::now();
        let inner = self.inner.clone();
        let appended = stream.clone();
        let count = payloads.len();
        let appended = tokio::task::spawn_blocking(move || {
            let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
            inner.append_framed(&appended, &slices, None)
        })
        .await;
        let first = match appended {
            Ok(Ok(first)) => first,
            Ok(Err(crate::AppendError::Kms(reason))) => {
                return Err(ServiceError::client("InvalidKMSResourceException", reason))
            }
            Ok(Err(crate::AppendError::Storage(detail))) => return Err(internal(detail)),
            Err(error) => return Err(internal(error)),
        };
        let meter = &self.inner.meter;
        let scope = crate::metrics::Scope {
            account: &doc.account,
            region: &doc.region,
            stream: &doc.name,
        };
        meter.record(&scope, "IncomingBytes", "Bytes", total as f64);
        meter.record(&scope, "IncomingRecords", "Count", count as f64);
        meter.record(&scope, "IncomingPutRequests", "Count", 1.0);
        let (bytes, records, requests, latency) = if operation == "PutRecord" {
            (
                "PutRecord.Bytes",
                None,
                "PutRecord.Requests",
                "PutRecord.Latency",
            )
        } else {
            (
                "PutRecordBatch.Bytes",
                Some("PutRecordBatch.Records"),
                "PutRecordBatch.Requests",
                "PutRecordBatch.Latency",
            )
        };
        meter.record(&scope, bytes, "Bytes", total as f64);
        if let Some(records) = records {
            meter.record(&scope, records, "Count", count as f64);
        }
        meter.record(&scope, requests, "Count", 1.0);
        meter.record(
            &scope,
            latency,
            "Milliseconds",
            started.elapsed().as_secs_f64() * 1000.0,
        );
        let encrypted = doc.encrypted();
        let id = |position: u64| format!("{:016x}{:016x}", doc.incarnation, position);
        if operation == "PutRecord" {
            return Ok(json!({"RecordId": id(first), "Encrypted": encrypted}));
        }
        let responses: Vec<Value> = (0..count as u64)
            .map(|i| json!({"RecordId": id(first + i)}))
            .collect();
        Ok(json!({"FailedPutCount": 0, "Encrypted": encrypted, "RequestResponses": responses}))
    }

    async fn change_tags(
        &self,
        scope: Scope<'_>,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let _control = self.inner.control.lock().await;
        let stream = self.changeable(scope, input)?;
        let mut doc = stream.snapshot();
        if operation == "TagDeliveryStream" {
            for tag in input
                .get("Tags")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let key = text(tag, "Key").to_owned();
                let value = text(tag, "Value").to_owned();
                match doc.tags.iter_mut().find(|(k, _)| *k == key) {
                    Some(existing) => existing.1 = value,
                    None => doc.tags.push((key, value)),
                }
            }
            if doc.tags.len() > 50 {
                return Err(ServiceError::client(
                    "LimitExceededException",
                    format!(
                        "Exceeded the limit of 50 tags for the delivery stream {}.",
                        doc.name
                    ),
                ));
            }
        } else {
            let keys: Vec<&str> = input
                .get("TagKeys")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            doc.tags.retain(|(key, _)| !keys.contains(&key.as_str()));
        }
        let inner = self.inner.clone();
        let saved = doc.clone();
        blocking(move || inner.save(&saved)).await?;
        *stream.doc.lock().expect("stream document lock") = doc;
        Ok(json!({}))
    }

    async fn encryption(
        &self,
        scope: Scope<'_>,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let _control = self.inner.control.lock().await;
        let stream = self.changeable(scope, input)?;
        let mut doc = stream.snapshot();
        if doc.source.is_some() {
            return Err(invalid_argument(KINESIS_SOURCE_REFUSAL));
        }
        doc.encryption = Some(if operation == "StartDeliveryStreamEncryption" {
            let config = input
                .get("DeliveryStreamEncryptionConfigurationInput")
                .cloned()
                .unwrap_or_else(|| json!({}));
            self.check_key(scope, &config)?;
            encryption_description(&config, "ENABLED")
        } else {
            let mut current = doc
                .encryption
                .clone()
                .unwrap_or_else(|| json!({"Status": "DISABLED"}));
            current["Status"] = json!("DISABLED");
            current
        });
        let inner = self.inner.clone();
        let saved = doc.clone();
        blocking(move || inner.save(&saved)).await?;
        *stream.doc.lock().expect("stream document lock") = doc;
        Ok(json!({}))
    }
}

/// The request with an HTTP endpoint's access key and URL (sensitive in the model) hidden.
fn hide_endpoint_secrets(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| {
                    let hidden = key == "EndpointConfiguration" && item.is_object();
                    let item = if hidden {
                        let mut endpoint = item.clone();
                        for member in ["AccessKey", "Url"] {
                            if let Some(slot) = endpoint.get_mut(member) {
                                *slot = json!("HIDDEN_DUE_TO_SECURITY_REASONS");
                            }
                        }
                        endpoint
                    } else {
                        hide_endpoint_secrets(item)
                    };
                    (key.clone(), item)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(hide_endpoint_secrets).collect()),
        other => other.clone(),
    }
}

fn unreachable_destination() -> Result<(Kind, Value, Option<String>), ServiceError> {
    Err(invalid_argument(
        "Exactly one destination configuration must be supplied.",
    ))
}

fn encryption_description(config: &Value, status: &str) -> Value {
    let key_type = config
        .get("KeyType")
        .and_then(Value::as_str)
        .unwrap_or("AWS_OWNED_CMK");
    let mut out = json!({"KeyType": key_type, "Status": status});
    if let Some(arn) = config.get("KeyARN") {
        out["KeyARN"] = arn.clone();
    }
    out
}

fn list_tags(doc: &StreamDoc, input: &Value) -> Value {
    let limit = input.get("Limit").and_then(Value::as_u64).unwrap_or(50) as usize;
    let start = input.get("ExclusiveStartTagKey").and_then(Value::as_str);
    let mut tags = doc.tags.clone();
    tags.sort();
    let selected: Vec<&(String, String)> = tags
        .iter()
        .filter(|(key, _)| start.is_none_or(|start| key.as_str() > start))
        .collect();
    let more = selected.len() > limit;
    let tags: Vec<Value> = selected
        .into_iter()
        .take(limit)
        .map(|(key, value)| json!({"Key": key, "Value": value}))
        .collect();
    json!({"Tags": tags, "HasMoreTags": more})
}
