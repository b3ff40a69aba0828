//! The stored shape of identities: accounts with their users, groups, roles, managed policies
//! and access keys, and STS sessions. Versioned JSON documents owned by this crate.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Version of the account and session documents.
pub const RECORD_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessKeyRecord {
    pub id: String,
    pub secret: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created_ms: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Attachments {
    /// Inline policies by name.
    pub inline: BTreeMap<String, String>,
    /// ARNs of attached managed policies.
    pub attached: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub id: String,
    pub path: String,
    pub created_ms: u64,
    pub tags: Vec<Tag>,
    pub policies: Attachments,
    pub keys: Vec<AccessKeyRecord>,
    pub groups: BTreeSet<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: String,
    pub id: String,
    pub path: String,
    pub created_ms: u64,
    pub policies: Attachments,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RoleRecord {
    pub name: String,
    pub id: String,
    pub path: String,
    pub created_ms: u64,
    pub trust_policy: String,
    pub description: Option<String>,
    pub max_session_secs: i64,
    pub tags: Vec<Tag>,
    pub policies: Attachments,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PolicyVersionRecord {
    pub id: String,
    pub document: String,
    pub created_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManagedPolicyRecord {
    pub name: String,
    pub id: String,
    pub path: String,
    pub description: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub default_version: String,
    pub versions: Vec<PolicyVersionRecord>,
    pub tags: Vec<Tag>,
}

impl ManagedPolicyRecord {
    pub fn default_document(&self) -> Option<&str> {
        self.versions
            .iter()
            .find(|v| v.id == self.default_version)
            .map(|v| v.document.as_str())
    }
}

/// One account: its root access keys and everything IAM manages inside it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountRecord {
    pub version: u32,
    pub id: String,
    pub created_ms: u64,
    pub root_keys: Vec<AccessKeyRecord>,
    pub users: BTreeMap<String, UserRecord>,
    pub groups: BTreeMap<String, GroupRecord>,
    pub roles: BTreeMap<String, RoleRecord>,
    /// Customer managed policies by ARN.
    pub policies: BTreeMap<String, ManagedPolicyRecord>,
}

impl AccountRecord {
    pub fn new(id: &str, created_ms: u64) -> AccountRecord {
        AccountRecord {
            version: RECORD_VERSION,
            id: id.to_owned(),
            created_ms,
            root_keys: Vec::new(),
            users: BTreeMap::new(),
            groups: BTreeMap::new(),
            roles: BTreeMap::new(),
            policies: BTreeMap::new(),
        }
    }
}

/// Who a session acts as.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SessionSubject {
    /// GetSessionToken by the account's root.
    Root,
    /// GetSessionToken by an IAM user.
    User { name: String },
    /// AssumeRole.
    AssumedRole {
        role_name: String,
        role_id: String,
        role_path: String,
        session_name: String,
    },
}

/// Temporary credentials issued by STS.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub version: u32,
    pub access_key_id: String,
    pub secret: String,
    pub token: String,
    pub account: String,
    pub subject: SessionSubject,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// The inline session policy given to AssumeRole, which limits the session further.
    pub session_policy: Option<String>,
}
