//! awsQuery against botocore itself: botocore's query serializer writes request bodies that
//! `query::decode_request` must read, and botocore's query parser must read the replies and
//! errors that `xml` writes. Runs `python3` (or `$MILLRACE_PYTHON`) with botocore; when that is
//! not installed the test passes without checking anything.

use std::io::Write as _;
use std::process::{Command, Stdio};

use millrace_wire::generated::{iam_model::IAM, sts_model::STS};
use millrace_wire::model::ServiceModel;
use millrace_wire::{decode_request, encode_error, encode_response, ErrorKind};
use serde_json::{json, Value};

const SCRIPT: &str = r#"
import json, sys
import botocore.model, botocore.parsers, botocore.serialize

tasks = json.load(sys.stdin)
models = {}
def model(path):
    if path not in models:
        with open(path) as f:
            models[path] = botocore.model.ServiceModel(json.load(f))
    return models[path]

out = {"requests": [], "responses": []}
serializer = botocore.serialize.create_serializer("query", include_validation=False)
for task in tasks["requests"]:
    operation = model(task["model"]).operation_model(task["operation"])
    request = serializer.serialize_to_request(task["params"], operation)
    body = request["body"]
    if isinstance(body, dict):
        import urllib.parse
        body = urllib.parse.urlencode(body)
    out["requests"].append(body if isinstance(body, str) else body.decode())
parser = botocore.parsers.create_parser("query")
for task in tasks["responses"]:
    operation = model(task["model"]).operation_model(task["operation"])
    response = {"body": task["body"].encode(), "headers": {}, "status_code": task["status"]}
    parsed = parser.parse(response, operation.output_shape)
    parsed.get("ResponseMetadata", {}).pop("HTTPHeaders", None)
    out["responses"].append(parsed)
json.dump(out, sys.stdout, default=str)
"#;

fn model_path(dir: &str) -> String {
    format!(
        "{}/../../../shared/aws-models/{dir}/service-2.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs the script, or `None` when there is no Python with botocore.
fn run_botocore(tasks: &Value) -> Option<Value> {
    let python = std::env::var("MILLRACE_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let probe = Command::new(&python)
        .args(["-c", "import botocore"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        return None;
    }
    let mut child = Command::new(&python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    let input = tasks.to_string();
    let mut stdin = child.stdin.take().expect("python stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("run python");
    writer.join().expect("writer thread").expect("write tasks");
    assert!(
        output.status.success(),
        "botocore script failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(serde_json::from_slice(&output.stdout).expect("botocore output is JSON"))
}

fn response_task(model: &ServiceModel, dir: &str, operation: &str, output: &Value) -> Value {
    let body = encode_response(model, operation, output, "req-1");
    json!({
        "model": model_path(dir), "operation": operation, "status": 200,
        "body": String::from_utf8(body).expect("utf-8"),
    })
}

#[test]
fn botocore_round_trips_requests_and_replies() {
    let requests = json!([
        {"model": model_path("sts"), "operation": "AssumeRole", "params": {
            "RoleArn": "arn:aws:iam::123456789012:role/demo",
            "RoleSessionName": "session-one",
            "DurationSeconds": 3600,
            "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
                           {"arn": "arn:aws:iam::aws:policy/PowerUserAccess"}],
            "Tags": [{"Key": "team", "Value": "a+b=c d/e"}],
            "TransitiveTagKeys": []
        }},
        {"model": model_path("iam"), "operation": "CreateUser", "params": {
            "UserName": "alice", "Path": "/ops/",
            "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "é", "Value": "ü +="}]
        }},
        {"model": model_path("iam"), "operation": "ListUsers", "params": {"MaxItems": 10}},
        {"model": model_path("iam"), "operation": "UpdateAccountPasswordPolicy",
         "params": {"RequireSymbols": true, "MinimumPasswordLength": 12}},
    ]);

    let user = json!({"Path": "/", "UserName": "alice", "UserId": "AIDAEXAMPLE",
                      "Arn": "arn:aws:iam::123456789012:user/alice", "CreateDate": 1_796_112_000,
                      "Tags": [{"Key": "env", "Value": "<prod>"}]});
    let responses = json!([
        response_task(&IAM, "iam", "CreateUser", &json!({"User": user})),
        response_task(&IAM, "iam", "ListUsers",
                      &json!({"Users": [user, user], "IsTruncated": true, "Marker": "next"})),
        response_task(&STS, "sts", "GetCallerIdentity",
                      &json!({"UserId": "AIDAEXAMPLE", "Account": "123456789012",
                              "Arn": "arn:aws:iam::123456789012:user/alice"})),
        response_task(&STS, "sts", "AssumeRole", &json!({
            "Credentials": {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s",
                            "SessionToken": "t", "Expiration": "2026-12-01T08:00:00Z"},
            "AssumedRoleUser": {"AssumedRoleId": "AROA:s", "Arn": "arn:aws:sts::1:assumed-role/r/s"},
            "PackedPolicySize": 7
        })),
        response_task(&IAM, "iam", "DeleteUser", &json!({})),
        {"model": model_path("iam"), "operation": "GetUser", "status": 404,
         "body": String::from_utf8(encode_error(&IAM, ErrorKind::Sender, "NoSuchEntity",
                                                "The user with name bob cannot be found.", "req-2"))
                    .expect("utf-8")},
    ]);

    let Some(result) = run_botocore(&json!({"requests": requests, "responses": responses})) else {
        return;
    };

    let bodies: Vec<&str> = result["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .map(|body| body.as_str().expect("body"))
        .collect();
    let decode = |model: &'static ServiceModel, body: &str| {
        let (operation, document) =
            decode_request(model, body.as_bytes()).unwrap_or_else(|err| panic!("{body}: {err:?}"));
        (operation.name, document)
    };
    assert_eq!(
        decode(&STS, bodies[0]),
        (
            "AssumeRole",
            json!({
                "RoleArn": "arn:aws:iam::123456789012:role/demo",
                "RoleSessionName": "session-one",
                "DurationSeconds": 3600,
                "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"},
                               {"arn": "arn:aws:iam::aws:policy/PowerUserAccess"}],
                "Tags": [{"Key": "team", "Value": "a+b=c d/e"}],
                "TransitiveTagKeys": []
            })
        )
    );
    assert_eq!(
        decode(&IAM, bodies[1]),
        (
            "CreateUser",
            json!({"UserName": "alice", "Path": "/ops/",
                   "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "é", "Value": "ü +="}]})
        )
    );
    assert_eq!(
        decode(&IAM, bodies[2]),
        ("ListUsers", json!({"MaxItems": 10}))
    );
    assert_eq!(
        decode(&IAM, bodies[3]),
        (
            "UpdateAccountPasswordPolicy",
            json!({"RequireSymbols": true, "MinimumPasswordLength": 12})
        )
    );

    let parsed = result["responses"].as_array().expect("responses");
    let metadata =
        |status: u16, request_id: &str| json!({"RequestId": request_id, "HTTPStatusCode": status});
    let parsed_user = json!({"Path": "/", "UserName": "alice", "UserId": "AIDAEXAMPLE",
                             "Arn": "arn:aws:iam::123456789012:user/alice",
                             "CreateDate": "2026-12-01 08:00:00+00:00",
                             "Tags": [{"Key": "env", "Value": "<prod>"}]});
    assert_eq!(
        parsed[0],
        json!({"User": parsed_user, "ResponseMetadata": metadata(200, "req-1")})
    );
    assert_eq!(
        parsed[1],
        json!({"Users": [parsed_user, parsed_user], "IsTruncated": true, "Marker": "next",
               "ResponseMetadata": metadata(200, "req-1")})
    );
    assert_eq!(
        parsed[2],
        json!({"UserId": "AIDAEXAMPLE", "Account": "123456789012",
               "Arn": "arn:aws:iam::123456789012:user/alice",
               "ResponseMetadata": metadata(200, "req-1")})
    );
    assert_eq!(
        parsed[3],
        json!({
            "Credentials": {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "s",
                            "SessionToken": "t", "Expiration": "2026-12-01 08:00:00+00:00"},
            "AssumedRoleUser": {"AssumedRoleId": "AROA:s", "Arn": "arn:aws:sts::1:assumed-role/r/s"},
            "PackedPolicySize": 7,
            "ResponseMetadata": metadata(200, "req-1")
        })
    );
    assert_eq!(
        parsed[4],
        json!({"ResponseMetadata": metadata(200, "req-1")})
    );
    assert_eq!(
        parsed[5],
        json!({
            "Error": {"Type": "Sender", "Code": "NoSuchEntity",
                      "Message": "The user with name bob cannot be found."},
            "ResponseMetadata": metadata(404, "req-2")
        })
    );
}
