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

/// An operation as it will be written out: shape indices.
struct OperationOut {
    name: String,
    input: Option<usize>,
    output: Option<usize>,
    errors: Vec<usize>,
}

/// An operation as the model names it: shape names.
struct OperationRefs {
    name: String,
    input: Option<String>,
    output: Option<String>,
    errors: Vec<String>,
}

/// Everything the generated file says, before it is turned into Rust.
struct Tables {
    service_id: String,
    target_prefix: String,
    api_version: String,
    java_package: String,
    operations: Vec<OperationOut>,
    shapes: Vec<ShapeOut>,
}

/// Generates the Rust source for `model_text` (the contents of a `service-2.json`), formatted.
pub fn generate(model_text: &str, static_name: &str, rustfmt_dir: &Path) -> Result<String> {
    let model = Json::parse(model_text).context("parse model json")?;
    let tables = build_tables(&model)?;
    let source = render(&tables, static_name);
    rustfmt(&source, rustfmt_dir)
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
    let target_prefix = metadata_str("targetPrefix")?;
    let api_version = metadata_str("apiVersion")?;
    let endpoint_prefix = metadata_str("endpointPrefix")?;
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
        shapes
            .push(build_shape(name, shape, &lookup).with_context(|| format!("read shape {name}"))?);
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
        });
    }

    Ok(Tables {
        service_id,
        target_prefix,
        api_version,
        java_package,
        operations,
        shapes,
    })
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
    let errors = match operation.get("errors") {
        None => Vec::new(),
        Some(errors) => errors
            .as_array()
            .context("errors is not a list")?
            .iter()
            .map(|error| shape_of(error, "error"))
            .collect::<Result<_>>()?,
    };
    Ok(OperationRefs {
        name: name.to_owned(),
        input,
        output,
        errors,
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
                // awsJson uses `locationName` as the wire name when a member has one.
                let wire_name = member
                    .get("locationName")
                    .and_then(Json::as_str)
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
            Some(value) => value
                .as_number()
                .and_then(serde_json::Number::as_i64)
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
    })
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
    let _ = writeln!(
        w,
        "use crate::model::{{Member, Operation, ServiceModel, Shape, ShapeKind}};"
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "/// The {} service (`{}`): operations and their input, output and error shapes.",
        tables.service_id, tables.target_prefix
    );
    let _ = writeln!(
        w,
        "pub static {static_name}: ServiceModel = ServiceModel {{"
    );
    let _ = writeln!(w, "service_id: {:?},", tables.service_id);
    let _ = writeln!(w, "target_prefix: {:?},", tables.target_prefix);
    let _ = writeln!(w, "api_version: {:?},", tables.api_version);
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
            "    Operation {{ name: {:?}, input: {}, output: {}, errors: &[{}] }},",
            operation.name,
            option_text(operation.input.as_ref()),
            option_text(operation.output.as_ref()),
            errors.join(", ")
        );
    }
    let _ = writeln!(w, "];");
    let _ = writeln!(w);
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
        let _ = writeln!(w, ",");
    }
    let _ = writeln!(w, "];");
    out
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
                             "endpointPrefix": "demo"},
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
            r#"Operation { name: "Get", input: Some(0), output: Some(1), errors: &[2] },"#
        ));
        assert!(source
            .contains(r#"Operation { name: "Put", input: Some(0), output: None, errors: &[] },"#));
        assert!(source.contains("])).exception(),"));
        assert!(source.contains("])).event_stream(),"));
        assert!(source.contains("])).event(),"));
    }

    #[test]
    fn raw_string_literal_picks_enough_hashes() {
        assert_eq!(raw_string_literal(r"\d+"), r#"r"\d+""#);
        assert_eq!(raw_string_literal(r#"a"b"#), r##"r#"a"b"#"##);
        assert_eq!(raw_string_literal(r##"a"#b"##), r###"r##"a"#b"##"###);
    }
}
