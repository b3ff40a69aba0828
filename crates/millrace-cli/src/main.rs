//! The `millrace` binary: parses flags, sets up logging, binds and runs the server, or runs
//! the KCL multi-language daemon (`millrace kcl`).

mod channels;
mod firehose;
mod functions;
mod kcl;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

mod tools;
use millrace_server::accounts::Accounts;
use millrace_server::audit::AuditConfig;
use millrace_server::auth::AuthMode;
use millrace_server::cloudwatch::{CloudWatch, Metrics, MetricsConfig};
use millrace_server::json_services::JsonServices;
use millrace_server::kms::{Kms, RootKey};
use millrace_server::kms_keys::KmsRecordKeys;
use millrace_server::{Backends, EngineConfig, FsyncPolicy, Iam, RootCredentials, ServerConfig};

#[derive(Parser)]
#[command(
    name = "millrace",
    version,
    about = "A self-hosted, wire-compatible Kinesis Data Streams server"
)]
struct Cli {
    /// Log line format on stderr: `text` or `json`.
    #[arg(
        long,
        env = "MILLRACE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (timestamp, level, target, fields, spans with the request id),
    /// for log shippers.
    Json,
}

#[derive(Subcommand)]
// One value per process: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Put records (arguments, or one per line of standard input) through the producer library.
    Put(tools::PutArgs),
    /// Print a stream's records from every shard, parents before children, de-aggregated.
    Tail(tools::TailArgs),
    /// List, describe, create, delete or scale streams.
    Streams(tools::StreamsArgs),
    /// Run a KCL multi-language daemon worker (a drop-in for the Java MultiLangDaemon).
    Kcl(KclArgs),
    /// Follow log files into streams, as the Kinesis Agent does (its `agent.json`).
    Agent(AgentArgs),
    /// Re-wrap every KMS key's material under a new master key (the server must be stopped);
    /// records and ciphertexts stay as they are.
    RewrapMasterKey(RewrapArgs),
}

#[derive(Parser)]
struct RewrapArgs {
    #[arg(long, env = "MILLRACE_DATA_DIR", default_value = "./millrace-data")]
    data_dir: PathBuf,
    /// The current master key (or MILLRACE_MASTER_KEY).
    #[arg(long, env = "MILLRACE_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// The new master key.
    #[arg(long)]
    new_master_key_file: PathBuf,
}

#[derive(Parser)]
struct KclArgs {
    /// The MultiLangDaemon `.properties` file.
    #[arg(long = "properties", alias = "properties-file")]
    properties: PathBuf,
}

#[derive(Parser)]
struct AgentArgs {
    /// The Kinesis Agent's configuration file (`agent.json`).
    #[arg(long = "config", short = 'c', alias = "configuration")]
    config: PathBuf,
}

#[derive(Parser)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "MILLRACE_LISTEN", default_value = "127.0.0.1:4567")]
    listen: SocketAddr,
    /// Directory holding the metadata and the shard logs (created if missing).
    #[arg(long, env = "MILLRACE_DATA_DIR", default_value = "./millrace-data")]
    data_dir: PathBuf,
    /// Region used in ARNs when a request carries no SigV4 credential scope.
    #[arg(long, env = "MILLRACE_REGION", default_value = "us-east-1")]
    region: String,
    /// Account id used in ARNs and messages.
    #[arg(long, env = "MILLRACE_ACCOUNT_ID", default_value = "000000000000")]
    account_id: String,
    /// `always` (no acknowledgement before stable storage), `never`, or an interval like `10ms`.
    #[arg(long, env = "MILLRACE_FSYNC", default_value = "always")]
    fsync: String,
    /// How long a new stream stays CREATING, in milliseconds.
    #[arg(long, env = "MILLRACE_CREATE_STREAM_MS", default_value_t = 0)]
    create_stream_ms: u64,
    /// How long a deleted stream stays DELETING, in milliseconds.
    #[arg(long, env = "MILLRACE_DELETE_STREAM_MS", default_value_t = 0)]
    delete_stream_ms: u64,
    /// How long an updated stream stays UPDATING, in milliseconds.
    #[arg(long, env = "MILLRACE_UPDATE_STREAM_MS", default_value_t = 0)]
    update_stream_ms: u64,
    /// Open provisioned shards allowed per region (DescribeLimits reports it).
    #[arg(long, env = "MILLRACE_SHARD_LIMIT", default_value_t = 500)]
    shard_limit: u32,
    /// Testing knob: how many real milliseconds one hour of retention lasts.
    #[arg(long, env = "MILLRACE_RETENTION_HOUR_MS", default_value_t = 3_600_000)]
    retention_hour_ms: u64,
    /// How often expired segments are removed, in milliseconds.
    #[arg(long, env = "MILLRACE_RETENTION_CHECK_MS", default_value_t = 60_000)]
    retention_check_ms: u64,
    /// Per-shard throughput limits and control-plane call rates, as on AWS: `on` or `off`.
    #[arg(long, env = "MILLRACE_THROUGHPUT_LIMITS", default_value = "on", value_parser = ["on", "off"])]
    throughput_limits: String,
    /// How long an on-demand stream's shard must run hot before it is split, in milliseconds.
    #[arg(
        long,
        env = "MILLRACE_ON_DEMAND_SCALE_WINDOW_MS",
        default_value_t = 60_000
    )]
    on_demand_scale_window_ms: u64,
    /// How long a registered enhanced fan-out consumer stays CREATING, in milliseconds.
    #[arg(long, env = "MILLRACE_REGISTER_CONSUMER_MS", default_value_t = 0)]
    register_consumer_ms: u64,
    /// How long a deregistered consumer stays DELETING, in milliseconds.
    #[arg(long, env = "MILLRACE_DEREGISTER_CONSUMER_MS", default_value_t = 0)]
    deregister_consumer_ms: u64,
    /// How long one SubscribeToShard call streams before it ends, in milliseconds.
    #[arg(long, env = "MILLRACE_SUBSCRIPTION_MS", default_value_t = 300_000)]
    subscription_ms: u64,
    /// UpdateShardCount calls allowed per stream in a rolling 24 hours.
    #[arg(long, env = "MILLRACE_MAX_SCALING_PER_DAY", default_value_t = 10)]
    max_scaling_per_day: u32,
    /// Serve TLS (with ALPN h2 and http/1.1) on the same port as cleartext: `self-signed`
    /// generates a certificate for localhost and writes it to `<data-dir>/self-signed-cert.pem`.
    #[arg(long, env = "MILLRACE_TLS", value_parser = ["self-signed"])]
    tls: Option<String>,
    /// PEM certificate chain for TLS (with `--tls-key`).
    #[arg(
        long,
        env = "MILLRACE_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls"
    )]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with `--tls-cert`).
    #[arg(long, env = "MILLRACE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Authentication and authorization: `open` (any credentials; the default only while the
    /// listening address is a loopback address), `verify` (signatures verified, every verified
    /// caller may do everything) or `enforce` (verified, then authorized by IAM policies; the
    /// default on other addresses when root credentials are given).
    #[arg(long, env = "MILLRACE_AUTH", value_parser = ["open", "verify", "enforce"])]
    auth: Option<String>,
    /// Access key id of the default account's root identity.
    #[arg(
        long,
        env = "MILLRACE_ROOT_ACCESS_KEY_ID",
        requires = "root_secret_access_key"
    )]
    root_access_key_id: Option<String>,
    /// Secret access key of the default account's root identity (never logged).
    #[arg(
        long,
        env = "MILLRACE_ROOT_SECRET_ACCESS_KEY",
        requires = "root_access_key_id",
        hide_env_values = true
    )]
    root_secret_access_key: Option<String>,
    /// A further account with its root credentials, `ACCOUNT_ID:ACCESS_KEY_ID:SECRET` (repeat
    /// the flag, or separate entries with commas in MILLRACE_ACCOUNTS).
    #[arg(
        long = "account",
        env = "MILLRACE_ACCOUNTS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    accounts: Vec<String>,
    /// Directory of the audit log (default `<data-dir>/audit`); `off` keeps none.
    #[arg(long, env = "MILLRACE_AUDIT_LOG")]
    audit_log: Option<String>,
    /// Size at which the audit log is rotated, in bytes.
    #[arg(long, env = "MILLRACE_AUDIT_MAX_BYTES", default_value_t = 64 * 1024 * 1024)]
    audit_max_bytes: u64,
    /// Rotated audit log files kept.
    #[arg(long, env = "MILLRACE_AUDIT_KEEP", default_value_t = 5)]
    audit_keep: u32,
    /// Testing knob: how many real milliseconds one second of an STS session's duration lasts.
    #[arg(long, env = "MILLRACE_SESSION_SECOND_MS", default_value_t = 1000)]
    session_second_ms: u64,
    /// Kinesis metrics and the CloudWatch API: `on` or `off` (no counting, no CloudWatch, no
    /// `/metrics`).
    #[arg(long, env = "MILLRACE_METRICS", default_value = "on", value_parser = ["on", "off"])]
    metrics: String,
    /// How many days one-minute datapoints are kept.
    #[arg(long, env = "MILLRACE_METRICS_RETENTION_DAYS", default_value_t = 15)]
    metrics_retention_days: u32,
    /// How often alarms are evaluated, in milliseconds.
    #[arg(long, env = "MILLRACE_ALARM_EVALUATION_MS", default_value_t = 60_000)]
    alarm_evaluation_ms: u64,
    /// Size at which a shard's log segment is rolled, in bytes.
    #[arg(long, env = "MILLRACE_SEGMENT_BYTES", default_value_t = 64 * 1024 * 1024)]
    segment_bytes: u64,
    /// Size at which the shared journal starts a new file; the old one is deleted once every
    /// shard's segment files hold its records durably.
    #[arg(long, env = "MILLRACE_JOURNAL_FILE_BYTES", default_value_t = 64 * 1024 * 1024)]
    journal_file_bytes: u64,
    /// File holding the 32-byte master key that wraps all KMS key material (base64 or hex;
    /// `openssl rand -base64 32`). The key itself may instead be given in MILLRACE_MASTER_KEY.
    /// Without one, KMS and stream encryption are unavailable.
    #[arg(long, env = "MILLRACE_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    #[command(flatten)]
    firehose: firehose::FirehoseArgs,
    #[command(flatten)]
    functions: functions::FunctionArgs,
}

/// The master key from `file`, or from MILLRACE_MASTER_KEY; never logged.
fn master_key(file: Option<&std::path::Path>) -> anyhow::Result<Option<RootKey>> {
    let text = match file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("read the master key file {}", path.display()))?,
        None => match std::env::var("MILLRACE_MASTER_KEY") {
            Ok(text) => text,
            Err(_) => return Ok(None),
        },
    };
    Ok(Some(RootKey::parse(&text).context("parse the master key")?))
}

fn rewrap(args: RewrapArgs) -> anyhow::Result<()> {
    let old = master_key(args.master_key_file.as_deref())?
        .context("give the current master key (--master-key-file or MILLRACE_MASTER_KEY)")?;
    let new = master_key(Some(&args.new_master_key_file))?.context("read the new master key")?;
    let path = args.data_dir.join("kms.redb");
    let kms = Kms::open(&path, Some(old)).context("open the key store with the current key")?;
    let count = kms
        .key_store()
        .rewrap(&new)
        .context("re-wrap the key material")?;
    tracing::info!(
        keys = count,
        fingerprint = new.fingerprint(),
        "re-wrapped every key"
    );
    Ok(())
}

fn parse_fsync(value: &str) -> anyhow::Result<FsyncPolicy> {
    Ok(match value {
        "always" => FsyncPolicy::Always,
        "never" => FsyncPolicy::Never,
        other => {
            let (number, unit) = other.split_at(
                other
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(other.len()),
            );
            let number: u64 = number
                .parse()
                .with_context(|| format!("parse --fsync {other}"))?;
            let period = match unit {
                "ms" => Duration::from_millis(number),
                "s" => Duration::from_secs(number),
                _ => bail!("--fsync takes always, never or an interval such as 10ms"),
            };
            if period.is_zero() {
                bail!("--fsync interval must be positive");
            }
            FsyncPolicy::Interval(period)
        }
    })
}

/// Environment variable glibc reads at start for its number of malloc arenas.
const ARENA_VARIABLE: &str = "MALLOC_ARENA_MAX";

/// glibc gives every thread that allocates its own arena (up to 8 per core), and memory freed
/// into one is not reused by the others, so the blocking threads that serve reads and appends
/// grow the resident set far beyond what is live (a GetRecords drain: about 120 MB instead of
/// 50). Unless the variable is set, the process replaces itself once (same pid, same
/// arguments) with one arena per core. Returns whether the variable was set here but the
/// re-exec failed.
fn bound_malloc_arenas() -> bool {
    if std::env::var_os(ARENA_VARIABLE).is_some() {
        return false;
    }
    let Ok(executable) = std::env::current_exe() else {
        return true;
    };
    let arenas = std::thread::available_parallelism().map_or(2, |cores| cores.get().max(2));
    // `exec` returns only if it failed; the server then runs with glibc's default.
    let _error = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(executable)
            .args(std::env::args_os().skip(1))
            .env(ARENA_VARIABLE, arenas.to_string()),
    );
    true
}

fn main() -> anyhow::Result<()> {
    let arenas_unbounded = bound_malloc_arenas();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    if arenas_unbounded {
        tracing::warn!("could not restart with {ARENA_VARIABLE} set; memory use may be higher");
    }
    match cli.command {
        Command::Serve(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("start the async runtime")?;
            if let Err(error) = runtime.block_on(serve(*args)) {
                tracing::error!("failed to {error:#}");
                return Err(error);
            }
            Ok(())
        }
        Command::RewrapMasterKey(args) => {
            if let Err(error) = rewrap(args) {
                tracing::error!("failed to {error:#}");
                return Err(error);
            }
            Ok(())
        }
        Command::Put(args) => run_tool(tools::put(args)),
        Command::Tail(args) => run_tool(tools::tail(args)),
        Command::Streams(args) => run_tool(tools::streams(args)),
        Command::Agent(args) => run_tool(agent(args)),
        Command::Kcl(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("start the async runtime")?;
            if let Err(error) = runtime.block_on(kcl::run(args.properties)) {
                tracing::error!("failed to {error:#}");
                return Err(error);
            }
            Ok(())
        }
    }
}

/// Waits for `running` to end, or for SIGTERM or Ctrl-C, which turns `stop` true before waiting
/// for it; a task that ends by itself (it could not start, say) ends the command.
async fn until_signal<T>(
    mut running: tokio::task::JoinHandle<T>,
    stop: tokio::sync::watch::Sender<bool>,
) -> Result<T, tokio::task::JoinError> {
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!("shutting down");
            let _ = stop.send(true);
            running.await
        }
        finished = &mut running => finished,
    }
}

/// `millrace agent`: runs until SIGTERM or Ctrl-C, or until it fails.
async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(millrace_agent::run(args.config, stopped));
    until_signal(running, stop)
        .await
        .context("join the agent")?
        .map_err(anyhow::Error::msg)
}

/// Runs a client command; an error is printed in plain words and the exit code is 1.
fn run_tool(future: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the async runtime")?;
    if let Err(error) = runtime.block_on(future) {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("millrace: {error:#}");
        }
        std::process::exit(1);
    }
    Ok(())
}

/// Root credentials of the default account and of every further account.
fn root_credentials(args: &ServeArgs) -> anyhow::Result<Vec<RootCredentials>> {
    let mut roots = Vec::new();
    if let (Some(id), Some(secret)) = (&args.root_access_key_id, &args.root_secret_access_key) {
        roots.push(RootCredentials {
            account: args.account_id.clone(),
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
        });
    }
    for entry in &args.accounts {
        let mut parts = entry.splitn(3, ':');
        let (Some(account), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("--account takes ACCOUNT_ID:ACCESS_KEY_ID:SECRET");
        };
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            bail!("--account: an account id is 12 digits, got {account:?}");
        }
        roots.push(RootCredentials {
            account: account.to_owned(),
            access_key_id: id.to_owned(),
            secret_access_key: secret.to_owned(),
        });
    }
    Ok(roots)
}

/// The mode: as given, else `open` on a loopback address, else `enforce` when root
/// credentials are given; anything else refuses to start.
fn auth_mode(args: &ServeArgs) -> anyhow::Result<AuthMode> {
    if let Some(mode) = &args.auth {
        return AuthMode::parse(mode).context("parse --auth");
    }
    if args.listen.ip().is_loopback() {
        return Ok(AuthMode::Open);
    }
    if args.root_access_key_id.is_some() {
        return Ok(AuthMode::Enforce);
    }
    bail!(
        "refusing to listen on {} without authentication: give root credentials \
         (--root-access-key-id and --root-secret-access-key, or MILLRACE_ROOT_ACCESS_KEY_ID and \
         MILLRACE_ROOT_SECRET_ACCESS_KEY), or --auth open to accept any credentials",
        args.listen
    )
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mode = auth_mode(&args)?;
    let roots = root_credentials(&args)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("create data directory {}", args.data_dir.display()))?;
    let iam_path = args.data_dir.join("identities.redb");
    let default_account = args.account_id.clone();
    let iam_roots = roots.clone();
    let iam =
        tokio::task::spawn_blocking(move || Iam::open(&iam_path, &default_account, &iam_roots))
            .await
            .context("open the identity store")?
            .context("open the identity store")?;
    iam.set_session_second_ms(args.session_second_ms);
    let iam = std::sync::Arc::new(iam);
    if mode != AuthMode::Open && !iam.has_active_keys() {
        bail!(
            "--auth {} needs credentials to verify: give root credentials (--root-access-key-id \
             and --root-secret-access-key)",
            mode.name()
        );
    }
    let root_key = master_key(args.master_key_file.as_deref())?;
    let has_root_key = root_key.is_some();
    let kms_path = args.data_dir.join("kms.redb");
    let kms = tokio::task::spawn_blocking(move || Kms::open(&kms_path, root_key))
        .await
        .context("open the key store")?
        .context("open the key store")?;
    if !has_root_key {
        tracing::info!("no master key given: KMS and stream encryption are unavailable");
    }
    let mut config = EngineConfig::new(args.data_dir.clone());
    config.record_keys = Some(KmsRecordKeys::provider(kms.key_store().clone()));
    config.account_id = args.account_id.clone();
    config.fsync = parse_fsync(&args.fsync)?;
    config.create_stream_ms = args.create_stream_ms;
    config.delete_stream_ms = args.delete_stream_ms;
    config.update_stream_ms = args.update_stream_ms;
    config.shard_limit = args.shard_limit;
    config.retention_hour_ms = args.retention_hour_ms.max(1);
    config.retention_check_ms = args.retention_check_ms;
    config.segment_bytes = args.segment_bytes;
    config.journal_file_bytes = args.journal_file_bytes;
    config.throughput_limits = args.throughput_limits == "on";
    config.on_demand_scale_window_ms = args.on_demand_scale_window_ms;
    config.max_scaling_per_day = args.max_scaling_per_day;
    config.register_consumer_ms = args.register_consumer_ms;
    config.deregister_consumer_ms = args.deregister_consumer_ms;
    config.subscription_ms = args.subscription_ms;
    let account_ids = iam.accounts();
    let accounts = tokio::task::spawn_blocking(move || Accounts::open(&config, &account_ids))
        .await
        .context("open the data directory")?
        .with_context(|| format!("open data directory {}", args.data_dir.display()))?;
    for engine in accounts.all() {
        engine.start_background();
    }
    let tls = match (&args.tls, &args.tls_cert, &args.tls_key) {
        (Some(_), _, _) => {
            let (config, pem) = millrace_server::tls::self_signed()?;
            let path = args.data_dir.join("self-signed-cert.pem");
            std::fs::write(&path, pem).with_context(|| format!("write {}", path.display()))?;
            tracing::info!(certificate = %path.display(), "serving TLS with a self-signed certificate");
            Some(config)
        }
        (None, Some(certificate), Some(key)) => {
            Some(millrace_server::tls::from_pem_files(certificate, key)?)
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    let address = listener.local_addr().context("read the bound address")?;
    // The one line on stdout: harnesses read the bound port from it.
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{address}");
    }
    let root_key = args.root_access_key_id.as_deref().unwrap_or("none");
    tracing::info!(
        %address,
        data_dir = %args.data_dir.display(),
        auth = mode.name(),
        root_access_key_id = root_key,
        accounts = iam.accounts().len(),
        "millrace serving"
    );
    let audit = match args.audit_log.as_deref() {
        Some("off") => None,
        other => Some(AuditConfig {
            dir: other
                .map(PathBuf::from)
                .unwrap_or_else(|| args.data_dir.join("audit")),
            max_bytes: args.audit_max_bytes.max(4096),
            keep_files: args.audit_keep.max(1),
        }),
    };
    let metrics = if args.metrics == "on" {
        let path = args.data_dir.join("metrics.redb");
        let config = MetricsConfig {
            retention_days: args.metrics_retention_days.max(1),
            alarm_evaluation: Duration::from_millis(args.alarm_evaluation_ms.max(100)),
        };
        let metrics = tokio::task::spawn_blocking(move || Metrics::open(&path, config))
            .await
            .context("open the metrics store")?
            .context("open the metrics store")?;
        metrics.start_background();
        Some(metrics)
    } else {
        None
    };
    let dynamodb_path = args.data_dir.join("dynamodb.redb");
    let dynamodb =
        tokio::task::spawn_blocking(move || millrace_dynamodb::DynamoDb::open(&dynamodb_path))
            .await
            .context("open the lease-table store")?
            .context("open the lease-table store")?;
    let kms_keys = kms.key_store().clone();
    let mut services: Vec<std::sync::Arc<dyn millrace_server::JsonService>> =
        vec![std::sync::Arc::new(kms), std::sync::Arc::new(dynamodb)];
    if let Some(metrics) = &metrics {
        services.push(std::sync::Arc::new(CloudWatch::new(metrics.clone())));
    }
    let s3 = firehose::embedded_s3(&args.firehose, &args.data_dir, mode, &iam)?;
    let delivery = firehose::open_firehose(firehose::FirehoseSetup {
        args: &args.firehose,
        data_dir: &args.data_dir,
        address,
        region: &args.region,
        create_ms: args.create_stream_ms,
        delete_ms: args.delete_stream_ms,
        local: firehose::local_credentials(&args.root_access_key_id, &args.root_secret_access_key),
        kinesis: firehose::engines(&accounts),
        metrics: firehose::metrics_sink(&metrics),
        sync: args.fsync == "always",
        keys: has_root_key.then(|| kms_keys.clone()),
    })
    .await?;
    let channels = channels::open(
        &args.data_dir,
        delivery.clone(),
        args.create_stream_ms,
        args.update_stream_ms,
        args.delete_stream_ms,
    )
    .await?;
    services.push(std::sync::Arc::new(delivery));
    let engines = accounts
        .all()
        .map(|engine| (engine.account_id().to_owned(), engine.clone()))
        .collect();
    let (logs, lambda) = functions::open(
        &args.functions,
        &args.data_dir,
        engines,
        format!("http://{address}"),
        iam.clone(),
        mode == AuthMode::Open,
    )
    .await?;
    services.push(logs);
    services.push(lambda);
    let backends = Backends {
        accounts,
        iam,
        json_services: JsonServices::new(services),
        metrics,
        s3,
        channels: Some(channels),
    };
    millrace_server::serve(
        listener,
        backends,
        ServerConfig {
            auth: mode,
            audit,
            default_region: args.region,
            rate_limits: args.throughput_limits == "on",
            tls,
        },
        shutdown_signal(),
    )
    .await
    .context("serve")?;
    tracing::info!("millrace stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}
