//! The KMS JSON API (`TrentService.*`, awsJson 1.1): each operation reads its model-checked
//! input, authorizes `kms:<Operation>` on the key, and answers in the model's output shape.

use base64::Engine as _;
use millrace_service::{BoxFuture, CallContext, JsonService, ServiceError};
use millrace_wire::model::ServiceModel;
use serde_json::{json, Map, Value};

use crate::error::KmsError;
use crate::keys::{
    check_usable, default_policy, pending_deletion, KeyDoc, Keys, Scope, KINESIS_MANAGED_ALIAS,
};
use crate::Kms;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn blob_input(input: &Value, member: &str) -> Result<Vec<u8>, ServiceError> {
    let text = input.get(member).and_then(Value::as_str).unwrap_or("");
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ServiceError::client("SerializationException", "Invalid base64"))
}

fn text<'a>(input: &'a Value, member: &str) -> Option<&'a str> {
    input.get(member).and_then(Value::as_str)
}

fn context_of(input: &Value, member: &str) -> Vec<(String, String)> {
    input
        .get(member)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn tags_of(input: &Value) -> Vec<(String, String)> {
    input
        .get("Tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .map(|t| {
                    (
                        text(t, "TagKey").unwrap_or("").to_owned(),
                        text(t, "TagValue").unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The error as KMS reports it.
pub fn service_error(error: KmsError) -> ServiceError {
    let code = match &error {
        KmsError::NotFound(_) => "NotFoundException",
        KmsError::Disabled(_) => "DisabledException",
        KmsError::InvalidState(_) => "KMSInvalidStateException",
        KmsError::InvalidCiphertext => {
            return ServiceError {
                message: None,
                ..ServiceError::client("InvalidCiphertextException", "")
            }
        }
        KmsError::IncorrectKey(_) => "IncorrectKeyException",
        KmsError::AlreadyExists(_) => "AlreadyExistsException",
        KmsError::Validation(_) => "ValidationException",
        KmsError::NotAuthorized(_) => "NotAuthorizedException",
        KmsError::Tag(_) => "TagException",
        KmsError::InvalidMarker(_) => "InvalidMarkerException",
        KmsError::MalformedPolicy(_) => "MalformedPolicyDocumentException",
        KmsError::Unsupported(_) => "UnsupportedOperationException",
        KmsError::RootKey(message) => {
            tracing::error!(%message, "kms is unavailable");
            return ServiceError::internal("KMSInternalException");
        }
        KmsError::Internal(message) => {
            tracing::error!(%message, "kms failure");
            return ServiceError::internal("KMSInternalException");
        }
    };
    ServiceError::client(code, error.to_string())
}

pub fn metadata(doc: &KeyDoc) -> Value {
    let mut map = Map::new();
    map.insert("AWSAccountId".into(), json!(doc.account));
    map.insert("KeyId".into(), json!(doc.id));
    map.insert("Arn".into(), json!(doc.arn()));
    map.insert("CreationDate".into(), json!(doc.created));
    map.insert("Enabled".into(), json!(doc.state == "Enabled"));
    map.insert("Description".into(), json!(doc.description));
    map.insert("KeyUsage".into(), json!("ENCRYPT_DECRYPT"));
    map.insert("KeyState".into(), json!(doc.state));
    if let Some(date) = doc.deletion_date {
        map.insert("DeletionDate".into(), json!(date));
    }
    map.insert("Origin".into(), json!("AWS_KMS"));
    map.insert("KeyManager".into(), json!(doc.manager));
    map.insert("CustomerMasterKeySpec".into(), json!("SYMMETRIC_DEFAULT"));
    map.insert("KeySpec".into(), json!("SYMMETRIC_DEFAULT"));
    map.insert("EncryptionAlgorithms".into(), json!(["SYMMETRIC_DEFAULT"]));
    map.insert("MultiRegion".into(), json!(false));
    Value::Object(map)
}

/// One page of `items` after the marker (a decimal offset) at most `limit` long.
fn page<T: Clone>(items: &[T], input: &Value) -> Result<(Vec<T>, Option<String>), ServiceError> {
    let limit = input.get("Limit").and_then(Value::as_u64).unwrap_or(100) as usize;
    let start = match text(input, "Marker") {
        None => 0,
        Some(marker) => marker
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= items.len())
            .ok_or_else(|| service_error(KmsError::InvalidMarker("Invalid marker".into())))?,
    };
    let end = (start + limit).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((items[start..end].to_vec(), next))
}

fn with_page(mut out: Map<String, Value>, next: Option<String>) -> Value {
    out.insert("Truncated".into(), json!(next.is_some()));
    if let Some(next) = next {
        out.insert("NextMarker".into(), json!(next));
    }
    Value::Object(out)
}

impl Kms {
    fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Resolves the key named by `member`, then authorizes `action` on its ARN (with its policy
    /// when it is not the default one, which delegates to IAM).
    fn key_for(
        &self,
        context: &CallContext<'_>,
        scope: Scope<'_>,
        key_ref: &str,
        action: &str,
    ) -> Result<KeyDoc, ServiceError> {
        let found = match self.keys().describe_existing(scope, key_ref) {
            Err(KmsError::NotFound(_)) if crate::keys::is_kinesis_managed(scope, key_ref) => {
                // The AWS managed key is created on first use, once the caller may use it.
                context
                    .authz
                    .check(action, &alias_arn(scope, KINESIS_MANAGED_ALIAS), None)?;
                self.keys().describe(scope, key_ref)
            }
            other => other,
        };
        let doc = match found {
            Ok(doc) => doc,
            Err(error) => {
                // Authorize on the named resource before reporting that it does not exist.
                context
                    .authz
                    .check(action, &key_arn_guess(scope, key_ref), None)?;
                return Err(service_error(error));
            }
        };
        let policy = (doc.policy != default_policy(&doc.account)).then_some(doc.policy.as_str());
        context.authz.check(action, &doc.arn(), policy)?;
        if doc.manager == "AWS" && MANAGEMENT_ACTIONS.contains(&action) {
            // An AWS managed key's policy lets the account use and read the key, not manage it.
            return Err(ServiceError::client(
                "AccessDeniedException",
                format!(
                    "User: {} is not authorized to perform: {action} on resource: {} because no \
                     resource-based policy allows the {action} action",
                    context.caller.arn,
                    doc.arn()
                ),
            ));
        }
        Ok(doc)
    }

    fn run(
        &self,
        context: &CallContext<'_>,
        operation: &str,
        input: &Value,
    ) -> Result<Value, ServiceError> {
        let scope = Scope {
            account: &context.caller.account,
            region: context.region,
        };
        let action = format!("kms:{operation}");
        let keys = self.keys();
        let key_id = text(input, "KeyId").unwrap_or("");
        let fail = service_error;
        match operation {
            "CreateKey" => {
                context.authz.check(&action, "*", None)?;
                for (member, allowed) in [
                    ("KeyUsage", "ENCRYPT_DECRYPT"),
                    ("KeySpec", "SYMMETRIC_DEFAULT"),
                    ("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"),
                    ("Origin", "AWS_KMS"),
                ] {
                    if let Some(value) = text(input, member).filter(|v| *v != allowed) {
                        return Err(fail(KmsError::Unsupported(format!(
                            "{member} {value} is not supported by Millrace; only {allowed} keys \
                             are"
                        ))));
                    }
                }
                if input.get("MultiRegion").and_then(Value::as_bool) == Some(true) {
                    return Err(fail(KmsError::Unsupported(
                        "multi-Region keys are not supported by Millrace".into(),
                    )));
                }
                if let Some(policy) = text(input, "Policy") {
                    if serde_json::from_str::<Value>(policy).map_or(true, |v| !v.is_object()) {
                        return Err(fail(KmsError::MalformedPolicy(
                            "The new key policy will not allow you to update the key policy in \
                             the future."
                                .into(),
                        )));
                    }
                }
                let doc = keys
                    .create_key(
                        scope,
                        text(input, "Description").unwrap_or(""),
                        text(input, "Policy"),
                        tags_of(input),
                        "CUSTOMER",
                    )
                    .map_err(fail)?;
                Ok(json!({ "KeyMetadata": metadata(&doc) }))
            }
            "DescribeKey" => {
                let doc = self.key_for(context, scope, key_id, &action)?;
                Ok(json!({ "KeyMetadata": metadata(&doc) }))
            }
            "ListKeys" => {
                context.authz.check(&action, "*", None)?;
                let docs = keys.list(scope);
                let (items, next) = page(&docs, input)?;
                let entries: Vec<Value> = items
                    .iter()
                    .map(|d| json!({"KeyId": d.id, "KeyArn": d.arn()}))
                    .collect();
                let mut out = Map::new();
                out.insert("Keys".into(), Value::Array(entries));
                Ok(with_page(out, next))
            }
            "CreateAlias" | "UpdateAlias" => {
                let name = text(input, "AliasName").unwrap_or("");
                let target = text(input, "TargetKeyId").unwrap_or("");
                context
                    .authz
                    .check(&action, &alias_arn(scope, name), None)?;
                let doc = self.key_for(context, scope, target, &action)?;
                if operation == "CreateAlias" {
                    keys.create_alias(scope, name, &doc.id).map_err(fail)?;
                } else {
                    keys.update_alias(scope, name, &doc.id).map_err(fail)?;
                }
                Ok(json!({}))
            }
            "DeleteAlias" => {
                let name = text(input, "AliasName").unwrap_or("");
                context
                    .authz
                    .check(&action, &alias_arn(scope, name), None)?;
                keys.delete_alias(scope, name).map_err(fail)?;
                Ok(json!({}))
            }
            "ListAliases" => {
                let filter = match text(input, "KeyId") {
                    Some(key) => Some(self.key_for(context, scope, key, &action)?.id),
                    None => {
                        context.authz.check(&action, "*", None)?;
                        None
                    }
                };
                let aliases: Vec<_> = keys
                    .aliases(scope)
                    .into_iter()
                    .filter(|a| filter.as_ref().is_none_or(|id| &a.target == id))
                    .collect();
                let (items, next) = page(&aliases, input)?;
                let entries: Vec<Value> = items
                    .iter()
                    .map(|a| {
                        json!({
                            "AliasName": a.name,
                            "AliasArn": alias_arn(scope, &a.name),
                            "TargetKeyId": a.target,
                            "CreationDate": a.created,
                            "LastUpdatedDate": a.updated,
                        })
                    })
                    .collect();
                let mut out = Map::new();
                out.insert("Aliases".into(), Value::Array(entries));
                Ok(with_page(out, next))
            }
            "EnableKey" | "DisableKey" => {
                self.key_for(context, scope, key_id, &action)?;
                let enable = operation == "EnableKey";
                keys.update(scope, key_id, |doc| {
                    if doc.state == "PendingDeletion" {
                        return Err(pending_deletion(doc));
                    }
                    doc.state = if enable { "Enabled" } else { "Disabled" }.into();
                    Ok(())
                })
                .map_err(fail)?;
                Ok(json!({}))
            }
            "ScheduleKeyDeletion" => {
                self.key_for(context, scope, key_id, &action)?;
                let days = input
                    .get("PendingWindowInDays")
                    .and_then(Value::as_u64)
                    .unwrap_or(30);
                if !(7..=30).contains(&days) {
                    return Err(fail(KmsError::Validation(format!(
                        "1 validation error detected: Value '{days}' at 'pendingWindowInDays' \
                         failed to satisfy constraint: Member must have value {} {}",
                        if days < 7 {
                            "greater than or equal to"
                        } else {
                            "less than or equal to"
                        },
                        if days < 7 { 7 } else { 30 }
                    ))));
                }
                let now = crate::keys::now_seconds();
                let doc = keys
                    .update(scope, key_id, |doc| {
                        if doc.state == "PendingDeletion" {
                            return Err(pending_deletion(doc));
                        }
                        doc.state = "PendingDeletion".into();
                        doc.deletion_date = Some((now + days as f64 * 86_400.0).floor());
                        doc.pending_days = Some(days as u32);
                        Ok(())
                    })
                    .map_err(fail)?;
                Ok(json!({
                    "KeyId": doc.arn(),
                    "DeletionDate": doc.deletion_date,
                    "KeyState": doc.state,
                    "PendingWindowInDays": days,
                }))
            }
            "CancelKeyDeletion" => {
                self.key_for(context, scope, key_id, &action)?;
                let doc = keys
                    .update(scope, key_id, |doc| {
                        if doc.state != "PendingDeletion" {
                            return Err(KmsError::InvalidState(format!(
                                "{} is not pending deletion.",
                                doc.arn()
                            )));
                        }
                        doc.state = "Disabled".into();
                        doc.deletion_date = None;
                        doc.pending_days = None;
                        Ok(())
                    })
                    .map_err(fail)?;
                Ok(json!({ "KeyId": doc.arn() }))
            }
            "EnableKeyRotation" | "DisableKeyRotation" => {
                self.key_for(context, scope, key_id, &action)?;
                let enable = operation == "EnableKeyRotation";
                let days = input.get("RotationPeriodInDays").and_then(Value::as_u64);
                keys.update(scope, key_id, |doc| {
                    check_usable(doc)?;
                    if enable && !doc.rotation_enabled {
                        doc.last_rotation = crate::keys::now_seconds();
                    }
                    doc.rotation_enabled = enable;
                    if let Some(days) = days {
                        doc.rotation_days = days as u32;
                    }
                    Ok(())
                })
                .map_err(fail)?;
                Ok(json!({}))
            }
            "GetKeyRotationStatus" => {
                let doc = self.key_for(context, scope, key_id, &action)?;
                if doc.state == "PendingDeletion" {
                    return Err(fail(pending_deletion(&doc)));
                }
                let mut out = Map::new();
                out.insert("KeyRotationEnabled".into(), json!(doc.rotation_enabled));
                out.insert("KeyId".into(), json!(doc.arn()));
                if doc.rotation_enabled {
                    out.insert("RotationPeriodInDays".into(), json!(doc.rotation_days));
                    out.insert(
                        "NextRotationDate".into(),
                        json!(doc.last_rotation + f64::from(doc.rotation_days) * 86_400.0),
                    );
                }
                Ok(Value::Object(out))
            }
            "GenerateDataKey" | "GenerateDataKeyWithoutPlaintext" => {
                self.key_for(context, scope, key_id, &action)?;
                let bytes = match (
                    input.get("NumberOfBytes").and_then(Value::as_u64),
                    text(input, "KeySpec"),
                ) {
                    (Some(_), Some(_)) => {
                        return Err(fail(KmsError::Validation(
                            "Please specify either number of bytes or key spec.".into(),
                        )))
                    }
                    (Some(n), None) => n as usize,
                    (None, Some("AES_128")) => 16,
                    (None, Some(_)) => 32,
                    (None, None) => {
                        return Err(fail(KmsError::Validation(
                            "Please specify either number of bytes or key spec.".into(),
                        )))
                    }
                };
                let context_pairs = context_of(input, "EncryptionContext");
                let key = keys
                    .generate_data_key(scope, key_id, bytes, &context_pairs)
                    .map_err(fail)?;
                let mut out = Map::new();
                out.insert("CiphertextBlob".into(), json!(b64(&key.blob)));
                if operation == "GenerateDataKey" {
                    out.insert("Plaintext".into(), json!(b64(&key.plaintext)));
                }
                out.insert("KeyId".into(), json!(key.key_arn));
                Ok(Value::Object(out))
            }
            "Encrypt" => {
                self.key_for(context, scope, key_id, &action)?;
                check_algorithm(input, "EncryptionAlgorithm")?;
                let plaintext = blob_input(input, "Plaintext")?;
                let (doc, blob) = keys
                    .encrypt(
                        scope,
                        key_id,
                        &plaintext,
                        &context_of(input, "EncryptionContext"),
                    )
                    .map_err(fail)?;
                Ok(json!({
                    "CiphertextBlob": b64(&blob),
                    "KeyId": doc.arn(),
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }))
            }
            "Decrypt" => {
                check_algorithm(input, "EncryptionAlgorithm")?;
                let ciphertext = blob_input(input, "CiphertextBlob")?;
                self.authorize_blob(context, scope, &ciphertext, &action)?;
                let (doc, plaintext) = keys
                    .decrypt(
                        scope,
                        &ciphertext,
                        &context_of(input, "EncryptionContext"),
                        text(input, "KeyId"),
                    )
                    .map_err(fail)?;
                Ok(json!({
                    "KeyId": doc.arn(),
                    "Plaintext": b64(&plaintext),
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }))
            }
            "ReEncrypt" => {
                check_algorithm(input, "SourceEncryptionAlgorithm")?;
                check_algorithm(input, "DestinationEncryptionAlgorithm")?;
                let ciphertext = blob_input(input, "CiphertextBlob")?;
                self.authorize_blob(context, scope, &ciphertext, "kms:ReEncryptFrom")?;
                let destination = text(input, "DestinationKeyId").unwrap_or("");
                self.key_for(context, scope, destination, "kms:ReEncryptTo")?;
                let (source, plaintext) = keys
                    .decrypt(
                        scope,
                        &ciphertext,
                        &context_of(input, "SourceEncryptionContext"),
                        text(input, "SourceKeyId"),
                    )
                    .map_err(fail)?;
                let (doc, blob) = keys
                    .encrypt(
                        scope,
                        destination,
                        &plaintext,
                        &context_of(input, "DestinationEncryptionContext"),
                    )
                    .map_err(fail)?;
                Ok(json!({
                    "CiphertextBlob": b64(&blob),
                    "SourceKeyId": source.arn(),
                    "KeyId": doc.arn(),
                    "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                    "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }))
            }
            "TagResource" => {
                self.key_for(context, scope, key_id, &action)?;
                let new_tags = tags_of(input);
                keys.update(scope, key_id, |doc| {
                    if doc.state == "PendingDeletion" {
                        return Err(pending_deletion(doc));
                    }
                    for (key, value) in new_tags {
                        match doc.tags.iter_mut().find(|(k, _)| *k == key) {
                            Some(existing) => existing.1 = value,
                            None => doc.tags.push((key, value)),
                        }
                    }
                    if doc.tags.len() > 50 {
                        return Err(KmsError::Tag("Too many tags".into()));
                    }
                    Ok(())
                })
                .map_err(fail)?;
                Ok(json!({}))
            }
            "UntagResource" => {
                self.key_for(context, scope, key_id, &action)?;
                let removed: Vec<String> = input
                    .get("TagKeys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                keys.update(scope, key_id, |doc| {
                    if doc.state == "PendingDeletion" {
                        return Err(pending_deletion(doc));
                    }
                    doc.tags.retain(|(k, _)| !removed.contains(k));
                    Ok(())
                })
                .map_err(fail)?;
                Ok(json!({}))
            }
            "ListResourceTags" => {
                let doc = self.key_for(context, scope, key_id, &action)?;
                let (items, next) = page(&doc.tags, input)?;
                let tags: Vec<Value> = items
                    .iter()
                    .map(|(k, v)| json!({"TagKey": k, "TagValue": v}))
                    .collect();
                let mut out = Map::new();
                out.insert("Tags".into(), Value::Array(tags));
                Ok(with_page(out, next))
            }
            "GetKeyPolicy" => {
                let doc = self.key_for(context, scope, key_id, &action)?;
                check_policy_name(input)?;
                Ok(json!({ "Policy": doc.policy, "PolicyName": "default" }))
            }
            "PutKeyPolicy" => {
                self.key_for(context, scope, key_id, &action)?;
                check_policy_name(input)?;
                let policy = text(input, "Policy").unwrap_or("").to_owned();
                if serde_json::from_str::<Value>(&policy).map_or(true, |v| !v.is_object()) {
                    return Err(fail(KmsError::MalformedPolicy(
                        "The new key policy will not allow you to update the key policy in the \
                         future."
                            .into(),
                    )));
                }
                keys.update(scope, key_id, |doc| {
                    if doc.state == "PendingDeletion" {
                        return Err(pending_deletion(doc));
                    }
                    doc.policy = policy;
                    Ok(())
                })
                .map_err(fail)?;
                Ok(json!({}))
            }
            _ => {
                context.authz.check(&action, "*", None)?;
                Err(fail(KmsError::Unsupported(format!(
                    "{operation} is not supported by Millrace"
                ))))
            }
        }
    }

    /// Authorizes `action` on the key a ciphertext blob names.
    fn authorize_blob(
        &self,
        context: &CallContext<'_>,
        scope: Scope<'_>,
        ciphertext: &[u8],
        action: &str,
    ) -> Result<(), ServiceError> {
        match crate::blob::parse(ciphertext) {
            Some(parsed) => match self.keys().describe(scope, &parsed.key_id) {
                Ok(doc) => {
                    let policy =
                        (doc.policy != default_policy(&doc.account)).then_some(doc.policy.as_str());
                    context.authz.check(action, &doc.arn(), policy)
                }
                Err(_) => context.authz.check(action, "*", None),
            },
            None => context.authz.check(action, "*", None),
        }
    }
}

/// What the key policy of an AWS managed key allows nobody.
const MANAGEMENT_ACTIONS: &[&str] = &[
    "kms:EnableKey",
    "kms:DisableKey",
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:EnableKeyRotation",
    "kms:DisableKeyRotation",
    "kms:PutKeyPolicy",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:CreateAlias",
    "kms:UpdateAlias",
];

fn check_algorithm(input: &Value, member: &str) -> Result<(), ServiceError> {
    match text(input, member) {
        None | Some("SYMMETRIC_DEFAULT") => Ok(()),
        Some(other) => Err(service_error(KmsError::Unsupported(format!(
            "{other} is not supported by Millrace; symmetric keys use SYMMETRIC_DEFAULT"
        )))),
    }
}

fn check_policy_name(input: &Value) -> Result<(), ServiceError> {
    match text(input, "PolicyName") {
        None | Some("default") => Ok(()),
        Some(_) => Err(service_error(KmsError::NotFound(
            "No such policy exists".into(),
        ))),
    }
}

fn alias_arn(scope: Scope<'_>, name: &str) -> String {
    format!("arn:aws:kms:{}:{}:{name}", scope.region, scope.account)
}

fn key_arn_guess(scope: Scope<'_>, key_ref: &str) -> String {
    if key_ref.starts_with("arn:") {
        key_ref.to_owned()
    } else if key_ref.starts_with("alias/") {
        alias_arn(scope, key_ref)
    } else {
        format!(
            "arn:aws:kms:{}:{}:key/{key_ref}",
            scope.region, scope.account
        )
    }
}

impl JsonService for Kms {
    fn model(&self) -> &'static ServiceModel {
        &millrace_wire::generated::kms_model::KMS
    }
    fn call<'a>(
        &'a self,
        context: CallContext<'a>,
        operation: &'a str,
        input: Value,
    ) -> BoxFuture<'a, Result<Value, ServiceError>> {
        // Key operations are in-memory lookups and small redb writes; they run inline like IAM's.
        Box::pin(async move { self.run(&context, operation, &input) })
    }
}
