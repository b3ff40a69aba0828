//! The AWS JSON services beside Kinesis (KMS, DynamoDB, CloudWatch, …): recognised by their
//! `X-Amz-Target` prefix, checked in the same order as Kinesis (method, operation, body,
//! authentication, model), run through their [`JsonService`], answered in JSON 1.0 or 1.1.
//!
//! The same services are also reachable over Smithy RPC v2 CBOR (`POST
//! /service/<ServiceName>/operation/<Op>`, CloudWatch's first protocol) and awsQuery (a form
//! body signed for the service): both are transcoded to the JSON document the JSON protocol
//! carries and run through the same core, so the semantics are the same.

use std::sync::Arc;

use millrace_service::{CallContext, JsonService, ServiceError};
use millrace_wire::model::ServiceModel;
use serde_json::Value;

use crate::auth;
use crate::dispatch::{context_keys, Peer, Services};

/// The services registered with the server, looked up by target prefix.
#[derive(Default, Clone)]
pub struct JsonServices {
    services: Vec<Arc<dyn JsonService>>,
}

impl JsonServices {
    pub fn new(services: Vec<Arc<dyn JsonService>>) -> JsonServices {
        JsonServices { services }
    }

    /// The service a target prefix names.
    pub fn by_prefix(&self, prefix: &str) -> Option<&Arc<dyn JsonService>> {
        self.services.iter().find(|s| s.target_prefix() == prefix)
    }

    /// The service a SigV4 signing name names.
    pub fn by_signing_name(&self, name: &str) -> Option<&Arc<dyn JsonService>> {
        self.services.iter().find(|s| s.signing_name() == name)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn JsonService>> {
        self.services.iter()
    }
}

/// A finished JSON (or CBOR) reply.
pub struct JsonReply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// `x-amzn-ErrorType` for errors.
    pub error_type: Option<String>,
    /// `x-amzn-query-error: <code>;<Sender|Receiver>` for errors of services whose model gives
    /// the awsQuery code (awsQueryCompatible services such as CloudWatch).
    pub query_error: Option<String>,
    /// `Smithy-Protocol` on RPC v2 replies.
    pub smithy_protocol: bool,
}

/// The awsQuery code of an error, when the model's error shape carries one.
fn query_error(model: &ServiceModel, code: &str) -> Option<String> {
    let error = model.shape_named(code)?.error.as_ref()?;
    let fault = if error.sender_fault {
        "Sender"
    } else {
        "Receiver"
    };
    Some(format!("{};{fault}", error.code))
}

fn error_value(error: &ServiceError) -> Value {
    let mut body = serde_json::Map::new();
    body.insert("__type".into(), Value::String(error.code.clone()));
    if let Some(message) = &error.message {
        body.insert("message".into(), Value::String(message.clone()));
    }
    for (name, value) in &error.fields {
        body.insert(name.clone(), value.clone());
    }
    Value::Object(body)
}

fn error_reply(model: &ServiceModel, content_type: &str, error: &ServiceError) -> JsonReply {
    JsonReply {
        status: error.status,
        content_type: content_type.to_owned(),
        body: serde_json::to_vec(&error_value(error)).expect("error bodies serialize"),
        error_type: Some(
            error
                .code
                .rsplit('#')
                .next()
                .unwrap_or(&error.code)
                .to_owned(),
        ),
        query_error: query_error(model, &error.code),
        smithy_protocol: false,
    }
}

fn client(code: &str, message: &str) -> ServiceError {
    ServiceError::client(code, message)
}

/// Why the core refused or failed a request.
pub(crate) enum Failure {
    Auth(auth::AuthFailure),
    Service(ServiceError),
}

impl Failure {
    pub(crate) fn service(self) -> ServiceError {
        match self {
            Failure::Auth(failure) => api_to_service(failure.json()),
            Failure::Service(error) => error,
        }
    }
}

/// What the front doors hand the core.
pub(crate) struct Request<'a> {
    pub(crate) service: &'a dyn JsonService,
    pub(crate) parts: &'a http::request::Parts,
    /// The body as sent, which the signature covers.
    pub(crate) signed_body: &'a [u8],
    pub(crate) operation: &'a str,
    pub(crate) input: Value,
}

/// Authenticates, validates, authorizes, runs and audits one operation.
pub(crate) async fn run(
    services: &Services<'_>,
    peer: &Peer,
    request_id: &str,
    request: Request<'_>,
) -> Result<Value, Failure> {
    let Request {
        service,
        parts,
        signed_body,
        operation,
        mut input,
    } = request;
    let model = service.model();
    service.before_validation(operation, &mut input);
    let signed = auth::parse(&parts.headers, parts.uri.query()).map_err(Failure::Auth)?;
    let incoming = auth::Incoming {
        parts,
        body: signed_body,
        service: service.signing_name(),
    };
    let caller = services
        .authenticator
        .authenticate(&signed, &incoming)
        .map_err(Failure::Auth)?;
    if let Err(error) = millrace_wire::validate_input_for(model, operation, &input) {
        return Err(Failure::Service(client(
            error.error_type(),
            error.message().unwrap_or(""),
        )));
    }
    let region = if signed.region.is_empty() {
        services.config.default_region.clone()
    } else {
        signed.region.clone()
    };
    let mode = services.authenticator.mode;
    let context_caller = caller.clone();
    let action = format!("{}:{operation}", service.signing_name());
    let authz = crate::authz::Authz::new(
        mode,
        caller.clone(),
        &services.authenticator.iam,
        services.policies,
        services.decisions,
        action,
        Box::new(move || context_keys(&context_caller, peer, &[])),
    );
    let audit_input = services
        .audit
        .map(|_| service.audit_parameters(operation, &input));
    let outcome = service
        .call(
            CallContext {
                caller: &caller,
                region: &region,
                request_id,
                authz: &authz,
            },
            operation,
            input,
        )
        .await;
    if outcome.is_ok() && !authz.was_checked() {
        tracing::error!(operation, "operation ran without an authorization check");
    }
    let audited = outcome.is_err() || service.audits(operation);
    if let Some(audit) = services.audit.filter(|_| audited) {
        audit.record_call(&crate::audit::Call {
            event_source: &format!("{}.amazonaws.com", service.signing_name()),
            operation,
            region: &region,
            source_ip: &peer.ip,
            caller: &caller,
            parameters: audit_input.as_ref(),
            error: outcome
                .as_ref()
                .err()
                .map(|e| (e.code.as_str(), e.message.as_deref())),
            request_id,
        });
    }
    outcome.map_err(|error| {
        if error.status >= 500 {
            tracing::error!(code = %error.code, operation, "service failure");
        }
        Failure::Service(error)
    })
}

/// Serves one awsJson request for `service`.
pub async fn route(
    services: &Services<'_>,
    service: &dyn JsonService,
    peer: &Peer,
    request_id: &str,
    parts: &http::request::Parts,
    operation: &str,
    body: &[u8],
) -> JsonReply {
    let content_type = format!("application/x-amz-json-{}", service.json_version());
    let model = service.model();
    let fail = |error: ServiceError| error_reply(model, &content_type, &error);
    if parts.method != http::Method::POST {
        return fail(
            client(
                "AccessDeniedException",
                "Unable to determine service/operation name to be authorized",
            )
            .with_status(403),
        );
    }
    if model.operation(operation).is_none() {
        return fail(ServiceError::bare("UnknownOperationException", 400));
    }
    let input: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(value) => value,
        Err(_) => return fail(ServiceError::bare("SerializationException", 400)),
    };
    let request = Request {
        service,
        parts,
        signed_body: body,
        operation,
        input,
    };
    match run(services, peer, request_id, request).await {
        Ok(output) => JsonReply {
            status: 200,
            content_type,
            body: serde_json::to_vec(&output).expect("json values serialize"),
            error_type: None,
            query_error: None,
            smithy_protocol: false,
        },
        Err(failure) => fail(failure.service()),
    }
}

/// The content type of RPC v2 CBOR bodies.
pub const CBOR_CONTENT_TYPE: &str = "application/cbor";

/// `(service name, operation)` of a Smithy RPC v2 path `/service/<Service>/operation/<Op>`.
pub fn rpc_v2_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/service/")?;
    let (service, operation) = rest.split_once("/operation/")?;
    (!service.is_empty() && !operation.is_empty() && !operation.contains('/'))
        .then_some((service, operation))
}

/// Serves one Smithy RPC v2 CBOR request for `service`.
pub async fn route_rpc_v2(
    services: &Services<'_>,
    service: &dyn JsonService,
    peer: &Peer,
    request_id: &str,
    parts: &http::request::Parts,
    operation: &str,
    body: &[u8],
) -> JsonReply {
    let model = service.model();
    let cbor_reply = |status: u16, value: &Value| -> Vec<u8> {
        // No operation: the error map is encoded as it is.
        millrace_wire::cbor::rpc_v2_response_to_cbor(model, "", value).unwrap_or_else(|failure| {
            tracing::error!(%failure, status, "failed to encode a CBOR error");
            Vec::new()
        })
    };
    let fail = |error: ServiceError| JsonReply {
        status: error.status,
        content_type: CBOR_CONTENT_TYPE.to_owned(),
        body: cbor_reply(error.status, &error_value(&error)),
        error_type: Some(error.code.clone()),
        query_error: query_error(model, &error.code),
        smithy_protocol: true,
    };
    if parts.method != http::Method::POST {
        return fail(client("UnknownOperationException", "").with_status(404));
    }
    if model.operation(operation).is_none() {
        return fail(ServiceError::bare("UnknownOperationException", 404));
    }
    let input = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match millrace_wire::cbor::rpc_v2_request_to_json(model, operation, body) {
            Ok(value) => value,
            Err(_) => return fail(ServiceError::bare("SerializationException", 400)),
        }
    };
    let request = Request {
        service,
        parts,
        signed_body: body,
        operation,
        input,
    };
    match run(services, peer, request_id, request).await {
        Ok(output) => {
            match millrace_wire::cbor::rpc_v2_response_to_cbor(model, operation, &output) {
                Ok(encoded) => JsonReply {
                    status: 200,
                    content_type: CBOR_CONTENT_TYPE.to_owned(),
                    body: encoded,
                    error_type: None,
                    query_error: None,
                    smithy_protocol: true,
                },
                Err(failure) => {
                    tracing::error!(%failure, operation, "failed to encode a CBOR reply");
                    fail(ServiceError::internal("InternalFailure"))
                }
            }
        }
        Err(failure) => fail(failure.service()),
    }
}

/// Serves one awsQuery request (form body) for `service`; the reply is XML.
pub async fn route_query(
    services: &Services<'_>,
    service: &dyn JsonService,
    peer: &Peer,
    request_id: &str,
    parts: &http::request::Parts,
    body: &[u8],
) -> crate::query::QueryReply {
    let model = service.model();
    let form: Vec<u8> = if body.is_empty() {
        parts.uri.query().unwrap_or("").as_bytes().to_vec()
    } else {
        body.to_vec()
    };
    let xml_error = |status: u16, code: &str, message: &str, kind| crate::query::QueryReply {
        status,
        body: millrace_wire::xml::encode_error(model, kind, code, message, request_id),
    };
    let (operation, input) = match millrace_wire::decode_request(model, &form) {
        Ok((operation, input)) => (operation.name, input),
        Err(error) => {
            return xml_error(
                error.http_status(),
                error.code(),
                error.message(),
                error.kind(),
            )
        }
    };
    let request = Request {
        service,
        parts,
        signed_body: body,
        operation,
        input,
    };
    match run(services, peer, request_id, request).await {
        Ok(output) => crate::query::QueryReply {
            status: 200,
            body: millrace_wire::xml::encode_response(model, operation, &output, request_id),
        },
        Err(Failure::Auth(failure)) => {
            let (code, status, message) = failure.query();
            xml_error(status, code, &message, millrace_wire::ErrorKind::Sender)
        }
        Err(Failure::Service(error)) => {
            let (code, kind) = match model
                .shape_named(&error.code)
                .and_then(|s| s.error.as_ref())
            {
                Some(trait_) if !trait_.sender_fault && trait_.http_status >= 500 => {
                    (trait_.code.to_owned(), millrace_wire::ErrorKind::Receiver)
                }
                Some(trait_) => (trait_.code.to_owned(), millrace_wire::ErrorKind::Sender),
                None if error.status >= 500 => {
                    (error.code.clone(), millrace_wire::ErrorKind::Receiver)
                }
                None => (error.code.clone(), millrace_wire::ErrorKind::Sender),
            };
            xml_error(
                error.status,
                &code,
                error.message.as_deref().unwrap_or(""),
                kind,
            )
        }
    }
}

fn api_to_service(error: crate::error::ApiError) -> ServiceError {
    ServiceError {
        code: error.code.to_owned(),
        status: error.status,
        message: error.message,
        fields: serde_json::Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_v2_paths() {
        assert_eq!(
            rpc_v2_path("/service/GraniteServiceVersion20100801/operation/GetMetricData"),
            Some(("GraniteServiceVersion20100801", "GetMetricData"))
        );
        assert_eq!(rpc_v2_path("/service//operation/X"), None);
        assert_eq!(rpc_v2_path("/service/S/operation/"), None);
        assert_eq!(rpc_v2_path("/service/S/operation/A/B"), None);
        assert_eq!(rpc_v2_path("/"), None);
    }

    #[test]
    fn query_error_header_comes_from_the_model() {
        let model = &millrace_wire::generated::cloudwatch_model::CLOUDWATCH;
        assert_eq!(
            query_error(model, "InvalidParameterValueException").as_deref(),
            Some("InvalidParameterValue;Sender")
        );
        assert_eq!(query_error(model, "AccessDeniedException"), None);
    }
}
