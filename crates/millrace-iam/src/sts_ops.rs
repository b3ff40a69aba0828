//! The STS operations: GetCallerIdentity, AssumeRole and GetSessionToken.

use serde_json::{json, Value};

use crate::error::IamError;
use crate::iam_ops::s;
use crate::records::{SessionRecord, SessionSubject, RECORD_VERSION};
use crate::util::{self, iso8601};
use crate::{Caller, CallerKind, ContextKeys, Iam};

/// The STS operations Millrace serves.
pub const STS_OPERATIONS: &[&str] = &["AssumeRole", "GetCallerIdentity", "GetSessionToken"];

fn role_name_of_arn(arn: &str) -> Option<(&str, &str)> {
    // arn:aws:iam::<account>:role/<path...>/<name>
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let role = resource.strip_prefix("role/")?;
    let name = role.rsplit('/').next()?;
    (!account.is_empty() && !name.is_empty()).then_some((account, name))
}

impl Iam {
    /// Runs one STS operation for `caller`; `context` carries the request's condition keys (for
    /// the trust policy and the caller's permission to assume). With `enforce` false (the
    /// `open` and `verify` modes) the caller's own policies are not consulted, only the role's
    /// trust policy.
    pub fn call_sts(
        &self,
        caller: &Caller,
        operation: &str,
        input: &Value,
        context: &ContextKeys,
        enforce: bool,
    ) -> Result<Value, IamError> {
        match operation {
            "GetCallerIdentity" => Ok(json!({
                "UserId": caller.user_id,
                "Account": caller.account,
                "Arn": caller.arn,
            })),
            "AssumeRole" => self.assume_role(caller, input, context, enforce),
            "GetSessionToken" => self.get_session_token(caller, input),
            other => Err(IamError {
                code: "InvalidAction",
                status: 400,
                message: format!("Could not find operation {other} for version 2011-06-15"),
                server_fault: false,
            }),
        }
    }

    fn assume_role(
        &self,
        caller: &Caller,
        input: &Value,
        context: &ContextKeys,
        enforce: bool,
    ) -> Result<Value, IamError> {
        let role_arn = s(input, "RoleArn").unwrap_or("");
        let session_name = s(input, "RoleSessionName").unwrap_or("");
        let denied = || {
            IamError::access_denied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
                caller.arn
            ))
        };
        let (role_account, role_name) = role_name_of_arn(role_arn).ok_or_else(denied)?;
        let role = {
            let state = self.lock();
            let account = state.accounts.get(role_account).ok_or_else(denied)?;
            account.roles.get(role_name).cloned().ok_or_else(denied)?
        };
        if util::role_arn(role_account, &role) != role_arn {
            return Err(denied());
        }
        let duration = input
            .get("DurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        if duration > role.max_session_secs {
            return Err(IamError::validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }
        // The role's trust policy is its resource policy for sts:AssumeRole; the caller's own
        // policies must allow it too unless trust names the caller itself (AWS's rule for the
        // same account), and always across accounts.
        let trust =
            millrace_policy::Policy::parse_trust(&role.trust_policy).map_err(|_| denied())?;
        let principal = principal_of(caller);
        let request = millrace_policy::Request {
            action: "sts:AssumeRole",
            resource: role_arn,
            principal,
            context,
        };
        let trust_effect = millrace_policy::evaluate_resource_policy(&trust, &request);
        // Whether the trust policy would let any principal of the caller's account in: then the
        // account has delegated the choice to identity policies, which must allow it too.
        let stand_in_arn = format!("arn:aws:iam::{}:user/\u{1}", caller.account);
        let account_wide = millrace_policy::evaluate_resource_policy(
            &trust,
            &millrace_policy::Request {
                principal: millrace_policy::Principal {
                    arn: &stand_in_arn,
                    account: &caller.account,
                    username: None,
                    userid: None,
                    is_root: false,
                    source_role_arn: None,
                },
                ..request
            },
        ) == millrace_policy::Effect::Allow;
        let set = self.policies_of(caller);
        let identity: Vec<&millrace_policy::Policy> =
            set.identity.iter().map(|p| p.as_ref()).collect();
        let identity_effect = if caller.kind == CallerKind::Root || !enforce {
            millrace_policy::Effect::Allow
        } else {
            millrace_policy::evaluate(&identity, &request)
        };
        let same_account = caller.account == role_account;
        let allowed = trust_effect == millrace_policy::Effect::Allow
            && identity_effect != millrace_policy::Effect::Deny
            && ((same_account && !account_wide)
                || identity_effect == millrace_policy::Effect::Allow);
        if !allowed {
            return Err(denied());
        }
        let session_policy = match s(input, "Policy") {
            Some(document) => Some(
                millrace_policy::Policy::parse_identity(document)
                    .map(|_| document.to_owned())
                    .map_err(|error| IamError::malformed_policy(error.to_string()))?,
            ),
            None => None,
        };
        let record = self.new_session(
            role_account,
            SessionSubject::AssumedRole {
                role_name: role.name.clone(),
                role_id: role.id.clone(),
                role_path: role.path.clone(),
                session_name: session_name.to_owned(),
            },
            duration,
            session_policy,
        );
        self.store_session(&record)?;
        Ok(json!({
            "Credentials": credentials_json(&record),
            "AssumedRoleUser": {
                "AssumedRoleId": format!("{}:{session_name}", role.id),
                "Arn": format!("arn:aws:sts::{role_account}:assumed-role/{}/{session_name}", role.name),
            },
            "PackedPolicySize": 0,
        }))
    }

    fn get_session_token(&self, caller: &Caller, input: &Value) -> Result<Value, IamError> {
        let subject = match &caller.kind {
            _ if caller.via_session => {
                return Err(IamError::access_denied(
                    "Cannot call GetSessionToken with session credentials",
                ))
            }
            CallerKind::Root => SessionSubject::Root,
            CallerKind::User { name } => SessionSubject::User { name: name.clone() },
            CallerKind::AssumedRole { .. } => {
                return Err(IamError::access_denied(
                    "Cannot call GetSessionToken with session credentials",
                ))
            }
        };
        let longest = if subject == SessionSubject::Root {
            3600
        } else {
            129_600
        };
        let duration = input
            .get("DurationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(if subject == SessionSubject::Root {
                3600
            } else {
                43_200
            })
            .min(longest);
        let record = self.new_session(&caller.account, subject, duration, None);
        self.store_session(&record)?;
        Ok(json!({"Credentials": credentials_json(&record)}))
    }

    /// Fresh temporary credentials for `subject`, good for `duration` session seconds.
    fn new_session(
        &self,
        account: &str,
        subject: SessionSubject,
        duration: i64,
        session_policy: Option<String>,
    ) -> SessionRecord {
        let now = util::now_ms();
        SessionRecord {
            version: RECORD_VERSION,
            access_key_id: util::access_key_id("ASIA"),
            secret: util::secret_access_key(),
            token: util::session_token(),
            account: account.to_owned(),
            subject,
            created_ms: now,
            expires_ms: now + self.session_lifetime_ms(duration),
            session_policy,
        }
    }

    fn store_session(&self, record: &SessionRecord) -> Result<(), IamError> {
        let mut state = self.lock();
        self.persist_session(record)?;
        // Expired sessions are dropped from memory as new ones are issued (their documents are
        // removed at the next start).
        let now = util::now_ms();
        state.sessions.retain(|_, s| s.expires_ms > now);
        state
            .sessions
            .insert(record.access_key_id.clone(), record.clone());
        drop(state);
        self.rebuild_index();
        Ok(())
    }
}

fn credentials_json(record: &SessionRecord) -> Value {
    json!({
        "AccessKeyId": record.access_key_id,
        "SecretAccessKey": record.secret,
        "SessionToken": record.token,
        "Expiration": iso8601(record.expires_ms),
    })
}

pub(crate) fn principal_of(caller: &Caller) -> millrace_policy::Principal<'_> {
    let (source_role, username) = match &caller.kind {
        CallerKind::AssumedRole { role_arn, .. } => (Some(role_arn.as_str()), None),
        CallerKind::User { name } => (None, Some(name.as_str())),
        CallerKind::Root => (None, None),
    };
    millrace_policy::Principal {
        arn: &caller.arn,
        account: &caller.account,
        username,
        userid: Some(&caller.user_id),
        is_root: caller.kind == CallerKind::Root,
        source_role_arn: source_role,
    }
}

/// Temporary credentials a service hands to code it runs for a role (Lambda's execution role).
#[derive(Clone)]
pub struct ServiceRoleSession {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// How long the credentials are good for, in real milliseconds.
    pub lifetime_ms: u64,
}

impl std::fmt::Debug for ServiceRoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRoleSession")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Whether a trust policy lets `service` (`lambda.amazonaws.com`) assume the role.
fn trusts_service(trust_policy: &str, service: &str) -> bool {
    let Ok(document) = serde_json::from_str::<Value>(trust_policy) else {
        return false;
    };
    let statements = match document.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return false,
    };
    let names = |value: Option<&Value>, wanted: &str| match value {
        Some(Value::String(one)) => one == wanted || one == "*",
        Some(Value::Array(list)) => list
            .iter()
            .any(|v| v.as_str().is_some_and(|v| v == wanted || v == "*")),
        _ => false,
    };
    statements.iter().any(|statement| {
        statement.get("Effect").and_then(Value::as_str) == Some("Allow")
            && (names(statement.get("Action"), "sts:AssumeRole")
                || names(statement.get("Action"), "sts:*"))
            && names(
                statement.get("Principal").and_then(|p| p.get("Service")),
                service,
            )
    })
}

impl Iam {
    /// A session of `role_arn` for `service`, when the role exists and its trust policy names
    /// the service as a principal (as AWS services assume execution roles).
    pub fn service_role_session(
        &self,
        role_arn: &str,
        service: &str,
        session_name: &str,
    ) -> Option<ServiceRoleSession> {
        let (role_account, role_name) = role_name_of_arn(role_arn)?;
        let role = {
            let state = self.lock();
            state
                .accounts
                .get(role_account)?
                .roles
                .get(role_name)
                .cloned()?
        };
        if util::role_arn(role_account, &role) != role_arn
            || !trusts_service(&role.trust_policy, service)
        {
            return None;
        }
        let duration = role.max_session_secs.clamp(900, 43_200);
        let record = self.new_session(
            role_account,
            SessionSubject::AssumedRole {
                role_name: role.name.clone(),
                role_id: role.id.clone(),
                role_path: role.path.clone(),
                session_name: session_name.to_owned(),
            },
            duration,
            None,
        );
        self.store_session(&record).ok()?;
        Some(ServiceRoleSession {
            lifetime_ms: record.expires_ms.saturating_sub(record.created_ms),
            access_key_id: record.access_key_id,
            secret_access_key: record.secret,
            session_token: record.token,
        })
    }
}

#[cfg(test)]
mod service_trust_tests {
    use super::trusts_service;

    #[test]
    fn service_principals_in_trust_policies() {
        let lambda = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert!(trusts_service(lambda, "lambda.amazonaws.com"));
        assert!(!trusts_service(lambda, "ec2.amazonaws.com"));
        let listed = r#"{"Statement":{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com","lambda.amazonaws.com"]},"Action":["sts:AssumeRole"]}}"#;
        assert!(trusts_service(listed, "lambda.amazonaws.com"));
        let denied = r#"{"Statement":[{"Effect":"Deny","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        assert!(!trusts_service(denied, "lambda.amazonaws.com"));
        let user = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"sts:AssumeRole"}]}"#;
        assert!(!trusts_service(user, "lambda.amazonaws.com"));
    }
}
