//! The awsQuery services on the same port: IAM and STS (form-encoded requests, XML replies).
//!
//! The service is the one the credential scope names (`iam` or `sts`, as the SDKs sign), else
//! the one whose model has the `Action`. The order of checks follows the JSON path: decode and
//! validate the form against the model, authenticate, authorize (`iam:<Action>` on the entity's
//! ARN in `enforce`; STS needs none, AssumeRole checks the trust policy itself), run, encode.

use millrace_iam::IamError;
use millrace_wire::generated::iam_model::IAM;
use millrace_wire::generated::sts_model::STS;
use millrace_wire::model::ServiceModel;
use millrace_wire::xml::ErrorKind;
use serde_json::Value;

use crate::auth::{self, AuthMode};
use crate::dispatch::{context_keys, Peer, Services};

/// A finished awsQuery reply: status and XML body.
pub struct QueryReply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Whether a request is for an awsQuery service: a form body, or an `Action` in the query.
pub fn is_query_request(parts: &http::request::Parts) -> bool {
    let form = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let has_target = parts.headers.contains_key("x-amz-target");
    !has_target
        && (form
            || parts
                .uri
                .query()
                .is_some_and(|q| q.split('&').any(|p| p.starts_with("Action="))))
}

fn error_reply(
    model: &ServiceModel,
    status: u16,
    code: &str,
    message: &str,
    request_id: &str,
    kind: ErrorKind,
) -> QueryReply {
    QueryReply {
        status,
        body: millrace_wire::xml::encode_error(model, kind, code, message, request_id),
    }
}

fn iam_error(model: &ServiceModel, error: &IamError, request_id: &str) -> QueryReply {
    let kind = if error.server_fault {
        ErrorKind::Receiver
    } else {
        ErrorKind::Sender
    };
    error_reply(
        model,
        error.status,
        error.code,
        &error.message,
        request_id,
        kind,
    )
}

/// IAM returns policy documents URL-encoded (the SDKs decode them).
fn encode_policy_documents(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let is_document = matches!(
                    key.as_str(),
                    "PolicyDocument" | "AssumeRolePolicyDocument" | "Document"
                );
                match item {
                    Value::String(text) if is_document => {
                        let mut encoded = String::with_capacity(text.len() * 2);
                        for b in text.bytes() {
                            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                                encoded.push(b as char);
                            } else {
                                encoded.push_str(&format!("%{b:02X}"));
                            }
                        }
                        *text = encoded;
                    }
                    other => encode_policy_documents(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(encode_policy_documents),
        _ => {}
    }
}

/// Serves one IAM or STS request.
pub fn route(
    services: &Services<'_>,
    peer: &Peer,
    request_id: &str,
    parts: &http::request::Parts,
    body: &[u8],
) -> QueryReply {
    // A GET carries its parameters in the query string.
    let form: Vec<u8> = if body.is_empty() {
        parts.uri.query().unwrap_or("").as_bytes().to_vec()
    } else {
        body.to_vec()
    };
    let signed = auth::parse(&parts.headers, parts.uri.query());
    let scope_service = signed.as_ref().ok().map(|s| s.service.as_str());
    let action = millrace_wire::action_of(&form).unwrap_or_default();
    let model: &'static ServiceModel = match scope_service {
        Some("sts") => &STS,
        Some("iam") => &IAM,
        _ if STS.operation(&action).is_some() => &STS,
        _ => &IAM,
    };
    let service = if std::ptr::eq(model, &STS) {
        "sts"
    } else {
        "iam"
    };
    let (operation, input) = match millrace_wire::decode_request(model, &form) {
        Ok(decoded) => decoded,
        Err(error) => {
            return error_reply(
                model,
                error.http_status(),
                error.code(),
                error.message(),
                request_id,
                error.kind(),
            )
        }
    };
    let operation = operation.name;
    let signed = match signed {
        Ok(signed) => signed,
        Err(failure) => {
            let (code, status, message) = failure.query();
            return error_reply(model, status, code, &message, request_id, ErrorKind::Sender);
        }
    };
    // Query requests sign the form body as sent.
    let incoming = auth::Incoming {
        parts,
        body,
        service,
    };
    let caller = match services.authenticator.authenticate(&signed, &incoming) {
        Ok(caller) => caller,
        Err(failure) => {
            let (code, status, message) = failure.query();
            return error_reply(model, status, code, &message, request_id, ErrorKind::Sender);
        }
    };
    let iam = &services.authenticator.iam;
    let mode = services.authenticator.mode;
    let keys = context_keys(&caller, peer, &[]);
    let served = if service == "sts" {
        millrace_iam::STS_OPERATIONS.contains(&operation)
    } else {
        millrace_iam::IAM_OPERATIONS.contains(&operation)
    };
    let outcome: Result<Value, IamError> = if !served {
        Err(IamError {
            code: "InvalidAction",
            status: 400,
            message: format!(
                "Could not find operation {operation} for version {}",
                model.api_version
            ),
            server_fault: false,
        })
    } else if service == "iam" {
        let resource = millrace_iam::iam_resource(&caller.account, operation, &input);
        let action = format!("iam:{operation}");
        let decision = if mode == AuthMode::Enforce {
            iam.authorize(&caller, &action, &resource, &caller.account, None, &keys)
        } else {
            millrace_iam::Decision::Allow
        };
        if decision == millrace_iam::Decision::Allow {
            iam.call_iam(&caller, operation, &input)
        } else {
            let reason = if decision == millrace_iam::Decision::ExplicitDenyIdentity {
                "with an explicit deny in an identity-based policy".to_owned()
            } else {
                format!("because no identity-based policy allows the {action} action")
            };
            Err(IamError::access_denied(format!(
                "User: {} is not authorized to perform: {action} on resource: {resource} {reason}",
                caller.arn
            )))
        }
    } else {
        // In open and verify mode the caller's own policies are not consulted, but AssumeRole
        // still checks the role's trust policy (it decides who may become the role).
        iam.call_sts(&caller, operation, &input, &keys, mode == AuthMode::Enforce)
    };
    if let Some(audit) = services.audit {
        let parameters = if operation == "CreateAccessKey" {
            None
        } else {
            Some(&input)
        };
        audit.record_call(&crate::audit::Call {
            event_source: if service == "sts" {
                "sts.amazonaws.com"
            } else {
                "iam.amazonaws.com"
            },
            operation,
            region: if signed.region.is_empty() {
                "us-east-1"
            } else {
                &signed.region
            },
            source_ip: &peer.ip,
            caller: &caller,
            parameters,
            error: outcome
                .as_ref()
                .err()
                .map(|e| (e.code, Some(e.message.as_str()))),
            request_id,
        });
    }
    match outcome {
        Ok(mut output) => {
            if service == "iam" {
                encode_policy_documents(&mut output);
            }
            QueryReply {
                status: 200,
                body: millrace_wire::xml::encode_response(model, operation, &output, request_id),
            }
        }
        Err(error) => {
            if error.code == "AccessDenied" {
                tracing::debug!(caller = %caller.arn, %operation, "denied");
            }
            iam_error(model, &error, request_id)
        }
    }
}
