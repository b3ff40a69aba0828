//! The seam between the server and the services beside Data Streams (KMS, DynamoDB lease
//! tables, CloudWatch, Firehose, …): what a service implements so that the one request path
//! can recognise, decode, authenticate, authorize and answer its requests.
//!
//! A service sees model-shaped JSON documents in and out, never HTTP. The server has already
//! checked the body against [`JsonService::model`] and verified the caller; the service calls
//! [`Authorizer::check`] with the operation's IAM action and resource as soon as it knows the
//! resource, before it reads or changes anything (the server refuses to answer an operation
//! that never did).
#![deny(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use millrace_iam::Caller;
use millrace_wire::model::ServiceModel;
use serde_json::Value;

/// A boxed future, so that services can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An error as the service's protocol reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    /// The error's code (`__type`), e.g. `NotFoundException`.
    pub code: String,
    pub status: u16,
    pub message: Option<String>,
    /// Further members of the error body beside `__type` and `message` (DynamoDB's
    /// `ConditionalCheckFailedException` carries the `Item`).
    pub fields: serde_json::Map<String, Value>,
}

impl ServiceError {
    /// A client error (HTTP 400) with a message.
    pub fn client(code: &str, message: impl Into<String>) -> ServiceError {
        ServiceError {
            code: code.to_owned(),
            status: 400,
            message: Some(message.into()),
            fields: serde_json::Map::new(),
        }
    }

    /// An error whose body carries only its code (`{"__type": code}`).
    pub fn bare(code: &str, status: u16) -> ServiceError {
        ServiceError {
            code: code.to_owned(),
            status,
            message: None,
            fields: serde_json::Map::new(),
        }
    }

    /// A server-side failure (HTTP 500); the detail is logged, not sent.
    pub fn internal(code: &str) -> ServiceError {
        ServiceError {
            code: code.to_owned(),
            status: 500,
            message: None,
            fields: serde_json::Map::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> ServiceError {
        self.status = status;
        self
    }

    /// Adds a member to the error body.
    pub fn with_field(mut self, name: &str, value: Value) -> ServiceError {
        self.fields.insert(name.to_owned(), value);
        self
    }
}

/// Decides whether the caller may perform an action on a resource (a no-op outside `enforce`).
pub trait Authorizer: Send + Sync {
    /// `action` is `<service>:<Operation>`, `resource` an ARN or `*`; `resource_policy` is the
    /// resource's own policy document, when the service keeps one (KMS key policies).
    fn check(
        &self,
        action: &str,
        resource: &str,
        resource_policy: Option<&str>,
    ) -> Result<(), ServiceError>;
}

/// What a service learns about one request.
pub struct CallContext<'a> {
    pub caller: &'a Arc<Caller>,
    /// The region of the credential scope (or the server's default).
    pub region: &'a str,
    pub request_id: &'a str,
    pub authz: &'a dyn Authorizer,
}

/// A service spoken over AWS JSON 1.0 or 1.1 (`X-Amz-Target: <prefix>.<Operation>`).
pub trait JsonService: Send + Sync {
    /// The service's model, for validation; the names below default to its metadata.
    fn model(&self) -> &'static ServiceModel;
    /// The SigV4 signing name (`kms`, `dynamodb`, `monitoring`).
    fn signing_name(&self) -> &'static str {
        self.model().signing_name
    }
    /// The part of `X-Amz-Target` before the dot (`TrentService`, `DynamoDB_20120810`).
    fn target_prefix(&self) -> &'static str {
        self.model().target_prefix
    }
    /// `1.0` or `1.1`: the content type is `application/x-amz-json-<version>`.
    fn json_version(&self) -> &'static str {
        self.model().json_version
    }
    /// Runs one operation (the model has it and the input passed validation).
    fn call<'a>(
        &'a self,
        context: CallContext<'a>,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, ServiceError>>;
    /// Adjusts a decoded input before it is checked against the model (a no-op unless the
    /// service relaxes a model constraint behind an operator's flag, as Firehose does for
    /// `http://` endpoints on loopback addresses in tests).
    fn before_validation(&self, operation: &str, input: &mut Value) {
        let _ = (operation, input);
    }
    /// Stops background work at shutdown.
    fn shutdown(&self) {}
    /// A restJson1 service (Lambda) answers here with its model's HTTP bindings: its
    /// operations are then recognised by method and path instead of `X-Amz-Target`.
    fn http_bindings(&self) -> Option<&'static [millrace_wire::model::HttpOperation]> {
        None
    }
    /// The request parameters the audit log records for `operation`; services whose inputs
    /// carry secrets or bulk data (function code, environment variables) hide them here.
    fn audit_parameters(&self, operation: &str, input: &Value) -> Value {
        let _ = operation;
        input.clone()
    }
    /// Whether successful calls of `operation` go to the audit log (denied and failed calls
    /// always do); high-volume data operations answer `false`, as CloudTrail leaves them out.
    fn audits(&self, operation: &str) -> bool {
        let _ = operation;
        true
    }
}
