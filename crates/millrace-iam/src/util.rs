//! Identifiers, ARNs, time and the lookups the operations share.

use std::collections::HashMap;

use rand::Rng;

use crate::records::{AccountRecord, SessionRecord, SessionSubject, UserRecord};
use crate::{Caller, CallerKind};

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-12-01T08:00:00Z` for a Unix time in milliseconds.
pub fn iso8601(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_from(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A unique id with AWS's prefix: `AIDA` users, `AROA` roles, `AGPA` groups, `ANPA` policies
/// (21 characters in all).
pub(crate) fn entity_id(prefix: &str) -> String {
    format!("{prefix}{}", random_from(ID_ALPHABET, 17))
}

/// An access key id: `AKIA` long-term, `ASIA` temporary (20 characters).
pub(crate) fn access_key_id(prefix: &str) -> String {
    format!("{prefix}{}", random_from(ID_ALPHABET, 16))
}

/// A 40-character secret access key.
pub(crate) fn secret_access_key() -> String {
    random_from(SECRET_ALPHABET, 40)
}

/// An opaque session token.
pub(crate) fn session_token() -> String {
    format!("MRSTS{}", random_from(SECRET_ALPHABET, 300))
}

pub(crate) fn user_arn(account: &str, user: &UserRecord) -> String {
    format!("arn:aws:iam::{account}:user{}{}", user.path, user.name)
}

pub(crate) fn role_arn(account: &str, role: &crate::records::RoleRecord) -> String {
    format!("arn:aws:iam::{account}:role{}{}", role.path, role.name)
}

pub(crate) fn group_arn(account: &str, group: &crate::records::GroupRecord) -> String {
    format!("arn:aws:iam::{account}:group{}{}", group.path, group.name)
}

pub(crate) fn policy_arn(account: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:policy{path}{name}")
}

pub(crate) fn user_caller(account: &str, user: &UserRecord) -> Caller {
    Caller {
        account: account.to_owned(),
        arn: user_arn(account, user),
        user_id: user.id.clone(),
        kind: CallerKind::User {
            name: user.name.clone(),
        },
        access_key_id: None,
        via_session: false,
    }
}

/// The caller a session authenticates, if its user or role still exists.
pub(crate) fn session_caller(account: &AccountRecord, session: &SessionRecord) -> Option<Caller> {
    let mut caller = match &session.subject {
        SessionSubject::Root => Caller::root(&account.id),
        SessionSubject::User { name } => user_caller(&account.id, account.users.get(name)?),
        SessionSubject::AssumedRole {
            role_name,
            role_id,
            session_name,
            ..
        } => {
            let role = account.roles.get(role_name).filter(|r| &r.id == role_id)?;
            Caller {
                account: account.id.clone(),
                arn: format!(
                    "arn:aws:sts::{}:assumed-role/{}/{}",
                    account.id, role.name, session_name
                ),
                user_id: format!("{}:{}", role.id, session_name),
                kind: CallerKind::AssumedRole {
                    role_name: role.name.clone(),
                    role_arn: role_arn(&account.id, role),
                    session_name: session_name.clone(),
                },
                access_key_id: None,
                via_session: true,
            }
        }
    };
    caller.access_key_id = Some(session.access_key_id.clone());
    caller.via_session = true;
    Some(caller)
}

/// The account that owns a long-term access key id, if any.
pub(crate) fn key_owner(accounts: &HashMap<String, AccountRecord>, key: &str) -> Option<String> {
    accounts.values().find_map(|account| {
        let owned = account.root_keys.iter().any(|k| k.id == key)
            || account
                .users
                .values()
                .any(|u| u.keys.iter().any(|k| k.id == key));
        owned.then(|| account.id.clone())
    })
}

/// AWS managed policies Millrace provides (`arn:aws:iam::aws:policy/<name>`).
pub(crate) const AWS_MANAGED: &[(&str, &str, &str)] = &[
    (
        "AdministratorAccess",
        "ANPAIWMBCKSKIEE64ZLYK",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    ),
    (
        "AmazonKinesisFullAccess",
        "ANPAIVF32HAMOXCUYRAYE",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesis:*","Resource":"*"}]}"#,
    ),
    (
        "AmazonKinesisReadOnlyAccess",
        "ANPAIOCMTDT5RLKZ2CAJO",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kinesis:Get*","kinesis:List*","kinesis:Describe*"],"Resource":"*"}]}"#,
    ),
];

pub(crate) fn aws_managed(
    arn: &str,
) -> Option<&'static (&'static str, &'static str, &'static str)> {
    let name = arn.strip_prefix("arn:aws:iam::aws:policy/")?;
    AWS_MANAGED.iter().find(|(n, _, _)| *n == name)
}

/// The default version's document of a managed policy, customer or AWS managed.
pub(crate) fn managed_document(account: &AccountRecord, arn: &str) -> Option<String> {
    if let Some((_, _, document)) = aws_managed(arn) {
        return Some((*document).to_owned());
    }
    account
        .policies
        .get(arn)
        .and_then(|p| p.default_document())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_796_112_000_000), "2026-12-01T08:00:00Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn ids_have_aws_lengths() {
        assert_eq!(entity_id("AIDA").len(), 21);
        assert_eq!(access_key_id("AKIA").len(), 20);
        assert_eq!(secret_access_key().len(), 40);
    }
}
