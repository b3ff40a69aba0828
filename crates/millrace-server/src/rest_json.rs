//! restJson1 (Lambda): the operation is recognised by method and path against the model's
//! `http` traits; URI labels, query parameters, headers and the payload member are gathered into
//! the same JSON document the JSON protocols carry, which then runs through the one core
//! (authentication, model validation, authorization, audit) in `json_services`. The reply's
//! members go back to the status code, headers and body as the output shape binds them; errors
//! carry `x-amzn-ErrorType` and a JSON body.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hyper::Response;
use millrace_service::{JsonService, ServiceError};
use millrace_wire::model::{HttpOperation, Location, ServiceModel, Shape, ShapeKind};
use serde_json::{Map, Value};

use crate::dispatch::{Peer, Services};
use crate::json_services::{JsonServices, Request};
use crate::response::{self, ResponseBody};

const JSON: &str = "application/json";

/// URI labels and their decoded values.
type Labels = Vec<(&'static str, String)>;

/// The service and operation a request names, with its URI labels.
type Matched<'a> = (&'a Arc<dyn JsonService>, &'static HttpOperation, Labels);

/// The service and operation a method and path name, with the URI labels (decoded).
fn match_path<'a>(services: &'a JsonServices, method: &str, path: &str) -> Option<Matched<'a>> {
    // Every awsJson, CBOR and awsQuery request is a POST to `/`: no restJson1 operation.
    if path == "/" || path.is_empty() {
        return None;
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut best: Option<(usize, &Arc<dyn JsonService>, &HttpOperation, Vec<_>)> = None;
    for service in services.all() {
        let Some(bindings) = service.http_bindings() else {
            continue;
        };
        for operation in bindings {
            if !operation.method.eq_ignore_ascii_case(method) {
                continue;
            }
            let Some((literals, labels)) = match_template(operation.uri, &segments) else {
                continue;
            };
            if best.as_ref().is_none_or(|(score, ..)| literals > *score) {
                best = Some((literals, service, operation, labels));
            }
        }
    }
    best.map(|(_, service, operation, labels)| (service, operation, labels))
}

/// Matches one template (`/2015-03-31/functions/{FunctionName}/code`) against the path's
/// segments: the number of literal segments and the labels' values.
fn match_template(
    template: &'static str,
    segments: &[&str],
) -> Option<(usize, Vec<(&'static str, String)>)> {
    let template = template.split('?').next().unwrap_or(template);
    let parts: Vec<&'static str> = template.trim_start_matches('/').split('/').collect();
    let mut labels = Vec::new();
    let mut literals = 0;
    for (index, part) in parts.iter().enumerate() {
        if let Some(label) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if let Some(greedy) = label.strip_suffix('+') {
                let rest = segments.get(index..)?.join("/");
                if rest.is_empty() {
                    return None;
                }
                labels.push((greedy, decode(&rest)));
                return Some((literals, labels));
            }
            let segment = segments.get(index)?;
            if segment.is_empty() {
                return None;
            }
            labels.push((label, decode(segment)));
        } else {
            if segments.get(index) != Some(part) {
                return None;
            }
            literals += 1;
        }
    }
    (segments.len() == parts.len()).then_some((literals, labels))
}

fn decode(text: &str) -> String {
    String::from_utf8_lossy(&millrace_wire::sigv4::percent_decode(text)).into_owned()
}

/// The shape of member `name` of structure `shape`.
fn member_shape(
    model: &'static ServiceModel,
    shape: Option<&'static Shape>,
    name: &str,
) -> Option<&'static Shape> {
    let ShapeKind::Structure(members) = shape?.kind else {
        return None;
    };
    let member = members.iter().find(|m| m.name == name)?;
    model.shape(member.shape)
}

/// A text from the URI, query string or a header as the member's type wants it; text that does
/// not parse stays text, so that validation reports it.
fn typed(shape: Option<&'static Shape>, text: &str) -> Value {
    match shape.map(|s| s.kind) {
        Some(ShapeKind::Integer | ShapeKind::Long) => text
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(text.to_owned())),
        Some(ShapeKind::Boolean) => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(text.to_owned()),
        },
        _ => Value::String(text.to_owned()),
    }
}

fn error_body(model: &ServiceModel, error: &ServiceError) -> Vec<u8> {
    let mut body = Map::new();
    let kind = if error.status >= 500 {
        "Service"
    } else {
        "User"
    };
    body.insert("Type".into(), Value::String(kind.into()));
    // The error shape names the member: Lambda's `ResourceNotFoundException` has `Message`,
    // its `InvalidParameterValueException` has `message`.
    let capitalised = model
        .shape_named(&error.code)
        .is_some_and(|shape| match shape.kind {
            ShapeKind::Structure(members) => members.iter().any(|m| m.name == "Message"),
            _ => false,
        });
    if let Some(message) = &error.message {
        let key = if capitalised { "Message" } else { "message" };
        body.insert(key.into(), Value::String(message.clone()));
    }
    for (name, value) in &error.fields {
        body.insert(name.clone(), value.clone());
    }
    serde_json::to_vec(&Value::Object(body)).expect("error bodies serialize")
}

fn error_response(
    request_id: &str,
    model: &ServiceModel,
    error: &ServiceError,
) -> Response<ResponseBody> {
    let code = error.code.rsplit('#').next().unwrap_or(&error.code);
    response::rest_json(
        request_id,
        error.status,
        JSON,
        vec![("x-amzn-ErrorType".into(), code.to_owned())],
        error_body(model, error),
    )
}

/// The input document of one request.
fn input_document(
    model: &'static ServiceModel,
    operation: &'static HttpOperation,
    labels: Vec<(&'static str, String)>,
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<Value, ServiceError> {
    let input_shape = model.input_shape(operation.name);
    let mut document = match operation.input_payload {
        Some(payload) => {
            let mut document = Map::new();
            let shape = member_shape(model, input_shape, payload);
            if !body.is_empty() {
                let value = match shape.map(|s| s.kind) {
                    Some(ShapeKind::Blob) => Value::String(STANDARD.encode(body)),
                    Some(ShapeKind::String) => {
                        Value::String(String::from_utf8_lossy(body).into_owned())
                    }
                    _ => serde_json::from_slice(body).map_err(|_| unparseable(model))?,
                };
                document.insert(payload.to_owned(), value);
            }
            document
        }
        None if body.is_empty() => Map::new(),
        None => match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            _ => return Err(unparseable(model)),
        },
    };
    for (label, value) in labels {
        if let Some(binding) = operation
            .input
            .iter()
            .find(|b| b.location == Location::Uri && b.name == label)
        {
            let shape = member_shape(model, input_shape, binding.member);
            document.insert(binding.member.to_owned(), typed(shape, &value));
        }
    }
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(&value.replace('+', " ")))
        })
        .collect();
    for binding in operation.input {
        let shape = member_shape(model, input_shape, binding.member);
        match binding.location {
            Location::Query => {
                let values: Vec<&str> = query
                    .iter()
                    .filter(|(key, _)| key == binding.name)
                    .map(|(_, value)| value.as_str())
                    .collect();
                if values.is_empty() {
                    continue;
                }
                let value = match shape.map(|s| s.kind) {
                    Some(ShapeKind::List(item)) => {
                        Value::Array(values.iter().map(|v| typed(model.shape(item), v)).collect())
                    }
                    _ => typed(shape, values[0]),
                };
                document.insert(binding.member.to_owned(), value);
            }
            Location::Header => {
                if let Some(value) = parts
                    .headers
                    .get(binding.name)
                    .and_then(|v| v.to_str().ok())
                {
                    document.insert(binding.member.to_owned(), typed(shape, value));
                }
            }
            Location::Headers => {
                let prefix = binding.name.to_ascii_lowercase();
                let map: Map<String, Value> = parts
                    .headers
                    .iter()
                    .filter_map(|(name, value)| {
                        let rest = name.as_str().strip_prefix(prefix.as_str())?;
                        Some((
                            rest.to_owned(),
                            Value::String(value.to_str().ok()?.to_owned()),
                        ))
                    })
                    .collect();
                if !map.is_empty() {
                    document.insert(binding.member.to_owned(), Value::Object(map));
                }
            }
            Location::Uri | Location::StatusCode => {}
        }
    }
    Ok(Value::Object(document))
}

/// A body that is not JSON: the service's own error for it when the model has one.
fn unparseable(model: &ServiceModel) -> ServiceError {
    if model
        .shape_named("InvalidRequestContentException")
        .is_some()
    {
        ServiceError::client(
            "InvalidRequestContentException",
            "Could not parse request body into json: Could not parse payload into json",
        )
    } else {
        ServiceError::bare("SerializationException", 400)
    }
}

fn header_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// The HTTP reply for an output document.
fn output_response(
    request_id: &str,
    model: &'static ServiceModel,
    operation: &'static HttpOperation,
    output: Value,
) -> Response<ResponseBody> {
    let mut document = match output {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let mut status = operation.code;
    let mut headers = Vec::new();
    for binding in operation.output {
        let Some(value) = document.remove(binding.member) else {
            continue;
        };
        match binding.location {
            Location::StatusCode => {
                if let Some(code) = value.as_u64().and_then(|c| u16::try_from(c).ok()) {
                    status = code;
                }
            }
            Location::Header => {
                if let Some(text) = header_text(&value) {
                    headers.push((binding.name.to_owned(), text));
                }
            }
            Location::Headers => {
                if let Value::Object(map) = value {
                    for (name, value) in map {
                        if let Some(text) = header_text(&value) {
                            headers.push((format!("{}{name}", binding.name), text));
                        }
                    }
                }
            }
            Location::Uri | Location::Query => {}
        }
    }
    let (content_type, body) = match operation.output_payload {
        Some(payload) => {
            let shape = member_shape(model, model.output_shape(operation.name), payload);
            match (document.remove(payload), shape.map(|s| s.kind)) {
                (Some(Value::String(encoded)), Some(ShapeKind::Blob)) => (
                    "application/json",
                    STANDARD.decode(encoded.as_bytes()).unwrap_or_default(),
                ),
                (Some(Value::String(text)), _) => ("text/plain", text.into_bytes()),
                (Some(value), _) => (
                    JSON,
                    serde_json::to_vec(&value).expect("json values serialize"),
                ),
                (None, _) => (JSON, Vec::new()),
            }
        }
        None if model.output_shape(operation.name).is_none() => (JSON, Vec::new()),
        None => (
            JSON,
            serde_json::to_vec(&Value::Object(document)).expect("json values serialize"),
        ),
    };
    response::rest_json(request_id, status, content_type, headers, body)
}

/// Serves a restJson1 request when a registered service's bindings name it; `None` leaves the
/// request to the other protocols.
pub async fn route(
    services: &Services<'_>,
    json_services: &JsonServices,
    peer: &Peer,
    request_id: &str,
    parts: &http::request::Parts,
    body: &[u8],
) -> Option<Response<ResponseBody>> {
    let (service, operation, labels) =
        match_path(json_services, parts.method.as_str(), parts.uri.path())?;
    let model = service.model();
    let input = match input_document(model, operation, labels, parts, body) {
        Ok(input) => input,
        Err(error) => return Some(error_response(request_id, model, &error)),
    };
    let request = Request {
        service: service.as_ref(),
        parts,
        signed_body: body,
        operation: operation.name,
        input,
    };
    Some(
        match crate::json_services::run(services, peer, request_id, request).await {
            Ok(output) => output_response(request_id, model, operation, output),
            // restJson1 front doors answer every authentication failure with 403.
            Err(crate::json_services::Failure::Auth(failure)) => {
                let error = failure.json();
                let error = ServiceError::client(error.code, error.message.unwrap_or_default())
                    .with_status(403);
                error_response(request_id, model, &error)
            }
            Err(failure) => error_response(request_id, model, &failure.service()),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_literals_and_labels() {
        let segments: Vec<&str> = "2015-03-31/functions/my%3Afn/invocations"
            .split('/')
            .collect();
        let (literals, labels) = match_template(
            "/2015-03-31/functions/{FunctionName}/invocations",
            &segments,
        )
        .expect("matches");
        assert_eq!(literals, 3);
        assert_eq!(labels, vec![("FunctionName", "my:fn".to_owned())]);
        assert!(match_template("/2015-03-31/functions/{FunctionName}", &segments).is_none());
        assert!(match_template("/2015-03-31/functions", &segments).is_none());
        let greedy: Vec<&str> = "tags/a/b".split('/').collect();
        let (_, labels) = match_template("/tags/{ARN+}", &greedy).expect("greedy");
        assert_eq!(labels, vec![("ARN", "a/b".to_owned())]);
    }
}
