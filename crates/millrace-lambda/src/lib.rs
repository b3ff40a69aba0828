//! Lambda (restJson1, `/2015-03-31/...`): functions run as local processes through the real
//! runtime clients (`runtime`), and event source mappings that feed Kinesis shards to them
//! with durable per-shard checkpoints (`mapping`).
//!
//! The service sees model-shaped JSON documents; the server's restJson1 front door has bound
//! the URI, query string, headers and payload into them.
#![deny(clippy::unwrap_used)]

mod filter;
mod function;
mod mapping;
mod runtime;
mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use millrace_engine::Engine;
use millrace_service::{BoxFuture, CallContext, JsonService, ServiceError};
use millrace_wire::model::{HttpOperation, ServiceModel};
use serde_json::{json, Value};

pub use function::FunctionRecord;
pub use runtime::{Credentials, LogSink, RoleCredentials, RuntimeConfig};

use function::{function_key, parse_function_name, runtime_supported};

/// How the Lambda service is set up.
pub struct LambdaConfig {
    /// Directory for `lambda.redb` and unpacked code (`<data-dir>/lambda`).
    pub dir: PathBuf,
    pub runtime: RuntimeConfig,
    /// The source of functions' role credentials, if any.
    pub credentials: Option<Arc<dyn RoleCredentials>>,
    /// Testing knob: how many real milliseconds one second of MaximumRecordAgeInSeconds lasts.
    pub record_age_second_ms: u64,
}

pub(crate) struct Inner {
    store: store::Store,
    functions: RwLock<BTreeMap<String, FunctionRecord>>,
    runtimes: runtime::Runtimes,
    dir: PathBuf,
    /// Each account's Kinesis engine (event sources).
    engines: HashMap<String, Arc<Engine>>,
    mappings: Mutex<BTreeMap<String, mapping::MappingHandle>>,
    /// Whether nodejs functions can run (`--lambda-node-ric`).
    node: bool,
    record_age_second_ms: u64,
}

/// The Lambda service.
pub struct Lambda {
    inner: Arc<Inner>,
}

/// The bucket name that makes `S3Key` a path on the Millrace host.
const LOCAL_BUCKET: &str = "millrace-local";

fn store_failed(error: String) -> ServiceError {
    tracing::error!(%error, "lambda store failure");
    ServiceError::internal("ServiceException")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn not_found(arn: &str) -> ServiceError {
    ServiceError::client(
        "ResourceNotFoundException",
        format!("Function not found: {arn}"),
    )
    .with_status(404)
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::client("InvalidParameterValueException", message)
}

fn text(input: &Value, key: &str) -> Option<String> {
    input.get(key).and_then(Value::as_str).map(str::to_owned)
}

impl Lambda {
    /// Opens the store, and starts the mappings that were enabled (inside a Tokio runtime).
    pub fn open(
        config: LambdaConfig,
        engines: HashMap<String, Arc<Engine>>,
        sink: Arc<dyn LogSink>,
    ) -> Result<Lambda, String> {
        std::fs::create_dir_all(config.dir.join("code")).map_err(|e| e.to_string())?;
        let store = store::Store::open(&config.dir.join("lambda.redb"))?;
        let mut functions = BTreeMap::new();
        for (key, text) in store.functions()? {
            match serde_json::from_str::<FunctionRecord>(&text) {
                Ok(record) => {
                    functions.insert(key, record);
                }
                Err(error) => tracing::error!(%error, key, "unreadable function record"),
            }
        }
        let node = config.runtime.node_ric.is_some();
        let record_age_second_ms = config.record_age_second_ms.max(1);
        let inner = Arc::new(Inner {
            node,
            record_age_second_ms,
            store,
            functions: RwLock::new(functions),
            runtimes: runtime::Runtimes::new(config.runtime, sink, config.credentials),
            dir: config.dir,
            engines,
            mappings: Mutex::new(BTreeMap::new()),
        });
        mapping::resume_all(&inner)?;
        Ok(Lambda { inner })
    }
}

impl Inner {
    pub(crate) fn function(&self, key: &str) -> Option<FunctionRecord> {
        self.functions.read().expect("lock").get(key).cloned()
    }

    fn save_function(&self, record: &FunctionRecord) -> Result<(), ServiceError> {
        let text = serde_json::to_string(record).map_err(|e| store_failed(e.to_string()))?;
        self.store
            .put_function(&record.key(), &text)
            .map_err(store_failed)?;
        self.functions
            .write()
            .expect("lock")
            .insert(record.key(), record.clone());
        Ok(())
    }

    /// The function a `FunctionName` names, after authorization of `action` on it.
    fn authorized_function(
        &self,
        context: &CallContext<'_>,
        action: &str,
        input: &Value,
    ) -> Result<FunctionRecord, ServiceError> {
        let given = text(input, "FunctionName").unwrap_or_default();
        let (name, _) = parse_function_name(&given);
        let arn = format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            context.region, context.caller.account
        );
        context.authz.check(action, &arn, None)?;
        self.function(&function_key(
            &context.caller.account,
            context.region,
            &name,
        ))
        .ok_or_else(|| not_found(&arn))
    }

    fn code_dir(&self, record_key: &str) -> PathBuf {
        let safe: String = record_key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir
            .join("code")
            .join(format!("{safe}-{}", uuid::Uuid::new_v4().simple()))
    }

    fn create_function(
        &self,
        context: &CallContext<'_>,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let given = text(input, "FunctionName").unwrap_or_default();
        let (name, _) = parse_function_name(&given);
        let account = context.caller.account.clone();
        let arn = format!(
            "arn:aws:lambda:{}:{account}:function:{name}",
            context.region
        );
        context.authz.check("lambda:CreateFunction", &arn, None)?;
        let key = function_key(&account, context.region, &name);
        if self.function(&key).is_some() {
            return Err(ServiceError::client(
                "ResourceConflictException",
                format!("Function already exist: {name}"),
            )
            .with_status(409));
        }
        if input.get("PackageType").and_then(Value::as_str) == Some("Image") {
            return Err(invalid(
                "Container images are not supported by Millrace; use a zip package.",
            ));
        }
        let runtime = text(input, "Runtime").ok_or_else(|| {
            invalid("Runtime and Handler are mandatory parameters for functions created with deployment packages.")
        })?;
        if !runtime_supported(&runtime, self.node) {
            return Err(invalid(format!(
                "The runtime parameter of {runtime} is not supported by Millrace (python3.x through awslambdaric, provided.al2023, provided.al2, provided, and nodejs with --lambda-node-ric)."
            )));
        }
        let handler = match text(input, "Handler") {
            Some(handler) => handler,
            None if runtime.starts_with("provided") => String::new(),
            None => return Err(invalid(
                "Runtime and Handler are mandatory parameters for functions created with deployment packages.",
            )),
        };
        let code = input.get("Code").cloned().unwrap_or(Value::Null);
        let (dir, sha, size, local_code) = self.load_code(&key, &code)?;
        let environment = environment_of(input);
        let record = FunctionRecord {
            account,
            region: context.region.to_owned(),
            name,
            runtime,
            handler,
            role: text(input, "Role").unwrap_or_default(),
            description: text(input, "Description").unwrap_or_default(),
            timeout: input.get("Timeout").and_then(Value::as_u64).unwrap_or(3),
            memory_size: input
                .get("MemorySize")
                .and_then(Value::as_u64)
                .unwrap_or(128),
            environment,
            code_sha256: sha,
            code_size: size,
            last_modified: function::lambda_timestamp(now_ms()),
            revision_id: uuid::Uuid::new_v4().to_string(),
            code_dir: dir,
            local_code,
            architectures: input
                .get("Architectures")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_else(|| vec!["x86_64".to_owned()]),
            tags: input
                .get("Tags")
                .and_then(Value::as_object)
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
            ephemeral_storage: input
                .pointer("/EphemeralStorage/Size")
                .and_then(Value::as_u64)
                .unwrap_or(512),
        };
        if let Err(error) = self.save_function(&record) {
            if !record.local_code {
                let _ = std::fs::remove_dir_all(&record.code_dir);
            }
            return Err(error);
        }
        Ok(record.configuration())
    }

    /// The code of `ZipFile` (unpacked into a new directory of ours), or of the local bucket
    /// `millrace-local` whose `S3Key` is an absolute path on this machine: a directory used in
    /// place (edits take effect on the next cold start) or a zip file unpacked.
    fn load_code(
        &self,
        key: &str,
        code: &Value,
    ) -> Result<(PathBuf, String, u64, bool), ServiceError> {
        let zip = match (code.get("ZipFile").and_then(Value::as_str), code.get("S3Bucket").and_then(Value::as_str)) {
            (Some(zip), _) => zip.to_owned(),
            (None, Some(LOCAL_BUCKET)) => {
                let path = PathBuf::from(code.get("S3Key").and_then(Value::as_str).unwrap_or(""));
                if !path.is_absolute() {
                    return Err(invalid(format!(
                        "S3Key must be an absolute path on the Millrace host with S3Bucket {LOCAL_BUCKET}."
                    )));
                }
                if path.is_dir() {
                    let digest = <sha2::Sha256 as sha2::Digest>::digest(path.to_string_lossy().as_bytes());
                    return Ok((path, STANDARD.encode(digest), 0, true));
                }
                let bytes = std::fs::read(&path).map_err(|_| {
                    invalid(format!("Error occurred while reading {}: no such file or directory.", path.display()))
                })?;
                STANDARD.encode(bytes)
            }
            _ => {
                return Err(invalid(format!(
                    "Please provide a source for function code: ZipFile, or S3Bucket {LOCAL_BUCKET} with an absolute S3Key; other S3 code locations are not served by Millrace."
                )))
            }
        };
        let dir = self.code_dir(key);
        match function::unpack_zip(&zip, &dir) {
            Ok((sha, size)) => Ok((dir, sha, size, false)),
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(error)
            }
        }
    }

    fn update_code(&self, context: &CallContext<'_>, input: &Value) -> Result<Value, ServiceError> {
        let mut record = self.authorized_function(context, "lambda:UpdateFunctionCode", input)?;
        check_revision(&record, input)?;
        if input.get("DryRun").and_then(Value::as_bool) == Some(true) {
            return Ok(record.configuration());
        }
        let (dir, sha, size, local_code) = self.load_code(&record.key(), input)?;
        let old = std::mem::replace(&mut record.code_dir, dir);
        let old_is_ours = !std::mem::replace(&mut record.local_code, local_code);
        record.code_sha256 = sha;
        record.code_size = size;
        record.last_modified = function::lambda_timestamp(now_ms());
        record.revision_id = uuid::Uuid::new_v4().to_string();
        self.save_function(&record)?;
        self.runtimes.retire(&record.key());
        if old_is_ours {
            let _ = std::fs::remove_dir_all(old);
        }
        Ok(record.configuration())
    }

    fn update_configuration(
        &self,
        context: &CallContext<'_>,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let mut record =
            self.authorized_function(context, "lambda:UpdateFunctionConfiguration", input)?;
        check_revision(&record, input)?;
        if let Some(runtime) = text(input, "Runtime") {
            if !runtime_supported(&runtime, self.node) {
                return Err(invalid(format!(
                    "The runtime parameter of {runtime} is not supported by Millrace (python3.x through awslambdaric, provided.al2023, provided.al2, provided, and nodejs with --lambda-node-ric)."
                )));
            }
            record.runtime = runtime;
        }
        if let Some(handler) = text(input, "Handler") {
            record.handler = handler;
        }
        if let Some(role) = text(input, "Role") {
            record.role = role;
        }
        if let Some(description) = text(input, "Description") {
            record.description = description;
        }
        if let Some(timeout) = input.get("Timeout").and_then(Value::as_u64) {
            record.timeout = timeout;
        }
        if let Some(memory) = input.get("MemorySize").and_then(Value::as_u64) {
            record.memory_size = memory;
        }
        if input.get("Environment").is_some() {
            record.environment = environment_of(input);
        }
        if let Some(size) = input
            .pointer("/EphemeralStorage/Size")
            .and_then(Value::as_u64)
        {
            record.ephemeral_storage = size;
        }
        record.last_modified = function::lambda_timestamp(now_ms());
        record.revision_id = uuid::Uuid::new_v4().to_string();
        self.save_function(&record)?;
        self.runtimes.retire(&record.key());
        Ok(record.configuration())
    }

    fn delete_function(
        &self,
        context: &CallContext<'_>,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let record = self.authorized_function(context, "lambda:DeleteFunction", input)?;
        self.store
            .delete_function(&record.key())
            .map_err(store_failed)?;
        self.functions.write().expect("lock").remove(&record.key());
        self.runtimes.retire(&record.key());
        if !record.local_code {
            let _ = std::fs::remove_dir_all(&record.code_dir);
        }
        Ok(json!({}))
    }

    fn list_functions(
        &self,
        context: &CallContext<'_>,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        context.authz.check("lambda:ListFunctions", "*", None)?;
        let prefix = function_key(&context.caller.account, context.region, "");
        let max = input
            .get("MaxItems")
            .and_then(Value::as_u64)
            .unwrap_or(50)
            .clamp(1, 50) as usize;
        let marker = text(input, "Marker");
        let functions = self.functions.read().expect("lock");
        let mut page: Vec<Value> = Vec::new();
        let mut next = None;
        for (key, record) in functions.range(prefix.clone()..) {
            if !key.starts_with(&prefix) {
                break;
            }
            if marker.as_deref().is_some_and(|m| record.name.as_str() <= m) {
                continue;
            }
            if page.len() == max {
                next = page
                    .last()
                    .and_then(|last| last.get("FunctionName"))
                    .cloned();
                break;
            }
            page.push(record.configuration());
        }
        let mut out = json!({ "Functions": page });
        if let Some(next) = next {
            out["NextMarker"] = next;
        }
        Ok(out)
    }

    async fn invoke(
        self: &Arc<Self>,
        context: &CallContext<'_>,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let record = self.authorized_function(context, "lambda:InvokeFunction", input)?;
        if let Some(qualifier) = text(input, "Qualifier") {
            if qualifier != "$LATEST" {
                return Err(not_found(&format!("{}:{qualifier}", record.arn())));
            }
        }
        let payload = match input.get("Payload").and_then(Value::as_str) {
            Some(encoded) => STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| ServiceError::internal("ServiceException"))?,
            None => b"{}".to_vec(),
        };
        if serde_json::from_slice::<Value>(&payload).is_err() {
            return Err(ServiceError::client(
                "InvalidRequestContentException",
                "Could not parse request body into json: Could not parse payload into json: Unexpected character: was expecting a JSON value",
            ));
        }
        let client_context = text(input, "ClientContext");
        match text(input, "InvocationType").as_deref() {
            Some("DryRun") => return Ok(json!({"StatusCode": 204})),
            Some("Event") => {
                let inner = self.clone();
                tokio::spawn(async move {
                    if let Err(error) = inner
                        .runtimes
                        .invoke(&record, payload.into(), client_context)
                        .await
                    {
                        tracing::warn!(?error, function = %record.name, "asynchronous invocation failed");
                    }
                });
                return Ok(json!({"StatusCode": 202}));
            }
            _ => {}
        }
        let outcome = self
            .runtimes
            .invoke(&record, payload.into(), client_context)
            .await
            .map_err(run_error)?;
        let mut out = json!({
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": STANDARD.encode(&outcome.payload),
        });
        if let Some(error) = outcome.function_error {
            out["FunctionError"] = Value::String(error);
        }
        if text(input, "LogType").as_deref() == Some("Tail") {
            out["LogResult"] = Value::String(STANDARD.encode(log_tail(&outcome.log)));
        }
        Ok(out)
    }
}

/// The last 4 KB of an invocation's log, on a character boundary.
fn log_tail(lines: &[String]) -> String {
    let mut all = lines.join("\n");
    all.push('\n');
    if all.len() <= 4096 {
        return all;
    }
    let mut start = all.len() - 4096;
    while !all.is_char_boundary(start) {
        start += 1;
    }
    all[start..].to_owned()
}

pub(crate) fn run_error(error: runtime::RunError) -> ServiceError {
    match error {
        runtime::RunError::Runtime(message) => {
            ServiceError::client("InvalidRuntimeException", message).with_status(502)
        }
        runtime::RunError::Internal(message) => {
            tracing::error!(%message, "invocation failed");
            ServiceError::internal("ServiceException")
        }
    }
}

fn check_revision(record: &FunctionRecord, input: &Value) -> Result<(), ServiceError> {
    match text(input, "RevisionId") {
        Some(revision) if revision != record.revision_id => Err(ServiceError::client(
            "PreconditionFailedException",
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )
        .with_status(412)),
        _ => Ok(()),
    }
}

fn environment_of(input: &Value) -> BTreeMap<String, String> {
    input
        .pointer("/Environment/Variables")
        .and_then(Value::as_object)
        .map(|vars| {
            vars.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

impl JsonService for Lambda {
    /// restJson1 has no target; this never matches an `X-Amz-Target`.
    fn target_prefix(&self) -> &'static str {
        "AWSGirApiService"
    }
    fn json_version(&self) -> &'static str {
        "1.1"
    }
    fn model(&self) -> &'static ServiceModel {
        &millrace_wire::generated::lambda_model::LAMBDA
    }
    fn http_bindings(&self) -> Option<&'static [HttpOperation]> {
        Some(millrace_wire::generated::lambda_model::HTTP)
    }
    fn call<'a>(
        &'a self,
        context: CallContext<'a>,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, ServiceError>> {
        Box::pin(async move {
            let inner = &self.inner;
            match operation {
                "CreateFunction" => inner.create_function(&context, &input),
                "GetFunction" => {
                    let record =
                        inner.authorized_function(&context, "lambda:GetFunction", &input)?;
                    let mut out = json!({
                        "Configuration": record.configuration(),
                        "Code": {"RepositoryType": "S3", "Location": format!("file://{}", record.code_dir.display())},
                    });
                    if !record.tags.is_empty() {
                        out["Tags"] = json!(record.tags);
                    }
                    Ok(out)
                }
                "GetFunctionConfiguration" => inner
                    .authorized_function(&context, "lambda:GetFunctionConfiguration", &input)
                    .map(|record| record.configuration()),
                "UpdateFunctionCode" => inner.update_code(&context, &input),
                "UpdateFunctionConfiguration" => inner.update_configuration(&context, &input),
                "DeleteFunction" => inner.delete_function(&context, &input),
                "ListFunctions" => inner.list_functions(&context, &input),
                "Invoke" => inner.invoke(&context, &input).await,
                "CreateEventSourceMapping" => mapping::create(inner, &context, &input),
                "GetEventSourceMapping" => mapping::get(inner, &context, &input),
                "UpdateEventSourceMapping" => mapping::update(inner, &context, &input),
                "DeleteEventSourceMapping" => mapping::delete(inner, &context, &input),
                "ListEventSourceMappings" => mapping::list(inner, &context, &input),
                other => {
                    context.authz.check(&format!("lambda:{other}"), "*", None)?;
                    Err(ServiceError::client(
                        "InvalidParameterValueException",
                        format!("{other} is not supported by Millrace"),
                    ))
                }
            }
        })
    }
    /// Code, environment variables and payloads never reach the audit log (CloudTrail hides
    /// them too).
    fn audit_parameters(&self, _operation: &str, input: &Value) -> Value {
        const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";
        let mut shown = input.clone();
        for pointer in ["/ZipFile", "/Code/ZipFile", "/Payload", "/ClientContext"] {
            if let Some(value) = shown.pointer_mut(pointer) {
                *value = Value::String(HIDDEN.into());
            }
        }
        if let Some(variables) = shown.pointer_mut("/Environment/Variables") {
            *variables = Value::String(HIDDEN.into());
        }
        shown
    }
    /// Invocations are data-plane calls, which CloudTrail leaves out by default.
    fn audits(&self, operation: &str) -> bool {
        operation != "Invoke"
    }
    fn shutdown(&self) {
        mapping::stop_all(&self.inner);
        self.inner.runtimes.retire_all();
    }
}
