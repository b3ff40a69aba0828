//! Test harness: starts the real `millrace` binary on 127.0.0.1 with a temporary data
//! directory and hands out real AWS SDK clients pointed at it.
//!
//! Nothing in the workspace depends on this crate; its tests live in `tests/it`.
#![allow(clippy::print_stderr)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context as _};

/// Path of the server binary: `MILLRACE_BIN`, or the debug build in `CARGO_TARGET_DIR` or
/// the workspace's `target`.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("MILLRACE_BIN") {
        return PathBuf::from(path);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug/millrace")
}

/// A running server process and its data directory.
pub struct Server {
    child: Option<Child>,
    pub endpoint: String,
    pub data_dir: PathBuf,
    args: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server with a fresh data directory and extra flags. Throughput limits are off
    /// unless the flags say otherwise, so that tests can write as fast as they like.
    pub fn start(extra: &[&str]) -> anyhow::Result<Server> {
        let temp = tempfile::tempdir().context("create a data directory")?;
        let data_dir = temp.path().to_path_buf();
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !args.iter().any(|a| a == "--throughput-limits") {
            args.extend(["--throughput-limits".to_owned(), "off".to_owned()]);
        }
        let (child, endpoint) = spawn(&data_dir, &args)?;
        Ok(Server {
            child: Some(child),
            endpoint,
            data_dir,
            args,
            _temp: Some(temp),
        })
    }

    /// Stops the server with SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("server is not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("send SIGTERM")?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        child.wait().context("wait for the server")
    }

    /// Starts the server again on the same data directory (on a new port).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill9();
        let (child, endpoint) = spawn(&self.data_dir, &self.args)?;
        self.child = Some(child);
        self.endpoint = endpoint;
        Ok(())
    }

    /// A Kinesis client for this server, region us-east-1, dummy credentials.
    pub fn kinesis(&self) -> aws_sdk_kinesis::Client {
        self.kinesis_in("us-east-1")
    }

    /// A Kinesis client over TLS (and so HTTP/2 through ALPN) for a server started with
    /// `--tls self-signed`, trusting its generated certificate.
    pub fn kinesis_tls(
        &self,
        http_client: aws_sdk_kinesis::config::SharedHttpClient,
    ) -> aws_sdk_kinesis::Client {
        self.kinesis_with("AKIDTEST", "secret", Some(http_client))
    }

    /// A Kinesis client in us-east-1 signing with the given credentials; with an HTTP client
    /// (built for TLS) it talks to `https://localhost:<port>`.
    pub fn kinesis_with(
        &self,
        access_key_id: &str,
        secret_access_key: &str,
        http_client: Option<aws_sdk_kinesis::config::SharedHttpClient>,
    ) -> aws_sdk_kinesis::Client {
        let credentials = aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "test",
        );
        let mut config = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .region(aws_sdk_kinesis::config::Region::new("us-east-1"))
            .credentials_provider(credentials);
        config = match http_client {
            Some(http_client) => config
                .endpoint_url(
                    self.endpoint
                        .replacen("http://127.0.0.1", "https://localhost", 1),
                )
                .http_client(http_client),
            None => config.endpoint_url(&self.endpoint),
        };
        aws_sdk_kinesis::Client::from_conf(config.build())
    }

    /// The certificate a `--tls self-signed` server generated, in PEM.
    pub fn self_signed_certificate(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(self.data_dir.join("self-signed-cert.pem"))
            .context("read the self-signed certificate")
    }

    /// A Kinesis client for this server in `region`.
    pub fn kinesis_in(&self, region: &str) -> aws_sdk_kinesis::Client {
        let credentials =
            aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test");
        let config = aws_sdk_kinesis::Config::builder()
            .behavior_version(aws_sdk_kinesis::config::BehaviorVersion::latest())
            .region(aws_sdk_kinesis::config::Region::new(region.to_owned()))
            .credentials_provider(credentials)
            .endpoint_url(&self.endpoint)
            .build();
        aws_sdk_kinesis::Client::from_conf(config)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn spawn(data_dir: &Path, extra: &[String]) -> anyhow::Result<(Child, String)> {
    let binary = binary();
    let mut child = Command::new(&binary)
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env(
            "RUST_LOG",
            std::env::var("MILLRACE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("start {}", binary.display()))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("read the listening line")?;
    let Some(endpoint) = line.trim().strip_prefix("listening on ") else {
        let _ = child.kill();
        bail!("server did not start: {line:?}");
    };
    Ok((child, endpoint.to_owned()))
}
