//! Function records: what CreateFunction stores, how code is unpacked, and the
//! `FunctionConfiguration` the API reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use millrace_service::ServiceError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One function (`$LATEST`; versions and aliases are not kept).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FunctionRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    pub description: String,
    pub timeout: u64,
    pub memory_size: u64,
    pub environment: BTreeMap<String, String>,
    pub code_sha256: String,
    pub code_size: u64,
    /// `2024-01-01T00:00:00.000+0000`.
    pub last_modified: String,
    pub revision_id: String,
    /// The directory the code is unpacked into (one per code revision), or the operator's own
    /// directory when `local_code`.
    pub code_dir: PathBuf,
    /// The code is a directory of the operator's (`S3Bucket` `millrace-local`): never deleted.
    #[serde(default)]
    pub local_code: bool,
    pub architectures: Vec<String>,
    pub tags: BTreeMap<String, String>,
    pub ephemeral_storage: u64,
}

impl FunctionRecord {
    pub fn key(&self) -> String {
        function_key(&self.account, &self.region, &self.name)
    }

    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.region, self.account, self.name
        )
    }

    pub fn log_group(&self) -> String {
        format!("/aws/lambda/{}", self.name)
    }

    pub fn code_dir(&self) -> PathBuf {
        self.code_dir.clone()
    }

    /// `FunctionConfiguration`.
    pub fn configuration(&self) -> Value {
        let mut config = json!({
            "FunctionName": self.name,
            "FunctionArn": self.arn(),
            "Runtime": self.runtime,
            "Role": self.role,
            "Handler": self.handler,
            "CodeSize": self.code_size,
            "Description": self.description,
            "Timeout": self.timeout,
            "MemorySize": self.memory_size,
            "LastModified": self.last_modified,
            "CodeSha256": self.code_sha256,
            "Version": "$LATEST",
            "TracingConfig": {"Mode": "PassThrough"},
            "RevisionId": self.revision_id,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": self.architectures,
            "EphemeralStorage": {"Size": self.ephemeral_storage},
            "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": self.log_group()},
        });
        if !self.environment.is_empty() {
            config["Environment"] = json!({"Variables": self.environment});
        }
        config
    }
}

pub fn function_key(account: &str, region: &str, name: &str) -> String {
    format!("{account}/{region}/{name}")
}

/// The function name in a `FunctionName` (a name, a full or partial ARN, with or without
/// `:$LATEST`) and the qualifier, if one was given.
pub fn parse_function_name(text: &str) -> (String, Option<String>) {
    let rest = if let Some(arn) = text.strip_prefix("arn:") {
        arn.split_once(":function:")
            .map_or(arn, |(_, rest)| rest)
            .to_owned()
    } else if let Some((_, rest)) = text.split_once(":function:") {
        rest.to_owned()
    } else {
        text.to_owned()
    };
    match rest.split_once(':') {
        Some((name, qualifier)) => (name.to_owned(), Some(qualifier.to_owned())),
        None => (rest, None),
    }
}

/// Lambda's timestamp format: `2024-01-01T00:00:00.000+0000`.
pub fn lambda_timestamp(ms: u64) -> String {
    let iso = crate::runtime::iso_millis(ms);
    format!("{}+0000", iso.trim_end_matches('Z'))
}

/// The code of a `ZipFile` (base64 in the document): unpacked into `dir`; returns the SHA-256
/// (base64) and the size.
pub fn unpack_zip(encoded: &str, dir: &Path) -> Result<(String, u64), ServiceError> {
    let bytes = STANDARD
        .decode(encoded.as_bytes())
        .map_err(|_| unzip_failed())?;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes.as_slice())).map_err(|_| unzip_failed())?;
    let unzipped: u64 = (0..archive.len())
        .filter_map(|index| archive.by_index_raw(index).ok().map(|entry| entry.size()))
        .sum();
    if unzipped > MAX_UNZIPPED_BYTES {
        return Err(ServiceError::client(
            "InvalidParameterValueException",
            format!("Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes"),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|_| ServiceError::internal("ServiceException"))?;
    archive.extract(dir).map_err(|_| unzip_failed())?;
    // A `bootstrap` must be executable; archives made without Unix modes lose the bit.
    let bootstrap = dir.join("bootstrap");
    if bootstrap.is_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755));
    }
    let digest = Sha256::digest(&bytes);
    Ok((STANDARD.encode(digest), bytes.len() as u64))
}

/// Lambda's limit on a deployment package's unzipped size (250 MB).
const MAX_UNZIPPED_BYTES: u64 = 262_144_000;

fn unzip_failed() -> ServiceError {
    ServiceError::client(
        "InvalidParameterValueException",
        "Could not unzip uploaded file. Please check your file, then try to upload again.",
    )
}

/// Runtimes Millrace can run: Python through awslambdaric, `provided*` through `bootstrap`,
/// `nodejs*` through aws-lambda-ric when the operator names it.
pub fn runtime_supported(runtime: &str, node: bool) -> bool {
    runtime.starts_with("python3")
        || runtime.starts_with("provided")
        || (node && runtime.starts_with("nodejs"))
}
