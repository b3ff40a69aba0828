//! The AWS JSON services beside Kinesis (KMS, DynamoDB, …): recognised by their
//! `X-Amz-Target` prefix, checked in the same order as Kinesis (method, operation, body,
//! authentication, model), run through their [`JsonService`], answered in JSON 1.0 or 1.1.

use std::sync::Arc;

use millrace_service::{CallContext, JsonService, ServiceError};
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

    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn JsonService>> {
        self.services.iter()
    }
}

/// A finished JSON reply.
pub struct JsonReply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// `x-amzn-ErrorType` for errors.
    pub error_type: Option<String>,
}

fn error_reply(content_type: &str, error: &ServiceError) -> JsonReply {
    let mut body = serde_json::Map::new();
    body.insert("__type".into(), Value::String(error.code.clone()));
    if let Some(message) = &error.message {
        body.insert("message".into(), Value::String(message.clone()));
    }
    JsonReply {
        status: error.status,
        content_type: content_type.to_owned(),
        body: serde_json::to_vec(&body).expect("error bodies serialize"),
        error_type: Some(
            error
                .code
                .rsplit('#')
                .next()
                .unwrap_or(&error.code)
                .to_owned(),
        ),
    }
}

fn client(code: &str, message: &str) -> ServiceError {
    ServiceError::client(code, message)
}

/// Serves one request for `service`.
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
    let fail = |error: ServiceError| error_reply(&content_type, &error);
    if parts.method != http::Method::POST {
        return fail(
            client(
                "AccessDeniedException",
                "Unable to determine service/operation name to be authorized",
            )
            .with_status(403),
        );
    }
    let model = service.model();
    if model.operation(operation).is_none() {
        return fail(ServiceError {
            code: "UnknownOperationException".into(),
            status: 400,
            message: None,
        });
    }
    let input: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { body }) {
        Ok(value) => value,
        Err(_) => {
            return fail(ServiceError {
                code: "SerializationException".into(),
                status: 400,
                message: None,
            })
        }
    };
    let signed = match auth::parse(&parts.headers, parts.uri.query()) {
        Ok(signed) => signed,
        Err(failure) => return fail(api_to_service(failure.json())),
    };
    let incoming = auth::Incoming {
        parts,
        body,
        service: service.signing_name(),
    };
    let caller = match services.authenticator.authenticate(&signed, &incoming) {
        Ok(caller) => caller,
        Err(failure) => return fail(api_to_service(failure.json())),
    };
    if let Err(error) = millrace_wire::validate_input_for(model, operation, &input) {
        return fail(client(error.error_type(), error.message().unwrap_or("")));
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
    let audit_input = input.clone();
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
    if let Some(audit) = services.audit {
        audit.record_call(&crate::audit::Call {
            event_source: &format!("{}.amazonaws.com", service.signing_name()),
            operation,
            region: &region,
            source_ip: &peer.ip,
            caller: &caller,
            parameters: Some(&audit_input),
            error: outcome
                .as_ref()
                .err()
                .map(|e| (e.code.as_str(), e.message.as_deref())),
            request_id,
        });
    }
    match outcome {
        Ok(output) => JsonReply {
            status: 200,
            content_type,
            body: serde_json::to_vec(&output).expect("json values serialize"),
            error_type: None,
        },
        Err(error) => {
            if error.status >= 500 {
                tracing::error!(code = %error.code, operation, "service failure");
            }
            fail(error)
        }
    }
}

fn api_to_service(error: crate::error::ApiError) -> ServiceError {
    ServiceError {
        code: error.code.to_owned(),
        status: error.status,
        message: error.message,
    }
}
