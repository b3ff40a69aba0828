//! The IAM operations: users, access keys, groups, roles, inline and managed policies.
//!
//! Each operation works on a copy of the caller's account record and stores it before the new
//! state becomes visible, so a failed write changes nothing.

use serde_json::{json, Map, Value};

use crate::error::IamError;
use crate::records::{
    AccessKeyRecord, AccountRecord, Attachments, GroupRecord, ManagedPolicyRecord,
    PolicyVersionRecord, RoleRecord, Tag, UserRecord,
};
use crate::util::{self, iso8601};
use crate::{Caller, CallerKind, Iam};

/// Access keys a user (or the root) may have, as on AWS.
const ACCESS_KEYS_PER_USER: usize = 2;
/// Default and largest page size of IAM list operations.
const DEFAULT_MAX_ITEMS: usize = 100;

/// The IAM operations Millrace serves.
pub const IAM_OPERATIONS: &[&str] = &[
    "AddUserToGroup",
    "AttachGroupPolicy",
    "AttachRolePolicy",
    "AttachUserPolicy",
    "CreateAccessKey",
    "CreateGroup",
    "CreatePolicy",
    "CreateRole",
    "CreateUser",
    "DeleteAccessKey",
    "DeleteGroup",
    "DeleteGroupPolicy",
    "DeletePolicy",
    "DeleteRole",
    "DeleteRolePolicy",
    "DeleteUser",
    "DeleteUserPolicy",
    "DetachGroupPolicy",
    "DetachRolePolicy",
    "DetachUserPolicy",
    "GetGroup",
    "GetGroupPolicy",
    "GetPolicy",
    "GetPolicyVersion",
    "GetRole",
    "GetRolePolicy",
    "GetUser",
    "GetUserPolicy",
    "ListAccessKeys",
    "ListAttachedGroupPolicies",
    "ListAttachedRolePolicies",
    "ListAttachedUserPolicies",
    "ListGroupPolicies",
    "ListGroups",
    "ListGroupsForUser",
    "ListPolicies",
    "ListRolePolicies",
    "ListRoles",
    "ListUserPolicies",
    "ListUsers",
    "PutGroupPolicy",
    "PutRolePolicy",
    "PutUserPolicy",
    "RemoveUserFromGroup",
    "UpdateAccessKey",
];

pub(crate) fn s<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str)
}

fn required<'a>(input: &'a Value, name: &str) -> Result<&'a str, IamError> {
    s(input, name).ok_or_else(|| {
        let mut chars = name.chars();
        let lower: String = chars
            .next()
            .map(|c| c.to_ascii_lowercase())
            .into_iter()
            .chain(chars)
            .collect();
        IamError::validation(format!(
            "1 validation error detected: Value null at '{lower}' failed to satisfy constraint: \
             Member must not be null"
        ))
    })
}

fn tags_of(input: &Value) -> Vec<Tag> {
    input
        .get("Tags")
        .and_then(Value::as_array)
        .map(|tags| {
            tags.iter()
                .filter_map(|t| {
                    Some(Tag {
                        key: s(t, "Key")?.to_owned(),
                        value: s(t, "Value").unwrap_or("").to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

fn path_of(input: &Value) -> String {
    s(input, "Path").unwrap_or("/").to_owned()
}

/// An identity policy document as IAM stores it: checked for syntax, kept as given.
fn checked_policy(document: &str) -> Result<String, IamError> {
    millrace_policy::Policy::parse_identity(document)
        .map_err(|error| IamError::malformed_policy(error.to_string()))?;
    Ok(document.to_owned())
}

/// A role's trust policy: principals required, no resources.
fn checked_trust_policy(document: &str) -> Result<String, IamError> {
    millrace_policy::Policy::parse_trust(document)
        .map_err(|error| IamError::malformed_policy(error.to_string()))?;
    Ok(document.to_owned())
}

/// One page of `items` (sorted by key) after `Marker`, with IsTruncated and the next Marker.
fn page<T>(
    input: &Value,
    items: Vec<(String, T)>,
    member: &str,
    render: impl Fn(&T) -> Value,
) -> Result<Value, IamError> {
    let max =
        match input.get("MaxItems").and_then(Value::as_i64) {
            Some(n) if n >= 1 => (n as usize).min(1000),
            Some(_) => return Err(IamError::validation(
                "1 validation error detected: Value at 'maxItems' failed to satisfy constraint: \
                 Member must have value greater than or equal to 1",
            )),
            None => DEFAULT_MAX_ITEMS,
        };
    let marker = s(input, "Marker");
    let start = match marker {
        Some(marker) => items
            .iter()
            .position(|(key, _)| key.as_str() >= marker)
            .unwrap_or(items.len()),
        None => 0,
    };
    let rest = &items[start..];
    let shown: Vec<Value> = rest
        .iter()
        .take(max)
        .map(|(_, item)| render(item))
        .collect();
    let mut out = Map::new();
    out.insert(member.into(), Value::Array(shown));
    let truncated = rest.len() > max;
    out.insert("IsTruncated".into(), Value::Bool(truncated));
    if truncated {
        out.insert("Marker".into(), Value::String(rest[max].0.clone()));
    }
    Ok(Value::Object(out))
}

fn user_json(account: &str, user: &UserRecord) -> Value {
    let mut v = json!({
        "Path": user.path,
        "UserName": user.name,
        "UserId": user.id,
        "Arn": util::user_arn(account, user),
        "CreateDate": iso8601(user.created_ms),
    });
    if !user.tags.is_empty() {
        v["Tags"] = tags_json(&user.tags);
    }
    v
}

fn role_json(account: &str, role: &RoleRecord, with_tags: bool) -> Value {
    let mut v = json!({
        "Path": role.path,
        "RoleName": role.name,
        "RoleId": role.id,
        "Arn": util::role_arn(account, role),
        "CreateDate": iso8601(role.created_ms),
        "AssumeRolePolicyDocument": role.trust_policy,
        "MaxSessionDuration": role.max_session_secs,
    });
    if let Some(description) = &role.description {
        v["Description"] = Value::String(description.clone());
    }
    if with_tags && !role.tags.is_empty() {
        v["Tags"] = tags_json(&role.tags);
    }
    v
}

fn group_json(account: &str, group: &GroupRecord) -> Value {
    json!({
        "Path": group.path,
        "GroupName": group.name,
        "GroupId": group.id,
        "Arn": util::group_arn(account, group),
        "CreateDate": iso8601(group.created_ms),
    })
}

fn attachment_count(account: &AccountRecord, arn: &str) -> usize {
    account
        .users
        .values()
        .filter(|u| u.policies.attached.contains(arn))
        .count()
        + account
            .roles
            .values()
            .filter(|r| r.policies.attached.contains(arn))
            .count()
        + account
            .groups
            .values()
            .filter(|g| g.policies.attached.contains(arn))
            .count()
}

fn policy_json(account: &AccountRecord, arn: &str, policy: &ManagedPolicyRecord) -> Value {
    let mut v = json!({
        "PolicyName": policy.name,
        "PolicyId": policy.id,
        "Arn": arn,
        "Path": policy.path,
        "DefaultVersionId": policy.default_version,
        "AttachmentCount": attachment_count(account, arn),
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": true,
        "CreateDate": iso8601(policy.created_ms),
        "UpdateDate": iso8601(policy.updated_ms),
    });
    if let Some(description) = &policy.description {
        v["Description"] = Value::String(description.clone());
    }
    if !policy.tags.is_empty() {
        v["Tags"] = tags_json(&policy.tags);
    }
    v
}

fn aws_policy_json(account: &AccountRecord, name: &str, id: &str) -> Value {
    let arn = format!("arn:aws:iam::aws:policy/{name}");
    json!({
        "PolicyName": name,
        "PolicyId": id,
        "Arn": arn,
        "Path": "/",
        "DefaultVersionId": "v1",
        "AttachmentCount": attachment_count(account, &arn),
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": true,
        "CreateDate": "2015-02-06T18:40:00Z",
        "UpdateDate": "2015-02-06T18:40:00Z",
    })
}

/// The entries of `map` whose path starts with the request's `PathPrefix`, keyed for paging.
fn under_path<'m, T>(
    map: &'m std::collections::BTreeMap<String, T>,
    input: &Value,
    path: impl Fn(&T) -> &str,
) -> Vec<(String, &'m T)> {
    let prefix = s(input, "PathPrefix").unwrap_or("/");
    map.iter()
        .filter(|(_, item)| path(item).starts_with(prefix))
        .map(|(name, item)| (name.clone(), item))
        .collect()
}

/// An entity can be deleted only once it holds no inline and no attached policy.
fn no_policies_left(policies: &Attachments) -> Result<(), IamError> {
    if !policies.inline.is_empty() {
        return Err(IamError::delete_conflict(
            "Cannot delete entity, must delete policies first.",
        ));
    }
    if !policies.attached.is_empty() {
        return Err(IamError::delete_conflict(
            "Cannot delete entity, must detach all policies first.",
        ));
    }
    Ok(())
}

fn no_user(name: &str) -> IamError {
    IamError::no_such_entity(format!("The user with name {name} cannot be found."))
}

fn no_role(name: &str) -> IamError {
    IamError::no_such_entity(format!("The role with name {name} cannot be found."))
}

fn no_group(name: &str) -> IamError {
    IamError::no_such_entity(format!("The group with name {name} cannot be found."))
}

fn policy_exists(account: &AccountRecord, arn: &str) -> bool {
    util::aws_managed(arn).is_some() || account.policies.contains_key(arn)
}

fn no_policy(arn: &str) -> IamError {
    IamError::no_such_entity(format!("Policy {arn} does not exist or is not attachable."))
}

/// Which principal an inline-policy or attachment operation addresses.
#[derive(Clone, Copy)]
enum Holder {
    User,
    Role,
    Group,
}

impl Holder {
    fn name_member(self) -> &'static str {
        match self {
            Holder::User => "UserName",
            Holder::Role => "RoleName",
            Holder::Group => "GroupName",
        }
    }

    fn attachments<'a>(
        self,
        account: &'a mut AccountRecord,
        name: &str,
    ) -> Result<&'a mut Attachments, IamError> {
        match self {
            Holder::User => account
                .users
                .get_mut(name)
                .map(|u| &mut u.policies)
                .ok_or_else(|| no_user(name)),
            Holder::Role => account
                .roles
                .get_mut(name)
                .map(|r| &mut r.policies)
                .ok_or_else(|| no_role(name)),
            Holder::Group => account
                .groups
                .get_mut(name)
                .map(|g| &mut g.policies)
                .ok_or_else(|| no_group(name)),
        }
    }

    fn inline_missing(self, policy: &str) -> IamError {
        let kind = match self {
            Holder::User => "user",
            Holder::Role => "role",
            Holder::Group => "group",
        };
        IamError::no_such_entity(format!(
            "The {kind} policy with name {policy} cannot be found."
        ))
    }
}

impl Iam {
    /// Runs one IAM operation for `caller` with the model's input document; returns the
    /// output document (`Value::Null` for operations without output).
    pub fn call_iam(
        &self,
        caller: &Caller,
        operation: &str,
        input: &Value,
    ) -> Result<Value, IamError> {
        let account_id = caller.account.clone();
        // Read-only operations look at the current record; the others change a copy and store it.
        let mut state = self.lock();
        let current = state
            .accounts
            .get(&account_id)
            .cloned()
            .ok_or_else(|| IamError::internal(format!("account {account_id} is not stored")))?;
        let mut account = current;
        let now = util::now_ms();
        let acct = account_id.as_str();
        let output = match operation {
            "CreateUser" => {
                let name = required(input, "UserName")?;
                if account.users.keys().any(|n| n.eq_ignore_ascii_case(name)) {
                    return Err(IamError::already_exists(format!(
                        "User with name {name} already exists."
                    )));
                }
                let user = UserRecord {
                    name: name.to_owned(),
                    id: util::entity_id("AIDA"),
                    path: path_of(input),
                    created_ms: now,
                    tags: tags_of(input),
                    policies: Attachments::default(),
                    keys: Vec::new(),
                    groups: Default::default(),
                };
                let out = json!({"User": user_json(acct, &user)});
                account.users.insert(name.to_owned(), user);
                out
            }
            "GetUser" => {
                let user = match s(input, "UserName") {
                    Some(name) => account.users.get(name).ok_or_else(|| no_user(name))?,
                    None => match &caller.kind {
                        CallerKind::User { name } => {
                            account.users.get(name).ok_or_else(|| no_user(name))?
                        }
                        CallerKind::Root => {
                            return Ok(json!({"User": {
                                "Path": "/",
                                "UserName": acct,
                                "UserId": acct,
                                "Arn": caller.arn,
                                "CreateDate": iso8601(account.created_ms),
                            }}))
                        }
                        CallerKind::AssumedRole { .. } => {
                            return Err(IamError::validation(
                                "Must specify userName when calling with non-User credentials",
                            ))
                        }
                    },
                };
                return Ok(json!({"User": user_json(acct, user)}));
            }
            "ListUsers" => {
                let users = under_path(&account.users, input, |u| &u.path);
                return page(input, users, "Users", |u| user_json(acct, u));
            }
            "DeleteUser" => {
                let name = required(input, "UserName")?;
                let user = account.users.get(name).ok_or_else(|| no_user(name))?;
                if !user.keys.is_empty() {
                    return Err(IamError::delete_conflict(
                        "Cannot delete entity, must delete access keys first.",
                    ));
                }
                no_policies_left(&user.policies)?;
                if !user.groups.is_empty() {
                    return Err(IamError::delete_conflict(
                        "Cannot delete entity, must remove user from all groups first.",
                    ));
                }
                account.users.remove(name);
                Value::Null
            }
            "CreateAccessKey" => {
                let key = AccessKeyRecord {
                    id: util::access_key_id("AKIA"),
                    secret: util::secret_access_key(),
                    status: "Active".into(),
                    created_ms: now,
                };
                let user_name = self.key_holder(caller, input, &account)?;
                let keys = match &user_name {
                    Some(name) => {
                        &mut account
                            .users
                            .get_mut(name)
                            .ok_or_else(|| no_user(name))?
                            .keys
                    }
                    None => &mut account.root_keys,
                };
                if keys.len() >= ACCESS_KEYS_PER_USER {
                    return Err(IamError::limit_exceeded(format!(
                        "Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"
                    )));
                }
                keys.push(key.clone());
                json!({"AccessKey": {
                    "UserName": user_name.as_deref().unwrap_or(acct),
                    "AccessKeyId": key.id,
                    "Status": key.status,
                    "SecretAccessKey": key.secret,
                    "CreateDate": iso8601(key.created_ms),
                }})
            }
            "ListAccessKeys" => {
                let user_name = self.key_holder(caller, input, &account)?;
                let keys = match &user_name {
                    Some(name) => &account.users.get(name).ok_or_else(|| no_user(name))?.keys,
                    None => &account.root_keys,
                };
                let shown_name = user_name.clone().unwrap_or_else(|| acct.to_owned());
                let items: Vec<(String, &AccessKeyRecord)> =
                    keys.iter().map(|k| (k.id.clone(), k)).collect();
                return page(input, items, "AccessKeyMetadata", |k| {
                    json!({
                        "UserName": shown_name,
                        "AccessKeyId": k.id,
                        "Status": k.status,
                        "CreateDate": iso8601(k.created_ms),
                    })
                });
            }
            "UpdateAccessKey" | "DeleteAccessKey" => {
                let id = required(input, "AccessKeyId")?;
                let user_name = self.key_holder(caller, input, &account)?;
                let keys = match &user_name {
                    Some(name) => {
                        &mut account
                            .users
                            .get_mut(name)
                            .ok_or_else(|| no_user(name))?
                            .keys
                    }
                    None => &mut account.root_keys,
                };
                let position = keys.iter().position(|k| k.id == id).ok_or_else(|| {
                    IamError::no_such_entity(format!(
                        "The Access Key with id {id} cannot be found."
                    ))
                })?;
                if operation == "DeleteAccessKey" {
                    keys.remove(position);
                } else {
                    let status = required(input, "Status")?;
                    if status != "Active" && status != "Inactive" {
                        return Err(IamError::validation(format!(
                            "1 validation error detected: Value '{status}' at 'status' failed to \
                             satisfy constraint: Member must satisfy enum value set: [Active, Inactive]"
                        )));
                    }
                    keys[position].status = status.to_owned();
                }
                Value::Null
            }
            "CreateGroup" => {
                let name = required(input, "GroupName")?;
                if account.groups.keys().any(|n| n.eq_ignore_ascii_case(name)) {
                    return Err(IamError::already_exists(format!(
                        "Group with name {name} already exists."
                    )));
                }
                let group = GroupRecord {
                    name: name.to_owned(),
                    id: util::entity_id("AGPA"),
                    path: path_of(input),
                    created_ms: now,
                    policies: Attachments::default(),
                };
                let out = json!({"Group": group_json(acct, &group)});
                account.groups.insert(name.to_owned(), group);
                out
            }
            "GetGroup" => {
                let name = required(input, "GroupName")?;
                let group = account.groups.get(name).ok_or_else(|| no_group(name))?;
                let members: Vec<(String, &UserRecord)> = account
                    .users
                    .values()
                    .filter(|u| u.groups.contains(name))
                    .map(|u| (u.name.clone(), u))
                    .collect();
                let mut out = page(input, members, "Users", |u| user_json(acct, u))?;
                out["Group"] = group_json(acct, group);
                return Ok(out);
            }
            "ListGroups" => {
                let groups = under_path(&account.groups, input, |g| &g.path);
                return page(input, groups, "Groups", |g| group_json(acct, g));
            }
            "ListGroupsForUser" => {
                let name = required(input, "UserName")?;
                let user = account.users.get(name).ok_or_else(|| no_user(name))?;
                let groups: Vec<(String, &GroupRecord)> = user
                    .groups
                    .iter()
                    .filter_map(|g| account.groups.get(g).map(|g| (g.name.clone(), g)))
                    .collect();
                return page(input, groups, "Groups", |g| group_json(acct, g));
            }
            "DeleteGroup" => {
                let name = required(input, "GroupName")?;
                let group = account.groups.get(name).ok_or_else(|| no_group(name))?;
                if account.users.values().any(|u| u.groups.contains(name)) {
                    return Err(IamError::delete_conflict(
                        "Cannot delete entity, must remove users from group first.",
                    ));
                }
                no_policies_left(&group.policies)?;
                account.groups.remove(name);
                Value::Null
            }
            "AddUserToGroup" | "RemoveUserFromGroup" => {
                let group = required(input, "GroupName")?;
                let name = required(input, "UserName")?;
                if !account.groups.contains_key(group) {
                    return Err(no_group(group));
                }
                let user = account.users.get_mut(name).ok_or_else(|| no_user(name))?;
                if operation == "AddUserToGroup" {
                    user.groups.insert(group.to_owned());
                } else {
                    user.groups.remove(group);
                }
                Value::Null
            }
            "CreateRole" => {
                let name = required(input, "RoleName")?;
                let trust = required(input, "AssumeRolePolicyDocument")?;
                if account.roles.keys().any(|n| n.eq_ignore_ascii_case(name)) {
                    return Err(IamError::already_exists(format!(
                        "Role with name {name} already exists."
                    )));
                }
                let max_session_secs = input
                    .get("MaxSessionDuration")
                    .and_then(Value::as_i64)
                    .unwrap_or(3600);
                let role = RoleRecord {
                    name: name.to_owned(),
                    id: util::entity_id("AROA"),
                    path: path_of(input),
                    created_ms: now,
                    trust_policy: checked_trust_policy(trust)?,
                    description: s(input, "Description").map(str::to_owned),
                    max_session_secs,
                    tags: tags_of(input),
                    policies: Attachments::default(),
                };
                let out = json!({"Role": role_json(acct, &role, true)});
                account.roles.insert(name.to_owned(), role);
                out
            }
            "GetRole" => {
                let name = required(input, "RoleName")?;
                let role = account.roles.get(name).ok_or_else(|| no_role(name))?;
                return Ok(json!({"Role": role_json(acct, role, true)}));
            }
            "ListRoles" => {
                let roles = under_path(&account.roles, input, |r| &r.path);
                return page(input, roles, "Roles", |r| role_json(acct, r, false));
            }
            "DeleteRole" => {
                let name = required(input, "RoleName")?;
                let role = account.roles.get(name).ok_or_else(|| no_role(name))?;
                no_policies_left(&role.policies)?;
                account.roles.remove(name);
                Value::Null
            }
            "PutUserPolicy" | "PutRolePolicy" | "PutGroupPolicy" => {
                let holder = holder_of(operation);
                let name = required(input, holder.name_member())?;
                let policy_name = required(input, "PolicyName")?;
                let document = checked_policy(required(input, "PolicyDocument")?)?;
                holder
                    .attachments(&mut account, name)?
                    .inline
                    .insert(policy_name.to_owned(), document);
                Value::Null
            }
            "GetUserPolicy" | "GetRolePolicy" | "GetGroupPolicy" => {
                let holder = holder_of(operation);
                let name = required(input, holder.name_member())?;
                let policy_name = required(input, "PolicyName")?;
                let document = holder
                    .attachments(&mut account, name)?
                    .inline
                    .get(policy_name)
                    .cloned()
                    .ok_or_else(|| holder.inline_missing(policy_name))?;
                return Ok(json!({
                    holder.name_member(): name,
                    "PolicyName": policy_name,
                    "PolicyDocument": document,
                }));
            }
            "DeleteUserPolicy" | "DeleteRolePolicy" | "DeleteGroupPolicy" => {
                let holder = holder_of(operation);
                let name = required(input, holder.name_member())?;
                let policy_name = required(input, "PolicyName")?;
                holder
                    .attachments(&mut account, name)?
                    .inline
                    .remove(policy_name)
                    .ok_or_else(|| holder.inline_missing(policy_name))?;
                Value::Null
            }
            "ListUserPolicies" | "ListRolePolicies" | "ListGroupPolicies" => {
                let holder = holder_of(operation);
                let name = required(input, holder.name_member())?;
                let names: Vec<(String, String)> = holder
                    .attachments(&mut account, name)?
                    .inline
                    .keys()
                    .map(|k| (k.clone(), k.clone()))
                    .collect();
                return page(input, names, "PolicyNames", |n| Value::String(n.clone()));
            }
            "AttachUserPolicy" | "AttachRolePolicy" | "AttachGroupPolicy" => {
                let holder = holder_of(operation);
                let name = required(input, holder.name_member())?;
                let arn = required(input, "PolicyArn")?;
                if !policy_exists(&account, arn) {
                    return Err(no_policy(arn));
                }
                holder
                    .attachments(&mut account, name)?
                    .attached
                    .insert(arn.to_owned());
                Value::Null
            }
            "DetachUserPolicy" | "DetachRolePolicy" | "DetachGroupPolicy" => {
                let holder = holder_of(operation);
                let name = required(input, holder.name_member())?;
                let arn = required(input, "PolicyArn")?;
                if !holder.attachments(&mut account, name)?.attached.remove(arn) {
                    return Err(IamError::no_such_entity(format!(
                        "Policy {arn} was not found."
                    )));
                }
                Value::Null
            }
            "ListAttachedUserPolicies"
            | "ListAttachedRolePolicies"
            | "ListAttachedGroupPolicies" => {
                let holder = holder_of(operation);
                let name = required(input, holder.name_member())?;
                let attached: Vec<(String, String)> = holder
                    .attachments(&mut account, name)?
                    .attached
                    .iter()
                    .map(|arn| (arn.clone(), arn.clone()))
                    .collect();
                return page(input, attached, "AttachedPolicies", |arn| {
                    let name = arn.rsplit('/').next().unwrap_or(arn);
                    json!({"PolicyName": name, "PolicyArn": arn})
                });
            }
            "CreatePolicy" => {
                let name = required(input, "PolicyName")?;
                let document = checked_policy(required(input, "PolicyDocument")?)?;
                let path = s(input, "Path").unwrap_or("/").to_owned();
                let arn = util::policy_arn(acct, &path, name);
                if account.policies.values().any(|p| p.name == name) {
                    return Err(IamError::already_exists(format!(
                        "A policy called {name} already exists. Duplicate names are not allowed."
                    )));
                }
                let policy = ManagedPolicyRecord {
                    name: name.to_owned(),
                    id: util::entity_id("ANPA"),
                    path,
                    description: s(input, "Description").map(str::to_owned),
                    created_ms: now,
                    updated_ms: now,
                    default_version: "v1".into(),
                    versions: vec![PolicyVersionRecord {
                        id: "v1".into(),
                        document,
                        created_ms: now,
                    }],
                    tags: tags_of(input),
                };
                account.policies.insert(arn.clone(), policy);
                let policy = &account.policies[&arn];
                let mut out = policy_json(&account, &arn, policy);
                if let Some(o) = out.as_object_mut() {
                    o.remove("Description");
                }
                json!({"Policy": out})
            }
            "GetPolicy" => {
                let arn = required(input, "PolicyArn")?;
                if let Some((name, id, _)) = util::aws_managed(arn) {
                    return Ok(json!({"Policy": aws_policy_json(&account, name, id)}));
                }
                let policy = account.policies.get(arn).ok_or_else(|| {
                    IamError::no_such_entity(format!("Policy {arn} was not found."))
                })?;
                return Ok(json!({"Policy": policy_json(&account, arn, policy)}));
            }
            "GetPolicyVersion" => {
                let arn = required(input, "PolicyArn")?;
                let version = required(input, "VersionId")?;
                let missing = || {
                    IamError::no_such_entity(format!(
                        "Policy {arn} version {version} does not exist or is not attachable."
                    ))
                };
                if let Some((_, _, document)) = util::aws_managed(arn) {
                    if version != "v1" {
                        return Err(missing());
                    }
                    return Ok(json!({"PolicyVersion": {
                        "Document": document,
                        "VersionId": "v1",
                        "IsDefaultVersion": true,
                        "CreateDate": "2015-02-06T18:40:00Z",
                    }}));
                }
                let policy = account.policies.get(arn).ok_or_else(missing)?;
                let found = policy
                    .versions
                    .iter()
                    .find(|v| v.id == version)
                    .ok_or_else(missing)?;
                return Ok(json!({"PolicyVersion": {
                    "Document": found.document,
                    "VersionId": found.id,
                    "IsDefaultVersion": found.id == policy.default_version,
                    "CreateDate": iso8601(found.created_ms),
                }}));
            }
            "ListPolicies" => {
                let scope = s(input, "Scope").unwrap_or("All");
                let only_attached = input
                    .get("OnlyAttached")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let prefix = s(input, "PathPrefix").unwrap_or("/");
                let mut items: Vec<(String, Value)> = Vec::new();
                if scope != "Local" {
                    for (name, id, _) in util::AWS_MANAGED {
                        items.push((
                            format!("arn:aws:iam::aws:policy/{name}"),
                            aws_policy_json(&account, name, id),
                        ));
                    }
                }
                if scope != "AWS" {
                    for (arn, policy) in &account.policies {
                        if policy.path.starts_with(prefix) {
                            items.push((arn.clone(), policy_json(&account, arn, policy)));
                        }
                    }
                }
                items.retain(|(_, v)| {
                    !only_attached || v["AttachmentCount"].as_u64().unwrap_or(0) > 0
                });
                items.sort_by(|a, b| a.0.cmp(&b.0));
                return page(input, items, "Policies", |v| v.clone());
            }
            "DeletePolicy" => {
                let arn = required(input, "PolicyArn")?;
                if util::aws_managed(arn).is_some() {
                    return Err(IamError::invalid_input(format!("ARN {arn} is not valid.")));
                }
                if !account.policies.contains_key(arn) {
                    return Err(IamError::no_such_entity(format!(
                        "Policy {arn} was not found."
                    )));
                }
                if attachment_count(&account, arn) > 0 {
                    return Err(IamError::delete_conflict(
                        "Cannot delete a policy attached to entities.",
                    ));
                }
                account.policies.remove(arn);
                Value::Null
            }
            other => {
                return Err(IamError {
                    code: "InvalidAction",
                    status: 400,
                    message: format!("Could not find operation {other} for version 2010-05-08"),
                    server_fault: false,
                })
            }
        };
        self.persist_account(&account)?;
        state.accounts.insert(account_id, account);
        drop(state);
        self.rebuild_index();
        Ok(output)
    }

    /// The user whose access keys an operation addresses: `UserName`, else the calling user,
    /// else (`None`) the root.
    fn key_holder(
        &self,
        caller: &Caller,
        input: &Value,
        account: &AccountRecord,
    ) -> Result<Option<String>, IamError> {
        if let Some(name) = s(input, "UserName") {
            if !account.users.contains_key(name) {
                return Err(no_user(name));
            }
            return Ok(Some(name.to_owned()));
        }
        match &caller.kind {
            CallerKind::User { name } => Ok(Some(name.clone())),
            CallerKind::Root => Ok(None),
            CallerKind::AssumedRole { .. } => Err(IamError::validation(
                "Must specify userName when calling with non-User credentials",
            )),
        }
    }
}

fn holder_of(operation: &str) -> Holder {
    if operation.contains("Role") {
        Holder::Role
    } else if operation.contains("Group") {
        Holder::Group
    } else {
        Holder::User
    }
}

/// The ARN an IAM operation acts on, for authorization (`iam:<Operation>` on it).
pub fn iam_resource(account: &str, operation: &str, input: &Value) -> String {
    let path = s(input, "Path").unwrap_or("/");
    if let Some(arn) = s(input, "PolicyArn") {
        if operation.ends_with("Policy")
            && !operation.starts_with("Attach")
            && !operation.starts_with("Detach")
        {
            return arn.to_owned();
        }
    }
    if let Some(name) = s(input, "UserName") {
        return format!("arn:aws:iam::{account}:user{path}{name}");
    }
    if let Some(name) = s(input, "RoleName") {
        return format!("arn:aws:iam::{account}:role{path}{name}");
    }
    if let Some(name) = s(input, "GroupName") {
        return format!("arn:aws:iam::{account}:group{path}{name}");
    }
    if operation == "CreatePolicy" {
        if let Some(name) = s(input, "PolicyName") {
            return format!("arn:aws:iam::{account}:policy{path}{name}");
        }
    }
    "*".to_owned()
}
