//! Workspace automation, run as `cargo xtask <command>`.
//!
//! Commands:
//! - `codegen [--check] [--model PATH] [--output PATH]`: regenerate the shape tables of every
//!   service in [`SERVICES`], `crates/millrace-wire/src/generated/<service>_model.rs`, from the
//!   botocore models in `../shared/aws-models/<service>/service-2.json` (relative to the
//!   workspace root). With `--model` or `--output`, generate that one file instead (the missing
//!   one defaults to the Kinesis model or file; the static is named after the model's
//!   `serviceId`). With `--check`, write nothing and exit non-zero if a file on disk is out of
//!   date.

mod codegen;
mod ordered_json;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

const USAGE: &str = "usage: cargo xtask codegen [--check] [--model PATH] [--output PATH]";

/// The generated models: directory under `shared/aws-models/` (also the file stem of
/// `generated/<dir>_model.rs`) and the name of the `ServiceModel` static.
const SERVICES: &[(&str, &str)] = &[
    ("kinesis", "KINESIS"),
    ("iam", "IAM"),
    ("sts", "STS"),
    ("kms", "KMS"),
    ("cloudwatch", "CLOUDWATCH"),
    ("dynamodb", "DYNAMODB"),
    ("firehose", "FIREHOSE"),
    ("lambda", "LAMBDA"),
    ("logs", "LOGS"),
];

// xtask is a command-line tool: reporting on stderr is its job.
#[allow(clippy::print_stderr)]
fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(Outcome::Done(message)) => {
            eprintln!("{message}");
            ExitCode::SUCCESS
        }
        Ok(Outcome::OutOfDate(message)) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("failed to {err:#}");
            ExitCode::FAILURE
        }
    }
}

enum Outcome {
    Done(String),
    OutOfDate(String),
}

fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
}

fn run(args: Vec<String>) -> Result<Outcome> {
    let mut args = args.into_iter();
    match args.next().as_deref() {
        Some("codegen") => codegen_command(args),
        Some(other) => bail!("run unknown command {other:?}\n{USAGE}"),
        None => bail!("run without a command\n{USAGE}"),
    }
}

fn codegen_command(mut args: impl Iterator<Item = String>) -> Result<Outcome> {
    let root = workspace_root();
    let mut check = false;
    let mut model = None;
    let mut output = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--model" => {
                model = Some(
                    args.next()
                        .map(PathBuf::from)
                        .context("read --model value")?,
                )
            }
            "--output" => {
                output = Some(
                    args.next()
                        .map(PathBuf::from)
                        .context("read --output value")?,
                )
            }
            other => bail!("parse argument {other:?}\n{USAGE}"),
        }
    }

    let jobs: Vec<(PathBuf, PathBuf, Option<&str>)> = match (model, output) {
        (None, None) => SERVICES
            .iter()
            .map(|(dir, static_name)| {
                (
                    root.join(format!("../shared/aws-models/{dir}/service-2.json")),
                    root.join(format!("crates/millrace-wire/src/generated/{dir}_model.rs")),
                    Some(*static_name),
                )
            })
            .collect(),
        // One file; as before there were several services, a missing half defaults to Kinesis.
        (model, output) => vec![(
            model.unwrap_or_else(|| root.join("../shared/aws-models/kinesis/service-2.json")),
            output.unwrap_or_else(|| {
                root.join("crates/millrace-wire/src/generated/kinesis_model.rs")
            }),
            None,
        )],
    };

    let mut messages = Vec::new();
    let mut out_of_date = false;
    for (model, output, static_name) in &jobs {
        match codegen_one(&root, model, output, *static_name, check)? {
            Outcome::Done(message) => messages.push(message),
            Outcome::OutOfDate(message) => {
                out_of_date = true;
                messages.push(message);
            }
        }
    }
    let message = messages.join("\n");
    Ok(if out_of_date {
        Outcome::OutOfDate(message)
    } else {
        Outcome::Done(message)
    })
}

/// Generates `output` from `model`, or with `check` only compares them.
fn codegen_one(
    root: &Path,
    model: &Path,
    output: &Path,
    static_name: Option<&str>,
    check: bool,
) -> Result<Outcome> {
    let model_text = std::fs::read_to_string(model)
        .with_context(|| format!("read model {}", model.display()))?;
    let output_dir = output
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.to_path_buf());
    let rustfmt_dir = if output_dir.is_dir() {
        output_dir.clone()
    } else {
        root.to_path_buf()
    };
    let generated = codegen::generate(&model_text, static_name, &rustfmt_dir)
        .with_context(|| format!("generate code from {}", model.display()))?;

    let current = match std::fs::read_to_string(output) {
        Ok(text) => Some(text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(err) => {
            return Err(err).with_context(|| format!("read {}", output.display()));
        }
    };
    if current.as_deref() == Some(generated.as_str()) {
        return Ok(Outcome::Done(format!("{} is up to date", output.display())));
    }
    if check {
        return Ok(Outcome::OutOfDate(format!(
            "{} is out of date: run `cargo xtask codegen`",
            output.display()
        )));
    }
    std::fs::create_dir_all(&output_dir)
        .with_context(|| format!("create {}", output_dir.display()))?;
    std::fs::write(output, generated).with_context(|| format!("write {}", output.display()))?;
    Ok(Outcome::Done(format!("wrote {}", output.display())))
}
