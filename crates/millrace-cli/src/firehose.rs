//! Wiring of Firehose and the embedded S3-compatible store into `millrace serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use millrace_server::auth::AuthMode;
use millrace_server::s3_route::{S3Front, S3Reply, S3Request};
use millrace_server::Iam;

#[derive(clap::Args)]
pub struct FirehoseArgs {
    /// The embedded S3-compatible store (buckets under `<data-dir>/s3/`, on the same port,
    /// recognised by the SigV4 signing name `s3`): `on` or `off`.
    #[arg(long, env = "MILLRACE_EMBEDDED_S3", default_value = "on", value_parser = ["on", "off"])]
    pub embedded_s3: String,
    /// S3-compatible endpoint Firehose delivers to (path-style, e.g. `http://127.0.0.1:9000`);
    /// without it, delivery streams write to the embedded store, creating buckets on first use.
    #[arg(long, env = "MILLRACE_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// Access key id for `--s3-endpoint`.
    #[arg(long, env = "MILLRACE_S3_ACCESS_KEY_ID", default_value = "millrace")]
    pub s3_access_key_id: String,
    /// Secret access key for `--s3-endpoint` (never logged).
    #[arg(
        long,
        env = "MILLRACE_S3_SECRET_ACCESS_KEY",
        default_value = "millrace",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub s3_secret_access_key: String,
    /// A bucket whose objects go to an S3-compatible endpoint of their own, `BUCKET=URL`
    /// (path-style; repeatable; overrides `--s3-endpoint` and the embedded store for that bucket;
    /// signed with `--s3-access-key-id` and `--s3-secret-access-key`; the bucket must exist).
    #[arg(
        long = "s3-bucket-endpoint",
        env = "MILLRACE_S3_BUCKET_ENDPOINTS",
        value_delimiter = ',',
        value_name = "BUCKET=URL"
    )]
    pub s3_bucket_endpoints: Vec<String>,
    /// Part size of multipart uploads, in bytes: larger objects go up in parts of this size
    /// (16 MiB; S3 wants at least 5 MiB for every part but the last; smaller for tests only).
    #[arg(long, env = "MILLRACE_S3_MULTIPART_PART_BYTES", default_value_t = 16 << 20, hide = true)]
    pub s3_multipart_part_bytes: usize,
    /// Let HTTP endpoint destinations use `http://` to 127.0.0.1, localhost or [::1] (for tests
    /// and local development; the service itself accepts only https).
    #[arg(long, env = "MILLRACE_FIREHOSE_ALLOW_HTTP_LOOPBACK")]
    pub firehose_allow_http_loopback: bool,
}

struct IamSecrets(Arc<Iam>);

impl millrace_s3::Secrets for IamSecrets {
    fn secret(&self, access_key_id: &str) -> Option<String> {
        self.0
            .credential(access_key_id)
            .filter(|credential| credential.active)
            .map(|credential| credential.secret.clone())
    }
}

struct IamPolicies(Arc<Iam>);

impl millrace_s3::Access for IamPolicies {
    fn allowed(&self, access_key_id: &str, action: &str, resource: &str) -> bool {
        let Some(credential) = self.0.credential(access_key_id) else {
            return false;
        };
        let caller = &credential.caller;
        let context = millrace_policy::ContextKeys::new();
        self.0
            .authorize(caller, action, resource, &caller.account, None, &context)
            == millrace_policy::Decision::Allow
    }
}

struct Embedded(millrace_s3::EmbeddedS3);

impl S3Front for Embedded {
    fn handle<'a>(
        &'a self,
        request: S3Request,
    ) -> Pin<Box<dyn Future<Output = S3Reply> + Send + 'a>> {
        Box::pin(self.0.handle(request))
    }
}

/// The embedded store, unless turned off.
pub fn embedded_s3(
    args: &FirehoseArgs,
    data_dir: &Path,
    mode: AuthMode,
    iam: &Arc<Iam>,
) -> anyhow::Result<Option<Arc<dyn S3Front>>> {
    if args.embedded_s3 != "on" {
        return Ok(None);
    }
    let secrets: Option<Arc<dyn millrace_s3::Secrets>> = match mode {
        AuthMode::Open => None,
        _ => Some(Arc::new(IamSecrets(iam.clone()))),
    };
    let access: Option<Arc<dyn millrace_s3::Access>> = match mode {
        AuthMode::Enforce => Some(Arc::new(IamPolicies(iam.clone()))),
        _ => None,
    };
    let store = millrace_s3::EmbeddedS3::open(&data_dir.join("s3"), secrets, access)
        .context("open the embedded S3 store")?;
    Ok(Some(Arc::new(Embedded(store))))
}

/// Credentials Firehose signs its writes to the embedded store with.
pub struct LocalCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct FirehoseSetup<'a> {
    pub args: &'a FirehoseArgs,
    pub data_dir: &'a Path,
    pub address: SocketAddr,
    pub region: &'a str,
    pub create_ms: u64,
    /// How long a deleted delivery stream stays DELETING (`--delete-stream-ms`).
    pub delete_ms: u64,
    pub local: LocalCredentials,
    pub kinesis: Arc<dyn millrace_firehose::KinesisStreams>,
    pub metrics: Option<Arc<dyn millrace_firehose::MetricsSink>>,
    /// `--fsync always`.
    pub sync: bool,
    /// The KMS key store (for customer managed keys); `None` without a master key.
    pub keys: Option<Arc<millrace_server::kms::Keys>>,
}

pub async fn open_firehose(
    setup: FirehoseSetup<'_>,
) -> anyhow::Result<millrace_firehose::Firehose> {
    let args = setup.args;
    let target = match &args.s3_endpoint {
        Some(endpoint) => millrace_firehose::S3Target {
            endpoint: endpoint
                .parse()
                .with_context(|| format!("--s3-endpoint {endpoint:?} is not a URL"))?,
            access_key_id: args.s3_access_key_id.clone(),
            secret_access_key: args.s3_secret_access_key.clone(),
            region: setup.region.to_owned(),
            create_buckets: false,
        },
        None => {
            if args.embedded_s3 != "on" {
                tracing::warn!(
                    "no --s3-endpoint and the embedded S3 store is off: S3 deliveries will fail until one is configured"
                );
            }
            let mut address = setup.address;
            if address.ip().is_unspecified() {
                address.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            millrace_firehose::S3Target {
                endpoint: format!("http://{address}")
                    .parse()
                    .context("embedded S3 endpoint")?,
                access_key_id: setup.local.access_key_id,
                secret_access_key: setup.local.secret_access_key,
                region: setup.region.to_owned(),
                create_buckets: true,
            }
        }
    };
    let mut bucket_targets = std::collections::BTreeMap::new();
    for given in &args.s3_bucket_endpoints {
        let (bucket, url) = given
            .split_once('=')
            .filter(|(bucket, url)| !bucket.is_empty() && !url.is_empty())
            .with_context(|| format!("--s3-bucket-endpoint {given:?} is not BUCKET=URL"))?;
        let endpoint = url
            .parse()
            .with_context(|| format!("--s3-bucket-endpoint {given:?}: {url:?} is not a URL"))?;
        bucket_targets.insert(
            bucket.to_owned(),
            millrace_firehose::S3Target {
                endpoint,
                access_key_id: args.s3_access_key_id.clone(),
                secret_access_key: args.s3_secret_access_key.clone(),
                region: setup.region.to_owned(),
                create_buckets: false,
            },
        );
    }
    let options = millrace_firehose::FirehoseOptions {
        s3_part_bytes: args.s3_multipart_part_bytes,
        bucket_targets,
        delete_ms: setup.delete_ms,
        record_keys: setup
            .keys
            .clone()
            .map(|keys| millrace_server::kms_keys::KmsRecordKeys::provider(keys).0),
    };
    let config = millrace_firehose::FirehoseConfig {
        data_dir: setup.data_dir.to_path_buf(),
        s3: target,
        create_ms: setup.create_ms,
        allow_http_loopback: args.firehose_allow_http_loopback,
        metrics: setup.metrics,
        sync: setup.sync,
        keys: setup
            .keys
            .map(|keys| Arc::new(KmsKeyCheck(keys)) as Arc<dyn millrace_firehose::KmsKeys>),
    };
    let kinesis = setup.kinesis;
    let firehose = tokio::task::spawn_blocking(move || {
        millrace_firehose::Firehose::open_with(config, Some(kinesis), options)
    })
    .await
    .context("open the delivery streams")?
    .context("open the delivery streams")?;
    firehose.start();
    Ok(firehose)
}

/// The root credentials when given (the embedded store verifies them outside `--auth open`).
pub fn local_credentials(id: &Option<String>, secret: &Option<String>) -> LocalCredentials {
    match (id, secret) {
        (Some(id), Some(secret)) => LocalCredentials {
            access_key_id: id.clone(),
            secret_access_key: secret.clone(),
        },
        _ => LocalCredentials {
            access_key_id: "millrace".into(),
            secret_access_key: "millrace".into(),
        },
    }
}

struct Engines(std::collections::BTreeMap<String, Arc<millrace_server::Engine>>);

impl millrace_firehose::KinesisStreams for Engines {
    fn engine(&self, account: &str) -> Option<Arc<millrace_server::Engine>> {
        self.0.get(account).cloned()
    }
}

/// The accounts' engines, for KinesisStreamAsSource.
pub fn engines(
    accounts: &millrace_server::accounts::Accounts,
) -> Arc<dyn millrace_firehose::KinesisStreams> {
    Arc::new(Engines(
        accounts
            .all()
            .map(|engine| (engine.account_id().to_owned(), engine.clone()))
            .collect(),
    ))
}

/// `AWS/Firehose` datapoints into the CloudWatch store.
struct KmsKeyCheck(Arc<millrace_server::kms::Keys>);

impl millrace_firehose::KmsKeys for KmsKeyCheck {
    fn check(&self, account: &str, region: &str, key_arn: &str) -> Result<(), String> {
        let scope = millrace_server::kms::Scope { account, region };
        let doc = self
            .0
            .describe_existing(scope, key_arn)
            .map_err(|error| error.to_string())?;
        if doc.state == "Enabled" {
            Ok(())
        } else {
            Err(format!("{} is {}.", doc.arn(), doc.state.to_lowercase()))
        }
    }
}

struct CloudWatchSink(Arc<millrace_server::cloudwatch::Metrics>);

impl millrace_firehose::MetricsSink for CloudWatchSink {
    fn publish(&self, points: Vec<millrace_firehose::MetricPoint>) {
        use millrace_server::cloudwatch::{SeriesKey, Stat};
        let points: Vec<(SeriesKey, String, i64, Stat)> = points
            .into_iter()
            .map(|p| {
                let key = SeriesKey::new(
                    &p.account,
                    &p.region,
                    "AWS/Firehose",
                    p.metric,
                    vec![("DeliveryStreamName".to_owned(), p.stream.clone())],
                );
                (
                    key,
                    p.unit.to_owned(),
                    p.minute,
                    Stat::set(p.count, p.sum, p.min, p.max),
                )
            })
            .collect();
        if let Err(error) = self.0.store().merge(&points) {
            tracing::error!(%error, "storing Firehose metrics failed");
        }
    }
}

/// The metrics sink, when metrics are on.
pub fn metrics_sink(
    metrics: &Option<Arc<millrace_server::cloudwatch::Metrics>>,
) -> Option<Arc<dyn millrace_firehose::MetricsSink>> {
    metrics
        .as_ref()
        .map(|m| Arc::new(CloudWatchSink(m.clone())) as Arc<dyn millrace_firehose::MetricsSink>)
}
