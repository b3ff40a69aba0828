//! Identities and sessions: the accounts Millrace serves, their IAM users, groups, roles,
//! managed policies and access keys, STS sessions, and the authorization decision that combines
//! them with a resource's policy.
//!
//! Operations take and return the JSON documents of the IAM and STS models (the server's
//! awsQuery codec turns them into forms and XML), so this crate knows no HTTP and no wire format.
//! Everything is stored in one [`DocumentStore`] file: one document per account (`iam/account/<id>`)
//! and one per live session (`sts/session/<access key id>`); every change is written durably
//! before the operation answers. Lookups go through an in-memory index that is rebuilt on every
//! change and carries a generation number, so callers can cache what they derive from it.
#![deny(clippy::unwrap_used)]

mod error;
mod iam_ops;
pub mod records;
mod sts_ops;
mod util;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use millrace_catalog::DocumentStore;
use millrace_policy::Policy;

pub use error::IamError;
pub use iam_ops::{iam_resource, IAM_OPERATIONS};
pub use millrace_policy::{ContextKeys, Decision};
use records::{AccountRecord, SessionRecord};
pub use sts_ops::{ServiceRoleSession, STS_OPERATIONS};

const ACCOUNT_PREFIX: &str = "iam/account/";
const SESSION_PREFIX: &str = "sts/session/";

/// What kind of principal a caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// The account's root identity.
    Root,
    /// An IAM user (directly, or through a GetSessionToken session).
    User { name: String },
    /// A role session from AssumeRole.
    AssumedRole {
        role_name: String,
        role_arn: String,
        session_name: String,
    },
}

/// An authenticated principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub account: String,
    /// The ARN GetCallerIdentity reports and error messages name.
    pub arn: String,
    /// The UserId GetCallerIdentity reports (`aws:userid`).
    pub user_id: String,
    pub kind: CallerKind,
    /// The access key id the request was signed with, if any.
    pub access_key_id: Option<String>,
    /// Whether the request was signed with temporary credentials.
    pub via_session: bool,
}

impl Caller {
    /// The root identity of `account`, as open mode treats every caller.
    pub fn root(account: &str) -> Caller {
        Caller {
            account: account.to_owned(),
            arn: format!("arn:aws:iam::{account}:root"),
            user_id: account.to_owned(),
            kind: CallerKind::Root,
            access_key_id: None,
            via_session: false,
        }
    }
}

/// A known access key and what it authenticates.
#[derive(Debug)]
pub struct Credential {
    pub secret: String,
    /// Sessions only: the token the request must carry.
    pub session_token: Option<String>,
    /// Sessions only: when the credentials stop working (Unix ms).
    pub expires_ms: Option<u64>,
    /// `false` for an access key whose status is Inactive.
    pub active: bool,
    pub caller: Arc<Caller>,
}

/// One principal's identity-based policies, parsed once per generation.
#[derive(Debug, Default)]
pub struct PolicySet {
    pub identity: Vec<Arc<Policy>>,
    /// Session policies (AssumeRole's `Policy`), which must also allow.
    pub session: Vec<Arc<Policy>>,
}

impl PolicySet {
    /// Whether every policy's effect depends only on principal, action and resource.
    pub fn is_context_free(&self) -> bool {
        self.identity
            .iter()
            .chain(self.session.iter())
            .all(|p| p.is_context_free())
    }
}

/// How an account's root identity is created at start.
#[derive(Clone, Debug)]
pub struct RootCredentials {
    pub account: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

#[derive(Default)]
struct Index {
    keys: HashMap<String, Arc<Credential>>,
    policies: HashMap<String, Arc<PolicySet>>,
}

/// The identity service.
pub struct Iam {
    store: DocumentStore,
    /// Accounts by id; guarded together with the sessions so every change is one step.
    state: Mutex<State>,
    index: RwLock<Arc<Index>>,
    generation: AtomicU64,
    /// The account of callers that authenticate with no known key (open mode).
    default_account: String,
    /// Real milliseconds one second of a session's duration lasts (1,000 except in tests).
    session_second_ms: AtomicU64,
}

struct State {
    accounts: HashMap<String, AccountRecord>,
    sessions: HashMap<String, SessionRecord>,
}

impl Iam {
    /// Opens the store at `path`, then makes sure the default account and every bootstrap
    /// root exist (a root key given again with a new secret replaces the stored one).
    pub fn open(
        path: &Path,
        default_account: &str,
        roots: &[RootCredentials],
    ) -> Result<Iam, IamError> {
        let store = DocumentStore::open(path).map_err(IamError::storage)?;
        let mut accounts = HashMap::new();
        for (key, bytes) in store.scan(ACCOUNT_PREFIX).map_err(IamError::storage)? {
            let record: AccountRecord = serde_json::from_slice(&bytes)
                .map_err(|error| IamError::internal(format!("account record {key}: {error}")))?;
            accounts.insert(record.id.clone(), record);
        }
        let mut sessions = HashMap::new();
        let now = util::now_ms();
        let mut expired = Vec::new();
        for (key, bytes) in store.scan(SESSION_PREFIX).map_err(IamError::storage)? {
            let record: SessionRecord = serde_json::from_slice(&bytes)
                .map_err(|error| IamError::internal(format!("session record {key}: {error}")))?;
            if record.expires_ms <= now {
                expired.push(key);
            } else {
                sessions.insert(record.access_key_id.clone(), record);
            }
        }
        if !expired.is_empty() {
            let changes: Vec<(&str, Option<&[u8]>)> =
                expired.iter().map(|k| (k.as_str(), None)).collect();
            store.write(&changes).map_err(IamError::storage)?;
        }
        let iam = Iam {
            store,
            state: Mutex::new(State { accounts, sessions }),
            index: RwLock::new(Arc::new(Index::default())),
            generation: AtomicU64::new(0),
            default_account: default_account.to_owned(),
            session_second_ms: AtomicU64::new(1000),
        };
        iam.ensure_account(default_account)?;
        for root in roots {
            iam.bootstrap_root(root)?;
        }
        iam.rebuild_index();
        Ok(iam)
    }

    /// Testing knob: how many real milliseconds one second of session duration lasts.
    pub fn set_session_second_ms(&self, ms: u64) {
        self.session_second_ms.store(ms.max(1), Ordering::Relaxed);
    }

    pub(crate) fn session_lifetime_ms(&self, seconds: i64) -> u64 {
        (seconds.max(0) as u64).saturating_mul(self.session_second_ms.load(Ordering::Relaxed))
    }

    /// The account of callers in open mode.
    pub fn default_account(&self) -> &str {
        &self.default_account
    }

    /// Creates `account` if it does not exist.
    pub fn ensure_account(&self, account: &str) -> Result<(), IamError> {
        let mut state = self.lock();
        if state.accounts.contains_key(account) {
            return Ok(());
        }
        let record = AccountRecord::new(account, util::now_ms());
        self.persist_account(&record)?;
        state.accounts.insert(account.to_owned(), record);
        drop(state);
        self.rebuild_index();
        Ok(())
    }

    /// Every account id.
    pub fn accounts(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.lock().accounts.keys().cloned().collect();
        ids.sort();
        ids
    }

    fn bootstrap_root(&self, root: &RootCredentials) -> Result<(), IamError> {
        self.ensure_account(&root.account)?;
        let mut state = self.lock();
        if let Some(owner) = util::key_owner(&state.accounts, &root.access_key_id) {
            if owner != root.account {
                return Err(IamError::internal(format!(
                    "access key {} already belongs to account {owner}",
                    root.access_key_id
                )));
            }
        }
        let account = state
            .accounts
            .get_mut(&root.account)
            .ok_or_else(|| IamError::internal("account vanished".into()))?;
        let mut record = account.clone();
        match record
            .root_keys
            .iter_mut()
            .find(|k| k.id == root.access_key_id)
        {
            Some(key) => {
                key.secret = root.secret_access_key.clone();
                key.status = "Active".into();
            }
            None => record.root_keys.push(records::AccessKeyRecord {
                id: root.access_key_id.clone(),
                secret: root.secret_access_key.clone(),
                status: "Active".into(),
                created_ms: util::now_ms(),
            }),
        }
        self.persist_account(&record)?;
        *account = record;
        Ok(())
    }

    /// Whether any long-term access key is active (else `verify` and `enforce` let no one in).
    pub fn has_active_keys(&self) -> bool {
        self.current_index()
            .keys
            .values()
            .any(|k| k.active && k.session_token.is_none())
    }

    /// The generation of the index; it changes whenever an identity, key or policy changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The credential an access key id authenticates, if it is known.
    pub fn credential(&self, access_key_id: &str) -> Option<Arc<Credential>> {
        let index = self.current_index();
        index.keys.get(access_key_id).cloned()
    }

    /// The identity-based policies that apply to `caller` (empty for root, which needs none).
    pub fn policies_of(&self, caller: &Caller) -> Arc<PolicySet> {
        let index = self.current_index();
        if let Some(key) = caller
            .access_key_id
            .as_deref()
            .filter(|_| caller.via_session)
        {
            if let Some(set) = index.policies.get(&format!("session:{key}")) {
                return set.clone();
            }
        }
        index
            .policies
            .get(&policy_key(caller))
            .cloned()
            .unwrap_or_default()
    }

    /// AWS's decision for one request: the caller's identity policies (and session policy), and
    /// the resource's policy when it has one.
    pub fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        resource_account: &str,
        resource_policy: Option<&Policy>,
        context: &ContextKeys,
    ) -> Decision {
        let set = self.policies_of(caller);
        let request = millrace_policy::Request {
            action,
            resource,
            principal: sts_ops::principal_of(caller),
            context,
        };
        let identity: Vec<&Policy> = set.identity.iter().map(|p| p.as_ref()).collect();
        let decision =
            millrace_policy::authorize(&identity, resource_policy, &request, resource_account);
        if decision == Decision::Allow && !set.session.is_empty() {
            let session: Vec<&Policy> = set.session.iter().map(|p| p.as_ref()).collect();
            match millrace_policy::evaluate(&session, &request) {
                millrace_policy::Effect::Allow => {}
                millrace_policy::Effect::Deny => return Decision::ExplicitDenyIdentity,
                millrace_policy::Effect::NotApplicable => return Decision::NoIdentityAllow,
            }
        }
        decision
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn current_index(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn persist_account(&self, record: &AccountRecord) -> Result<(), IamError> {
        let key = format!("{ACCOUNT_PREFIX}{}", record.id);
        let bytes = serde_json::to_vec(record).map_err(|e| IamError::internal(e.to_string()))?;
        self.store
            .write(&[(key.as_str(), Some(bytes.as_slice()))])
            .map_err(IamError::storage)
    }

    fn persist_session(&self, record: &SessionRecord) -> Result<(), IamError> {
        let key = format!("{SESSION_PREFIX}{}", record.access_key_id);
        let bytes = serde_json::to_vec(record).map_err(|e| IamError::internal(e.to_string()))?;
        self.store
            .write(&[(key.as_str(), Some(bytes.as_slice()))])
            .map_err(IamError::storage)
    }

    /// Rebuilds the lookup index from the state and bumps the generation.
    fn rebuild_index(&self) {
        let state = self.lock();
        let mut index = Index::default();
        let mut parsed: HashMap<String, Option<Arc<Policy>>> = HashMap::new();
        let mut parse = |document: &str| -> Option<Arc<Policy>> {
            parsed
                .entry(document.to_owned())
                .or_insert_with(|| Policy::parse(document).ok().map(Arc::new))
                .clone()
        };
        for account in state.accounts.values() {
            let root = Caller::root(&account.id);
            for key in &account.root_keys {
                index
                    .keys
                    .insert(key.id.clone(), long_term_credential(key, &root));
            }
            for user in account.users.values() {
                let caller = util::user_caller(&account.id, user);
                for key in &user.keys {
                    index
                        .keys
                        .insert(key.id.clone(), long_term_credential(key, &caller));
                }
                let mut set = PolicySet::default();
                let mut add = |attachments: &records::Attachments, set: &mut PolicySet| {
                    for document in attachments.inline.values() {
                        set.identity.extend(parse(document));
                    }
                    for arn in &attachments.attached {
                        if let Some(document) = util::managed_document(account, arn) {
                            set.identity.extend(parse(&document));
                        }
                    }
                };
                add(&user.policies, &mut set);
                for group in &user.groups {
                    if let Some(group) = account.groups.get(group) {
                        add(&group.policies, &mut set);
                    }
                }
                index.policies.insert(caller.arn.clone(), Arc::new(set));
            }
            for role in account.roles.values() {
                let mut set = PolicySet::default();
                for document in role.policies.inline.values() {
                    set.identity.extend(parse(document));
                }
                for arn in &role.policies.attached {
                    if let Some(document) = util::managed_document(account, arn) {
                        set.identity.extend(parse(&document));
                    }
                }
                index
                    .policies
                    .insert(util::role_arn(&account.id, role), Arc::new(set));
            }
        }
        for session in state.sessions.values() {
            let Some(account) = state.accounts.get(&session.account) else {
                continue;
            };
            let Some(caller) = util::session_caller(account, session) else {
                continue;
            };
            if let Some(policy) = &session.session_policy {
                let base = index
                    .policies
                    .get(&policy_key(&caller))
                    .cloned()
                    .unwrap_or_default();
                let set = PolicySet {
                    identity: base.identity.clone(),
                    session: parse(policy).into_iter().collect(),
                };
                index
                    .policies
                    .insert(format!("session:{}", session.access_key_id), Arc::new(set));
            }
            index.keys.insert(
                session.access_key_id.clone(),
                Arc::new(Credential {
                    secret: session.secret.clone(),
                    session_token: Some(session.token.clone()),
                    expires_ms: Some(session.expires_ms),
                    active: true,
                    caller: Arc::new(caller),
                }),
            );
        }
        drop(state);
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The index entry of a long-term access key of `owner`.
fn long_term_credential(key: &records::AccessKeyRecord, owner: &Caller) -> Arc<Credential> {
    Arc::new(Credential {
        secret: key.secret.clone(),
        session_token: None,
        expires_ms: None,
        active: key.status == "Active",
        caller: Arc::new(Caller {
            access_key_id: Some(key.id.clone()),
            ..owner.clone()
        }),
    })
}

/// Where a caller's policy set is indexed: by the ARN of the user or role whose policies apply.
fn policy_key(caller: &Caller) -> String {
    match &caller.kind {
        CallerKind::AssumedRole { role_arn, .. } => role_arn.clone(),
        CallerKind::User { .. } | CallerKind::Root => caller.arn.clone(),
    }
}
