#!/usr/bin/env python3
"""Kinesis Channels benchmark (outside CI): end-to-end delivery throughput from an on-demand stream
into the embedded S3 store through a channel, and the put-to-object latency with a 0-second
DataFreshnessInSeconds.

    MILLRACE_BIN=target/release/millrace .venv/bin/python bench/channels.py [--records 20000] [--samples 20]

The server is started here on a temporary data directory (throughput limits off). Records of 1 KiB
are put with PutRecords (500 per call, boto3) under random partition keys; the clock stops when the
objects in the bucket hold every byte put. Latency: one record put, then the bucket listed every
10 ms until an object holding it appears.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time

import boto3
import botocore.config

REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/channel"


def start_server(binary: str, data_dir: str) -> tuple[subprocess.Popen, str]:
    out = open(os.path.join(data_dir, "stdout"), "w+")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(data_dir, "data"),
         "--throughput-limits", "off", "--create-stream-ms", "50", "--update-stream-ms", "50"],
        stdout=out, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out.seek(0)
        m = re.match(r"listening on (http://\S+)", out.readline())
        if m:
            return proc, m.group(1)
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bench",
                        aws_secret_access_key="bench",
                        config=botocore.config.Config(retries={"max_attempts": 10, "mode": "standard"}))


def channel(kinesis, stream: str, bucket: str) -> None:
    kinesis.create_stream(StreamName=stream, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    while kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        time.sleep(0.05)
    arn = kinesis.create_channel(
        ChannelName=f"{stream}-channel", ServiceExecutionRoleARN=ROLE,
        StreamConfigurationList=[{"StreamARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{stream}",
                                  "RecordConfiguration": {"RecordFormatType": "BYTE_ARRAY"}}],
        S3DestinationConfiguration={"DataFreshnessInSeconds": 0, "StorageConfiguration": {
            "BucketARN": f"arn:aws:s3:::{bucket}", "ExpectedBucketOwner": ACCOUNT, "CompressionType": "NONE"}},
    )["ChannelDescription"]["ChannelARN"]
    while kinesis.describe_channel(ChannelARN=arn)["ChannelDescription"]["ChannelStatus"] != "ACTIVE":
        time.sleep(0.25)


def stored(s3, bucket: str) -> tuple[int, int]:
    """(objects, bytes) in the bucket."""
    count = size = 0
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for o in page.get("Contents", []):
                count += 1
                size += o["Size"]
    except s3.exceptions.NoSuchBucket:
        pass
    return count, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    binary = os.environ.get("MILLRACE_BIN", "target/release/millrace")
    with tempfile.TemporaryDirectory() as tmp:
        proc, endpoint = start_server(binary, tmp)
        try:
            kinesis, s3 = client("kinesis", endpoint), client("s3", endpoint)
            channel(kinesis, "throughput", "throughput-bucket")
            payload = os.urandom(512).hex().encode()  # 1 KiB
            total = args.records * len(payload)
            started = time.monotonic()
            for start in range(0, args.records, 500):
                n = min(500, args.records - start)
                result = kinesis.put_records(StreamName="throughput", Records=[
                    {"PartitionKey": f"k{start + i}", "Data": payload} for i in range(n)])
                assert result["FailedRecordCount"] == 0
            put_done = time.monotonic()
            while stored(s3, "throughput-bucket")[1] < total:
                time.sleep(0.05)
            delivered = time.monotonic()
            objects, _ = stored(s3, "throughput-bucket")
            print(f"put {args.records} x 1 KiB in {put_done - started:.2f} s "
                  f"({args.records / (put_done - started):,.0f} records/s through PutRecords)")
            print(f"delivered into {objects} objects after {delivered - started:.2f} s "
                  f"({args.records / (delivered - started):,.0f} records/s, "
                  f"{total / (delivered - started) / 2**20:.1f} MiB/s end to end)")

            channel(kinesis, "latency", "latency-bucket")
            latencies = []
            for i in range(args.samples):
                before = stored(s3, "latency-bucket")[0]
                sent = time.monotonic()
                kinesis.put_record(StreamName="latency", PartitionKey=f"k{i}", Data=b"x" * 100)
                while stored(s3, "latency-bucket")[0] <= before:
                    time.sleep(0.01)
                latencies.append((time.monotonic() - sent) * 1000)
            latencies.sort()
            p90 = latencies[max(0, int(len(latencies) * 0.9) - 1)]
            print(f"put-to-object latency over {len(latencies)} records (freshness 0): "
                  f"p50 {statistics.median(latencies):.0f} ms, p90 {p90:.0f} ms, max {latencies[-1]:.0f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
