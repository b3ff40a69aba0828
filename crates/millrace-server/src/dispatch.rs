//! The order of request checks and the single dispatch table keyed by `X-Amz-Target`.

use crate::auth;
use crate::error::ApiError;
use crate::handlers::{self, Context};
use crate::server::ServerConfig;

/// The Kinesis target prefix.
const KINESIS_PREFIX: &str = "Kinesis_20131202";
/// The one content type whose early errors are answered in JSON.
const JSON_1_1: &str = "application/x-amz-json-1.1";

/// The body format of a request, which its response uses too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Cbor,
}

impl Format {
    /// The format named by a Content-Type header (parameters and spaces ignored); requests
    /// with any other content type are answered in JSON.
    pub fn of(headers: &http::HeaderMap) -> (Format, bool) {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match content_type.split(';').next().unwrap_or("").trim() {
            "application/x-amz-json-1.1" => (Format::Json, true),
            "application/x-amz-cbor-1.1" => (Format::Cbor, true),
            _ => (Format::Json, false),
        }
    }
}

/// A successful reply: a complete body, or an event stream fed by a task.
pub enum Reply {
    Body(Vec<u8>),
    EventStream(tokio::sync::mpsc::Receiver<bytes::Bytes>),
}

/// Kinesis operations on no particular resource: authorized on `*`.
const ACCOUNT_OPERATIONS: &[&str] = &[
    "ListStreams",
    "DescribeLimits",
    "DescribeAccountSettings",
    "UpdateAccountSettings",
];

/// Kinesis operations that change nothing, or only records, which the audit log leaves out
/// unless they are denied.
const DATA_PLANE: &[&str] = &[
    "PutRecord",
    "PutRecords",
    "GetRecords",
    "GetShardIterator",
    "SubscribeToShard",
    "ReceiveQueueRecords",
    "AcknowledgeQueueRecords",
    "UpdateQueueRecordsVisibility",
    "ReceiveDeadLetterQueueRecords",
    "AcknowledgeDeadLetterQueueRecords",
    "UpdateDeadLetterQueueRecordsVisibility",
    "RestoreDeadLetterQueueRecords",
];

/// What the request path knows about the connection.
pub struct Peer {
    pub ip: String,
    pub secure: bool,
}

/// The account a request addresses: the account of an ARN member when the body names one of
/// another account, else the caller's. A body without `arn:` anywhere is not parsed for it.
fn addressed_account(body: &[u8]) -> Option<String> {
    if !body.windows(4).any(|w| w == b"arn:") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Arns<'a> {
        #[serde(borrow, rename = "StreamARN")]
        stream: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, rename = "ConsumerARN")]
        consumer: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, rename = "ResourceARN")]
        resource: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, rename = "QueueARN")]
        queue: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, rename = "ChannelARN")]
        channel: Option<std::borrow::Cow<'a, str>>,
    }
    let arns: Arns<'_> = serde_json::from_slice(body).ok()?;
    let arn = arns
        .stream
        .or(arns.consumer)
        .or(arns.resource)
        .or(arns.queue)
        .or(arns.channel)?;
    crate::authz::arn_account(&arn).map(str::to_owned)
}

/// The condition keys of a request: who, from where, when, and the tags it asks for.
pub fn context_keys(
    caller: &millrace_iam::Caller,
    peer: &Peer,
    request_tags: &[(String, String)],
) -> millrace_iam::ContextKeys {
    let mut keys = millrace_iam::ContextKeys::new();
    keys.insert("aws:SourceIp", peer.ip.clone());
    keys.insert(
        "aws:SecureTransport",
        if peer.secure { "true" } else { "false" },
    );
    keys.insert("aws:PrincipalArn", caller.arn.clone());
    keys.insert("aws:PrincipalAccount", caller.account.clone());
    keys.insert("aws:userid", caller.user_id.clone());
    if let millrace_iam::CallerKind::User { name } = &caller.kind {
        keys.insert("aws:username", name.clone());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    keys.insert("aws:EpochTime", now.to_string());
    keys.insert("aws:CurrentTime", crate::sigv4::iso8601(now));
    keys.insert(
        "aws:PrincipalType",
        match caller.kind {
            millrace_iam::CallerKind::Root => "Account",
            millrace_iam::CallerKind::User { .. } => "User",
            millrace_iam::CallerKind::AssumedRole { .. } => "AssumedRole",
        },
    );
    if !request_tags.is_empty() {
        for (key, value) in request_tags {
            keys.insert(&format!("aws:RequestTag/{key}"), value.clone());
        }
        keys.insert_many(
            "aws:TagKeys",
            request_tags.iter().map(|(k, _)| k.clone()).collect(),
        );
    }
    keys
}

/// The tags a Kinesis request asks to add (CreateStream, AddTagsToStream, TagResource,
/// CreateChannel).
fn kinesis_request_tags(operation: &str, body: &[u8]) -> Vec<(String, String)> {
    if !matches!(
        operation,
        "CreateStream" | "AddTagsToStream" | "TagResource" | "CreateChannel"
    ) {
        return Vec::new();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    value
        .get("Tags")
        .and_then(|t| t.as_object())
        .map(|tags| {
            tags.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Everything the Kinesis path needs from the server.
pub struct Services<'a> {
    pub accounts: &'a crate::accounts::Accounts,
    pub config: &'a ServerConfig,
    pub rate_limiter: &'a crate::rate_limit::RateLimiter,
    pub authenticator: &'a crate::auth::Authenticator,
    pub policies: &'a crate::authz::PolicyCache,
    pub decisions: &'a crate::authz::DecisionCache,
    pub audit: Option<&'a crate::audit::AuditLog>,
    pub metrics: Option<&'a millrace_cloudwatch::Metrics>,
    /// Kinesis Queues of every account.
    pub queues: &'a millrace_queues::Queues,
    /// Kinesis Channels of every account (`None`: not served).
    pub channels: Option<&'a dyn crate::channels_route::ChannelsFront>,
}

/// Runs the service's checks in its order, then the operation; returns the reply.
pub async fn route(
    services: &Services<'_>,
    peer: &Peer,
    request_id: &str,
    parts: &http::request::Parts,
    target: &str,
    raw_body: &[u8],
) -> Result<Reply, ApiError> {
    let config = services.config;
    let access_denied = || {
        ApiError::fixed(
            "AccessDeniedException",
            403,
            None,
            "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be \
             authorized</Message>\n</AccessDeniedException>\n",
        )
    };
    if parts.method != http::Method::POST {
        return Err(access_denied());
    }
    let (prefix, operation) = target.split_once('.').unwrap_or(("", ""));
    let known = prefix == KINESIS_PREFIX && millrace_wire::validate::operation_exists(operation);
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if raw_body.is_empty() {
        // Answered before the body is read: CBOR, AWS's fallback, unless the request is JSON 1.1.
        let error = if known {
            ApiError::serialization(None)
        } else {
            ApiError::bare("UnknownOperationException")
        };
        return Err(if content_type == Some(JSON_1_1) {
            error
        } else {
            error.in_cbor()
        });
    }
    let (format, recognised) = Format::of(&parts.headers);
    if !recognised {
        let media = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
        return Err(match media {
            None => access_denied(),
            Some("application/json") => {
                // The Coral 1.0 envelope of the service's oldest protocol.
                let parses = serde_json::from_slice::<serde::de::IgnoredAny>(raw_body).is_ok();
                let (code, status) = if parses {
                    ("UnknownOperationException", 404)
                } else {
                    ("SerializationException", 400)
                };
                ApiError::fixed(
                    code,
                    status,
                    Some("application/json"),
                    format!(
                        r#"{{"Output":{{"__type":"com.amazon.coral.service#{code}"}},"Version":"1.0"}}"#
                    ),
                )
            }
            Some(_) if !prefix.is_empty() && !operation.is_empty() => ApiError::fixed(
                "UnknownOperationException",
                404,
                None,
                "<UnknownOperationException/>\n",
            ),
            Some(_) => access_denied(),
        });
    }
    // CBOR requests are transcoded to the JSON document the JSON protocol would carry; the
    // reply is transcoded back by the caller.
    let transcoded;
    let body = match format {
        Format::Json => raw_body,
        Format::Cbor => {
            let document = millrace_wire::cbor::request_to_json(operation, raw_body)
                .map_err(|_| ApiError::serialization(None))?;
            transcoded = serde_json::to_vec(&document).expect("json values serialize");
            &transcoded[..]
        }
    };
    // An unparseable body is reported before an unknown operation or missing authentication;
    // the body is parsed up front only on those error paths, so good requests parse once.
    let parses = || serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    if !known {
        return Err(if parses() {
            ApiError::bare("UnknownOperationException")
        } else {
            ApiError::serialization(None)
        });
    }
    let signed = match auth::parse(&parts.headers, parts.uri.query()) {
        Ok(signed) => signed,
        Err(error) if parses() => return Err(error.json()),
        Err(_) => return Err(ApiError::serialization(None)),
    };
    let incoming = auth::Incoming {
        parts,
        body: raw_body,
        service: "kinesis",
    };
    let caller = services
        .authenticator
        .authenticate(&signed, &incoming)
        .map_err(|failure| failure.json())?;
    let region = if signed.region.is_empty() {
        config.default_region.clone()
    } else {
        signed.region.clone()
    };
    if config.rate_limits {
        services.rate_limiter.admit(&region, operation)?;
    }
    let account = addressed_account(body).unwrap_or_else(|| caller.account.clone());
    let engine = services
        .accounts
        .get(&account)
        .or_else(|| services.accounts.get(&caller.account))
        .unwrap_or_else(|| services.accounts.default_engine());
    let mode = services.authenticator.mode;
    let context_caller = caller.clone();
    let authz = crate::authz::Authz::new(
        mode,
        caller.clone(),
        &services.authenticator.iam,
        services.policies,
        services.decisions,
        format!("kinesis:{operation}"),
        Box::new(move || {
            context_keys(
                &context_caller,
                peer,
                &kinesis_request_tags(operation, body),
            )
        }),
    );
    let context = Context {
        engine,
        region: region.clone(),
        format,
        authz: &authz,
        metrics: services.metrics,
        queues: services.queues,
        channels: services.channels,
    };
    let outcome = async {
        if ACCOUNT_OPERATIONS.contains(&operation) {
            authz.check(engine, "*", None)?;
        }
        if operation == "SubscribeToShard" {
            return handlers::fanout::subscribe_to_shard(&context, body)
                .await
                .map(Reply::EventStream);
        }
        handlers::call(&context, operation, body)
            .await
            .map(Reply::Body)
    }
    .await;
    if outcome.is_ok() && !authz.was_checked() {
        // Every operation names its resource before it acts; one that did not is a defect.
        tracing::error!(operation, "operation ran without an authorization check");
    }
    if let Some(audit) = services.audit {
        let denied = matches!(&outcome, Err(e) if e.code == "AccessDeniedException");
        if denied || !DATA_PLANE.contains(&operation) {
            let parameters = serde_json::from_slice::<serde_json::Value>(body).ok();
            audit.record_call(&crate::audit::Call {
                event_source: "kinesis.amazonaws.com",
                operation,
                region: &region,
                source_ip: &peer.ip,
                caller: &caller,
                parameters: parameters.as_ref(),
                error: outcome
                    .as_ref()
                    .err()
                    .map(|e| (e.code, e.message.as_deref())),
                request_id,
            });
        }
    }
    outcome
}
