//! The crate's test table: parsing, matching, conditions and the final decision.

use crate::*;

const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";
const STREAM: &str = "arn:aws:kinesis:us-east-1:111122223333:stream/orders";

const ALICE: Principal<'static> = Principal {
    arn: "arn:aws:iam::111122223333:user/alice",
    account: ACCOUNT,
    username: Some("alice"),
    userid: Some("AIDAALICE"),
    is_root: false,
    source_role_arn: None,
};

const ROOT: Principal<'static> = Principal {
    arn: "arn:aws:iam::111122223333:root",
    account: ACCOUNT,
    username: None,
    userid: Some("111122223333"),
    is_root: true,
    source_role_arn: None,
};

const SESSION: Principal<'static> = Principal {
    arn: "arn:aws:sts::111122223333:assumed-role/writer/job-7",
    account: ACCOUNT,
    username: None,
    userid: Some("AROAWRITER:job-7"),
    is_root: false,
    source_role_arn: Some("arn:aws:iam::111122223333:role/writer"),
};

const CAROL_ELSEWHERE: Principal<'static> = Principal {
    arn: "arn:aws:iam::444455556666:user/carol",
    account: OTHER_ACCOUNT,
    username: Some("carol"),
    userid: Some("AIDACAROL"),
    is_root: false,
    source_role_arn: None,
};

const OTHER_ROOT: Principal<'static> = Principal {
    arn: "arn:aws:iam::444455556666:root",
    account: OTHER_ACCOUNT,
    username: None,
    userid: Some("444455556666"),
    is_root: true,
    source_role_arn: None,
};

fn firehose() -> Principal<'static> {
    Principal::service("firehose.amazonaws.com")
}

fn request<'a>(
    action: &'a str,
    resource: &'a str,
    principal: Principal<'a>,
    context: &'a ContextKeys,
) -> Request<'a> {
    Request {
        action,
        resource,
        principal,
        context,
    }
}

/// Context keys and their values, as test tables write them.
type Pairs<'a> = &'a [(&'a str, &'a [&'a str])];

fn context(pairs: &[(&str, &[&str])]) -> ContextKeys {
    let mut keys = ContextKeys::new();
    for (key, values) in pairs {
        keys.insert_many(key, values.iter().map(|v| (*v).to_owned()).collect());
    }
    keys
}

fn identity(json: &str) -> Policy {
    Policy::parse_identity(json).unwrap_or_else(|e| panic!("{e:?} for {json}"))
}

fn resource_policy(json: &str) -> Policy {
    Policy::parse_resource(json).unwrap_or_else(|e| panic!("{e:?} for {json}"))
}

/// A current-version identity policy with one statement made of `body`.
fn statement(body: &str) -> String {
    format!(r#"{{"Version": "2012-10-17", "Statement": {{{body}}}}}"#)
}

/// Evaluates the identity policy `json` for ALICE.
fn check(json: &str, action: &str, resource: &str, keys: &ContextKeys, expected: Effect) {
    check_as(json, ALICE, action, resource, keys, expected);
}

fn check_as(
    json: &str,
    principal: Principal,
    action: &str,
    resource: &str,
    keys: &ContextKeys,
    expected: Effect,
) {
    let policy = identity(json);
    let got = evaluate(&[&policy], &request(action, resource, principal, keys));
    assert_eq!(
        got, expected,
        "{action} on {resource} as {principal:?} with {keys:?}\n{json}"
    );
}

/// Whether `condition` (the JSON of a `Condition` element) holds for ALICE with `keys`.
fn check_condition(condition: &str, pairs: &[(&str, &[&str])], expected: bool) {
    let json = statement(&format!(
        r#""Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {condition}"#
    ));
    let keys = context(pairs);
    let policy = identity(&json);
    let got = evaluate(
        &[&policy],
        &request("kinesis:PutRecord", STREAM, ALICE, &keys),
    );
    assert_eq!(
        got == Effect::Allow,
        expected,
        "condition {condition} with {pairs:?}"
    );
}

fn check_error(result: Result<Policy, PolicyError>, expected: PolicyError, message: &str) {
    let error = result.expect_err("document should be refused");
    assert_eq!(error, expected);
    assert_eq!(error.to_string(), message);
}

fn is_syntax_error(result: Result<Policy, PolicyError>) -> bool {
    matches!(result, Err(PolicyError::Syntax { .. }))
}

// ---- parsing -------------------------------------------------------------------------------

#[test]
fn parses_version_id_statement_object_or_array() {
    let policy = identity(
        r#"{"Version": "2012-10-17", "Id": "p1", "Statement": [
            {"Sid": "One", "Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
            {"Sid": "Two", "Effect": "Deny", "Action": ["kinesis:DeleteStream"], "Resource": ["*"]}
        ]}"#,
    );
    assert_eq!(policy.version(), PolicyVersion::V2012_10_17);
    assert_eq!(policy.id(), Some("p1"));
    assert_eq!(policy.statements().len(), 2);
    assert_eq!(policy.statements()[0].sid(), Some("One"));
    assert_eq!(policy.statements()[1].effect(), StatementEffect::Deny);
    assert!(!policy.has_principal());

    let single = identity(r#"{"Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#);
    assert_eq!(single.version(), PolicyVersion::V2008_10_17);
    assert_eq!(single.statements().len(), 1);
    let legacy = identity(
        r#"{"Version": "2008-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}"#,
    );
    assert_eq!(legacy.version(), PolicyVersion::V2008_10_17);
}

#[test]
fn malformed_json_and_structure_are_syntax_errors() {
    check_error(
        Policy::parse("{not json"),
        PolicyError::Syntax {
            reason: "not valid JSON",
        },
        "Syntax errors in policy.",
    );
    for json in [
        "",
        "[]",
        "\"policy\"",
        r#"{"Version": "2012-10-17"}"#,
        r#"{"Version": "2012-10-17", "Statement": "Allow"}"#,
        r#"{"Version": "2012-10-17", "Statement": ["Allow"]}"#,
        r#"{"Version": 2012, "Statement": []}"#,
        r#"{"Version": "2012-10-17", "Id": 5, "Statement": []}"#,
        r#"{"Version": "2012-10-17", "Extra": 1, "Statement": []}"#,
        // Element names are case-sensitive.
        r#"{"Version": "2012-10-17", "Statement": {"effect": "Allow", "Action": "*", "Resource": "*"}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "NotAction": "*", "Resource": "*"}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "NotResource": "*"}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": 7, "Resource": "*"}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": [7], "Resource": "*"}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": {"a": 1}}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": true, "Action": "*", "Resource": "*"}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": []}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": "x"}}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"aws:username": null}}}}"#,
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"aws:username": [{"a": 1}]}}}}"#,
    ] {
        assert!(is_syntax_error(Policy::parse(json)), "{json}");
    }
}

#[test]
fn refuses_unknown_version() {
    check_error(
        Policy::parse(
            r#"{"Version": "2012-10-18", "Statement": {"Effect": "Allow", "Action": "*", "Resource": "*"}}"#,
        ),
        PolicyError::UnsupportedVersion,
        "The policy failed legacy parsing",
    );
}

#[test]
fn identity_policy_may_not_name_a_principal() {
    for element in ["Principal", "NotPrincipal"] {
        let json = statement(&format!(
            r#""Effect": "Allow", "{element}": "*", "Action": "*", "Resource": "*""#
        ));
        check_error(
            Policy::parse_identity(&json),
            PolicyError::PrincipalNotAllowed,
            "Policy document should not specify a principal.",
        );
        // The general parser and the resource parser accept it.
        assert!(Policy::parse(&json).is_ok());
        assert!(Policy::parse_resource(&json).is_ok());
    }
}

#[test]
fn resource_policy_must_name_a_principal_in_every_statement() {
    let json = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        {"Effect": "Allow", "Action": "*", "Resource": "*"}
    ]}"#;
    check_error(
        Policy::parse_resource(json),
        PolicyError::MissingPrincipal,
        "Missing required field Principal",
    );
}

#[test]
fn statement_must_have_effect_actions_and_resources() {
    check_error(
        Policy::parse(&statement(r#""Action": "*", "Resource": "*""#)),
        PolicyError::MissingEffect,
        "Missing required field Effect",
    );
    check_error(
        Policy::parse(&statement(
            r#""Effect": "Allowed", "Action": "*", "Resource": "*""#,
        )),
        PolicyError::InvalidEffect("Allowed".to_owned()),
        "Invalid effect: Allowed",
    );
    // Effect is case-sensitive.
    assert!(Policy::parse(&statement(
        r#""Effect": "allow", "Action": "*", "Resource": "*""#
    ))
    .is_err());
    for body in [
        r#""Effect": "Allow", "Resource": "*""#,
        r#""Effect": "Allow", "Action": [], "Resource": "*""#,
    ] {
        check_error(
            Policy::parse(&statement(body)),
            PolicyError::MissingActions,
            "Policy statement must contain actions.",
        );
    }
    for body in [
        r#""Effect": "Allow", "Action": "*""#,
        r#""Effect": "Allow", "Action": "*", "Resource": []"#,
    ] {
        check_error(
            Policy::parse(&statement(body)),
            PolicyError::MissingResources,
            "Policy statement must contain resources.",
        );
    }
}

#[test]
fn actions_need_one_vendor_prefix() {
    check_error(
        Policy::parse(&statement(
            r#""Effect": "Allow", "Action": "PutRecord", "Resource": "*""#,
        )),
        PolicyError::MissingVendor,
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
    );
    check_error(
        Policy::parse(&statement(
            r#""Effect": "Allow", "Action": ":PutRecord", "Resource": "*""#,
        )),
        PolicyError::MissingVendor,
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
    );
    check_error(
        Policy::parse(&statement(
            r#""Effect": "Allow", "Action": "kinesis:Put:Record", "Resource": "*""#,
        )),
        PolicyError::TooManyColons,
        "Actions/Condition can contain only one colon.",
    );
    check_error(
        Policy::parse(&statement(
            r#""Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"username": "a"}}"#,
        )),
        PolicyError::MissingVendor,
        "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
    );
}

#[test]
fn resources_must_be_arns_or_star() {
    check_error(
        Policy::parse(&statement(
            r#""Effect": "Allow", "Action": "*", "Resource": "orders""#,
        )),
        PolicyError::ResourceNotArn("orders".to_owned()),
        "Resource orders must be in ARN format or \"*\".",
    );
    assert!(Policy::parse(&statement(
        r#""Effect": "Allow", "Action": "*", "Resource": "arn:aws:kinesis""#
    ))
    .is_err());
    assert!(Policy::parse(&statement(
        r#""Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::bucket""#
    ))
    .is_ok());
}

#[test]
fn sids_are_alphanumeric_in_identity_policies_and_unique() {
    let spaced = r#"{"Version": "2012-10-17", "Statement": {"Sid": "allow all", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}}"#;
    assert!(Policy::parse_resource(spaced).is_ok());
    let spaced_identity = r#"{"Version": "2012-10-17", "Statement": {"Sid": "allow all", "Effect": "Allow", "Action": "*", "Resource": "*"}}"#;
    check_error(
        Policy::parse_identity(spaced_identity),
        PolicyError::InvalidSid,
        "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*",
    );
    let duplicate = r#"{"Version": "2012-10-17", "Statement": [
        {"Sid": "A", "Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Sid": "A", "Effect": "Deny", "Action": "*", "Resource": "*"}
    ]}"#;
    check_error(
        Policy::parse(duplicate),
        PolicyError::DuplicateSid,
        "Statement IDs (SID) in a single policy must be unique.",
    );
}

#[test]
fn condition_operators_are_checked() {
    let with = |operator: &str| {
        Policy::parse(&statement(&format!(
            r#""Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {{"{operator}": {{"aws:username": "a"}}}}"#
        )))
    };
    check_error(
        with("StringEqualz"),
        PolicyError::InvalidConditionOperator("StringEqualz".to_owned()),
        "Invalid Condition type : StringEqualz.",
    );
    for bad in [
        "NullIfExists",
        "ForAnyValue:Null",
        "stringequals",
        "ForSomeValues:StringEquals",
    ] {
        assert!(
            matches!(with(bad), Err(PolicyError::InvalidConditionOperator(_))),
            "{bad}"
        );
    }
    for good in [
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "NumericEquals",
        "NumericNotEquals",
        "NumericLessThan",
        "NumericLessThanEquals",
        "NumericGreaterThan",
        "NumericGreaterThanEquals",
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateLessThanEquals",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "Bool",
        "BinaryEquals",
        "IpAddress",
        "NotIpAddress",
        "ArnEquals",
        "ArnLike",
        "ArnNotEquals",
        "ArnNotLike",
        "Null",
        "StringEqualsIfExists",
        "ForAnyValue:StringLike",
        "ForAllValues:StringEqualsIgnoreCaseIfExists",
    ] {
        assert!(with(good).is_ok(), "{good}");
    }
}

#[test]
fn principals_are_checked() {
    let with = |principal: &str| {
        Policy::parse_resource(&statement(&format!(
            r#""Effect": "Allow", "Principal": {principal}, "Action": "*", "Resource": "*""#
        )))
    };
    check_error(
        with(r#"{"AWS": "alice"}"#),
        PolicyError::InvalidPrincipal(r#""AWS":"alice""#.to_owned()),
        r#"Invalid principal in policy: "AWS":"alice""#,
    );
    for bad in [
        r#""alice""#,
        r#"{"AWS": "12345"}"#,
        r#"{"AWS": "arn:aws:iam::111122223333:user/*"}"#,
        r#"{"AWS": "arn:aws:s3:::bucket"}"#,
        r#"{"Service": "not a service"}"#,
    ] {
        assert!(
            matches!(with(bad), Err(PolicyError::InvalidPrincipal(_))),
            "{bad}"
        );
    }
    for bad in [
        r#"{}"#,
        r#"{"AWS": []}"#,
        r#"{"AWS": 5}"#,
        r#"{"Person": "x"}"#,
        "[]",
    ] {
        assert!(is_syntax_error(with(bad)), "{bad}");
    }
    for good in [
        r#""*""#,
        r#"{"AWS": "*"}"#,
        r#"{"AWS": "111122223333"}"#,
        r#"{"AWS": ["arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:role/path/writer"]}"#,
        r#"{"AWS": "arn:aws:sts::111122223333:assumed-role/writer/job-7"}"#,
        r#"{"Service": ["firehose.amazonaws.com", "lambda.amazonaws.com"]}"#,
        r#"{"Federated": "cognito-identity.amazonaws.com"}"#,
        r#"{"CanonicalUser": "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"}"#,
    ] {
        assert!(with(good).is_ok(), "{good}");
    }
}

#[test]
fn trust_policies_name_principals_and_no_resources() {
    let trust = Policy::parse_trust(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "sts:AssumeRole"}}"#,
    )
    .expect("valid trust policy");
    let keys = ContextKeys::new();
    let role = "arn:aws:iam::111122223333:role/writer";
    assert_eq!(
        evaluate_resource_policy(
            &trust,
            &request("sts:AssumeRole", role, CAROL_ELSEWHERE, &keys)
        ),
        Effect::Allow
    );
    assert_eq!(
        evaluate_resource_policy(&trust, &request("sts:AssumeRole", role, ALICE, &keys)),
        Effect::NotApplicable
    );
    check_error(
        Policy::parse_trust(
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole", "Resource": "*"}}"#,
        ),
        PolicyError::ResourceNotAllowed,
        "Has prohibited field Resource",
    );
    assert_eq!(
        Policy::parse_trust(
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}}"#
        ),
        Err(PolicyError::MissingPrincipal)
    );
    // The resource parser takes a trust policy too; its statements name every resource.
    let as_resource = Policy::parse_resource(
        r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": {"AWS": "444455556666"}, "Action": "sts:AssumeRole"}}"#,
    )
    .expect("valid trust policy");
    assert!(!as_resource.names_every_resource());
    assert_eq!(
        evaluate_resource_policy(
            &as_resource,
            &request("sts:AssumeRole", role, CAROL_ELSEWHERE, &keys)
        ),
        Effect::Allow
    );
    assert!(resource_policy_for(r#""*""#).names_every_resource());
    // Other kinds of document must name resources.
    assert_eq!(
        Policy::parse_identity(
            r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "sts:AssumeRole"}}"#
        ),
        Err(PolicyError::MissingResources)
    );
}

// ---- actions and resources -----------------------------------------------------------------

#[test]
fn allow_applies_only_to_named_actions() {
    let keys = ContextKeys::new();
    let json = statement(r#""Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "*""#);
    check(&json, "kinesis:PutRecord", STREAM, &keys, Effect::Allow);
    check(
        &json,
        "kinesis:PutRecords",
        STREAM,
        &keys,
        Effect::NotApplicable,
    );
    check(
        &json,
        "firehose:PutRecord",
        STREAM,
        &keys,
        Effect::NotApplicable,
    );
}

#[test]
fn actions_ignore_case_and_take_wildcards() {
    let keys = ContextKeys::new();
    let cases: &[(&str, &str, Effect)] = &[
        ("kinesis:putrecord", "kinesis:PutRecord", Effect::Allow),
        ("KINESIS:PutRecord", "kinesis:PutRecord", Effect::Allow),
        ("kinesis:*", "kinesis:DeleteStream", Effect::Allow),
        ("kinesis:Put*", "kinesis:PutRecords", Effect::Allow),
        ("kinesis:Put*", "kinesis:GetRecords", Effect::NotApplicable),
        ("kinesis:?etRecords", "kinesis:GetRecords", Effect::Allow),
        (
            "kinesis:?etRecords",
            "kinesis:GGetRecords",
            Effect::NotApplicable,
        ),
        (
            "kinesis:Describe*",
            "kinesis:DescribeStreamSummary",
            Effect::Allow,
        ),
        ("kin*:List*", "kinesis:ListShards", Effect::Allow),
        ("*", "kinesis:ListShards", Effect::Allow),
        ("*:*", "kinesis:ListShards", Effect::Allow),
        ("kinesis:*", "firehose:PutRecord", Effect::NotApplicable),
    ];
    for (pattern, action, expected) in cases {
        let json = statement(&format!(
            r#""Effect": "Allow", "Action": "{pattern}", "Resource": "*""#
        ));
        check(&json, action, STREAM, &keys, *expected);
    }
}

#[test]
fn explicit_deny_beats_allow() {
    let keys = ContextKeys::new();
    let json = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kinesis:DeleteStream", "Resource": "*"}
    ]}"#;
    check(json, "kinesis:DeleteStream", STREAM, &keys, Effect::Deny);
    check(json, "kinesis:PutRecord", STREAM, &keys, Effect::Allow);

    // Across documents too, in either order.
    let allow = identity(&statement(
        r#""Effect": "Allow", "Action": "*", "Resource": "*""#,
    ));
    let deny = identity(&statement(
        r#""Effect": "Deny", "Action": "kinesis:PutRecord", "Resource": "*""#,
    ));
    let put = request("kinesis:PutRecord", STREAM, ALICE, &keys);
    assert_eq!(evaluate(&[&allow, &deny], &put), Effect::Deny);
    assert_eq!(evaluate(&[&deny, &allow], &put), Effect::Deny);
    assert_eq!(
        evaluate(
            &[&deny],
            &request("kinesis:GetRecords", STREAM, ALICE, &keys)
        ),
        Effect::NotApplicable
    );
    assert_eq!(evaluate(&[], &put), Effect::NotApplicable);
}

#[test]
fn not_action_with_deny_denies_everything_else() {
    let keys = ContextKeys::new();
    let json = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {"Effect": "Deny", "NotAction": ["kinesis:Describe*", "kinesis:List*"], "Resource": "*"}
    ]}"#;
    check(json, "kinesis:PutRecord", STREAM, &keys, Effect::Deny);
    check(json, "kinesis:DeleteStream", STREAM, &keys, Effect::Deny);
    check(json, "kinesis:DescribeStream", STREAM, &keys, Effect::Allow);
    check(json, "kinesis:ListShards", STREAM, &keys, Effect::Allow);

    let allow_not =
        statement(r#""Effect": "Allow", "NotAction": "kinesis:DeleteStream", "Resource": "*""#);
    check(
        &allow_not,
        "kinesis:PutRecord",
        STREAM,
        &keys,
        Effect::Allow,
    );
    check(
        &allow_not,
        "kinesis:DeleteStream",
        STREAM,
        &keys,
        Effect::NotApplicable,
    );
}

#[test]
fn resources_match_case_sensitively_with_wildcards() {
    let keys = ContextKeys::new();
    let cases: &[(&str, &str, Effect)] = &[
        (STREAM, STREAM, Effect::Allow),
        ("*", STREAM, Effect::Allow),
        ("arn:aws:kinesis:*:*:*", STREAM, Effect::Allow),
        (
            "arn:aws:kinesis:*:111122223333:stream/*",
            STREAM,
            Effect::Allow,
        ),
        (
            "arn:aws:kinesis:us-east-1:111122223333:stream/order?",
            STREAM,
            Effect::Allow,
        ),
        (
            "arn:aws:kinesis:us-east-1:111122223333:stream/order",
            STREAM,
            Effect::NotApplicable,
        ),
        (
            "arn:aws:kinesis:us-east-1:111122223333:stream/Orders",
            STREAM,
            Effect::NotApplicable,
        ),
        (
            "arn:aws:kinesis:us-*:111122223333:stream/orders",
            STREAM,
            Effect::Allow,
        ),
        (
            "arn:aws:kinesis:*:444455556666:stream/*",
            STREAM,
            Effect::NotApplicable,
        ),
        // A `*` in the region field does not eat the account field, nor one in the account
        // field the start of the resource part.
        (
            "arn:aws:kinesis:*:111122223333:stream/orders",
            "arn:aws:kinesis:us-east-1:999999999999:111122223333:stream/orders",
            Effect::NotApplicable,
        ),
        (
            "arn:aws:kinesis:us-east-1:*:stream/orders",
            "arn:aws:kinesis:us-east-1:111122223333:x:stream/orders",
            Effect::NotApplicable,
        ),
        // The resource part spans `/` and `:`.
        (
            "arn:aws:kinesis:*:*:stream/orders/*",
            "arn:aws:kinesis:us-east-1:111122223333:stream/orders/consumer/app:1700000000",
            Effect::Allow,
        ),
        // Actions without a resource come with `*`.
        ("*", "*", Effect::Allow),
        ("arn:aws:kinesis:*:*:*", "*", Effect::NotApplicable),
    ];
    for (pattern, resource, expected) in cases {
        let json = statement(&format!(
            r#""Effect": "Allow", "Action": "kinesis:*", "Resource": "{pattern}""#
        ));
        check(&json, "kinesis:PutRecord", resource, &keys, *expected);
    }
    let listed = statement(&format!(
        r#""Effect": "Allow", "Action": "kinesis:*", "Resource": ["arn:aws:kinesis:*:*:stream/other", "{STREAM}"]"#
    ));
    check(&listed, "kinesis:PutRecord", STREAM, &keys, Effect::Allow);
}

#[test]
fn not_resource_applies_to_every_other_resource() {
    let keys = ContextKeys::new();
    let json = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kinesis:*", "NotResource": "arn:aws:kinesis:*:*:stream/public-*"}
    ]}"#;
    check(json, "kinesis:PutRecord", STREAM, &keys, Effect::Deny);
    check(
        json,
        "kinesis:PutRecord",
        "arn:aws:kinesis:us-east-1:111122223333:stream/public-feed",
        &keys,
        Effect::Allow,
    );
}

// ---- policy variables ----------------------------------------------------------------------

#[test]
fn username_variable_in_resource() {
    let keys = ContextKeys::new();
    let json = statement(
        r#""Effect": "Allow", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/${aws:username}-*""#,
    );
    let alices = "arn:aws:kinesis:us-east-1:111122223333:stream/alice-events";
    let bobs = "arn:aws:kinesis:us-east-1:111122223333:stream/bob-events";
    check(&json, "kinesis:PutRecord", alices, &keys, Effect::Allow);
    check(
        &json,
        "kinesis:PutRecord",
        bobs,
        &keys,
        Effect::NotApplicable,
    );
    // A role session has no aws:username: the resource does not match.
    check_as(
        &json,
        SESSION,
        "kinesis:PutRecord",
        alices,
        &keys,
        Effect::NotApplicable,
    );
    // Variable names ignore case.
    let upper = statement(
        r#""Effect": "Allow", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/${AWS:UserName}-*""#,
    );
    check(&upper, "kinesis:PutRecord", alices, &keys, Effect::Allow);
}

#[test]
fn variables_only_in_the_current_version() {
    let keys = ContextKeys::new();
    let body = r#""Effect": "Allow", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/${aws:username}""#;
    let alices = "arn:aws:kinesis:us-east-1:111122223333:stream/alice";
    let literal = "arn:aws:kinesis:us-east-1:111122223333:stream/${aws:username}";
    let legacy = format!(r#"{{"Version": "2008-10-17", "Statement": {{{body}}}}}"#);
    check(
        &legacy,
        "kinesis:PutRecord",
        alices,
        &keys,
        Effect::NotApplicable,
    );
    check(&legacy, "kinesis:PutRecord", literal, &keys, Effect::Allow);
    let unversioned = format!(r#"{{"Statement": {{{body}}}}}"#);
    check(
        &unversioned,
        "kinesis:PutRecord",
        alices,
        &keys,
        Effect::NotApplicable,
    );
    check(
        &statement(body),
        "kinesis:PutRecord",
        alices,
        &keys,
        Effect::Allow,
    );
}

#[test]
fn principal_and_context_variables_defaults_and_escapes() {
    let keys = context(&[("kinesis:team", &["blue"]), ("aws:TagKeys", &["a", "b"])]);
    let cases: &[(&str, &str, Effect)] = &[
        ("stream/${aws:userid}", "stream/AIDAALICE", Effect::Allow),
        (
            "stream/${aws:PrincipalAccount}",
            "stream/111122223333",
            Effect::Allow,
        ),
        ("stream/${kinesis:team}-*", "stream/blue-1", Effect::Allow),
        (
            "stream/${kinesis:team}-*",
            "stream/red-1",
            Effect::NotApplicable,
        ),
        (
            "stream/${kinesis:missing}",
            "stream/",
            Effect::NotApplicable,
        ),
        (
            "stream/${kinesis:missing, 'shared'}",
            "stream/shared",
            Effect::Allow,
        ),
        (
            "stream/${kinesis:team, 'shared'}",
            "stream/blue",
            Effect::Allow,
        ),
        // A multi-valued key cannot be a variable.
        ("stream/${aws:TagKeys}", "stream/a", Effect::NotApplicable),
        // Escapes stand for themselves and are not wildcards.
        ("stream/a${*}b", "stream/a*b", Effect::Allow),
        ("stream/a${*}b", "stream/axxb", Effect::NotApplicable),
        ("stream/a${?}b", "stream/a?b", Effect::Allow),
        ("stream/a${?}b", "stream/axb", Effect::NotApplicable),
        ("stream/a${$}b", "stream/a$b", Effect::Allow),
        // A `${` that opens no variable is text.
        ("stream/a${b", "stream/a${b", Effect::Allow),
    ];
    for (pattern, suffix, expected) in cases {
        let json = statement(&format!(
            r#""Effect": "Allow", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:us-east-1:111122223333:{pattern}""#
        ));
        let resource = format!("arn:aws:kinesis:us-east-1:111122223333:{suffix}");
        check(&json, "kinesis:PutRecord", &resource, &keys, *expected);
    }
}

#[test]
fn variable_values_are_not_wildcards() {
    let keys = context(&[("kinesis:team", &["*"])]);
    let json = statement(
        r#""Effect": "Allow", "Action": "kinesis:*", "Resource": "arn:aws:kinesis:*:*:stream/${kinesis:team}""#,
    );
    check(
        &json,
        "kinesis:PutRecord",
        STREAM,
        &keys,
        Effect::NotApplicable,
    );
    check(
        &json,
        "kinesis:PutRecord",
        "arn:aws:kinesis:us-east-1:111122223333:stream/*",
        &keys,
        Effect::Allow,
    );
}

// ---- conditions ----------------------------------------------------------------------------

#[test]
fn string_conditions() {
    let team_blue: &[(&str, &[&str])] = &[("aws:RequestTag/team", &["blue"])];
    let none: &[(&str, &[&str])] = &[];
    let cases: &[(&str, Pairs, bool)] = &[
        (
            r#"{"StringEquals": {"aws:RequestTag/team": "blue"}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringEquals": {"aws:RequestTag/team": "Blue"}}"#,
            team_blue,
            false,
        ),
        (
            r#"{"StringEquals": {"aws:RequestTag/team": ["red", "blue"]}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringEquals": {"aws:RequestTag/team": "blue"}}"#,
            none,
            false,
        ),
        (
            r#"{"StringNotEquals": {"aws:RequestTag/team": "blue"}}"#,
            team_blue,
            false,
        ),
        (
            r#"{"StringNotEquals": {"aws:RequestTag/team": ["red", "green"]}}"#,
            team_blue,
            true,
        ),
        // A negated operator holds when the key is absent.
        (
            r#"{"StringNotEquals": {"aws:RequestTag/team": "blue"}}"#,
            none,
            true,
        ),
        (
            r#"{"StringEqualsIgnoreCase": {"aws:RequestTag/team": "BLUE"}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase": {"aws:RequestTag/team": "BLUE"}}"#,
            team_blue,
            false,
        ),
        (
            r#"{"StringNotEqualsIgnoreCase": {"aws:RequestTag/team": "red"}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringLike": {"aws:RequestTag/team": "bl*"}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringLike": {"aws:RequestTag/team": "b?ue"}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringLike": {"aws:RequestTag/team": "B*"}}"#,
            team_blue,
            false,
        ),
        (
            r#"{"StringLike": {"aws:RequestTag/team": "*"}}"#,
            none,
            false,
        ),
        (
            r#"{"StringNotLike": {"aws:RequestTag/team": "bl*"}}"#,
            team_blue,
            false,
        ),
        (
            r#"{"StringNotLike": {"aws:RequestTag/team": "r*"}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringNotLike": {"aws:RequestTag/team": "r*"}}"#,
            none,
            true,
        ),
        // Key names ignore case, on both sides.
        (
            r#"{"StringEquals": {"AWS:REQUESTTAG/TEAM": "blue"}}"#,
            team_blue,
            true,
        ),
        (
            r#"{"StringEquals": {"aws:requesttag/team": "blue"}}"#,
            &[("Aws:RequestTag/Team", &["blue"])],
            true,
        ),
        // Non-string JSON values compare as written.
        (
            r#"{"StringEquals": {"kinesis:shards": 4}}"#,
            &[("kinesis:shards", &["4"])],
            true,
        ),
        // Variables in condition values.
        (
            r#"{"StringEquals": {"aws:RequestTag/owner": "${aws:username}"}}"#,
            &[("aws:RequestTag/owner", &["alice"])],
            true,
        ),
        (
            r#"{"StringEquals": {"aws:RequestTag/owner": "${aws:username}"}}"#,
            &[("aws:RequestTag/owner", &["bob"])],
            false,
        ),
        (
            r#"{"StringLike": {"aws:RequestTag/owner": "${aws:username}-*"}}"#,
            &[("aws:RequestTag/owner", &["alice-2"])],
            true,
        ),
    ];
    for (condition, pairs, expected) in cases {
        check_condition(condition, pairs, *expected);
    }
}

#[test]
fn conditions_are_anded_across_keys_and_operators() {
    let both: &[(&str, &[&str])] = &[
        ("aws:RequestTag/team", &["blue"]),
        ("aws:SecureTransport", &["true"]),
    ];
    let only_team: &[(&str, &[&str])] = &[("aws:RequestTag/team", &["blue"])];
    let two_keys =
        r#"{"StringEquals": {"aws:RequestTag/team": "blue", "aws:SecureTransport": "true"}}"#;
    check_condition(two_keys, both, true);
    check_condition(two_keys, only_team, false);
    let two_operators = r#"{"StringEquals": {"aws:RequestTag/team": "blue"}, "Bool": {"aws:SecureTransport": "true"}}"#;
    check_condition(two_operators, both, true);
    check_condition(two_operators, only_team, false);
}

#[test]
fn numeric_conditions() {
    let ten: &[(&str, &[&str])] = &[("kinesis:ShardCount", &["10"])];
    let cases: &[(&str, bool)] = &[
        (r#"{"NumericEquals": {"kinesis:ShardCount": "10"}}"#, true),
        (r#"{"NumericEquals": {"kinesis:ShardCount": 10.0}}"#, true),
        (
            r#"{"NumericEquals": {"kinesis:ShardCount": ["1", "10"]}}"#,
            true,
        ),
        (
            r#"{"NumericNotEquals": {"kinesis:ShardCount": "10"}}"#,
            false,
        ),
        (
            r#"{"NumericNotEquals": {"kinesis:ShardCount": "11"}}"#,
            true,
        ),
        (
            r#"{"NumericLessThan": {"kinesis:ShardCount": "10"}}"#,
            false,
        ),
        (r#"{"NumericLessThan": {"kinesis:ShardCount": 11}}"#, true),
        (
            r#"{"NumericLessThanEquals": {"kinesis:ShardCount": "10"}}"#,
            true,
        ),
        (
            r#"{"NumericLessThanEquals": {"kinesis:ShardCount": "9.5"}}"#,
            false,
        ),
        (
            r#"{"NumericGreaterThan": {"kinesis:ShardCount": "10"}}"#,
            false,
        ),
        (
            r#"{"NumericGreaterThan": {"kinesis:ShardCount": "-3"}}"#,
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals": {"kinesis:ShardCount": "10"}}"#,
            true,
        ),
        (
            r#"{"NumericGreaterThanEquals": {"kinesis:ShardCount": "ten"}}"#,
            false,
        ),
    ];
    for (condition, expected) in cases {
        check_condition(condition, ten, *expected);
    }
    check_condition(
        r#"{"NumericLessThan": {"kinesis:ShardCount": 11}}"#,
        &[],
        false,
    );
    check_condition(
        r#"{"NumericLessThan": {"kinesis:ShardCount": 11}}"#,
        &[("kinesis:ShardCount", &["many"])],
        false,
    );
    check_condition(
        r#"{"NumericNotEquals": {"kinesis:ShardCount": 11}}"#,
        &[],
        true,
    );
}

#[test]
fn date_conditions() {
    let now: &[(&str, &[&str])] = &[
        ("aws:CurrentTime", &["2024-06-01T12:00:00Z"]),
        ("aws:EpochTime", &["1717243200"]),
    ];
    let cases: &[(&str, bool)] = &[
        (
            r#"{"DateEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}"#,
            true,
        ),
        (
            r#"{"DateEquals": {"aws:CurrentTime": "2024-06-01T14:00:00+02:00"}}"#,
            true,
        ),
        (r#"{"DateEquals": {"aws:CurrentTime": "1717243200"}}"#, true),
        (
            r#"{"DateEquals": {"aws:EpochTime": "2024-06-01T12:00:00Z"}}"#,
            true,
        ),
        (
            r#"{"DateNotEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}"#,
            false,
        ),
        (
            r#"{"DateNotEquals": {"aws:CurrentTime": "2024-06-02"}}"#,
            true,
        ),
        (
            r#"{"DateLessThan": {"aws:CurrentTime": "2024-06-02"}}"#,
            true,
        ),
        (
            r#"{"DateLessThan": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}"#,
            false,
        ),
        (
            r#"{"DateLessThanEquals": {"aws:CurrentTime": "2024-06-01T12:00:00Z"}}"#,
            true,
        ),
        (
            r#"{"DateGreaterThan": {"aws:CurrentTime": "2024-01-01T00:00:00Z"}}"#,
            true,
        ),
        (
            r#"{"DateGreaterThan": {"aws:EpochTime": 1717243201}}"#,
            false,
        ),
        (
            r#"{"DateGreaterThanEquals": {"aws:EpochTime": 1717243200}}"#,
            true,
        ),
        (
            r#"{"DateGreaterThanEquals": {"aws:CurrentTime": "2025-01-01"}}"#,
            false,
        ),
        (
            r#"{"DateLessThan": {"aws:CurrentTime": "not a date"}}"#,
            false,
        ),
    ];
    for (condition, expected) in cases {
        check_condition(condition, now, *expected);
    }
    check_condition(
        r#"{"DateLessThan": {"aws:CurrentTime": "2030-01-01"}}"#,
        &[],
        false,
    );
}

#[test]
fn secure_transport_bool() {
    let https: &[(&str, &[&str])] = &[("aws:SecureTransport", &["true"])];
    let http: &[(&str, &[&str])] = &[("aws:SecureTransport", &["false"])];
    check_condition(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, https, true);
    check_condition(r#"{"Bool": {"aws:SecureTransport": true}}"#, https, true);
    check_condition(r#"{"Bool": {"aws:SecureTransport": "True"}}"#, https, true);
    check_condition(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, http, false);
    check_condition(r#"{"Bool": {"aws:SecureTransport": "false"}}"#, http, true);
    check_condition(r#"{"Bool": {"aws:SecureTransport": "true"}}"#, &[], false);
    check_condition(r#"{"Bool": {"aws:SecureTransport": "false"}}"#, &[], false);
    check_condition(
        r#"{"BoolIfExists": {"aws:SecureTransport": "false"}}"#,
        &[],
        true,
    );

    // The usual deny-insecure-transport statement.
    let json = r#"{"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "kinesis:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}
    ]}"#;
    check(
        json,
        "kinesis:PutRecord",
        STREAM,
        &context(http),
        Effect::Deny,
    );
    check(
        json,
        "kinesis:PutRecord",
        STREAM,
        &context(https),
        Effect::Allow,
    );
}

#[test]
fn binary_conditions() {
    let data: &[(&str, &[&str])] = &[("kinesis:Blob", &["aGVsbG8="])];
    check_condition(
        r#"{"BinaryEquals": {"kinesis:Blob": "aGVsbG8="}}"#,
        data,
        true,
    );
    check_condition(
        r#"{"BinaryEquals": {"kinesis:Blob": "aGVsbG8"}}"#,
        data,
        true,
    );
    check_condition(
        r#"{"BinaryEquals": {"kinesis:Blob": "d29ybGQ="}}"#,
        data,
        false,
    );
    check_condition(
        r#"{"BinaryEquals": {"kinesis:Blob": "aGVsbG8="}}"#,
        &[],
        false,
    );
}

#[test]
fn source_ip_conditions() {
    let v4: &[(&str, &[&str])] = &[("aws:SourceIp", &["203.0.113.25"])];
    let v6: &[(&str, &[&str])] = &[("aws:SourceIp", &["2001:db8:85a3::8a2e:370:7334"])];
    let cases: &[(&str, Pairs, bool)] = &[
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#,
            v4,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.113.25"}}"#,
            v4,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.113.26/32"}}"#,
            v4,
            false,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "203.0.0.0/16"]}}"#,
            v4,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "198.51.100.0/24"}}"#,
            v4,
            false,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#,
            v4,
            false,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}"#,
            v6,
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "2001:db9::/32"}}"#,
            v6,
            false,
        ),
        (r#"{"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}"#, v4, true),
        (r#"{"IpAddress": {"aws:SourceIp": "not-an-ip"}}"#, v4, false),
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#,
            &[],
            false,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#,
            v4,
            false,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}}"#,
            v4,
            true,
        ),
        (
            r#"{"NotIpAddress": {"aws:SourceIp": "198.51.100.0/24"}}"#,
            &[],
            true,
        ),
        (
            r#"{"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}}"#,
            &[("aws:SourceIp", &["garbage"])],
            false,
        ),
    ];
    for (condition, pairs, expected) in cases {
        check_condition(condition, pairs, *expected);
    }
}

#[test]
fn arn_conditions() {
    let source: &[(&str, &[&str])] = &[(
        "aws:SourceArn",
        &["arn:aws:firehose:us-east-1:111122223333:deliverystream/to-s3"],
    )];
    let cases: &[(&str, bool)] = &[
        (
            r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:firehose:us-east-1:111122223333:deliverystream/to-s3"}}"#,
            true,
        ),
        (
            r#"{"ArnEquals": {"aws:SourceArn": "arn:aws:firehose:*:111122223333:deliverystream/*"}}"#,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:firehose:*:111122223333:*"}}"#,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:firehose:*:444455556666:*"}}"#,
            false,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:firehose:*:deliverystream/to-s3"}}"#,
            false,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:firehose:us-east-1:111122223333:deliverystream/TO-S3"}}"#,
            false,
        ),
        (
            r#"{"ArnNotEquals": {"aws:SourceArn": "arn:aws:firehose:*:111122223333:*"}}"#,
            false,
        ),
        (
            r#"{"ArnNotLike": {"aws:SourceArn": "arn:aws:firehose:*:444455556666:*"}}"#,
            true,
        ),
        (
            r#"{"ArnLike": {"aws:SourceArn": "arn:aws:firehose:*:${aws:PrincipalAccount}:*"}}"#,
            true,
        ),
    ];
    for (condition, expected) in cases {
        check_condition(condition, source, *expected);
    }
    check_condition(r#"{"ArnLike": {"aws:SourceArn": "arn:*"}}"#, &[], false);
    check_condition(r#"{"ArnNotLike": {"aws:SourceArn": "arn:*"}}"#, &[], true);
    check_condition(
        r#"{"ArnLike": {"aws:SourceArn": "arn:*:*:*:*:*"}}"#,
        &[("aws:SourceArn", &["plain"])],
        false,
    );
}

#[test]
fn null_conditions() {
    let tagged: &[(&str, &[&str])] = &[("aws:RequestTag/team", &["blue"])];
    check_condition(r#"{"Null": {"aws:RequestTag/team": "true"}}"#, &[], true);
    check_condition(
        r#"{"Null": {"aws:RequestTag/team": "true"}}"#,
        tagged,
        false,
    );
    check_condition(
        r#"{"Null": {"aws:RequestTag/team": "false"}}"#,
        tagged,
        true,
    );
    check_condition(r#"{"Null": {"aws:RequestTag/team": false}}"#, &[], false);
    // A key with no values counts as absent.
    check_condition(
        r#"{"Null": {"aws:TagKeys": "true"}}"#,
        &[("aws:TagKeys", &[])],
        true,
    );
}

#[test]
fn if_exists_conditions() {
    let cases: &[(&str, Pairs, bool)] = &[
        (
            r#"{"StringEqualsIfExists": {"aws:RequestTag/team": "blue"}}"#,
            &[],
            true,
        ),
        (
            r#"{"StringEqualsIfExists": {"aws:RequestTag/team": "blue"}}"#,
            &[("aws:RequestTag/team", &["blue"])],
            true,
        ),
        (
            r#"{"StringEqualsIfExists": {"aws:RequestTag/team": "blue"}}"#,
            &[("aws:RequestTag/team", &["red"])],
            false,
        ),
        (
            r#"{"StringNotEqualsIfExists": {"aws:RequestTag/team": "blue"}}"#,
            &[("aws:RequestTag/team", &["blue"])],
            false,
        ),
        (
            r#"{"NumericLessThanIfExists": {"kinesis:ShardCount": 5}}"#,
            &[],
            true,
        ),
        (
            r#"{"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &[],
            true,
        ),
        (
            r#"{"IpAddressIfExists": {"aws:SourceIp": "10.0.0.0/8"}}"#,
            &[("aws:SourceIp", &["11.0.0.1"])],
            false,
        ),
        (
            r#"{"ArnLikeIfExists": {"aws:SourceArn": "arn:aws:*:*:*:*"}}"#,
            &[],
            true,
        ),
    ];
    for (condition, pairs, expected) in cases {
        check_condition(condition, pairs, *expected);
    }
}

#[test]
fn set_qualifiers_on_multivalued_keys() {
    let allowed_keys = r#"{"ForAllValues:StringEquals": {"aws:TagKeys": ["team", "owner"]}}"#;
    check_condition(allowed_keys, &[("aws:TagKeys", &["team"])], true);
    check_condition(allowed_keys, &[("aws:TagKeys", &["team", "owner"])], true);
    check_condition(allowed_keys, &[("aws:TagKeys", &["team", "cost"])], false);
    // ForAllValues holds for an absent key, or one with no values.
    check_condition(allowed_keys, &[], true);
    check_condition(allowed_keys, &[("aws:TagKeys", &[])], true);

    let any_key = r#"{"ForAnyValue:StringEquals": {"aws:TagKeys": ["team", "owner"]}}"#;
    check_condition(any_key, &[("aws:TagKeys", &["cost", "owner"])], true);
    check_condition(any_key, &[("aws:TagKeys", &["cost"])], false);
    // ForAnyValue fails for an absent key.
    check_condition(any_key, &[], false);

    let any_not = r#"{"ForAnyValue:StringNotEquals": {"aws:TagKeys": ["team"]}}"#;
    check_condition(any_not, &[("aws:TagKeys", &["team", "cost"])], true);
    check_condition(any_not, &[("aws:TagKeys", &["team"])], false);
    check_condition(any_not, &[], false);

    let all_not = r#"{"ForAllValues:StringNotLike": {"aws:TagKeys": ["aws:*"]}}"#;
    check_condition(all_not, &[("aws:TagKeys", &["team", "cost"])], true);
    check_condition(
        all_not,
        &[("aws:TagKeys", &["team", "aws:cloudformation"])],
        false,
    );

    let any_if_exists = r#"{"ForAnyValue:StringEqualsIfExists": {"aws:TagKeys": "team"}}"#;
    check_condition(any_if_exists, &[], true);

    // Without a qualifier, a positive operator needs one matching value, a negated one none.
    check_condition(
        r#"{"StringEquals": {"aws:TagKeys": "owner"}}"#,
        &[("aws:TagKeys", &["team", "owner"])],
        true,
    );
    check_condition(
        r#"{"StringNotEquals": {"aws:TagKeys": "owner"}}"#,
        &[("aws:TagKeys", &["team", "owner"])],
        false,
    );
    check_condition(
        r#"{"StringNotEquals": {"aws:TagKeys": "cost"}}"#,
        &[("aws:TagKeys", &["team", "owner"])],
        true,
    );
}

#[test]
fn request_tags_with_tag_keys() {
    // Require a `team` tag of blue or red, and allow no tag keys but team and owner.
    let json = statement(
        r#""Effect": "Allow", "Action": "kinesis:AddTagsToStream", "Resource": "*", "Condition": {
            "StringEquals": {"aws:RequestTag/team": ["blue", "red"]},
            "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "owner"]}
        }"#,
    );
    let mut keys = ContextKeys::new();
    keys.insert("aws:RequestTag/team", "blue");
    keys.insert("aws:RequestTag/owner", "alice");
    keys.insert_many("aws:TagKeys", vec!["team".to_owned(), "owner".to_owned()]);
    check(
        &json,
        "kinesis:AddTagsToStream",
        STREAM,
        &keys,
        Effect::Allow,
    );

    keys.push("aws:TagKeys", "cost");
    check(
        &json,
        "kinesis:AddTagsToStream",
        STREAM,
        &keys,
        Effect::NotApplicable,
    );

    let mut green = ContextKeys::new();
    green.insert("aws:RequestTag/team", "green");
    green.insert_many("aws:TagKeys", vec!["team".to_owned()]);
    check(
        &json,
        "kinesis:AddTagsToStream",
        STREAM,
        &green,
        Effect::NotApplicable,
    );
}

#[test]
fn principal_keys_come_from_the_caller() {
    let keys = ContextKeys::new();
    let by_arn = |arn: &str| {
        statement(&format!(
            r#""Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {{"ArnEquals": {{"aws:PrincipalArn": "{arn}"}}}}"#
        ))
    };
    check(
        &by_arn(ALICE.arn),
        "kinesis:PutRecord",
        STREAM,
        &keys,
        Effect::Allow,
    );
    // For a session, aws:PrincipalArn is the role's ARN.
    check_as(
        &by_arn("arn:aws:iam::111122223333:role/writer"),
        SESSION,
        "kinesis:PutRecord",
        STREAM,
        &keys,
        Effect::Allow,
    );
    let account = statement(
        r#""Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}"#,
    );
    check(&account, "kinesis:PutRecord", STREAM, &keys, Effect::Allow);
    check_as(
        &account,
        CAROL_ELSEWHERE,
        "kinesis:PutRecord",
        STREAM,
        &keys,
        Effect::NotApplicable,
    );
    let username = statement(
        r#""Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"Null": {"aws:username": "true"}}"#,
    );
    check(
        &username,
        "kinesis:PutRecord",
        STREAM,
        &keys,
        Effect::NotApplicable,
    );
    check_as(
        &username,
        SESSION,
        "kinesis:PutRecord",
        STREAM,
        &keys,
        Effect::Allow,
    );
}

// ---- resource policies and principals ------------------------------------------------------

fn resource_policy_for(principal: &str) -> Policy {
    resource_policy(&statement(&format!(
        r#""Effect": "Allow", "Principal": {principal}, "Action": "kinesis:*", "Resource": "{STREAM}""#
    )))
}

fn check_principal(principal_json: &str, caller: Principal, expected: Effect) {
    let keys = ContextKeys::new();
    let policy = resource_policy_for(principal_json);
    assert_eq!(
        evaluate_resource_policy(
            &policy,
            &request("kinesis:PutRecord", STREAM, caller, &keys)
        ),
        expected,
        "{principal_json} for {caller:?}"
    );
}

#[test]
fn principal_matching() {
    use Effect::{Allow, NotApplicable};
    let cases: &[(&str, Principal, Effect)] = &[
        (r#""*""#, ALICE, Allow),
        (r#""*""#, CAROL_ELSEWHERE, Allow),
        (r#""*""#, firehose(), Allow),
        (r#"{"AWS": "*"}"#, CAROL_ELSEWHERE, Allow),
        (r#"{"AWS": "*"}"#, firehose(), NotApplicable),
        // An account id or its root ARN names every caller of the account.
        (r#"{"AWS": "111122223333"}"#, ALICE, Allow),
        (r#"{"AWS": "111122223333"}"#, ROOT, Allow),
        (r#"{"AWS": "111122223333"}"#, SESSION, Allow),
        (r#"{"AWS": "111122223333"}"#, CAROL_ELSEWHERE, NotApplicable),
        (
            r#"{"AWS": "arn:aws:iam::444455556666:root"}"#,
            CAROL_ELSEWHERE,
            Allow,
        ),
        (
            r#"{"AWS": "arn:aws:iam::444455556666:root"}"#,
            OTHER_ROOT,
            Allow,
        ),
        (
            r#"{"AWS": "arn:aws:iam::444455556666:root"}"#,
            ALICE,
            NotApplicable,
        ),
        // A user ARN names only that user.
        (
            r#"{"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
            ALICE,
            Allow,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
            ROOT,
            NotApplicable,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:user/bob"}"#,
            ALICE,
            NotApplicable,
        ),
        // A role ARN names the role's sessions; a session ARN names that session.
        (
            r#"{"AWS": "arn:aws:iam::111122223333:role/writer"}"#,
            SESSION,
            Allow,
        ),
        (
            r#"{"AWS": "arn:aws:iam::111122223333:role/reader"}"#,
            SESSION,
            NotApplicable,
        ),
        (
            r#"{"AWS": "arn:aws:sts::111122223333:assumed-role/writer/job-7"}"#,
            SESSION,
            Allow,
        ),
        (
            r#"{"AWS": "arn:aws:sts::111122223333:assumed-role/writer/job-8"}"#,
            SESSION,
            NotApplicable,
        ),
        (
            r#"{"AWS": ["arn:aws:iam::111122223333:user/bob", "444455556666"]}"#,
            CAROL_ELSEWHERE,
            Allow,
        ),
        // Service principals.
        (
            r#"{"Service": "firehose.amazonaws.com"}"#,
            firehose(),
            Allow,
        ),
        (
            r#"{"Service": "lambda.amazonaws.com"}"#,
            firehose(),
            NotApplicable,
        ),
        (
            r#"{"Service": "firehose.amazonaws.com"}"#,
            ALICE,
            NotApplicable,
        ),
        (
            r#"{"AWS": "111122223333", "Service": "firehose.amazonaws.com"}"#,
            firehose(),
            Allow,
        ),
        (
            r#"{"Federated": "cognito-identity.amazonaws.com"}"#,
            ALICE,
            NotApplicable,
        ),
    ];
    for (principal, caller, expected) in cases {
        check_principal(principal, *caller, *expected);
    }
}

#[test]
fn not_principal_applies_to_everyone_else() {
    let keys = ContextKeys::new();
    let policy = resource_policy(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [
            {{"Effect": "Allow", "Principal": "*", "Action": "kinesis:*", "Resource": "*"}},
            {{"Effect": "Deny", "NotPrincipal": {{"AWS": ["arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:role/writer"]}}, "Action": "kinesis:PutRecord", "Resource": "{STREAM}"}}
        ]}}"#
    ));
    let put = |caller| {
        evaluate_resource_policy(
            &policy,
            &request("kinesis:PutRecord", STREAM, caller, &keys),
        )
    };
    assert_eq!(put(ALICE), Effect::Allow);
    assert_eq!(put(SESSION), Effect::Allow);
    assert_eq!(put(ROOT), Effect::Deny);
    assert_eq!(put(CAROL_ELSEWHERE), Effect::Deny);
}

#[test]
fn resource_policy_statement_without_principal_never_applies() {
    let keys = ContextKeys::new();
    let lenient = Policy::parse(&statement(
        r#""Effect": "Allow", "Action": "*", "Resource": "*""#,
    ))
    .expect("valid document");
    let put = request("kinesis:PutRecord", STREAM, ALICE, &keys);
    assert_eq!(
        evaluate_resource_policy(&lenient, &put),
        Effect::NotApplicable
    );
    // As an identity policy, the same statement applies; a Principal there is ignored.
    assert_eq!(evaluate(&[&lenient], &put), Effect::Allow);
    let named = Policy::parse(&statement(
        r#""Effect": "Allow", "Principal": {"AWS": "999999999999"}, "Action": "*", "Resource": "*""#,
    ))
    .expect("valid document");
    assert_eq!(evaluate(&[&named], &put), Effect::Allow);
    assert_eq!(
        evaluate_resource_policy(&named, &put),
        Effect::NotApplicable
    );
}

// ---- authorize -----------------------------------------------------------------------------

const ALLOW_PUT: &str = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "kinesis:PutRecord", "Resource": "*"}}"#;
const DENY_PUT: &str = r#"{"Version": "2012-10-17", "Statement": {"Effect": "Deny", "Action": "kinesis:PutRecord", "Resource": "*"}}"#;

fn resource_statement(effect: &str, principal: &str) -> Policy {
    resource_policy(&statement(&format!(
        r#""Effect": "{effect}", "Principal": {principal}, "Action": "kinesis:PutRecord", "Resource": "{STREAM}""#
    )))
}

fn decide(identity_policies: &[&Policy], resource: Option<&Policy>, caller: Principal) -> Decision {
    let keys = ContextKeys::new();
    authorize(
        identity_policies,
        resource,
        &request("kinesis:PutRecord", STREAM, caller, &keys),
        ACCOUNT,
    )
}

#[test]
fn authorize_same_account() {
    let allow = identity(ALLOW_PUT);
    let deny = identity(DENY_PUT);
    let resource_allows_alice = resource_statement(
        "Allow",
        r#"{"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
    );
    let resource_allows_bob =
        resource_statement("Allow", r#"{"AWS": "arn:aws:iam::111122223333:user/bob"}"#);
    let resource_denies = resource_statement("Deny", r#""*""#);

    assert_eq!(decide(&[&allow], None, ALICE), Decision::Allow);
    assert_eq!(decide(&[], None, ALICE), Decision::NoIdentityAllow);
    // Within one account, either side's allow is enough.
    assert_eq!(
        decide(&[], Some(&resource_allows_alice), ALICE),
        Decision::Allow
    );
    assert_eq!(
        decide(&[&allow], Some(&resource_allows_bob), ALICE),
        Decision::Allow
    );
    assert_eq!(
        decide(&[], Some(&resource_allows_bob), ALICE),
        Decision::NoIdentityAllow
    );
    // Explicit denies win, and say where they came from.
    assert_eq!(
        decide(&[&allow, &deny], None, ALICE),
        Decision::ExplicitDenyIdentity
    );
    assert_eq!(
        decide(&[&deny], Some(&resource_allows_alice), ALICE),
        Decision::ExplicitDenyIdentity
    );
    assert_eq!(
        decide(&[&allow], Some(&resource_denies), ALICE),
        Decision::ExplicitDenyResource
    );
}

#[test]
fn authorize_cross_account_needs_both() {
    let allow = identity(ALLOW_PUT);
    let resource_allows_other = resource_statement("Allow", r#"{"AWS": "444455556666"}"#);
    let resource_allows_alice = resource_statement(
        "Allow",
        r#"{"AWS": "arn:aws:iam::111122223333:user/alice"}"#,
    );

    assert_eq!(
        decide(&[&allow], Some(&resource_allows_other), CAROL_ELSEWHERE),
        Decision::Allow
    );
    assert_eq!(
        decide(&[&allow], None, CAROL_ELSEWHERE),
        Decision::NoResourceAllow
    );
    assert_eq!(
        decide(&[&allow], Some(&resource_allows_alice), CAROL_ELSEWHERE),
        Decision::NoResourceAllow
    );
    assert_eq!(
        decide(&[], Some(&resource_allows_other), CAROL_ELSEWHERE),
        Decision::NoIdentityAllow
    );
    assert_eq!(decide(&[], None, CAROL_ELSEWHERE), Decision::NoAllow);
    assert_eq!(
        decide(&[], Some(&resource_allows_alice), CAROL_ELSEWHERE),
        Decision::NoAllow
    );
}

#[test]
fn authorize_root_needs_no_identity_policy() {
    let deny = identity(DENY_PUT);
    let resource_denies = resource_statement("Deny", r#"{"AWS": "111122223333"}"#);
    let resource_allows_other = resource_statement("Allow", r#"{"AWS": "444455556666"}"#);

    assert_eq!(decide(&[], None, ROOT), Decision::Allow);
    assert_eq!(
        decide(&[], Some(&resource_denies), ROOT),
        Decision::ExplicitDenyResource
    );
    assert_eq!(decide(&[&deny], None, ROOT), Decision::ExplicitDenyIdentity);
    // Another account's root still needs the resource policy.
    assert_eq!(decide(&[], None, OTHER_ROOT), Decision::NoResourceAllow);
    assert_eq!(
        decide(&[], Some(&resource_allows_other), OTHER_ROOT),
        Decision::Allow
    );
}

#[test]
fn authorize_service_principals_by_resource_policy_alone() {
    let allow = identity(ALLOW_PUT);
    let resource_allows = resource_statement("Allow", r#"{"Service": "firehose.amazonaws.com"}"#);
    let resource_denies = resource_statement("Deny", r#""*""#);
    assert_eq!(
        decide(&[], Some(&resource_allows), firehose()),
        Decision::Allow
    );
    assert_eq!(decide(&[], None, firehose()), Decision::NoResourceAllow);
    assert_eq!(
        decide(&[&allow], None, firehose()),
        Decision::NoResourceAllow
    );
    assert_eq!(
        decide(&[], Some(&resource_denies), firehose()),
        Decision::ExplicitDenyResource
    );
}

#[test]
fn authorize_with_conditions_in_the_resource_policy() {
    let policy = resource_policy(&format!(
        r#"{{"Version": "2012-10-17", "Statement": [
            {{"Effect": "Allow", "Principal": {{"AWS": "444455556666"}}, "Action": "kinesis:PutRecord", "Resource": "{STREAM}"}},
            {{"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*", "Condition": {{"NotIpAddress": {{"aws:SourceIp": "203.0.113.0/24"}}}}}}
        ]}}"#
    ));
    let allow = identity(ALLOW_PUT);
    let inside = context(&[("aws:SourceIp", &["203.0.113.9"])]);
    let outside = context(&[("aws:SourceIp", &["198.51.100.9"])]);
    let put = |keys| {
        authorize(
            &[&allow],
            Some(&policy),
            &request("kinesis:PutRecord", STREAM, CAROL_ELSEWHERE, keys),
            ACCOUNT,
        )
    };
    assert_eq!(put(&inside), Decision::Allow);
    assert_eq!(put(&outside), Decision::ExplicitDenyResource);
}

// ---- context keys --------------------------------------------------------------------------

#[test]
fn context_keys_ignore_case() {
    let mut keys = ContextKeys::new();
    keys.insert("aws:SourceIp", "10.0.0.1");
    assert_eq!(keys.get("AWS:SOURCEIP"), Some(&["10.0.0.1".to_owned()][..]));
    keys.insert("aws:sourceip", "10.0.0.2");
    assert_eq!(keys.get("aws:SourceIp"), Some(&["10.0.0.2".to_owned()][..]));
    keys.push("aws:SourceIP", "10.0.0.3");
    assert_eq!(keys.get("aws:sourceip").map(<[String]>::len), Some(2));
    keys.insert_many("aws:TagKeys", vec!["a".to_owned(), "b".to_owned()]);
    assert_eq!(keys.get("aws:tagkeys").map(<[String]>::len), Some(2));
    keys.remove("AWS:TAGKEYS");
    assert_eq!(keys.get("aws:TagKeys"), None);
    assert_eq!(ContextKeys::new().get("aws:SourceIp"), None);
}
