//! Authorization in `enforce` mode: each operation's IAM action on its resource ARN, decided by
//! the caller's identity policies and the resource's policy, with AWS's denial messages.
//!
//! Handlers call [`Authz::check`] as soon as they know the resource (every stream-addressed
//! operation does it through `handlers::stream_target` / `resource_target`), before anything
//! is read or changed; operations on no particular resource are checked against `*` before the
//! handler runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use millrace_engine::Engine;
use millrace_iam::{Caller, ContextKeys, Decision, Iam};
use millrace_policy::Policy;

use crate::auth::AuthMode;
use crate::error::ApiError;

/// Parsed resource policies by their text, so a request does not parse JSON again.
#[derive(Default)]
pub struct PolicyCache {
    parsed: RwLock<HashMap<String, Option<Arc<Policy>>>>,
}

const POLICY_CACHE_LIMIT: usize = 1024;

impl PolicyCache {
    fn get(&self, text: &str) -> Option<Arc<Policy>> {
        if let Some(found) = self
            .parsed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(text)
        {
            return found.clone();
        }
        let parsed = Policy::parse_resource(text)
            .or_else(|_| Policy::parse(text))
            .ok()
            .map(Arc::new);
        let mut map = self.parsed.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= POLICY_CACHE_LIMIT {
            map.clear();
        }
        map.insert(text.to_owned(), parsed.clone());
        parsed
    }
}

/// Decisions that depend only on principal, action, resource and policies (no conditions, no
/// request variables), by identity generation: a change to any identity or policy makes every
/// entry stale, and a changed resource policy is part of the key.
#[derive(Default)]
pub struct DecisionCache {
    decisions: RwLock<HashMap<DecisionKey, Decision>>,
}

/// Generation, principal, session key, action and resource; and the resource policy's text.
type DecisionKey = (String, Option<Arc<str>>);

const DECISION_CACHE_LIMIT: usize = 16_384;

impl DecisionCache {
    fn get(&self, key: &DecisionKey) -> Option<Decision> {
        self.decisions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: DecisionKey, decision: Decision) {
        let mut map = self.decisions.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= DECISION_CACHE_LIMIT {
            map.clear();
        }
        map.insert(key, decision);
    }
}

/// One request's authorization state.
pub struct Authz<'a> {
    pub mode: AuthMode,
    pub caller: Arc<Caller>,
    pub iam: &'a Iam,
    pub policies: &'a PolicyCache,
    pub decisions: &'a DecisionCache,
    /// `kinesis:PutRecord`.
    pub action: String,
    /// The request's condition keys (source IP, transport, principal, request tags), built
    /// the first time a decision needs them (a cached decision needs none).
    context: std::sync::OnceLock<ContextKeys>,
    make_context: Box<dyn Fn() -> ContextKeys + Send + Sync + 'a>,
    checked: AtomicBool,
}

/// The account of a Kinesis ARN (`arn:aws:kinesis:<region>:<account>:…`).
pub fn arn_account(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, _, _, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    parts.next()?;
    Some(account)
}

impl<'a> Authz<'a> {
    pub fn new(
        mode: AuthMode,
        caller: Arc<Caller>,
        iam: &'a Iam,
        policies: &'a PolicyCache,
        decisions: &'a DecisionCache,
        action: String,
        make_context: Box<dyn Fn() -> ContextKeys + Send + Sync + 'a>,
    ) -> Authz<'a> {
        Authz {
            mode,
            caller,
            iam,
            policies,
            decisions,
            action,
            context: std::sync::OnceLock::new(),
            make_context,
            checked: AtomicBool::new(false),
        }
    }

    /// The account that owns `resource` (the caller's for `*` and for names without one).
    fn resource_account<'r>(&'r self, resource: &'r str) -> &'r str {
        if resource == "*" {
            return &self.caller.account;
        }
        arn_account(resource).unwrap_or(&self.caller.account)
    }

    /// The request's condition keys.
    pub fn context(&self) -> &ContextKeys {
        self.context.get_or_init(|| (self.make_context)())
    }

    /// Whether some check already ran for this request.
    pub fn was_checked(&self) -> bool {
        self.checked.load(Ordering::Relaxed)
    }

    /// Decides `action` on `resource` given the resource's own policy text (services other than
    /// Kinesis keep theirs, e.g. key policies); the denial uses the service's code.
    pub fn check_action(
        &self,
        action: &str,
        resource: &str,
        resource_policy: Option<&str>,
    ) -> Result<(), (String, String)> {
        self.checked.store(true, Ordering::Relaxed);
        if self.mode != AuthMode::Enforce {
            return Ok(());
        }
        let resource_account = self.resource_account(resource);
        let policy = resource_policy.and_then(|text| self.policies.get(text));
        let decision = self.iam.authorize(
            &self.caller,
            action,
            resource,
            resource_account,
            policy.as_deref(),
            self.context(),
        );
        if decision == Decision::Allow {
            return Ok(());
        }
        Err((
            "AccessDeniedException".to_owned(),
            denial_message(&self.caller.arn, action, resource, &decision),
        ))
    }

    /// Decides the request's action on `resource`; `stream` names the stream whose tags are the
    /// `aws:ResourceTag/*` keys. Allowed in `open` and `verify` modes without looking.
    pub fn check(
        &self,
        engine: &Engine,
        resource: &str,
        stream: Option<(&str, &str)>,
    ) -> Result<(), ApiError> {
        self.checked.store(true, Ordering::Relaxed);
        if self.mode != AuthMode::Enforce {
            return Ok(());
        }
        let resource_account = self.resource_account(resource);
        let policy_text = if resource == "*" {
            None
        } else {
            engine.resource_policy(resource).map_err(ApiError::from)?
        };
        let policy = policy_text
            .as_deref()
            .and_then(|text| self.policies.get(text));
        let cacheable = self.iam.policies_of(&self.caller).is_context_free()
            && policy.as_ref().is_none_or(|p| p.is_context_free());
        let key = cacheable.then(|| {
            (
                format!(
                    "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
                    self.iam.generation(),
                    self.caller.arn,
                    self.caller.access_key_id.as_deref().unwrap_or(""),
                    self.action,
                    resource
                ),
                policy_text.clone(),
            )
        });
        let cached = key.as_ref().and_then(|k| self.decisions.get(k));
        let decision = match cached {
            Some(decision) => decision,
            None => {
                let mut context = self.context().clone();
                if let Some((region, name)) = stream {
                    for (key, value) in engine.stream_tags(region, name) {
                        context.insert(&format!("aws:ResourceTag/{key}"), value);
                    }
                }
                let decision = self.iam.authorize(
                    &self.caller,
                    &self.action,
                    resource,
                    resource_account,
                    policy.as_deref(),
                    &context,
                );
                if let Some(key) = key {
                    self.decisions.put(key, decision.clone());
                }
                decision
            }
        };
        if decision == Decision::Allow {
            return Ok(());
        }
        tracing::debug!(caller = %self.caller.arn, action = %self.action, %resource, "denied");
        Err(ApiError::new(
            "AccessDeniedException",
            denial_message(&self.caller.arn, &self.action, resource, &decision),
        ))
    }
}

/// AWS's text for a denied request.
pub fn denial_message(caller: &str, action: &str, resource: &str, decision: &Decision) -> String {
    let reason = match decision {
        Decision::ExplicitDenyIdentity => {
            "with an explicit deny in an identity-based policy".to_owned()
        }
        Decision::ExplicitDenyResource => {
            "with an explicit deny in a resource-based policy".to_owned()
        }
        Decision::NoResourceAllow => {
            format!("because no resource-based policy allows the {action} action")
        }
        _ => format!("because no identity-based policy allows the {action} action"),
    };
    format!(
        "User: {caller} is not authorized to perform: {action} on resource: {resource} {reason}"
    )
}

impl millrace_service::Authorizer for Authz<'_> {
    fn check(
        &self,
        action: &str,
        resource: &str,
        resource_policy: Option<&str>,
    ) -> Result<(), millrace_service::ServiceError> {
        self.check_action(action, resource, resource_policy)
            .map_err(|(code, message)| millrace_service::ServiceError::client(&code, message))
    }
}
