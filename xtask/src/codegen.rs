//! `cargo xtask codegen`: turns a botocore `service-2.json` into static Rust shape tables.
//!
//! The output (`crates/millrace-wire/src/generated/kinesis_model.rs`) holds, for every operation,
//! its input shape, output shape and modelled errors and, for every shape reachable from an
//! input, an output or an error, its type, members (wire name → shape index), required members,
//! min/max, pattern (as AWS prints it), enum values and the `exception` / `eventstream` / `event`
//! traits. The types it fills in live in `millrace_wire::model`. Documentation strings are dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};

use crate::ordered_json::Json;

/// A shape as it will be written out.
struct ShapeOut {
    name: String,
    kind: KindOut,
    min: Option<i64>,
    max: Option<i64>,
    pattern: Option<String>,
    enum_values: Vec<String>,
    /// `exception: true`: a modelled error.
    exception: bool,
    /// `eventstream: true`: the union of events sent on an event stream.
    event_stream: bool,
    /// `event: true`: one event type of an event stream.
    event: bool,
    /// The `error` trait: wire code, HTTP status, sender fault.
    error: Option<(String, u16, bool)>,
    /// `flattened: true` on a list or map (awsQuery / XML).
    flattened: bool,
    /// `locationName` of a list's member (awsQuery / XML item name).
    member_name: Option<String>,
    /// `locationName`s of a map's key and value (awsQuery / XML entry names).
    entry_names: Option<(String, String)>,
}

enum KindOut {
    Structure(Vec<MemberOut>),
    List(usize),
    Map { key: usize, value: usize },
    Scalar(&'static str),
}

struct MemberOut {
    wire_name: String,
    shape: usize,
    required: bool,
}

/// A member bound to a part of the HTTP message (restJson1): member name, `location`,
/// `locationName`.
struct BindingOut {
    member: String,
    location: &'static str,
    name: String,
}

/// An operation's restJson1 HTTP trait and its members' bindings.
struct HttpOut {
    method: String,
    uri: String,
    code: u16,
    input: Vec<BindingOut>,
    input_payload: Option<String>,
    output: Vec<BindingOut>,
    output_payload: Option<String>,
}

/// An operation as it will be written out: shape indices.
struct OperationOut {
    name: String,
    input: Option<usize>,
    output: Option<usize>,
    errors: Vec<usize>,
    result_wrapper: Option<String>,
    /// restJson1 only.
    http: Option<HttpOut>,
}

/// An operation as the model names it: shape names.
struct OperationRefs {
    name: String,
    input: Option<String>,
    output: Option<String>,
    errors: Vec<String>,
    /// `output.resultWrapper` (awsQuery).
    result_wrapper: Option<String>,
    /// `http`: method, request URI and success code (restJson1).
    http: Option<(String, String, u16)>,
}

/// Everything the generated file says, before it is turned into Rust.
struct Tables {
    service_id: String,
    target_prefix: String,
    api_version: String,
    signing_name: String,
    json_version: String,
    /// The variant of `millrace_wire::model::Protocol`.
    protocol: &'static str,
    xml_namespace: String,
    java_package: String,
    operations: Vec<OperationOut>,
    shapes: Vec<ShapeOut>,
}

/// Generates the Rust source for `model_text` (the contents of a `service-2.json`), formatted.
/// The `ServiceModel` static is called `static_name`, by default the model's `serviceId` in
/// upper case (`IAM`, `STS`, `KINESIS`).
pub fn generate(model_text: &str, static_name: Option<&str>, rustfmt_dir: &Path) -> Result<String> {
    let model = Json::parse(model_text).context("parse model json")?;
    let tables = build_tables(&model)?;
    let static_name = match static_name {
        Some(name) => name.to_owned(),
        None => default_static_name(&tables.service_id),
    };
    let source = render(&tables, &static_name);
    rustfmt(&source, rustfmt_dir)
}

/// `serviceId` as a Rust static name: upper case, anything but letters and digits as `_`.
fn default_static_name(service_id: &str) -> String {
    service_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn build_tables(model: &Json) -> Result<Tables> {
    let metadata = model.get("metadata").context("model has no metadata")?;
    let metadata_str = |key: &str| -> Result<String> {
        metadata
            .get(key)
            .and_then(Json::as_str)
            .map(str::to_owned)
            .with_context(|| format!("metadata has no string {key}"))
    };
    let service_id = metadata_str("serviceId")?;
    let api_version = metadata_str("apiVersion")?;
    // A service that lists several protocols (CloudWatch: smithy-rpc-v2-cbor, json, query) is
    // described by its JSON one: rpc-v2-cbor is transcoded to the same JSON documents.
    let listed = |name: &str| {
        metadata
            .get("protocols")
            .and_then(Json::as_array)
            .is_some_and(|list| list.iter().any(|p| p.as_str() == Some(name)))
    };
    let protocol = match metadata_str("protocol")?.as_str() {
        "json" => "Json",
        "query" => "Query",
        "rest-json" => "RestJson",
        _ if listed("json") => "Json",
        other => bail!("protocol {other} is not supported"),
    };
    // awsJson services name the operation in `X-Amz-Target`, awsQuery ones in `Action`; only
    // the first have a target prefix, and only the second an XML namespace.
    let optional_metadata = |key: &str| -> Result<String> {
        match metadata.get(key) {
            None => Ok(String::new()),
            Some(_) => metadata_str(key),
        }
    };
    let target_prefix = optional_metadata("targetPrefix")?;
    let xml_namespace = optional_metadata("xmlNamespace")?;
    if protocol == "RestJson" {
        // Operations are named by method and path, errors by `x-amzn-ErrorType`.
    } else if protocol == "Json" {
        ensure!(
            !target_prefix.is_empty(),
            "metadata has no string targetPrefix"
        );
    } else {
        ensure!(
            !xml_namespace.is_empty(),
            "metadata has no string xmlNamespace"
        );
    }
    let endpoint_prefix = metadata_str("endpointPrefix")?;
    let signing_name = match optional_metadata("signingName")? {
        name if name.is_empty() => endpoint_prefix.clone(),
        name => name,
    };
    let json_version = optional_metadata("jsonVersion")?;
    let java_package = format!(
        "com.amazonaws.{}.v{}",
        endpoint_prefix.replace('-', ""),
        api_version.replace('-', "")
    );

    let shapes_json: BTreeMap<&str, &Json> = model
        .get("shapes")
        .and_then(Json::as_object)
        .context("model has no shapes object")?
        .iter()
        .map(|(name, shape)| (name.as_str(), shape))
        .collect();

    let mut operation_refs: Vec<OperationRefs> = Vec::new();
    for (name, operation) in model
        .get("operations")
        .and_then(Json::as_object)
        .context("model has no operations object")?
    {
        operation_refs.push(
            read_operation(name, operation).with_context(|| format!("read operation {name}"))?,
        );
    }
    operation_refs.sort_by(|a, b| a.name.cmp(&b.name));

    // Every shape reachable from an input, an output or an error, sorted by name so that
    // indices are stable.
    let mut reachable = BTreeSet::new();
    let mut pending: Vec<String> = Vec::new();
    for operation in &operation_refs {
        pending.extend(operation.input.iter().cloned());
        pending.extend(operation.output.iter().cloned());
        pending.extend(operation.errors.iter().cloned());
    }
    while let Some(name) = pending.pop() {
        if !reachable.insert(name.clone()) {
            continue;
        }
        let shape = shapes_json
            .get(name.as_str())
            .with_context(|| format!("shape {name} is referenced but not defined"))?;
        pending.extend(referenced_shapes(&name, shape)?);
    }
    let index_of: BTreeMap<&str, usize> = reachable
        .iter()
        .enumerate()
        .map(|(index, name)| (name.as_str(), index))
        .collect();
    let lookup = |name: &str| -> Result<usize> {
        index_of
            .get(name)
            .copied()
            .with_context(|| format!("shape {name} is not reachable"))
    };

    let mut shapes = Vec::with_capacity(reachable.len());
    for name in &reachable {
        let shape = shapes_json
            .get(name.as_str())
            .with_context(|| format!("shape {name} is not defined"))?;
        shapes.push(
            build_shape(name, shape, &lookup, protocol == "RestJson")
                .with_context(|| format!("read shape {name}"))?,
        );
    }

    let optional_lookup = |name: Option<&String>| -> Result<Option<usize>> {
        name.map(|name| lookup(name)).transpose()
    };
    let mut operations = Vec::with_capacity(operation_refs.len());
    for operation in &operation_refs {
        operations.push(OperationOut {
            name: operation.name.clone(),
            input: optional_lookup(operation.input.as_ref())?,
            output: optional_lookup(operation.output.as_ref())?,
            errors: operation
                .errors
                .iter()
                .map(|error| lookup(error))
                .collect::<Result<_>>()?,
            result_wrapper: operation.result_wrapper.clone(),
            http: match (&operation.http, protocol) {
                (Some((method, uri, code)), "RestJson") => Some(HttpOut {
                    method: method.clone(),
                    uri: uri.clone(),
                    code: *code,
                    input: bindings(&shapes_json, operation.input.as_deref())?,
                    input_payload: payload_member(&shapes_json, operation.input.as_deref()),
                    output: bindings(&shapes_json, operation.output.as_deref())?,
                    output_payload: payload_member(&shapes_json, operation.output.as_deref()),
                }),
                (None, "RestJson") => bail!("operation {} has no http trait", operation.name),
                _ => None,
            },
        });
    }

    Ok(Tables {
        service_id,
        target_prefix,
        api_version,
        signing_name,
        json_version,
        protocol,
        xml_namespace,
        java_package,
        operations,
        shapes,
    })
}

/// The members of structure `shape` bound to the URI, the query string, headers or the status
/// code, in model order.
fn bindings(shapes: &BTreeMap<&str, &Json>, shape: Option<&str>) -> Result<Vec<BindingOut>> {
    let Some(shape) = shape.and_then(|name| shapes.get(name)) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (member_name, member) in shape
        .get("members")
        .and_then(Json::as_object)
        .unwrap_or(&[])
    {
        let Some(location) = member.get("location").and_then(Json::as_str) else {
            continue;
        };
        let location = match location {
            "uri" => "Uri",
            "querystring" => "Query",
            "header" => "Header",
            "headers" => "Headers",
            "statusCode" => "StatusCode",
            other => bail!("member {member_name} has location {other}, which is not supported"),
        };
        let name = member
            .get("locationName")
            .and_then(Json::as_str)
            .unwrap_or(member_name);
        out.push(BindingOut {
            member: member_name.clone(),
            location,
            name: name.to_owned(),
        });
    }
    Ok(out)
}

/// The structure's `payload` member: the one member that is the whole HTTP body.
fn payload_member(shapes: &BTreeMap<&str, &Json>, shape: Option<&str>) -> Option<String> {
    let shape = shapes.get(shape?)?;
    shape
        .get("payload")
        .and_then(Json::as_str)
        .map(str::to_owned)
}

/// The shape names an operation refers to: `input`, `output` and `errors`, each `{"shape": name}`.
fn read_operation(name: &str, operation: &Json) -> Result<OperationRefs> {
    let shape_of = |reference: &Json, what: &str| -> Result<String> {
        reference
            .get("shape")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .with_context(|| format!("{what} has no shape"))
    };
    let input = match operation.get("input") {
        None => None,
        Some(input) => Some(shape_of(input, "input")?),
    };
    let output = match operation.get("output") {
        None => None,
        Some(output) => Some(shape_of(output, "output")?),
    };
    let result_wrapper = match operation
        .get("output")
        .and_then(|output| output.get("resultWrapper"))
    {
        None => None,
        Some(wrapper) => Some(
            wrapper
                .as_str()
                .context("resultWrapper is not a string")?
                .to_owned(),
        ),
    };
    let errors = match operation.get("errors") {
        None => Vec::new(),
        Some(errors) => errors
            .as_array()
            .context("errors is not a list")?
            .iter()
            .map(|error| shape_of(error, "error"))
            .collect::<Result<_>>()?,
    };
    let http = match operation.get("http") {
        None => None,
        Some(http) => {
            let text = |key: &str| -> Result<String> {
                http.get(key)
                    .and_then(Json::as_str)
                    .map(str::to_owned)
                    .with_context(|| format!("http trait has no string {key}"))
            };
            let code = match http.get("responseCode") {
                None => 200,
                Some(code) => code
                    .as_number()
                    .and_then(serde_json::Number::as_u64)
                    .and_then(|code| u16::try_from(code).ok())
                    .context("responseCode is not a status")?,
            };
            Some((text("method")?, text("requestUri")?, code))
        }
    };
    Ok(OperationRefs {
        name: name.to_owned(),
        input,
        output,
        errors,
        result_wrapper,
        http,
    })
}

/// Names of the shapes that `shape` refers to (members, list member, map key and value).
fn referenced_shapes(name: &str, shape: &Json) -> Result<Vec<String>> {
    let target = |reference: &Json, what: &str| -> Result<String> {
        reference
            .get("shape")
            .and_then(Json::as_str)
            .map(str::to_owned)
            .with_context(|| format!("{what} of shape {name} has no target shape"))
    };
    let mut names = Vec::new();
    if let Some(members) = shape.get("members").and_then(Json::as_object) {
        for (member_name, member) in members {
            names.push(target(member, member_name)?);
        }
    }
    for part in ["member", "key", "value"] {
        if let Some(reference) = shape.get(part) {
            names.push(target(reference, part)?);
        }
    }
    Ok(names)
}

fn build_shape(
    name: &str,
    shape: &Json,
    lookup: &dyn Fn(&str) -> Result<usize>,
    rest: bool,
) -> Result<ShapeOut> {
    let type_name = shape
        .get("type")
        .and_then(Json::as_str)
        .context("shape has no type")?;
    let target = |part: &str| -> Result<usize> {
        let reference = shape
            .get(part)
            .and_then(|reference| reference.get("shape"))
            .and_then(Json::as_str)
            .with_context(|| format!("{type_name} shape has no {part}"))?;
        lookup(reference)
    };
    let kind = match type_name {
        "structure" => {
            let required: BTreeSet<&str> = match shape.get("required") {
                None => BTreeSet::new(),
                Some(required) => required
                    .as_array()
                    .context("required is not a list")?
                    .iter()
                    .map(|name| name.as_str().context("required entry is not a string"))
                    .collect::<Result<_>>()?,
            };
            let members_json = match shape.get("members") {
                None => &[][..],
                Some(members) => members.as_object().context("members is not an object")?,
            };
            let mut members = Vec::with_capacity(members_json.len());
            for (member_name, member) in members_json {
                let shape_name = member
                    .get("shape")
                    .and_then(Json::as_str)
                    .with_context(|| format!("member {member_name} has no shape"))?;
                // awsJson and awsQuery both use `locationName` as the wire name when a member
                // has one (JSON key, query parameter, XML element).
                // restJson1: a member bound to the URI, a header or the query string keeps its
                // own name in the document; its `locationName` is the HTTP name.
                let bound = rest && member.get("location").is_some();
                let wire_name = member
                    .get("locationName")
                    .and_then(Json::as_str)
                    .filter(|_| !bound)
                    .unwrap_or(member_name);
                members.push(MemberOut {
                    wire_name: wire_name.to_owned(),
                    shape: lookup(shape_name)?,
                    required: required.contains(member_name.as_str()),
                });
            }
            for required_name in &required {
                ensure!(
                    members_json
                        .iter()
                        .any(|(member_name, _)| member_name == required_name),
                    "required member {required_name} is not a member"
                );
            }
            KindOut::Structure(members)
        }
        "list" => KindOut::List(target("member")?),
        "map" => KindOut::Map {
            key: target("key")?,
            value: target("value")?,
        },
        "string" => KindOut::Scalar("String"),
        "blob" => KindOut::Scalar("Blob"),
        "boolean" => KindOut::Scalar("Boolean"),
        "integer" => KindOut::Scalar("Integer"),
        "long" => KindOut::Scalar("Long"),
        "float" => KindOut::Scalar("Float"),
        "double" => KindOut::Scalar("Double"),
        "timestamp" => KindOut::Scalar("Timestamp"),
        other => bail!("shape type {other} is not supported"),
    };
    let bound = |key: &str| -> Result<Option<i64>> {
        match shape.get(key) {
            None => Ok(None),
            // Lambda's `Weight` bounds are written as floats (0.0, 1.0): whole numbers pass.
            Some(value) => value
                .as_number()
                .and_then(|number| {
                    number.as_i64().or_else(|| {
                        number
                            .as_f64()
                            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                            .map(|f| f as i64)
                    })
                })
                .map(Some)
                .with_context(|| format!("{key} is not an integer")),
        }
    };
    let pattern = match shape.get("pattern") {
        None => None,
        Some(pattern) => Some(display_pattern(
            pattern.as_str().context("pattern is not a string")?,
        )),
    };
    let enum_values = match shape.get("enum") {
        None => Vec::new(),
        Some(values) => values
            .as_array()
            .context("enum is not a list")?
            .iter()
            .map(|value| {
                value
                    .as_str()
                    .map(str::to_owned)
                    .context("enum value is not a string")
            })
            .collect::<Result<_>>()?,
    };
    let flag = |key: &str| -> Result<bool> {
        match shape.get(key) {
            None => Ok(false),
            Some(Json::Bool(value)) => Ok(*value),
            Some(_) => bail!("{key} is not a boolean"),
        }
    };
    let error = match shape.get("error") {
        None => None,
        Some(error) => Some(read_error_trait(name, error).context("read error trait")?),
    };
    let location_name = |part: &str| -> Result<Option<String>> {
        match shape
            .get(part)
            .and_then(|reference| reference.get("locationName"))
        {
            None => Ok(None),
            Some(name) => Ok(Some(
                name.as_str()
                    .with_context(|| format!("{part} locationName is not a string"))?
                    .to_owned(),
            )),
        }
    };
    let member_name = location_name("member")?;
    let entry_names = match (location_name("key")?, location_name("value")?) {
        (None, None) => None,
        (key, value) => Some((
            key.unwrap_or_else(|| "key".to_owned()),
            value.unwrap_or_else(|| "value".to_owned()),
        )),
    };
    Ok(ShapeOut {
        name: name.to_owned(),
        kind,
        min: bound("min")?,
        max: bound("max")?,
        pattern,
        enum_values,
        exception: flag("exception")?,
        event_stream: flag("eventstream")?,
        event: flag("event")?,
        error,
        flattened: flag("flattened")?,
        member_name,
        entry_names,
    })
}

/// The `error` trait of an error shape: `{"code": ..., "httpStatusCode": ..., "senderFault": ...}`.
/// `senderFault` defaults to false; a trait without `code` (CloudWatch's `ConflictException`) uses
/// the shape's name, as the query protocol does.
fn read_error_trait(shape_name: &str, error: &Json) -> Result<(String, u16, bool)> {
    let code = match error.get("code") {
        None => shape_name,
        Some(code) => code.as_str().context("error trait code is not a string")?,
    };
    let status = error
        .get("httpStatusCode")
        .and_then(Json::as_number)
        .and_then(serde_json::Number::as_u64)
        .and_then(|status| u16::try_from(status).ok())
        .context("error trait has no httpStatusCode")?;
    let sender_fault = match error.get("senderFault") {
        None => false,
        Some(Json::Bool(value)) => *value,
        Some(_) => bail!("senderFault is not a boolean"),
    };
    Ok((code.to_owned(), status, sender_fault))
}

/// The pattern as AWS prints it in ValidationException messages: without the `^`/`$` anchors
/// botocore adds, and without the group that wraps the whole expression when both anchors were
/// there (`^(0|([1-9]\d{0,38}))$` is printed `0|([1-9]\d{0,38})`).
pub fn display_pattern(pattern: &str) -> String {
    let leading = pattern.strip_prefix('^');
    let body = leading.unwrap_or(pattern);
    let trailing = strip_unescaped_dollar(body);
    let body = trailing.unwrap_or(body);
    if leading.is_some() && trailing.is_some() && group_spans_whole(body) {
        return body[1..body.len() - 1].to_owned();
    }
    body.to_owned()
}

/// `pattern` without a final `$`, unless that `$` is escaped (`\$`).
fn strip_unescaped_dollar(pattern: &str) -> Option<&str> {
    let body = pattern.strip_suffix('$')?;
    let backslashes = body.chars().rev().take_while(|&c| c == '\\').count();
    (backslashes % 2 == 0).then_some(body)
}

/// Whether `pattern` is `( ... )` with the first parenthesis closed by the last character.
fn group_spans_whole(pattern: &str) -> bool {
    if !pattern.starts_with('(') || !pattern.ends_with(')') {
        return false;
    }
    let mut depth = 0usize;
    let mut in_class = 0usize;
    let mut chars = pattern.char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '[' => in_class += 1,
            ']' if in_class > 0 => in_class -= 1,
            '(' if in_class == 0 => depth += 1,
            ')' if in_class == 0 => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return offset == pattern.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

fn render(tables: &Tables, static_name: &str) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail, hence the ignored results.
    let w = &mut out;
    let _ = writeln!(
        w,
        "//! {} shapes from the botocore model, generated by `cargo xtask codegen`: do not edit.",
        tables.service_id
    );
    let _ = writeln!(w, "//!");
    let _ = writeln!(
        w,
        "//! Structure only, no documentation: every shape reachable from an operation's input, output"
    );
    let _ = writeln!(
        w,
        "//! or modelled errors. Shapes are sorted by name and refer to each other by their index (the"
    );
    let _ = writeln!(
        w,
        "//! `/* n */` comments); patterns are unanchored, as AWS prints them in messages."
    );
    let _ = writeln!(w, "// @generated");
    let _ = writeln!(w);
    if tables.protocol == "RestJson" {
        let _ = writeln!(
            w,
            "use crate::model::{{HttpBinding, HttpOperation, Location, Member, Operation, Protocol, ServiceModel, Shape, ShapeKind}};"
        );
    } else {
        let _ = writeln!(
            w,
            "use crate::model::{{Member, Operation, Protocol, ServiceModel, Shape, ShapeKind}};"
        );
    }
    let _ = writeln!(w);
    if tables.protocol == "RestJson" {
        let _ = writeln!(
            w,
            "/// The {} service (restJson1, version `{}`): operations and their input, output and error shapes.",
            tables.service_id, tables.api_version
        );
    } else if tables.target_prefix.is_empty() {
        let _ = writeln!(
            w,
            "/// The {} service (awsQuery, version `{}`): operations and their input, output and error shapes.",
            tables.service_id, tables.api_version
        );
    } else {
        let _ = writeln!(
            w,
            "/// The {} service (`{}`): operations and their input, output and error shapes.",
            tables.service_id, tables.target_prefix
        );
    }
    let _ = writeln!(
        w,
        "pub static {static_name}: ServiceModel = ServiceModel {{"
    );
    let _ = writeln!(w, "service_id: {:?},", tables.service_id);
    let _ = writeln!(w, "target_prefix: {:?},", tables.target_prefix);
    let _ = writeln!(w, "api_version: {:?},", tables.api_version);
    let _ = writeln!(w, "signing_name: {:?},", tables.signing_name);
    let _ = writeln!(w, "json_version: {:?},", tables.json_version);
    let _ = writeln!(w, "protocol: Protocol::{},", tables.protocol);
    let _ = writeln!(w, "xml_namespace: {:?},", tables.xml_namespace);
    let _ = writeln!(w, "java_package: {:?},", tables.java_package);
    let _ = writeln!(w, "operations: OPERATIONS,");
    let _ = writeln!(w, "shapes: SHAPES,");
    let _ = writeln!(w, "}};");
    let _ = writeln!(w);

    // The two tables are laid out by hand, one entry a line, and kept that way by rustfmt::skip:
    // rustfmt would spread every struct literal over several lines.
    let _ = writeln!(w, "#[rustfmt::skip]");
    let _ = writeln!(w, "static OPERATIONS: &[Operation] = &[");
    for operation in &tables.operations {
        let errors: Vec<String> = operation
            .errors
            .iter()
            .map(|error| error.to_string())
            .collect();
        let _ = writeln!(
            w,
            "    Operation {{ name: {:?}, input: {}, output: {}, errors: &[{}], result_wrapper: {} }},",
            operation.name,
            option_text(operation.input.as_ref()),
            option_text(operation.output.as_ref()),
            errors.join(", "),
            option_text(
                operation
                    .result_wrapper
                    .as_ref()
                    .map(|wrapper| format!("{wrapper:?}"))
                    .as_ref()
            )
        );
    }
    let _ = writeln!(w, "];");
    let _ = writeln!(w);
    if tables.protocol == "RestJson" {
        render_http(w, tables);
    }
    let _ = writeln!(w, "#[rustfmt::skip]");
    let _ = writeln!(w, "static SHAPES: &[Shape] = &[");
    for (index, shape) in tables.shapes.iter().enumerate() {
        let _ = write!(w, "    /* {index} */ Shape::new({:?}, ", shape.name);
        match &shape.kind {
            KindOut::Structure(members) if members.is_empty() => {
                let _ = write!(w, "ShapeKind::Structure(&[]))");
            }
            KindOut::Structure(members) => {
                let _ = writeln!(w, "ShapeKind::Structure(&[");
                for member in members {
                    let constructor = if member.required {
                        "required"
                    } else {
                        "optional"
                    };
                    let _ = writeln!(
                        w,
                        "        Member::{constructor}({:?}, {}),",
                        member.wire_name, member.shape
                    );
                }
                let _ = write!(w, "    ]))");
            }
            KindOut::List(member) => {
                let _ = write!(w, "ShapeKind::List({member}))");
            }
            KindOut::Map { key, value } => {
                let _ = write!(w, "ShapeKind::Map {{ key: {key}, value: {value} }})");
            }
            KindOut::Scalar(kind) => {
                let _ = write!(w, "ShapeKind::{kind})");
            }
        }
        if let Some(min) = shape.min {
            let _ = write!(w, ".min({min})");
        }
        if let Some(max) = shape.max {
            let _ = write!(w, ".max({max})");
        }
        if let Some(pattern) = &shape.pattern {
            let _ = write!(w, ".pattern({})", raw_string_literal(pattern));
        }
        if !shape.enum_values.is_empty() {
            let values: Vec<String> = shape
                .enum_values
                .iter()
                .map(|value| format!("{value:?}"))
                .collect();
            let _ = write!(w, ".enum_values(&[{}])", values.join(", "));
        }
        if shape.exception {
            let _ = write!(w, ".exception()");
        }
        if shape.event_stream {
            let _ = write!(w, ".event_stream()");
        }
        if shape.event {
            let _ = write!(w, ".event()");
        }
        if let Some((code, status, sender_fault)) = &shape.error {
            let _ = write!(w, ".error({code:?}, {status}, {sender_fault})");
        }
        if shape.flattened {
            let _ = write!(w, ".flattened()");
        }
        if let Some(name) = &shape.member_name {
            let _ = write!(w, ".member_name({name:?})");
        }
        if let Some((key, value)) = &shape.entry_names {
            let _ = write!(w, ".entry_names({key:?}, {value:?})");
        }
        let _ = writeln!(w, ",");
    }
    let _ = writeln!(w, "];");
    out
}

/// The restJson1 table: one `HttpOperation` per operation, in the order of `OPERATIONS`.
fn render_http(w: &mut String, tables: &Tables) {
    let bindings = |list: &[BindingOut]| -> String {
        let items: Vec<String> = list
            .iter()
            .map(|b| {
                format!(
                    "HttpBinding {{ member: {:?}, location: Location::{}, name: {:?} }}",
                    b.member, b.location, b.name
                )
            })
            .collect();
        format!("&[{}]", items.join(", "))
    };
    let quoted = |value: &Option<String>| match value {
        Some(value) => format!("Some({value:?})"),
        None => "None".to_owned(),
    };
    let _ = writeln!(
        w,
        "/// The HTTP binding of every operation (restJson1), in the order of the operations."
    );
    let _ = writeln!(w, "#[rustfmt::skip]");
    let _ = writeln!(w, "pub static HTTP: &[HttpOperation] = &[");
    for operation in &tables.operations {
        let Some(http) = &operation.http else {
            continue;
        };
        let _ = writeln!(
            w,
            "    HttpOperation {{ name: {:?}, method: {:?}, uri: {:?}, code: {}, input: {}, input_payload: {}, output: {}, output_payload: {} }},",
            operation.name,
            http.method,
            http.uri,
            http.code,
            bindings(&http.input),
            quoted(&http.input_payload),
            bindings(&http.output),
            quoted(&http.output_payload),
        );
    }
    let _ = writeln!(w, "];");
    let _ = writeln!(w);
}

fn option_text<T: std::fmt::Display>(value: Option<&T>) -> String {
    match value {
        Some(value) => format!("Some({value})"),
        None => "None".to_owned(),
    }
}

/// `text` as a Rust raw string literal with enough `#`s (patterns are full of backslashes).
fn raw_string_literal(text: &str) -> String {
    let mut hashes = String::new();
    while text.contains(&format!("\"{hashes}")) {
        hashes.push('#');
    }
    format!("r{hashes}\"{text}\"{hashes}")
}

/// Formats `source` with rustfmt, run from `dir` so it picks up the same configuration as
/// `cargo fmt` does for the generated file.
fn rustfmt(source: &str, dir: &Path) -> Result<String> {
    let mut child = Command::new(std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into()))
        .args(["--edition", "2021", "--emit", "stdout"])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start rustfmt")?;
    let mut stdin = child.stdin.take().context("open rustfmt stdin")?;
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().context("wait for rustfmt")?;
    match writer.join() {
        Ok(result) => result.context("write to rustfmt")?,
        Err(_) => bail!("rustfmt writer thread panicked"),
    }
    ensure!(
        output.status.success(),
        "rustfmt failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8(output.stdout).context("read rustfmt output")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_pattern_strips_botocore_anchors() {
        assert_eq!(
            display_pattern(r"^(0|([1-9]\d{0,38}))$"),
            r"0|([1-9]\d{0,38})"
        );
        assert_eq!(
            display_pattern(r"^(0|([1-9]\d{0,128}))$"),
            r"0|([1-9]\d{0,128})"
        );
        assert_eq!(display_pattern("^[a-z0-9]+$"), "[a-z0-9]+");
        assert_eq!(display_pattern("[a-zA-Z0-9_.-]+"), "[a-zA-Z0-9_.-]+");
        // The first group does not span the whole pattern: keep it.
        assert_eq!(
            display_pattern(r"^(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+"),
            r"(arn):aws.*:kinesis:.*:\d{12}:.*stream\/[a-zA-Z0-9_.-]+"
        );
        assert_eq!(display_pattern("^(a)|(b)$"), "(a)|(b)");
        assert_eq!(display_pattern(r"^a\$"), r"a\$");
        assert_eq!(display_pattern(r"^([()])$"), "[()]");
    }

    #[test]
    fn tables_cover_outputs_errors_and_traits() {
        let model = Json::parse(
            r#"{
                "metadata": {"serviceId": "Demo", "targetPrefix": "Demo_1", "apiVersion": "2020-01-01",
                             "endpointPrefix": "demo", "protocol": "json"},
                "operations": {
                    "Get": {"input": {"shape": "GetInput"}, "output": {"shape": "GetOutput"},
                            "errors": [{"shape": "Missing"}]},
                    "Put": {"input": {"shape": "GetInput"}}
                },
                "shapes": {
                    "GetInput": {"type": "structure", "members": {"Name": {"shape": "Text"}}},
                    "GetOutput": {"type": "structure", "members": {"Events": {"shape": "Stream"}}},
                    "Stream": {"type": "structure", "eventstream": true,
                               "members": {"Tick": {"shape": "Tick"}, "Missing": {"shape": "Missing"}}},
                    "Tick": {"type": "structure", "event": true, "members": {"At": {"shape": "When"}}},
                    "Missing": {"type": "structure", "exception": true,
                                "members": {"message": {"shape": "Text"}}},
                    "Text": {"type": "string"},
                    "When": {"type": "timestamp"},
                    "Unused": {"type": "blob"}
                }
            }"#,
        )
        .expect("parse test model");
        let tables = build_tables(&model).expect("build tables");
        let names: Vec<&str> = tables
            .shapes
            .iter()
            .map(|shape| shape.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "GetInput",
                "GetOutput",
                "Missing",
                "Stream",
                "Text",
                "Tick",
                "When"
            ],
            "shapes reachable from outputs and errors are kept, unreachable ones dropped"
        );
        let source = render(&tables, "DEMO");
        assert!(source.contains(
            r#"Operation { name: "Get", input: Some(0), output: Some(1), errors: &[2], result_wrapper: None },"#
        ));
        assert!(source
            .contains(r#"Operation { name: "Put", input: Some(0), output: None, errors: &[], result_wrapper: None },"#));
        assert!(source.contains("protocol: Protocol::Json,"));
        assert!(source.contains("])).exception(),"));
        assert!(source.contains("])).event_stream(),"));
        assert!(source.contains("])).event(),"));
    }

    #[test]
    fn query_tables_carry_namespace_wrappers_and_xml_names() {
        let model = Json::parse(
            r#"{
                "metadata": {"serviceId": "Q", "apiVersion": "2011-01-01", "endpointPrefix": "q",
                             "protocol": "query", "xmlNamespace": "https://q.example/doc/"},
                "operations": {
                    "Get": {"input": {"shape": "GetInput"},
                            "output": {"shape": "GetOutput", "resultWrapper": "GetResult"},
                            "errors": [{"shape": "Gone"}]}
                },
                "shapes": {
                    "GetInput": {"type": "structure", "members": {"Names": {"shape": "Names"}}},
                    "GetOutput": {"type": "structure", "members": {"Attrs": {"shape": "Attrs"}}},
                    "Names": {"type": "list", "member": {"shape": "Text", "locationName": "Name"},
                              "flattened": true},
                    "Attrs": {"type": "map", "key": {"shape": "Text", "locationName": "K"},
                              "value": {"shape": "Text"}},
                    "Gone": {"type": "structure", "exception": true, "members": {},
                             "error": {"code": "NoSuchThing", "httpStatusCode": 404, "senderFault": true}},
                    "Text": {"type": "string"}
                }
            }"#,
        )
        .expect("parse test model");
        let tables = build_tables(&model).expect("build tables");
        let source = render(&tables, "Q");
        assert!(source.contains("target_prefix: \"\","));
        assert!(source.contains("protocol: Protocol::Query,"));
        assert!(source.contains("xml_namespace: \"https://q.example/doc/\","));
        assert!(source.contains(r#"result_wrapper: Some("GetResult") },"#));
        assert!(source.contains(r#".exception().error("NoSuchThing", 404, true),"#));
        assert!(source.contains(r#"ShapeKind::List(5)).flattened().member_name("Name"),"#));
        assert!(source.contains(r#".entry_names("K", "value"),"#));
    }

    #[test]
    fn rest_json_tables_carry_http_bindings() {
        let model = Json::parse(
            r#"{
                "metadata": {"serviceId": "R", "apiVersion": "2015-03-31", "endpointPrefix": "r",
                             "protocol": "rest-json"},
                "operations": {
                    "Call": {"http": {"method": "POST", "requestUri": "/2015-03-31/things/{Name}/calls",
                                      "responseCode": 202},
                             "input": {"shape": "CallInput"}, "output": {"shape": "CallOutput"}}
                },
                "shapes": {
                    "CallInput": {"type": "structure", "required": ["Name"], "payload": "Body",
                                  "members": {"Name": {"shape": "Text", "location": "uri", "locationName": "Name"},
                                              "Mode": {"shape": "Text", "location": "header", "locationName": "X-Mode"},
                                              "Limit": {"shape": "Count", "location": "querystring", "locationName": "limit"},
                                              "Body": {"shape": "Data"}}},
                    "CallOutput": {"type": "structure",
                                   "members": {"Status": {"shape": "Count", "location": "statusCode"},
                                               "Value": {"shape": "Text"}}},
                    "Text": {"type": "string"},
                    "Count": {"type": "integer", "min": 0.0, "max": 10.0},
                    "Data": {"type": "blob"}
                }
            }"#,
        )
        .expect("parse test model");
        let tables = build_tables(&model).expect("build tables");
        let source = render(&tables, "R");
        assert!(source.contains("protocol: Protocol::RestJson,"));
        assert!(source.contains(r#"HttpOperation { name: "Call", method: "POST", uri: "/2015-03-31/things/{Name}/calls", code: 202, "#));
        assert!(source.contains(
            r#"HttpBinding { member: "Mode", location: Location::Header, name: "X-Mode" }"#
        ));
        assert!(source.contains(
            r#"HttpBinding { member: "Limit", location: Location::Query, name: "limit" }"#
        ));
        assert!(source.contains(r#"input_payload: Some("Body")"#));
        assert!(source.contains(
            r#"HttpBinding { member: "Status", location: Location::StatusCode, name: "Status" }"#
        ));
        // Bound members keep their own names in the document; whole-number float bounds pass.
        assert!(source.contains(r#"Member::optional("Limit", "#));
        assert!(source.contains(".min(0).max(10)"));
    }

    #[test]
    fn raw_string_literal_picks_enough_hashes() {
        assert_eq!(raw_string_literal(r"\d+"), r#"r"\d+""#);
        assert_eq!(raw_string_literal(r#"a"b"#), r##"r#"a"b"#"##);
        assert_eq!(raw_string_literal(r##"a"#b"##), r###"r##"a"#b"##"###);
    }
}
