//! Tests of the awsQuery XML replies and errors: exact bytes for IAM and STS outputs, lists,
//! maps, flattened shapes, timestamps and escaping.

use serde_json::{json, Value};

use super::*;
use crate::generated::iam_model::IAM;
use crate::generated::sts_model::STS;

const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

fn check(model: &ServiceModel, operation: &str, output: Value, expected: &str) {
    let xml = encode_response(model, operation, &output, "req-1");
    let text = String::from_utf8(xml).expect("utf-8");
    assert_eq!(text, expected);
}

fn response(operation: &str, namespace: &str, result: Option<&str>) -> String {
    let result = result.map_or_else(String::new, |members| {
        format!("<{operation}Result>{members}</{operation}Result>")
    });
    format!(
        "<{operation}Response xmlns=\"{namespace}\">{result}\
         <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata></{operation}Response>"
    )
}

#[test]
fn create_user_in_model_order_with_an_iso_date() {
    check(
        &IAM,
        "CreateUser",
        json!({"User": {
            "Tags": [{"Value": "prod", "Key": "env"}],
            "CreateDate": 1_796_112_000,
            "Arn": "arn:aws:iam::123456789012:user/alice",
            "UserId": "AIDAEXAMPLE",
            "UserName": "alice",
            "Path": "/",
            "Unmodelled": "dropped",
            "PasswordLastUsed": null
        }}),
        &response(
            "CreateUser",
            IAM_NS,
            Some(
                "<User><Path>/</Path><UserName>alice</UserName><UserId>AIDAEXAMPLE</UserId>\
                 <Arn>arn:aws:iam::123456789012:user/alice</Arn>\
                 <CreateDate>2026-12-01T08:00:00Z</CreateDate>\
                 <Tags><member><Key>env</Key><Value>prod</Value></member></Tags></User>",
            ),
        ),
    );
}

#[test]
fn list_users_with_members_and_is_truncated() {
    let user = |name: &str| {
        json!({"Path": "/", "UserName": name, "UserId": format!("ID{name}"),
               "Arn": format!("arn:aws:iam::123456789012:user/{name}"),
               "CreateDate": "2026-12-01T09:00:00+01:00"})
    };
    let member = |name: &str| {
        format!(
            "<member><Path>/</Path><UserName>{name}</UserName><UserId>ID{name}</UserId>\
             <Arn>arn:aws:iam::123456789012:user/{name}</Arn>\
             <CreateDate>2026-12-01T08:00:00Z</CreateDate></member>"
        )
    };
    check(
        &IAM,
        "ListUsers",
        json!({"Users": [user("a"), user("b")], "IsTruncated": true, "Marker": "m&1"}),
        &response(
            "ListUsers",
            IAM_NS,
            Some(&format!(
                "<Users>{}{}</Users><IsTruncated>true</IsTruncated><Marker>m&amp;1</Marker>",
                member("a"),
                member("b")
            )),
        ),
    );
    check(
        &IAM,
        "ListUsers",
        json!({"Users": [], "IsTruncated": false}),
        &response(
            "ListUsers",
            IAM_NS,
            Some("<Users></Users><IsTruncated>false</IsTruncated>"),
        ),
    );
}

#[test]
fn get_caller_identity() {
    check(
        &STS,
        "GetCallerIdentity",
        json!({"UserId": "AIDAEXAMPLE", "Account": "123456789012",
               "Arn": "arn:aws:iam::123456789012:user/alice"}),
        &response(
            "GetCallerIdentity",
            STS_NS,
            Some(
                "<UserId>AIDAEXAMPLE</UserId><Account>123456789012</Account>\
                 <Arn>arn:aws:iam::123456789012:user/alice</Arn>",
            ),
        ),
    );
}

#[test]
fn assume_role_with_credentials_and_expiration() {
    check(
        &STS,
        "AssumeRole",
        json!({
            "AssumedRoleUser": {"Arn": "arn:aws:sts::123456789012:assumed-role/demo/s1",
                                "AssumedRoleId": "AROAEXAMPLE:s1"},
            "Credentials": {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "secret",
                            "SessionToken": "token", "Expiration": 1_796_112_000.359},
            "PackedPolicySize": 6.0
        }),
        &response(
            "AssumeRole",
            STS_NS,
            Some(
                "<Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId>\
                 <SecretAccessKey>secret</SecretAccessKey><SessionToken>token</SessionToken>\
                 <Expiration>2026-12-01T08:00:00.359Z</Expiration></Credentials>\
                 <AssumedRoleUser><AssumedRoleId>AROAEXAMPLE:s1</AssumedRoleId>\
                 <Arn>arn:aws:sts::123456789012:assumed-role/demo/s1</Arn></AssumedRoleUser>\
                 <PackedPolicySize>6</PackedPolicySize>",
            ),
        ),
    );
}

#[test]
fn operations_without_output_have_no_result() {
    check(
        &IAM,
        "DeleteUser",
        json!({}),
        &response("DeleteUser", IAM_NS, None),
    );
    // A known output with a body that is not an object still gets an (empty) result.
    check(
        &IAM,
        "GetUser",
        Value::Null,
        &response("GetUser", IAM_NS, Some("")),
    );
}

#[test]
fn maps_and_flattened_shapes() {
    // IAM's GetAccountSummary answers with a map.
    check(
        &IAM,
        "GetAccountSummary",
        json!({"SummaryMap": {"Groups": 1, "Users": 3}}),
        &response(
            "GetAccountSummary",
            IAM_NS,
            Some(
                "<SummaryMap><entry><key>Groups</key><value>1</value></entry>\
                 <entry><key>Users</key><value>3</value></entry></SummaryMap>",
            ),
        ),
    );

    use crate::model::{Member, Operation, Protocol, Shape, ShapeKind};
    static SHAPES: &[Shape] = &[
        Shape::new("Attrs", ShapeKind::Map { key: 3, value: 3 })
            .flattened()
            .entry_names("Name", "Value"),
        Shape::new("Names", ShapeKind::List(3))
            .flattened()
            .member_name("Name"),
        Shape::new(
            "Out",
            ShapeKind::Structure(&[
                Member::optional("Attributes", 0),
                Member::optional("Names", 1),
                Member::optional("Ids", 4),
            ]),
        ),
        Shape::new("Text", ShapeKind::String),
        Shape::new("Ids", ShapeKind::List(3)).member_name("Id"),
    ];
    static OPERATIONS: &[Operation] = &[Operation {
        name: "Get",
        input: None,
        output: Some(2),
        errors: &[],
        result_wrapper: Some("GetResult"),
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
        "Get",
        json!({"Attributes": {"a": "1"}, "Names": ["x", "y"], "Ids": ["i"]}),
        &response(
            "Get",
            "https://demo.example/",
            Some(
                "<Attributes><Name>a</Name><Value>1</Value></Attributes>\
                 <Name>x</Name><Name>y</Name><Ids><Id>i</Id></Ids>",
            ),
        ),
    );
}

#[test]
fn text_is_escaped() {
    check(
        &STS,
        "GetCallerIdentity",
        json!({"UserId": "a<b>&\"c'\r\n\u{1}", "Account": 12, "Arn": true}),
        &response(
            "GetCallerIdentity",
            STS_NS,
            Some(
                "<UserId>a&lt;b&gt;&amp;\"c'&#xD;\n\u{FFFD}</UserId><Account>12</Account>\
                 <Arn>true</Arn>",
            ),
        ),
    );
}

#[test]
fn error_envelope() {
    let xml = encode_error(
        &IAM,
        ErrorKind::Sender,
        "NoSuchEntity",
        "The user with name bob cannot be found.",
        "req-9",
    );
    assert_eq!(
        String::from_utf8(xml).expect("utf-8"),
        format!(
            "<ErrorResponse xmlns=\"{IAM_NS}\"><Error><Type>Sender</Type>\
             <Code>NoSuchEntity</Code><Message>The user with name bob cannot be found.</Message>\
             </Error><RequestId>req-9</RequestId></ErrorResponse>"
        )
    );
    let xml = encode_error(&STS, ErrorKind::Receiver, "InternalFailure", "a < b", "r");
    assert!(String::from_utf8(xml)
        .expect("utf-8")
        .contains("<Type>Receiver</Type><Code>InternalFailure</Code><Message>a &lt; b</Message>"));
}

#[test]
fn error_traits_give_the_wire_codes() {
    let shape = IAM
        .shape_named("NoSuchEntityException")
        .expect("NoSuchEntityException");
    let error = shape.error.expect("error trait");
    assert_eq!(
        (error.code, error.http_status, error.sender_fault),
        ("NoSuchEntity", 404, true)
    );
    let failure = IAM
        .shape_named("ServiceFailureException")
        .and_then(|shape| shape.error)
        .expect("error trait");
    assert_eq!(
        (failure.code, failure.http_status, failure.sender_fault),
        ("ServiceFailure", 500, false)
    );
}
