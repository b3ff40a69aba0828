//! KMS keys and aliases: stored documents, their in-memory index, key states and the
//! cryptographic operations (data keys, Encrypt, Decrypt).
//!
//! A key is one document `key/<uuid>` (metadata, tags, policy and every version's material
//! wrapped by the root key); an alias is `alias/<account>/<region>/<name>`. Every change is
//! written durably before it is applied in memory, so an answer never reports a change a crash
//! could take back.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use millrace_catalog::DocumentStore;
use serde::{Deserialize, Serialize};

use crate::blob;
use crate::crypto::{random_bytes, RootKey, SealingKey};
use crate::error::KmsError;

/// The alias of the AWS managed key for Kinesis, created on first use.
pub const KINESIS_MANAGED_ALIAS: &str = "alias/aws/kinesis";
const DAY_SECONDS: f64 = 86_400.0;

/// A key's stored document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyDoc {
    pub id: String,
    pub account: String,
    pub region: String,
    pub description: String,
    pub created: f64,
    /// `Enabled`, `Disabled` or `PendingDeletion`.
    pub state: String,
    /// While pending deletion: the state to return to on CancelKeyDeletion is always Disabled.
    pub deletion_date: Option<f64>,
    pub pending_days: Option<u32>,
    /// `CUSTOMER` or `AWS`.
    pub manager: String,
    pub rotation_enabled: bool,
    pub rotation_days: u32,
    pub last_rotation: f64,
    pub policy: String,
    pub tags: Vec<(String, String)>,
    /// Each version's material, wrapped by the root key (base64).
    pub versions: Vec<String>,
    /// The fingerprint of the root key that wrapped `versions`.
    pub root: String,
}

impl KeyDoc {
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.region, self.account, self.id
        )
    }
}

/// An alias's stored document.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AliasDoc {
    pub name: String,
    pub target: String,
    pub created: f64,
    pub updated: f64,
}

struct Key {
    doc: KeyDoc,
    materials: Vec<Arc<SealingKey>>,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, Key>,
    /// (account, region, alias name) to alias.
    aliases: BTreeMap<(String, String, String), AliasDoc>,
}

/// A fresh data key: its plaintext (to use and forget) and its blob (to store).
pub struct DataKey {
    pub plaintext: Vec<u8>,
    pub blob: Vec<u8>,
    pub key_arn: String,
}

/// Where a request's keys live: the caller's account and the request's region.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    pub account: &'a str,
    pub region: &'a str,
}

/// The key store.
pub struct Keys {
    store: DocumentStore,
    root: Option<RootKey>,
    state: Mutex<State>,
    clock: Box<dyn Fn() -> f64 + Send + Sync>,
}

pub fn now_seconds() -> f64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (elapsed.as_millis() as f64) / 1000.0
}

fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(text: &str) -> Result<Vec<u8>, KmsError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| KmsError::Internal("stored key material is not base64".into()))
}

fn version_label(arn: &str, version: usize) -> String {
    format!("{arn}#{version}")
}

/// The key policy a new key gets when CreateKey names none.
pub fn default_policy(account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

impl Keys {
    /// Opens the store at `path`; with a root key, unwraps every key's material (failing if the
    /// root key is not the one that wrapped it).
    pub fn open(path: &Path, root: Option<RootKey>) -> Result<Keys, KmsError> {
        let store = DocumentStore::open(path)?;
        let keys = Keys {
            store,
            root,
            state: Mutex::new(State::default()),
            clock: Box::new(now_seconds),
        };
        keys.load()?;
        Ok(keys)
    }

    fn load(&self) -> Result<(), KmsError> {
        let mut state = State::default();
        for (_, bytes) in self.store.scan("key/")? {
            let doc: KeyDoc = serde_json::from_slice(&bytes)
                .map_err(|e| KmsError::Internal(format!("parse key document: {e}")))?;
            let materials = self.unwrap_versions(&doc)?;
            state.keys.insert(doc.id.clone(), Key { doc, materials });
        }
        for (key, bytes) in self.store.scan("alias/")? {
            let doc: AliasDoc = serde_json::from_slice(&bytes)
                .map_err(|e| KmsError::Internal(format!("parse alias document: {e}")))?;
            let mut parts = key.splitn(4, '/').skip(1);
            let (Some(account), Some(region)) = (parts.next(), parts.next()) else {
                continue;
            };
            state
                .aliases
                .insert((account.into(), region.into(), doc.name.clone()), doc);
        }
        *self.lock() = state;
        Ok(())
    }

    fn unwrap_versions(&self, doc: &KeyDoc) -> Result<Vec<Arc<SealingKey>>, KmsError> {
        let Some(root) = &self.root else {
            return Ok(Vec::new());
        };
        if doc.root != root.fingerprint() {
            return Err(KmsError::RootKey(format!(
                "key {} was wrapped by master key {}, not by the given one ({})",
                doc.id,
                doc.root,
                root.fingerprint()
            )));
        }
        let arn = doc.arn();
        let mut out = Vec::with_capacity(doc.versions.len());
        for (version, wrapped) in doc.versions.iter().enumerate() {
            let material = root.unwrap(&decode(wrapped)?, &version_label(&arn, version))?;
            out.push(Arc::new(SealingKey::new(&material)));
        }
        Ok(out)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> f64 {
        (self.clock)()
    }

    fn root(&self) -> Result<&RootKey, KmsError> {
        self.root.as_ref().ok_or_else(|| {
            KmsError::RootKey(
                "millrace was started without a master key (--master-key-file or \
                 MILLRACE_MASTER_KEY)"
                    .into(),
            )
        })
    }

    fn persist_key(&self, doc: &KeyDoc) -> Result<(), KmsError> {
        let bytes = serde_json::to_vec(doc).expect("key documents serialize");
        self.store
            .write(&[(&format!("key/{}", doc.id), Some(&bytes))])?;
        Ok(())
    }

    fn alias_path(scope: Scope<'_>, name: &str) -> String {
        format!("alias/{}/{}/{name}", scope.account, scope.region)
    }

    /// Creates a key (`manager` is `CUSTOMER` or `AWS`).
    pub fn create_key(
        &self,
        scope: Scope<'_>,
        description: &str,
        policy: Option<&str>,
        tags: Vec<(String, String)>,
        manager: &str,
    ) -> Result<KeyDoc, KmsError> {
        let root = self.root()?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let now = self.now();
        let mut doc = KeyDoc {
            id,
            account: scope.account.into(),
            region: scope.region.into(),
            description: description.into(),
            created: now,
            state: "Enabled".into(),
            deletion_date: None,
            pending_days: None,
            manager: manager.into(),
            rotation_enabled: manager == "AWS",
            rotation_days: 365,
            last_rotation: now,
            policy: policy.map_or_else(|| default_policy(scope.account), str::to_owned),
            tags,
            versions: Vec::new(),
            root: root.fingerprint().into(),
        };
        let material = random_bytes::<32>()?;
        doc.versions.push(encode(
            &root.wrap(&material, &version_label(&doc.arn(), 0))?,
        ));
        self.persist_key(&doc)?;
        self.lock().keys.insert(
            doc.id.clone(),
            Key {
                doc: doc.clone(),
                materials: vec![Arc::new(SealingKey::new(&material))],
            },
        );
        Ok(doc)
    }

    /// Resolves any KeyId form (id, key ARN, `alias/name`, alias ARN) to a key id; the AWS
    /// managed Kinesis key is created on first use.
    pub fn resolve(&self, scope: Scope<'_>, key_ref: &str) -> Result<String, KmsError> {
        match self.resolve_existing(scope, key_ref) {
            Err(KmsError::NotFound(message)) if is_kinesis_managed(scope, key_ref) => self
                .create_kinesis_managed(scope)
                .map_err(|error| match error {
                    KmsError::RootKey(_) => KmsError::NotFound(message),
                    other => other,
                }),
            other => other,
        }
    }

    fn create_kinesis_managed(&self, scope: Scope<'_>) -> Result<String, KmsError> {
        let doc = self.create_key(
            scope,
            "Default key that protects my Kinesis data when no other key is defined",
            None,
            Vec::new(),
            "AWS",
        )?;
        let now = self.now();
        let alias = AliasDoc {
            name: KINESIS_MANAGED_ALIAS.into(),
            target: doc.id.clone(),
            created: now,
            updated: now,
        };
        self.write_alias(scope, &alias)?;
        Ok(doc.id)
    }

    fn write_alias(&self, scope: Scope<'_>, alias: &AliasDoc) -> Result<(), KmsError> {
        let bytes = serde_json::to_vec(alias).expect("alias documents serialize");
        self.store
            .write(&[(&Keys::alias_path(scope, &alias.name), Some(&bytes))])?;
        self.lock().aliases.insert(
            (
                scope.account.into(),
                scope.region.into(),
                alias.name.clone(),
            ),
            alias.clone(),
        );
        Ok(())
    }

    fn resolve_existing(&self, scope: Scope<'_>, key_ref: &str) -> Result<String, KmsError> {
        let alias_arn_prefix = format!("arn:aws:kms:{}:{}:", scope.region, scope.account);
        let local = key_ref.strip_prefix(&alias_arn_prefix);
        let alias_name = if key_ref.starts_with("alias/") {
            Some(key_ref)
        } else {
            local.filter(|rest| rest.starts_with("alias/"))
        };
        let state = self.lock();
        if let Some(name) = alias_name {
            let alias = state
                .aliases
                .get(&(scope.account.into(), scope.region.into(), name.into()))
                .ok_or_else(|| {
                    KmsError::NotFound(format!(
                        "Alias arn:aws:kms:{}:{}:{name} is not found.",
                        scope.region, scope.account
                    ))
                })?;
            return Ok(alias.target.clone());
        }
        let id = match local.and_then(|rest| rest.strip_prefix("key/")) {
            Some(id) => id,
            None if key_ref.starts_with("arn:") => {
                return Err(KmsError::NotFound(format!(
                    "Key '{key_ref}' does not exist"
                )))
            }
            None => key_ref,
        };
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(KmsError::NotFound(format!("Invalid keyId '{key_ref}'")));
        }
        match state.keys.get(id) {
            Some(key) if key.doc.account == scope.account && key.doc.region == scope.region => {
                Ok(id.to_owned())
            }
            _ => Err(KmsError::NotFound(format!(
                "Key 'arn:aws:kms:{}:{}:key/{id}' does not exist",
                scope.region, scope.account
            ))),
        }
    }

    /// The key's document (after applying a due deletion).
    pub fn describe(&self, scope: Scope<'_>, key_ref: &str) -> Result<KeyDoc, KmsError> {
        let id = self.resolve(scope, key_ref)?;
        self.document(scope, &id)
    }

    /// Like [`Keys::describe`], but never creates the AWS managed key.
    pub fn describe_existing(&self, scope: Scope<'_>, key_ref: &str) -> Result<KeyDoc, KmsError> {
        let id = self.resolve_existing(scope, key_ref)?;
        self.document(scope, &id)
    }

    fn document(&self, scope: Scope<'_>, id: &str) -> Result<KeyDoc, KmsError> {
        let id = id.to_owned();
        self.expire_deleted(&id)?;
        self.lock()
            .keys
            .get(&id)
            .map(|k| k.doc.clone())
            .ok_or_else(|| {
                KmsError::NotFound(format!(
                    "Key 'arn:aws:kms:{}:{}:key/{id}' does not exist",
                    scope.region, scope.account
                ))
            })
    }

    /// Deletes a key whose pending-deletion window has passed, with its aliases.
    fn expire_deleted(&self, id: &str) -> Result<(), KmsError> {
        let now = self.now();
        let doomed = {
            let state = self.lock();
            match state.keys.get(id) {
                Some(key) if key.doc.deletion_date.is_some_and(|d| d <= now) => Some(
                    state
                        .aliases
                        .iter()
                        .filter(|(_, a)| a.target == id)
                        .map(|(k, _)| k.clone())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            }
        };
        let Some(aliases) = doomed else {
            return Ok(());
        };
        let key_path = format!("key/{id}");
        let alias_paths: Vec<String> = aliases
            .iter()
            .map(|(account, region, name)| Keys::alias_path(Scope { account, region }, name))
            .collect();
        let mut changes: Vec<(&str, Option<&[u8]>)> = vec![(&key_path, None)];
        changes.extend(alias_paths.iter().map(|p| (p.as_str(), None)));
        self.store.write(&changes)?;
        let mut state = self.lock();
        state.keys.remove(id);
        for alias in aliases {
            state.aliases.remove(&alias);
        }
        tracing::info!(key_id = id, "deleted a key whose deletion window ended");
        Ok(())
    }

    /// Every key of the scope, in id order.
    pub fn list(&self, scope: Scope<'_>) -> Vec<KeyDoc> {
        let ids: Vec<String> = self.lock().keys.keys().cloned().collect();
        for id in &ids {
            if let Err(error) = self.expire_deleted(id) {
                tracing::warn!(%error, "could not delete an expired key");
            }
        }
        let state = self.lock();
        let mut docs: Vec<KeyDoc> = state
            .keys
            .values()
            .filter(|k| k.doc.account == scope.account && k.doc.region == scope.region)
            .map(|k| k.doc.clone())
            .collect();
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        docs
    }

    /// Every alias of the scope, in name order.
    pub fn aliases(&self, scope: Scope<'_>) -> Vec<AliasDoc> {
        self.lock()
            .aliases
            .iter()
            .filter(|((account, region, _), _)| account == scope.account && region == scope.region)
            .map(|(_, a)| a.clone())
            .collect()
    }

    /// Applies `change` to a key's document and stores it.
    pub fn update(
        &self,
        scope: Scope<'_>,
        key_ref: &str,
        change: impl FnOnce(&mut KeyDoc) -> Result<(), KmsError>,
    ) -> Result<KeyDoc, KmsError> {
        let mut doc = self.describe(scope, key_ref)?;
        change(&mut doc)?;
        self.persist_key(&doc)?;
        if let Some(key) = self.lock().keys.get_mut(&doc.id) {
            key.doc = doc.clone();
        }
        Ok(doc)
    }

    pub fn create_alias(&self, scope: Scope<'_>, name: &str, target: &str) -> Result<(), KmsError> {
        check_alias_name(name)?;
        let doc = self.describe(scope, target)?;
        if self.lock().aliases.contains_key(&(
            scope.account.into(),
            scope.region.into(),
            name.into(),
        )) {
            return Err(KmsError::AlreadyExists(format!(
                "An alias with the name arn:aws:kms:{}:{}:{name} already exists",
                scope.region, scope.account
            )));
        }
        if doc.state == "PendingDeletion" {
            return Err(pending_deletion(&doc));
        }
        let now = self.now();
        self.write_alias(
            scope,
            &AliasDoc {
                name: name.into(),
                target: doc.id,
                created: now,
                updated: now,
            },
        )
    }

    pub fn update_alias(&self, scope: Scope<'_>, name: &str, target: &str) -> Result<(), KmsError> {
        check_alias_name(name)?;
        let current = self
            .lock()
            .aliases
            .get(&(scope.account.into(), scope.region.into(), name.into()))
            .cloned()
            .ok_or_else(|| alias_not_found(scope, name))?;
        let doc = self.describe(scope, target)?;
        if doc.state == "PendingDeletion" {
            return Err(pending_deletion(&doc));
        }
        self.write_alias(
            scope,
            &AliasDoc {
                target: doc.id,
                updated: self.now(),
                ..current
            },
        )
    }

    pub fn delete_alias(&self, scope: Scope<'_>, name: &str) -> Result<(), KmsError> {
        check_alias_name(name)?;
        let key = (
            scope.account.to_owned(),
            scope.region.to_owned(),
            name.to_owned(),
        );
        if !self.lock().aliases.contains_key(&key) {
            return Err(alias_not_found(scope, name));
        }
        self.store
            .write(&[(&Keys::alias_path(scope, name), None)])?;
        self.lock().aliases.remove(&key);
        Ok(())
    }

    /// A key that may encrypt and decrypt now: enabled, not pending deletion.
    pub fn usable(&self, scope: Scope<'_>, key_ref: &str) -> Result<KeyDoc, KmsError> {
        let doc = self.describe(scope, key_ref)?;
        check_usable(&doc)?;
        Ok(doc)
    }

    /// The key's current version and its material, rotating first when rotation is due.
    fn current_material(&self, doc: &KeyDoc) -> Result<(u32, Arc<SealingKey>), KmsError> {
        let now = self.now();
        if doc.rotation_enabled
            && now >= doc.last_rotation + f64::from(doc.rotation_days) * DAY_SECONDS
        {
            self.rotate(&doc.id, now)?;
        }
        let state = self.lock();
        let key = state
            .keys
            .get(&doc.id)
            .ok_or_else(|| KmsError::Internal("key vanished".into()))?;
        let material = key.materials.last().cloned().ok_or_else(|| {
            self.root()
                .err()
                .unwrap_or(KmsError::Internal("no material".into()))
        })?;
        Ok(((key.materials.len() - 1) as u32, material))
    }

    /// Adds a new version of the key's material; older versions still decrypt.
    pub fn rotate(&self, id: &str, now: f64) -> Result<(), KmsError> {
        let root = self.root()?;
        let mut doc = self
            .lock()
            .keys
            .get(id)
            .map(|k| k.doc.clone())
            .ok_or_else(|| KmsError::Internal("key vanished".into()))?;
        let material = random_bytes::<32>()?;
        let version = doc.versions.len();
        doc.versions.push(encode(
            &root.wrap(&material, &version_label(&doc.arn(), version))?,
        ));
        doc.last_rotation = now;
        self.persist_key(&doc)?;
        let mut state = self.lock();
        if let Some(key) = state.keys.get_mut(id) {
            key.doc = doc;
            key.materials.push(Arc::new(SealingKey::new(&material)));
        }
        tracing::info!(key_id = id, version, "rotated key material");
        Ok(())
    }

    /// Encrypt: seals `plaintext` under the key's current version.
    pub fn encrypt(
        &self,
        scope: Scope<'_>,
        key_ref: &str,
        plaintext: &[u8],
        context: &[(String, String)],
    ) -> Result<(KeyDoc, Vec<u8>), KmsError> {
        let doc = self.usable(scope, key_ref)?;
        let (version, material) = self.current_material(&doc)?;
        let mut out = blob::header(&doc.id, version)
            .ok_or_else(|| KmsError::Internal("key id is not a uuid".into()))?;
        let sealed = material.seal(plaintext, &blob::aad(&out, context))?;
        out.extend_from_slice(&sealed);
        Ok((doc, out))
    }

    /// Decrypt: opens a blob (the blob names its key); `expected` is the KeyId the caller gave.
    pub fn decrypt(
        &self,
        scope: Scope<'_>,
        ciphertext: &[u8],
        context: &[(String, String)],
        expected: Option<&str>,
    ) -> Result<(KeyDoc, Vec<u8>), KmsError> {
        let parsed = blob::parse(ciphertext).ok_or(KmsError::InvalidCiphertext)?;
        let doc = match self.describe(scope, &parsed.key_id) {
            Ok(doc) => doc,
            Err(KmsError::NotFound(_)) => return Err(KmsError::InvalidCiphertext),
            Err(other) => return Err(other),
        };
        if let Some(expected) = expected {
            let expected_id = self.resolve(scope, expected)?;
            if expected_id != doc.id {
                return Err(KmsError::IncorrectKey(
                    "The key ID in the request does not identify a CMK that can perform this \
                     operation."
                        .into(),
                ));
            }
        }
        check_usable(&doc)?;
        let material = {
            let state = self.lock();
            let key = state
                .keys
                .get(&doc.id)
                .ok_or_else(|| KmsError::Internal("key vanished".into()))?;
            if key.materials.is_empty() {
                return Err(self.root().err().unwrap_or(KmsError::InvalidCiphertext));
            }
            key.materials
                .get(parsed.version as usize)
                .cloned()
                .ok_or(KmsError::InvalidCiphertext)?
        };
        let plaintext = material
            .open(parsed.sealed, &blob::aad(parsed.header, context))
            .ok_or(KmsError::InvalidCiphertext)?;
        Ok((doc, plaintext))
    }

    /// GenerateDataKey: `bytes` random bytes and their blob.
    pub fn generate_data_key(
        &self,
        scope: Scope<'_>,
        key_ref: &str,
        bytes: usize,
        context: &[(String, String)],
    ) -> Result<DataKey, KmsError> {
        let mut plaintext = vec![0u8; bytes];
        for chunk in plaintext.chunks_mut(32) {
            let random = random_bytes::<32>()?;
            chunk.copy_from_slice(&random[..chunk.len()]);
        }
        let (doc, blob) = self.encrypt(scope, key_ref, &plaintext, context)?;
        Ok(DataKey {
            plaintext,
            blob,
            key_arn: doc.arn(),
        })
    }

    /// Re-wraps every key's material from this store's root key to `new_root`, in one
    /// transaction. Records and ciphertext blobs are untouched: they depend on the material,
    /// not on the root key.
    pub fn rewrap(&self, new_root: &RootKey) -> Result<usize, KmsError> {
        let root = self.root()?;
        let state = self.lock();
        let mut documents = Vec::new();
        for key in state.keys.values() {
            let mut doc = key.doc.clone();
            let arn = doc.arn();
            let mut versions = Vec::with_capacity(doc.versions.len());
            for (version, wrapped) in doc.versions.iter().enumerate() {
                let label = version_label(&arn, version);
                let material = root.unwrap(&decode(wrapped)?, &label)?;
                versions.push(encode(&new_root.wrap(&material, &label)?));
            }
            doc.versions = versions;
            doc.root = new_root.fingerprint().into();
            documents.push((
                format!("key/{}", doc.id),
                serde_json::to_vec(&doc).expect("key documents serialize"),
            ));
        }
        let changes: Vec<(&str, Option<&[u8]>)> = documents
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_slice())))
            .collect();
        self.store.write(&changes)?;
        Ok(documents.len())
    }
}

/// Whether `key_ref` names the AWS managed Kinesis key (by alias or alias ARN).
pub fn is_kinesis_managed(scope: Scope<'_>, key_ref: &str) -> bool {
    key_ref == KINESIS_MANAGED_ALIAS
        || key_ref
            == format!(
                "arn:aws:kms:{}:{}:{KINESIS_MANAGED_ALIAS}",
                scope.region, scope.account
            )
}

fn alias_not_found(scope: Scope<'_>, name: &str) -> KmsError {
    KmsError::NotFound(format!(
        "Alias arn:aws:kms:{}:{}:{name} is not found.",
        scope.region, scope.account
    ))
}

fn check_alias_name(name: &str) -> Result<(), KmsError> {
    if !name.starts_with("alias/") || name.len() <= "alias/".len() {
        return Err(KmsError::Validation(format!(
            "Alias must start with the prefix \"alias/\". Please see \
             https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html: {name}"
        )));
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::NotAuthorized(
            "Cannot create, update or delete an alias that begins with alias/aws/: such aliases \
             are reserved for AWS managed keys."
                .into(),
        ));
    }
    Ok(())
}

pub fn pending_deletion(doc: &KeyDoc) -> KmsError {
    KmsError::InvalidState(format!("{} is pending deletion.", doc.arn()))
}

pub fn check_usable(doc: &KeyDoc) -> Result<(), KmsError> {
    match doc.state.as_str() {
        "Enabled" => Ok(()),
        "PendingDeletion" => Err(pending_deletion(doc)),
        _ => Err(KmsError::Disabled(format!("{} is disabled.", doc.arn()))),
    }
}

#[cfg(test)]
mod tests;
