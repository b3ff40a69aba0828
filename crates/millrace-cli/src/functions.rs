//! Wiring of the function services: CloudWatch Logs (`logs.redb`) and Lambda (`lambda/`), whose
//! function logs go to the Logs service's `/aws/lambda/<name>` groups.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use millrace_lambda::{
    Credentials, FunctionRecord, Lambda, LambdaConfig, LogSink, RoleCredentials, RuntimeConfig,
};
use millrace_logs::Logs;
use millrace_server::{Engine, Iam};

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
    /// The `aws-lambda-ric` executable (npm package aws-lambda-ric) that runs `nodejs*`
    /// functions; without it they are refused.
    #[arg(long, env = "MILLRACE_LAMBDA_NODE_RIC")]
    pub lambda_node_ric: Option<PathBuf>,
    /// Testing knob: how many real milliseconds one second of a mapping's
    /// MaximumRecordAgeInSeconds lasts.
    #[arg(
        long,
        env = "MILLRACE_LAMBDA_RECORD_AGE_SECOND_MS",
        default_value_t = 1000
    )]
    pub lambda_record_age_second_ms: u64,
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

/// A function's processes get a session of its execution role when the role exists and trusts
/// `lambda.amazonaws.com`; under `--auth open` (any credentials accepted) placeholder keys
/// otherwise, so that SDKs inside functions can sign.
struct IamRoleCredentials {
    iam: Arc<Iam>,
    open: bool,
}

impl RoleCredentials for IamRoleCredentials {
    fn for_function(&self, function: &FunctionRecord) -> Option<Credentials> {
        if let Some(session) =
            self.iam
                .service_role_session(&function.role, "lambda.amazonaws.com", &function.name)
        {
            return Some(Credentials {
                access_key_id: session.access_key_id,
                secret_access_key: session.secret_access_key,
                session_token: Some(session.session_token),
                lifetime: Some(std::time::Duration::from_millis(session.lifetime_ms)),
            });
        }
        self.open.then(|| Credentials {
            access_key_id: "AKIDMILLRACELAMBDA".to_owned(),
            secret_access_key: "millrace-open-mode".to_owned(),
            session_token: None,
            lifetime: None,
        })
    }
}

/// Opens both services; returns them for registration.
pub async fn open(
    args: &FunctionArgs,
    data_dir: &Path,
    engines: HashMap<String, Arc<Engine>>,
    endpoint: String,
    iam: Arc<Iam>,
    open_auth: bool,
) -> anyhow::Result<(Arc<Logs>, Arc<Lambda>)> {
    let logs_path = data_dir.join("logs.redb");
    let logs = tokio::task::spawn_blocking(move || {
        let logs = Logs::open(&logs_path)?;
        logs.sweep_expired()?;
        Ok::<_, String>(logs)
    })
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
            node_ric: args.lambda_node_ric.clone(),
            endpoint: Some(endpoint),
        },
        record_age_second_ms: args.lambda_record_age_second_ms,
        credentials: Some(Arc::new(IamRoleCredentials {
            iam,
            open: open_auth,
        })),
    };
    let lambda = Lambda::open(config, engines, Arc::new(LogsSink(logs.clone())))
        .map_err(anyhow::Error::msg)
        .context("open the function store")?;
    Ok((logs, Arc::new(lambda)))
}
