//! Running functions without containers: each execution environment is a child process (the
//! real `awslambdaric` for Python, the zip's `bootstrap` for `provided.*`) that talks to a
//! Lambda Runtime API Millrace serves for that environment on a loopback port of its own.
//!
//! An invocation is handed to an idle environment of the function (or a new one, up to the
//! function's concurrency), delivered on the runtime's `GET /invocation/next`, and finished by
//! its `POST /invocation/{id}/response` or `/error`; `POST /init/error`, the process exiting or
//! the deadline passing end it too (a timed-out process is killed). The process's stdout and
//! stderr, one pipe, are the function's log: each invocation's lines, framed by START, END and
//! REPORT, go to the log sink (`/aws/lambda/<name>`) before the invocation returns.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::function::FunctionRecord;

/// Where function logs go (CloudWatch Logs, in the binary).
pub trait LogSink: Send + Sync {
    /// Appends events (milliseconds since the epoch, message) to a log stream, creating the group
    /// and the stream when missing; blocking (a durable write).
    fn put(&self, account: &str, region: &str, group: &str, stream: &str, events: &[(u64, String)]);
}

/// Credentials handed to a function's processes: its execution role's session.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    /// How long they are good for; an environment is retired before they expire.
    pub lifetime: Option<Duration>,
}

/// Issues the credentials of a function's role (IAM, in the binary).
pub trait RoleCredentials: Send + Sync {
    fn for_function(&self, function: &FunctionRecord) -> Option<Credentials>;
}

/// One invocation's log lines for the writer thread.
struct LogBatch {
    account: String,
    region: String,
    group: String,
    stream: String,
    events: Vec<(u64, String)>,
}

/// The log writer: one thread that takes every batch waiting and writes each log stream's lines
/// in one durable append, so invocations never wait for the log's disk writes and many small
/// invocations share one commit.
fn spawn_log_writer(sink: Arc<dyn LogSink>) -> std::sync::mpsc::Sender<LogBatch> {
    let (sender, receiver) = std::sync::mpsc::channel::<LogBatch>();
    let spawned = std::thread::Builder::new()
        .name("lambda-logs".into())
        .spawn(move || {
            while let Ok(first) = receiver.recv() {
                let mut waiting = vec![first];
                while let Ok(more) = receiver.try_recv() {
                    waiting.push(more);
                }
                // Merge consecutive batches of one stream, keeping the order of lines.
                let mut merged: Vec<LogBatch> = Vec::new();
                for batch in waiting {
                    match merged.iter_mut().find(|m| {
                        m.account == batch.account
                            && m.region == batch.region
                            && m.group == batch.group
                            && m.stream == batch.stream
                    }) {
                        Some(into) => into.events.extend(batch.events),
                        None => merged.push(batch),
                    }
                }
                for batch in merged {
                    sink.put(
                        &batch.account,
                        &batch.region,
                        &batch.group,
                        &batch.stream,
                        &batch.events,
                    );
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "could not start the function log writer");
    }
    sender
}

/// Runtime settings from the operator.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The interpreter that runs `python3.x` functions (must import `awslambdaric`).
    pub python: PathBuf,
    /// Execution environments per function at most.
    pub concurrency: usize,
    /// The `aws-lambda-ric` executable for `nodejs*` functions; without it they are refused.
    pub node_ric: Option<PathBuf>,
    /// Passed to functions as `AWS_ENDPOINT_URL`, so SDKs inside them talk to Millrace.
    pub endpoint: Option<String>,
}

/// What an invocation produced.
#[derive(Debug)]
pub struct Outcome {
    pub payload: Vec<u8>,
    /// `Unhandled` for runtime-reported and platform errors (`X-Amz-Function-Error`).
    pub function_error: Option<String>,
    /// The invocation's log lines, START to REPORT.
    pub log: Vec<String>,
}

/// Why an invocation could not be run at all.
#[derive(Debug)]
pub enum RunError {
    /// The runtime cannot be started (missing interpreter, awslambdaric not importable).
    Runtime(String),
    /// Something on our side failed.
    Internal(String),
}

/// One invocation waiting for, or held by, a runtime.
struct Job {
    id: String,
    payload: Bytes,
    deadline_ms: u64,
    arn: String,
    client_context: Option<String>,
    outcome: oneshot::Sender<Delivered>,
}

/// What the runtime posted for an invocation.
enum Delivered {
    Response(Bytes),
    Error(Bytes, Option<String>),
}

/// A failure of the whole environment: an init error or the process exiting.
#[derive(Clone, Debug)]
enum EnvFailure {
    Init(Bytes),
    Exited(String),
}

/// The part of an environment its Runtime API server shares.
struct EnvShared {
    jobs: tokio::sync::Mutex<mpsc::Receiver<Job>>,
    inflight: Mutex<HashMap<String, oneshot::Sender<Delivered>>>,
    failure: watch::Sender<Option<EnvFailure>>,
    /// When the process was started, and when it first asked for an invocation (its init).
    spawned: Instant,
    ready: std::sync::OnceLock<Instant>,
    /// When the runtime took the current invocation (REPORT's Duration starts there).
    picked: Mutex<Option<Instant>>,
}

/// Lines read from the process, and a way to make sure everything written so far is read.
struct LogTap {
    lines: Arc<Mutex<Vec<String>>>,
    drain: mpsc::Sender<oneshot::Sender<()>>,
}

impl LogTap {
    /// Everything the process wrote before now (it wrote before posting its reply).
    async fn take(&self) -> Vec<String> {
        let (done, wait) = oneshot::channel();
        if self.drain.send(done).await.is_ok() {
            let _ = wait.await;
        }
        std::mem::take(&mut *self.lines.lock().expect("lock"))
    }
}

/// A running execution environment.
struct Environment {
    revision: String,
    jobs: mpsc::Sender<Job>,
    shared: Arc<EnvShared>,
    failure: watch::Receiver<Option<EnvFailure>>,
    kill: Option<oneshot::Sender<()>>,
    tap: LogTap,
    log_stream: String,
    pid: Option<u32>,
    initialized: bool,
    /// When the environment's credentials run out (it is not reused after that).
    expires: Option<Instant>,
}

impl Drop for Environment {
    fn drop(&mut self) {
        if let Some(kill) = self.kill.take() {
            let _ = kill.send(());
        }
    }
}

#[derive(Default)]
struct Pool {
    idle: Vec<Environment>,
    permits: Option<Arc<Semaphore>>,
}

/// Every function's environments.
pub struct Runtimes {
    config: RuntimeConfig,
    pools: Mutex<HashMap<String, Pool>>,
    /// To the log writer thread.
    logs: std::sync::mpsc::Sender<LogBatch>,
    credentials: Option<Arc<dyn RoleCredentials>>,
    python_checked: tokio::sync::OnceCell<Result<(), String>>,
    /// util-linux's `setpriv`, when installed (parent-death signal for runtimes).
    setpriv: Option<PathBuf>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `YYYY/MM/DD` of a time in milliseconds (UTC).
fn date_path(ms: u64) -> String {
    let days = (ms / 86_400_000) as i64;
    let (year, month, day) = millrace_wire::timestamp::civil_from_days(days);
    format!("{year:04}/{month:02}/{day:02}")
}

/// The peak resident memory of a process in MB (`VmHWM`), when the kernel tells.
fn max_memory_mb(pid: Option<u32>) -> u64 {
    let Some(pid) = pid else { return 0 };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb.div_ceil(1024))
}

impl Runtimes {
    pub fn new(
        config: RuntimeConfig,
        sink: Arc<dyn LogSink>,
        credentials: Option<Arc<dyn RoleCredentials>>,
    ) -> Runtimes {
        Runtimes {
            config,
            pools: Mutex::new(HashMap::new()),
            logs: spawn_log_writer(sink),
            credentials,
            python_checked: tokio::sync::OnceCell::new(),
            setpriv: ["/usr/bin/setpriv", "/bin/setpriv"]
                .iter()
                .map(PathBuf::from)
                .find(|path| path.is_file()),
        }
    }

    /// Stops every warm environment of a function (after an update or a delete).
    pub fn retire(&self, key: &str) {
        let mut pools = self.pools.lock().expect("lock");
        if let Some(pool) = pools.get_mut(key) {
            pool.idle.clear();
        }
    }

    /// Stops every environment (shutdown).
    pub fn retire_all(&self) {
        self.pools.lock().expect("lock").clear();
    }

    async fn check_python(&self) -> Result<(), RunError> {
        let python = self.config.python.clone();
        let checked = self
            .python_checked
            .get_or_init(|| async move {
                let output = tokio::process::Command::new(&python)
                    .args(["-c", "import awslambdaric"])
                    .stdin(std::process::Stdio::null())
                    .output()
                    .await;
                match output {
                    Ok(output) if output.status.success() => Ok(()),
                    Ok(output) => Err(format!(
                        "the Python interpreter {} cannot import awslambdaric ({}); install it \
                         there (pip install awslambdaric) or name another interpreter with \
                         --lambda-python",
                        python.display(),
                        String::from_utf8_lossy(&output.stderr)
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                    )),
                    Err(error) => Err(format!(
                        "the Python interpreter {} cannot be started ({error}); name one with \
                         --lambda-python",
                        python.display()
                    )),
                }
            })
            .await;
        checked.clone().map_err(RunError::Runtime)
    }

    /// Runs one invocation of `function` and waits for its end.
    pub async fn invoke(
        &self,
        function: &FunctionRecord,
        payload: Bytes,
        client_context: Option<String>,
    ) -> Result<Outcome, RunError> {
        let key = function.key();
        let permits = {
            let mut pools = self.pools.lock().expect("lock");
            let pool = pools.entry(key.clone()).or_default();
            pool.permits
                .get_or_insert_with(|| Arc::new(Semaphore::new(self.config.concurrency.max(1))))
                .clone()
        };
        let _permit = permits
            .acquire_owned()
            .await
            .map_err(|_| RunError::Internal("the function's environments are closed".into()))?;
        let reused = {
            let mut pools = self.pools.lock().expect("lock");
            let pool = pools.entry(key.clone()).or_default();
            let now = Instant::now();
            pool.idle.retain(|env| {
                env.revision == function.revision_id && env.expires.is_none_or(|at| at > now)
            });
            pool.idle.pop()
        };
        let mut env = match reused {
            Some(env) => env,
            None => self.spawn(function).await?,
        };
        let request_id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let (outcome_tx, outcome_rx) = oneshot::channel();
        let timeout = Duration::from_secs(function.timeout.max(1));
        let job = Job {
            id: request_id.clone(),
            payload,
            deadline_ms: now_ms() + timeout.as_millis() as u64,
            arn: function.arn(),
            client_context,
            outcome: outcome_tx,
        };
        let mut log = vec![format!("START RequestId: {request_id} Version: $LATEST")];
        let mut failure_rx = env.failure.clone();
        let result = if env.jobs.send(job).await.is_err() {
            Err(EnvFailure::Exited("the runtime stopped".into()))
        } else {
            tokio::select! {
                delivered = outcome_rx => match delivered {
                    Ok(delivered) => Ok(Some(delivered)),
                    Err(_) => Err(EnvFailure::Exited("the runtime stopped".into())),
                },
                failure = failure_rx.wait_for(Option::is_some) => {
                    let failure = failure.ok().and_then(|f| f.clone());
                    Err(failure.unwrap_or(EnvFailure::Exited("the runtime stopped".into())))
                },
                _ = tokio::time::sleep(timeout) => Ok(None),
            }
        };
        // Duration runs from the runtime taking the invocation (not counting its init).
        let picked = env.shared.picked.lock().expect("lock").take();
        let elapsed = picked.map_or_else(|| started.elapsed(), |at| at.elapsed());
        let lines = env.tap.take().await;
        log.extend(lines);
        let mut healthy = true;
        let (payload, function_error) = match result {
            Ok(Some(Delivered::Response(body))) => (body.to_vec(), None),
            Ok(Some(Delivered::Error(body, _kind))) => (body.to_vec(), Some("Unhandled".into())),
            Ok(None) => {
                healthy = false;
                let seconds = timeout.as_secs_f64();
                let message = format!("Task timed out after {seconds:.2} seconds");
                log.push(format!("{} {request_id} {message}", iso_millis(now_ms())));
                let body = serde_json::json!({
                    "errorType": "Sandbox.Timedout",
                    "errorMessage": format!("RequestId: {request_id} Error: {message}"),
                });
                (body.to_string().into_bytes(), Some("Unhandled".into()))
            }
            Err(EnvFailure::Init(body)) => {
                healthy = false;
                (body.to_vec(), Some("Unhandled".into()))
            }
            Err(EnvFailure::Exited(status)) => {
                healthy = false;
                let message =
                    format!("RequestId: {request_id} Error: Runtime exited with error: {status}");
                log.push(message.clone());
                let body = serde_json::json!({
                    "errorType": "Runtime.ExitError",
                    "errorMessage": message,
                });
                (body.to_string().into_bytes(), Some("Unhandled".into()))
            }
        };
        let millis = elapsed.as_secs_f64() * 1000.0;
        log.push(format!("END RequestId: {request_id}"));
        let init = match env.shared.ready.get() {
            Some(ready) if !env.initialized => format!(
                "\tInit Duration: {:.2} ms",
                ready.duration_since(env.shared.spawned).as_secs_f64() * 1000.0
            ),
            _ => String::new(),
        };
        env.initialized = true;
        log.push(format!(
            "REPORT RequestId: {request_id}\tDuration: {millis:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB{init}",
            (millis.ceil() as u64).max(1),
            function.memory_size,
            max_memory_mb(env.pid),
        ));
        let events: Vec<(u64, String)> = {
            let at = now_ms();
            log.iter().map(|line| (at, line.clone())).collect()
        };
        let _ = self.logs.send(LogBatch {
            account: function.account.clone(),
            region: function.region.clone(),
            group: function.log_group(),
            stream: env.log_stream.clone(),
            events,
        });
        if healthy {
            let mut pools = self.pools.lock().expect("lock");
            if let Some(pool) = pools.get_mut(&key) {
                pool.idle.push(env);
            }
        }
        Ok(Outcome {
            payload,
            function_error,
            log,
        })
    }

    /// Starts a new environment: its Runtime API listener, the process, the log reader.
    async fn spawn(&self, function: &FunctionRecord) -> Result<Environment, RunError> {
        let python = function.runtime.starts_with("python");
        if python {
            self.check_python().await?;
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| RunError::Internal(format!("bind the Runtime API: {e}")))?;
        let address = listener
            .local_addr()
            .map_err(|e| RunError::Internal(format!("read the Runtime API address: {e}")))?;
        let (jobs_tx, jobs_rx) = mpsc::channel(1);
        let (failure_tx, failure_rx) = watch::channel(None);
        let shared = Arc::new(EnvShared {
            jobs: tokio::sync::Mutex::new(jobs_rx),
            inflight: Mutex::new(HashMap::new()),
            failure: failure_tx,
            spawned: Instant::now(),
            ready: std::sync::OnceLock::new(),
            picked: Mutex::new(None),
        });
        let server_shared = shared.clone();
        let server = tokio::spawn(async move { serve_runtime_api(listener, server_shared).await });

        let root = function.code_dir();
        let node = function.runtime.starts_with("nodejs");
        let (program, args): (PathBuf, Vec<String>) = if python {
            (
                self.config.python.clone(),
                vec!["-m".into(), "awslambdaric".into(), function.handler.clone()],
            )
        } else if node {
            let Some(ric) = &self.config.node_ric else {
                return Err(RunError::Runtime(
                    "nodejs functions need --lambda-node-ric (the aws-lambda-ric executable)"
                        .into(),
                ));
            };
            (ric.clone(), vec![function.handler.clone()])
        } else {
            let bootstrap = root.join("bootstrap");
            if !bootstrap.is_file() {
                return Err(RunError::Runtime(
                    "the function's code has no bootstrap file at its root".into(),
                ));
            }
            (bootstrap, Vec::new())
        };
        // Through setpriv when the system has it: the runtime then dies with Millrace even after
        // kill -9 (its parent-death signal), instead of outliving it.
        let mut command = match &self.setpriv {
            Some(setpriv) => {
                let mut command = tokio::process::Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).arg(&program);
                command
            }
            None => tokio::process::Command::new(&program),
        };
        command.args(&args);
        let log_stream = format!(
            "{}/[$LATEST]{}",
            date_path(now_ms()),
            uuid::Uuid::new_v4().simple()
        );
        command.env_clear();
        for name in ["PATH", "HOME", "LD_LIBRARY_PATH", "SSL_CERT_FILE"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .env("_HANDLER", &function.handler)
            .env("LAMBDA_TASK_ROOT", &root)
            .env("LAMBDA_RUNTIME_DIR", &root)
            .env("AWS_LAMBDA_FUNCTION_NAME", &function.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                function.memory_size.to_string(),
            )
            .env("AWS_REGION", &function.region)
            .env("AWS_DEFAULT_REGION", &function.region)
            .env("AWS_LAMBDA_LOG_GROUP_NAME", function.log_group())
            .env("AWS_LAMBDA_LOG_STREAM_NAME", &log_stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env(
                "AWS_EXECUTION_ENV",
                format!("AWS_Lambda_{}", function.runtime),
            )
            .env("LANG", "en_US.UTF-8")
            .env("TZ", ":UTC")
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONPATH", &root);
        if let Some(endpoint) = &self.config.endpoint {
            command.env("AWS_ENDPOINT_URL", endpoint);
        }
        let mut expires = None;
        if let Some(credentials) = self
            .credentials
            .as_ref()
            .and_then(|c| c.for_function(function))
        {
            command
                .env("AWS_ACCESS_KEY_ID", &credentials.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &credentials.secret_access_key);
            if let Some(token) = &credentials.session_token {
                command.env("AWS_SESSION_TOKEN", token);
            }
            expires = credentials
                .lifetime
                .map(|lifetime| Instant::now() + lifetime.saturating_sub(Duration::from_secs(60)));
        }
        for (name, value) in &function.environment {
            command.env(name, value);
        }
        let (reader, writer) =
            std::io::pipe().map_err(|e| RunError::Internal(format!("create the log pipe: {e}")))?;
        let writer_err = writer
            .try_clone()
            .map_err(|e| RunError::Internal(format!("create the log pipe: {e}")))?;
        command
            .current_dir(&root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::from(writer))
            .stderr(std::process::Stdio::from(writer_err))
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            server.abort();
            if python {
                RunError::Runtime(format!(
                    "start {}: {e}; name the interpreter with --lambda-python",
                    self.config.python.display()
                ))
            } else if node {
                RunError::Runtime(format!(
                    "start aws-lambda-ric: {e}; check --lambda-node-ric"
                ))
            } else {
                RunError::Runtime(format!("start the function's bootstrap: {e}"))
            }
        })?;
        drop(command);
        let pid = child.id();
        let tap = spawn_log_reader(reader)?;
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let exit_shared = shared.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
                _ = kill_rx => {
                    let _ = child.kill().await;
                    "killed".to_owned()
                }
            };
            server.abort();
            exit_shared.failure.send_if_modified(|failure| {
                if failure.is_none() {
                    *failure = Some(EnvFailure::Exited(status));
                    true
                } else {
                    false
                }
            });
            exit_shared.inflight.lock().expect("lock").clear();
        });
        Ok(Environment {
            revision: function.revision_id.clone(),
            jobs: jobs_tx,
            shared,
            failure: failure_rx,
            kill: Some(kill_tx),
            tap,
            log_stream,
            pid,
            initialized: false,
            expires,
        })
    }
}

/// ISO 8601 with milliseconds, as Lambda stamps its own log lines.
pub fn iso_millis(ms: u64) -> String {
    let date = date_path(ms).replace('/', "-");
    let seconds = (ms / 1000) % 86_400;
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        (seconds / 60) % 60,
        seconds % 60,
        ms % 1000
    )
}

/// ISO 8601 to the second (`2024-01-01T00:00:00Z`), as tumbling windows are stamped.
pub fn iso_seconds(ms: u64) -> String {
    let full = iso_millis(ms);
    format!("{}Z", &full[..full.len() - 5])
}

/// Reads the process's output into lines; a drain request reads whatever is in the pipe now.
fn spawn_log_reader(reader: std::io::PipeReader) -> Result<LogTap, RunError> {
    let fd: std::os::fd::OwnedFd = reader.into();
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(fd)
        .map_err(|e| RunError::Internal(format!("watch the log pipe: {e}")))?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (drain_tx, mut drain_rx) = mpsc::channel::<oneshot::Sender<()>>(4);
    let sink = lines.clone();
    tokio::spawn(async move {
        let mut partial: Vec<u8> = Vec::new();
        let mut buffer = vec![0u8; 16 * 1024];
        let mut open = true;
        let push = |partial: &mut Vec<u8>, data: &[u8], flush: bool| {
            partial.extend_from_slice(data);
            let mut out = sink.lock().expect("lock");
            while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                out.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            if flush && !partial.is_empty() {
                out.push(String::from_utf8_lossy(partial).into_owned());
                partial.clear();
            }
        };
        loop {
            tokio::select! {
                ready = receiver.readable(), if open => {
                    if ready.is_err() {
                        open = false;
                        continue;
                    }
                    match receiver.try_read(&mut buffer) {
                        Ok(0) => open = false,
                        Ok(n) => push(&mut partial, &buffer[..n], false),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => open = false,
                    }
                }
                request = drain_rx.recv() => {
                    let Some(done) = request else { break };
                    while open {
                        match receiver.try_read(&mut buffer) {
                            Ok(0) => open = false,
                            Ok(n) => push(&mut partial, &buffer[..n], false),
                            Err(_) => break,
                        }
                    }
                    push(&mut partial, &[], true);
                    let _ = done.send(());
                }
            }
        }
    });
    Ok(LogTap {
        lines,
        drain: drain_tx,
    })
}

type RuntimeResponse = Response<Full<Bytes>>;

fn reply(status: u16, body: &str) -> RuntimeResponse {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("static response")
}

async fn serve_runtime_api(listener: TcpListener, shared: Arc<EnvShared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(runtime_request(&shared, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One Runtime API request.
async fn runtime_request(shared: &EnvShared, request: Request<Incoming>) -> RuntimeResponse {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return reply(
            404,
            r#"{"errorMessage":"not found","errorType":"InvalidRequest"}"#,
        );
    };
    if rest == "invocation/next" && parts.method == http::Method::GET {
        let _ = shared.ready.set(Instant::now());
        let job = {
            let mut jobs = shared.jobs.lock().await;
            jobs.recv().await
        };
        let Some(job) = job else {
            return reply(
                500,
                r#"{"errorMessage":"environment stopped","errorType":"Runtime.Stopped"}"#,
            );
        };
        *shared.picked.lock().expect("lock") = Some(Instant::now());
        shared
            .inflight
            .lock()
            .expect("lock")
            .insert(job.id.clone(), job.outcome);
        let mut response = Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .header("Lambda-Runtime-Aws-Request-Id", &job.id)
            .header("Lambda-Runtime-Deadline-Ms", job.deadline_ms.to_string())
            .header("Lambda-Runtime-Invoked-Function-Arn", &job.arn)
            .header(
                "Lambda-Runtime-Trace-Id",
                format!(
                    "Root=1-{:08x}-{};Parent={};Sampled=0",
                    now_ms() / 1000,
                    &uuid::Uuid::new_v4().simple().to_string()[..24],
                    &uuid::Uuid::new_v4().simple().to_string()[..16]
                ),
            );
        if let Some(context) = &job.client_context {
            response = response.header("Lambda-Runtime-Client-Context", context);
        }
        return response
            .body(Full::new(job.payload))
            .unwrap_or_else(|_| reply(500, "{}"));
    }
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return reply(
                400,
                r#"{"errorMessage":"unreadable body","errorType":"InvalidRequest"}"#,
            )
        }
    };
    if rest == "init/error" && parts.method == http::Method::POST {
        shared.failure.send_if_modified(|failure| {
            if failure.is_none() {
                *failure = Some(EnvFailure::Init(body.clone()));
                true
            } else {
                false
            }
        });
        return reply(202, r#"{"status":"OK"}"#);
    }
    if let Some(tail) = rest.strip_prefix("invocation/") {
        if parts.method == http::Method::POST {
            let (id, kind) = match tail.rsplit_once('/') {
                Some((id, kind)) => (id, kind),
                None => (tail, ""),
            };
            let sender = shared.inflight.lock().expect("lock").remove(id);
            let Some(sender) = sender else {
                return reply(
                    400,
                    r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                );
            };
            let delivered = match kind {
                "response" => Delivered::Response(body),
                "error" => Delivered::Error(
                    body,
                    parts
                        .headers
                        .get("Lambda-Runtime-Function-Error-Type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                ),
                _ => {
                    return reply(
                        404,
                        r#"{"errorMessage":"not found","errorType":"InvalidRequest"}"#,
                    )
                }
            };
            let _ = sender.send(delivered);
            return reply(202, r#"{"status":"OK"}"#);
        }
    }
    reply(
        404,
        r#"{"errorMessage":"not found","errorType":"InvalidRequest"}"#,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(date_path(0), "1970/01/01");
        assert_eq!(date_path(1_700_000_000_000), "2023/11/14");
        assert_eq!(iso_millis(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_seconds(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }
}
