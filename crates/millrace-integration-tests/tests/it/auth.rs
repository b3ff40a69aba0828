//! SigV4 verification and policy enforcement through the Rust SDK, over HTTP/1.1 and over
//! HTTP/2 with TLS.

use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::primitives::Blob;
use millrace_integration_tests::Server;

use crate::fanout::tls_http;

const ROOT_KEY: &str = "AKIAMILLRACEROOT0001";
const ROOT_SECRET: &str = "root-secret-for-tests";

#[tokio::test]
async fn signatures_are_verified_over_http1_and_http2_tls() {
    let server = Server::start(&[
        "--auth",
        "enforce",
        "--root-access-key-id",
        ROOT_KEY,
        "--root-secret-access-key",
        ROOT_SECRET,
        "--tls",
        "self-signed",
    ])
    .expect("start server");
    let h2 = server.kinesis_with(ROOT_KEY, ROOT_SECRET, Some(tls_http(&server)));
    h2.create_stream()
        .stream_name("signed")
        .shard_count(1)
        .send()
        .await
        .expect("create over HTTP/2 with a correct signature");
    let h1 = server.kinesis_with(ROOT_KEY, ROOT_SECRET, None);
    for _ in 0..50 {
        let summary = h1
            .describe_stream_summary()
            .stream_name("signed")
            .send()
            .await
            .expect("describe over HTTP/1.1");
        if summary
            .stream_description_summary()
            .map(|s| s.stream_status().as_str() == "ACTIVE")
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    h2.put_record()
        .stream_name("signed")
        .partition_key("k")
        .data(Blob::new(b"over h2".to_vec()))
        .send()
        .await
        .expect("put over HTTP/2");

    let wrong = server.kinesis_with(ROOT_KEY, "not-the-secret", Some(tls_http(&server)));
    let error = wrong
        .list_streams()
        .send()
        .await
        .expect_err("a wrong secret is refused");
    assert_eq!(error.code(), Some("InvalidSignatureException"));
    assert_eq!(
        error.message(),
        Some(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
        )
    );
    let unknown = server.kinesis_with("AKIAUNKNOWNKEY000000", ROOT_SECRET, None);
    let error = unknown
        .list_streams()
        .send()
        .await
        .expect_err("an unknown key is refused");
    assert_eq!(error.code(), Some("UnrecognizedClientException"));
    assert_eq!(
        error.message(),
        Some("The security token included in the request is invalid.")
    );
    // Nothing the refused requests tried changed anything.
    let names = h1.list_streams().send().await.expect("list");
    assert_eq!(names.stream_names(), ["signed"]);
}
