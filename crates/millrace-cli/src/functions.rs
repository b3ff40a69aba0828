//! Wiring of the function services: CloudWatch Logs (`logs.redb`) and Lambda (`lambda/`), whose
//! function logs go to the Logs service's `/aws/lambda/<name>` groups.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use millrace_lambda::{Lambda, LambdaConfig, LogSink, RuntimeConfig};
use millrace_logs::Logs;
use millrace_server::Engine;

/// The Lambda flags of `millrace serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct FunctionArgs {
    /// Python interpreter for `python3.x` functions; it must be able to `import awslambdaric`
    /// (`pip install awslambdaric`).
    #[arg(long, env = "MILLRACE_LAMBDA_PYTHON", default_value = "python3")]
    pub lambda_python: PathBuf,
    /// Execution environments (runtime processes) per function at most.
    #[arg(long, env = "MILLRACE_LAMBDA_CONCURRENCY", default_value_t = 4)]
    pub lambda_concurrency: usize,
}

struct LogsSink(Arc<Logs>);

impl LogSink for LogsSink {
    fn put(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        events: &[(u64, String)],
    ) {
        if let Err(error) = self.0.append(account, region, group, stream, events) {
            tracing::error!(%error, group, "could not store function log lines");
        }
    }
}

/// Opens both services; returns them for registration.
pub async fn open(
    args: &FunctionArgs,
    data_dir: &Path,
    engines: HashMap<String, Arc<Engine>>,
    endpoint: String,
) -> anyhow::Result<(Arc<Logs>, Arc<Lambda>)> {
    let logs_path = data_dir.join("logs.redb");
    let logs = tokio::task::spawn_blocking(move || Logs::open(&logs_path))
        .await
        .context("open the log store")?
        .map_err(anyhow::Error::msg)
        .context("open the log store")?;
    let logs = Arc::new(logs);
    let config = LambdaConfig {
        dir: data_dir.join("lambda"),
        runtime: RuntimeConfig {
            python: args.lambda_python.clone(),
            concurrency: args.lambda_concurrency.max(1),
            endpoint: Some(endpoint),
        },
    };
    let lambda = Lambda::open(config, engines, Arc::new(LogsSink(logs.clone())))
        .map_err(anyhow::Error::msg)
        .context("open the function store")?;
    Ok((logs, Arc::new(lambda)))
}
