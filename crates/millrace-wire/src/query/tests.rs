//! Tests of the awsQuery request decoder against the IAM and STS models: parameter forms, type
//! conversion, the error codes and texts, and hostile bodies.

use serde_json::{json, Value};

use super::*;
use crate::generated::iam_model::IAM;
use crate::generated::sts_model::STS;

fn decode(model: &'static ServiceModel, body: &str) -> Result<(&'static str, Value), QueryError> {
    decode_request(model, body.as_bytes()).map(|(operation, document)| (operation.name, document))
}

fn check(model: &'static ServiceModel, body: &str, operation: &str, expected: Value) {
    match decode(model, body) {
        Ok((name, document)) => {
            assert_eq!(name, operation, "{body}");
            assert_eq!(document, expected, "{body}");
        }
        Err(err) => panic!("{body}: {err:?}"),
    }
}

fn check_error(model: &'static ServiceModel, body: &str, code: &str, message: &str) {
    match decode(model, body) {
        Ok(decoded) => panic!("{body}: expected {code}, decoded {decoded:?}"),
        Err(err) => {
            assert_eq!(err.code(), code, "{body}: {err:?}");
            assert_eq!(err.message(), message, "{body}");
        }
    }
}

#[test]
fn create_user_with_tags_and_percent_encoding() {
    check(
        &IAM,
        "Action=CreateUser&Version=2010-05-08&UserName=alice%2Bops&Path=%2Fteam%2F\
         &Tags.member.1.Key=env&Tags.member.1.Value=prod+eu\
         &Tags.member.2.Key=owner&Tags.member.2.Value=",
        "CreateUser",
        json!({
            "UserName": "alice+ops",
            "Path": "/team/",
            "Tags": [
                {"Key": "env", "Value": "prod eu"},
                {"Key": "owner", "Value": ""}
            ]
        }),
    );
}

#[test]
fn list_items_are_ordered_by_number_not_by_text() {
    let mut body = String::from("Action=TagUser&UserName=bob");
    for n in [10, 2, 1, 9] {
        body.push_str(&format!(
            "&Tags.member.{n}.Key=k{n}&Tags.member.{n}.Value=v{n}"
        ));
    }
    check(
        &IAM,
        &body,
        "TagUser",
        json!({
            "UserName": "bob",
            "Tags": [
                {"Key": "k1", "Value": "v1"},
                {"Key": "k2", "Value": "v2"},
                {"Key": "k9", "Value": "v9"},
                {"Key": "k10", "Value": "v10"}
            ]
        }),
    );
}

#[test]
fn assume_role_with_policy_arns_and_an_integer() {
    check(
        &STS,
        "Action=AssumeRole&Version=2011-06-15\
         &RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo&RoleSessionName=s1\
         &DurationSeconds=3600\
         &PolicyArns.member.1.arn=arn%3Aaws%3Aiam%3A%3Aaws%3Apolicy%2FReadOnlyAccess\
         &TransitiveTagKeys.member.1=team",
        "AssumeRole",
        json!({
            "RoleArn": "arn:aws:iam::123456789012:role/demo",
            "RoleSessionName": "s1",
            "DurationSeconds": 3600,
            "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}],
            "TransitiveTagKeys": ["team"]
        }),
    );
}

#[test]
fn booleans_integers_and_empty_lists() {
    check(
        &IAM,
        "Action=ListUsers&MaxItems=25&PathPrefix=%2F",
        "ListUsers",
        json!({"MaxItems": 25, "PathPrefix": "/"}),
    );
    check(
        &IAM,
        "Action=UpdateAccountPasswordPolicy&RequireSymbols=TRUE&AllowUsersToChangePassword=false\
         &MinimumPasswordLength=12",
        "UpdateAccountPasswordPolicy",
        json!({
            "RequireSymbols": true,
            "AllowUsersToChangePassword": false,
            "MinimumPasswordLength": 12
        }),
    );
    check(
        &IAM,
        "Action=CreateUser&UserName=carol&Tags=",
        "CreateUser",
        json!({"UserName": "carol", "Tags": []}),
    );
}

#[test]
fn operations_without_parameters_and_unknown_parameters() {
    check(
        &STS,
        "Action=GetCallerIdentity&Version=2011-06-15",
        "GetCallerIdentity",
        json!({}),
    );
    check(
        &STS,
        "Action=GetCallerIdentity&Version=2011-06-15&Bogus=1&X-Amz-Date=20260101T000000Z&&",
        "GetCallerIdentity",
        json!({}),
    );
}

#[test]
fn maps_timestamps_and_doubles() {
    // No IAM or STS input has a map; a one-operation model shows the form.
    use crate::model::{Member, Operation, Protocol, Shape, ShapeKind};
    static SHAPES: &[Shape] = &[
        Shape::new("Attrs", ShapeKind::Map { key: 3, value: 2 }),
        Shape::new(
            "In",
            ShapeKind::Structure(&[
                Member::optional("Attributes", 0),
                Member::optional("Flat", 4),
                Member::optional("At", 5),
                Member::optional("Since", 5),
                Member::optional("Ratio", 6),
            ]),
        ),
        Shape::new("Number", ShapeKind::Integer),
        Shape::new("Text", ShapeKind::String),
        Shape::new("Flat", ShapeKind::Map { key: 3, value: 3 })
            .flattened()
            .entry_names("Name", "Value"),
        Shape::new("When", ShapeKind::Timestamp),
        Shape::new("Ratio", ShapeKind::Double),
    ];
    static OPERATIONS: &[Operation] = &[Operation {
        name: "Set",
        input: Some(1),
        output: None,
        errors: &[],
        result_wrapper: None,
    }];
    static DEMO: ServiceModel = ServiceModel {
        service_id: "Demo",
        target_prefix: "",
        api_version: "2020-01-01",
        signing_name: "demo",
        json_version: "",
        protocol: Protocol::Query,
        xml_namespace: "https://demo.example/",
        java_package: "com.amazonaws.demo.v20200101",
        operations: OPERATIONS,
        shapes: SHAPES,
    };
    check(
        &DEMO,
        "Action=Set&Attributes.entry.2.key=b&Attributes.entry.2.value=2\
         &Attributes.entry.1.key=a&Attributes.entry.1.value=1\
         &Flat.1.Name=x&Flat.1.Value=y&At=2026-12-01T08%3A00%3A00.5Z&Since=1796112000\
         &Ratio=0.25",
        "Set",
        json!({"Attributes": {"a": 1, "b": 2}, "Flat": {"x": "y"},
               "At": 1_796_112_000.5, "Since": 1_796_112_000, "Ratio": 0.25}),
    );
    check_error(
        &DEMO,
        "Action=Set&At=yesterday",
        "MalformedQueryString",
        "Value yesterday for parameter At is not a valid timestamp",
    );
}

#[test]
fn unknown_or_missing_actions() {
    check_error(&IAM, "UserName=bob", "MissingAction", "Missing Action");
    check_error(&IAM, "", "MissingAction", "Missing Action");
    check_error(
        &IAM,
        "Action=MakeCoffee&Version=2010-05-08",
        "InvalidAction",
        "Could not find operation MakeCoffee for version 2010-05-08",
    );
    check_error(
        &IAM,
        "Action=createuser&UserName=bob",
        "InvalidAction",
        "Could not find operation createuser for version 2010-05-08",
    );
    check_error(
        &STS,
        "Action=GetCallerIdentity&Version=2010-05-08",
        "InvalidAction",
        "Could not find operation GetCallerIdentity for version 2010-05-08",
    );
}

#[test]
fn malformed_bodies_and_values() {
    check_error(
        &STS,
        "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo\
         &RoleSessionName=s1&DurationSeconds=1h",
        "MalformedQueryString",
        "Value 1h for parameter DurationSeconds is not a valid integer",
    );
    check_error(
        &IAM,
        "Action=ListUsers&MaxItems=99999999999",
        "MalformedQueryString",
        "Value 99999999999 for parameter MaxItems is not a valid integer",
    );
    check_error(
        &IAM,
        "Action=UpdateAccountPasswordPolicy&RequireSymbols=yes",
        "MalformedQueryString",
        "Value yes for parameter RequireSymbols is not a valid boolean",
    );
    check_error(
        &IAM,
        "Action=CreateUser&UserName=a%zz",
        "MalformedQueryString",
        "Invalid percent-encoding in the query string",
    );
    check_error(
        &IAM,
        "Action=CreateUser&UserName=%FF",
        "MalformedQueryString",
        "The query string is not valid UTF-8",
    );
    let err = decode(&IAM, "Action=CreateUser&UserName=%").expect_err("dangling percent");
    assert_eq!(err.http_status(), 404);
    assert_eq!(err.kind(), ErrorKind::Sender);
}

#[test]
fn validation_errors_use_the_services_text() {
    check_error(
        &IAM,
        "Action=CreateUser&Version=2010-05-08",
        "ValidationError",
        "1 validation error detected: Value null at 'userName' failed to satisfy constraint: \
         Member must not be null",
    );
    check_error(
        &IAM,
        "Action=CreateUser&UserName=bad%20name",
        "ValidationError",
        "1 validation error detected: Value 'bad name' at 'userName' failed to satisfy \
         constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+",
    );
    let long_name = "a".repeat(65);
    check_error(
        &IAM,
        &format!("Action=CreateUser&UserName={long_name}"),
        "ValidationError",
        &format!(
            "1 validation error detected: Value '{long_name}' at 'userName' failed to satisfy \
             constraint: Member must have length less than or equal to 64"
        ),
    );
    check_error(
        &IAM,
        "Action=ListUsers&MaxItems=0",
        "ValidationError",
        "1 validation error detected: Value '0' at 'maxItems' failed to satisfy constraint: \
         Member must have value greater than or equal to 1",
    );
    check_error(
        &STS,
        "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo\
         &RoleSessionName=s&DurationSeconds=60",
        "ValidationError",
        "2 validation errors detected: \
         Value 's' at 'roleSessionName' failed to satisfy constraint: \
         Member must have length greater than or equal to 2; \
         Value '60' at 'durationSeconds' failed to satisfy constraint: \
         Member must have value greater than or equal to 900",
    );
    check_error(
        &IAM,
        "Action=CreateUser&UserName=dave&Tags.member.1.Value=x",
        "ValidationError",
        "1 validation error detected: Value null at 'tags.1.member.key' failed to satisfy \
         constraint: Member must not be null",
    );
}

#[test]
fn action_of_reads_only_the_action() {
    assert_eq!(
        action_of(b"Version=2011-06-15&Action=GetCallerIdentity").as_deref(),
        Some("GetCallerIdentity")
    );
    assert_eq!(
        action_of(b"Act%69on=Get%43allerIdentity&Action=Other").as_deref(),
        Some("GetCallerIdentity")
    );
    assert_eq!(action_of(b"Version=2011-06-15"), None);
    assert_eq!(action_of(b"Action"), Some(String::new()));
    assert_eq!(action_of(b""), None);
}

#[test]
fn first_value_of_a_repeated_name_wins() {
    check(
        &IAM,
        "Action=GetUser&UserName=first&UserName=second&Action=DeleteUser",
        "GetUser",
        json!({"UserName": "first"}),
    );
}

#[test]
fn deep_or_odd_names_do_not_panic() {
    let deep = format!(
        "Action=CreateUser&UserName=x&{}=1",
        "Tags.member.1.".repeat(5000)
    );
    // The nesting is cut at MAX_DEPTH; the tag that is left lacks its key.
    assert!(matches!(
        decode(&IAM, &deep),
        Err(QueryError::Validation { .. })
    ));
    for body in [
        "Action=CreateUser&UserName=x&Tags.member.0.Key=a",
        "Action=CreateUser&UserName=x&Tags.member.-1.Key=a",
        "Action=CreateUser&UserName=x&Tags.member.99999999999999999999999.Key=a",
        "Action=CreateUser&UserName=x&Tags.member..Key=a",
        "Action=CreateUser&UserName=x&Tags.member.1=a",
        "=&=&&Action=CreateUser&UserName=x",
    ] {
        assert!(decode(&IAM, body).is_ok(), "{body}");
    }
}

#[test]
fn every_operation_decodes_a_bare_action() {
    // Only missing required members are reported.
    for model in [&IAM, &STS] {
        for operation in model.operations {
            let body = format!("Action={}&Version={}", operation.name, model.api_version);
            match decode(model, &body) {
                Ok((name, document)) => {
                    assert_eq!(name, operation.name);
                    assert_eq!(document, json!({}));
                }
                Err(QueryError::Validation { message }) => {
                    assert!(message.contains("Member must not be null"), "{message}");
                }
                Err(err) => panic!("{}: {err:?}", operation.name),
            }
        }
    }
}
