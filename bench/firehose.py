#!/usr/bin/env python3
"""Firehose benchmark (outside CI): PutRecordBatch throughput into a DirectPut delivery stream with an
S3 destination in the embedded store, the end-to-end delivery throughput into that store, and the
put-to-object latency with a 0-second buffering interval.

    MILLRACE_BIN=target/release/millrace .venv/bin/python bench/firehose.py [--seconds 20] [--threads 4] [--encrypted]

With --encrypted the server gets a master key and the throughput stream's records are sealed at rest
(StartDeliveryStreamEncryption with AWS_OWNED_CMK), so the figures include the KMS envelope.

The server is started here on a temporary data directory (fsync always, throughput limits off). The
load generator sends pre-built 500 x 1 KiB PutRecordBatch bodies over keep-alive connections, signing
each request with botocore's SigV4 signer, so the client does little more than hash and send.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials

REGION = "us-east-1"
ROLE = "arn:aws:iam::000000000000:role/firehose"


def start_server(binary: str, data_dir: str, encrypted: bool = False) -> tuple[subprocess.Popen, str]:
    out = open(os.path.join(data_dir, "stdout"), "w+")
    extra = []
    if encrypted:
        key_file = os.path.join(data_dir, "master.key")
        with open(key_file, "w") as f:
            f.write(base64.b64encode(os.urandom(32)).decode() + "\n")
        extra = ["--master-key-file", key_file]
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(data_dir, "data"),
         "--throughput-limits", "off", *extra],
        stdout=out, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out.seek(0)
        line = out.readline()
        m = re.match(r"listening on (http://\S+)", line)
        if m:
            return proc, m.group(1)
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def clients(endpoint: str):
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench")
    return boto3.client("firehose", **kw), boto3.client("s3", **kw)


def create(fh, name: str, bucket: str, size: int, interval: int) -> None:
    fh.create_delivery_stream(
        DeliveryStreamName=name,
        ExtendedS3DestinationConfiguration={
            "RoleARN": ROLE, "BucketARN": f"arn:aws:s3:::{bucket}",
            "BufferingHints": {"SizeInMBs": size, "IntervalInSeconds": interval},
        },
    )
    while fh.describe_delivery_stream(DeliveryStreamName=name)["DeliveryStreamDescription"]["DeliveryStreamStatus"] != "ACTIVE":
        time.sleep(0.02)


def stored_bytes(s3, bucket: str) -> int:
    total = 0
    token = None
    while True:
        kwargs = {"Bucket": bucket, **({"ContinuationToken": token} if token else {})}
        try:
            page = s3.list_objects_v2(**kwargs)
        except s3.exceptions.NoSuchBucket:
            return 0
        total += sum(o["Size"] for o in page.get("Contents", []))
        token = page.get("NextContinuationToken")
        if not token:
            return total


def throughput(endpoint: str, seconds: float, threads: int, encrypted: bool = False) -> dict:
    fh, s3 = clients(endpoint)
    # A 0-second interval: objects are written as fast as the engine can, so the end-to-end figure is
    # the delivery rate rather than a wait for the interval.
    create(fh, "bench", "bench-bucket", size=5, interval=0)
    if encrypted:
        fh.start_delivery_stream_encryption(
            DeliveryStreamName="bench", DeliveryStreamEncryptionConfigurationInput={"KeyType": "AWS_OWNED_CMK"}
        )
    record = os.urandom(1024)
    data = base64.b64encode(record).decode()
    body = json.dumps({"DeliveryStreamName": "bench", "Records": [{"Data": data}] * 500}).encode()
    host = endpoint.split("//", 1)[1]
    credentials = botocore.credentials.Credentials("bench", "bench")
    signer = botocore.auth.SigV4Auth(credentials, "firehose", REGION)
    counts = [0] * threads
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    def run(index: int) -> None:
        conn = http.client.HTTPConnection(host, timeout=60)
        local = []
        while time.monotonic() < deadline:
            request = botocore.awsrequest.AWSRequest(
                method="POST", url=f"{endpoint}/", data=body,
                headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": "Firehose_20150804.PutRecordBatch"},
            )
            signer.add_auth(request)
            started = time.monotonic()
            conn.request("POST", "/", body=body, headers=dict(request.headers.items()))
            reply = conn.getresponse()
            payload = reply.read()
            local.append(time.monotonic() - started)
            if reply.status != 200 or json.loads(payload)["FailedPutCount"]:
                raise SystemExit(f"PutRecordBatch failed: {reply.status} {payload[:200]!r}")
            counts[index] += 500
        latencies.extend(local)

    started = time.monotonic()
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    put_seconds = time.monotonic() - started
    records = sum(counts)
    sent_bytes = records * len(record)
    # End to end: from the first put until every byte is in objects of the embedded store.
    while stored_bytes(s3, "bench-bucket") < sent_bytes:
        time.sleep(0.1)
    delivered_seconds = time.monotonic() - started
    latencies.sort()
    return {
        "records": records,
        "put_seconds": round(put_seconds, 2),
        "records_per_s": round(records / put_seconds),
        "put_mb_per_s": round(sent_bytes / put_seconds / 1e6, 2),
        "batch_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "batch_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
        "delivered_seconds": round(delivered_seconds, 2),
        "delivered_mb_per_s": round(sent_bytes / delivered_seconds / 1e6, 2),
    }


def latency(endpoint: str, samples: int) -> dict:
    fh, s3 = clients(endpoint)
    create(fh, "latency", "latency-bucket", size=1, interval=0)
    seen = 0
    results = []
    for i in range(samples):
        started = time.monotonic()
        fh.put_record(DeliveryStreamName="latency", Record={"Data": f"sample {i}\n".encode()})
        while True:
            try:
                objects = s3.list_objects_v2(Bucket="latency-bucket").get("Contents", [])
            except s3.exceptions.NoSuchBucket:
                objects = []
            if len(objects) > seen:
                break
            time.sleep(0.002)
        results.append(time.monotonic() - started)
        seen = len(objects)
    results.sort()
    return {
        "samples": samples,
        "p50_ms": round(results[len(results) // 2] * 1000, 1),
        "p90_ms": round(results[int(len(results) * 0.9)] * 1000, 1),
        "max_ms": round(results[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    # 10 s write about 1 GB to the temporary directory (the log and the objects), removed afterwards.
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--encrypted", action="store_true", help="seal the throughput stream's records at rest")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parents[1]
    binary = os.environ.get("MILLRACE_BIN", str(repo / "target" / "release" / "millrace"))
    with tempfile.TemporaryDirectory() as work:
        proc, endpoint = start_server(binary, work, args.encrypted)
        try:
            result = {
                "binary": binary,
                "encrypted": args.encrypted,
                "throughput": throughput(endpoint, args.seconds, args.threads, args.encrypted),
                "latency": latency(endpoint, args.samples),
            }
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
