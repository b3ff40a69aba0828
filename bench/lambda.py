#!/usr/bin/env python3
"""Event source mapping benchmarks against a fresh `millrace serve` (boto3 and awslambdaric needed):

- put-to-invoke latency with BatchSize 1 and window 0: PutRecord carries its send time, the Python
  function writes (now - send time) for each record; p50 / p99 over COUNT records, one at a time;
- records per second through a trivial Python function with BatchSize 1,000 on 4 shards: RECORDS
  records are written first (untimed), then a TRIM_HORIZON mapping drains them; the time is from
  CreateEventSourceMapping to the last record seen by the function;
- invocations per second with BatchSize 1 on one shard (SINGLES records, drained the same way).

    MILLRACE_BIN=target/release/millrace python3 bench/lambda.py        # COUNT=200 RECORDS=20000

Prints one JSON line per row.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import boto3

REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/bench"

LATENCY_HANDLER = '''import base64, os, time

def handler(event, context):
    now = time.time()
    with open(os.environ["OUT"], "a") as out:
        for r in event["Records"]:
            sent = float(base64.b64decode(r["kinesis"]["data"]))
            out.write("%.3f\\n" % ((now - sent) * 1000))
'''

COUNT_HANDLER = '''import os

def handler(event, context):
    with open(os.environ["OUT"], "a") as out:
        out.write("%d\\n" % len(event["Records"]))
'''


def zip_of(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(name, text)
    return buf.getvalue()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    binary = os.environ.get("MILLRACE_BIN", str(Path(__file__).resolve().parents[1] / "target/release/millrace"))
    count = int(os.environ.get("COUNT", "200"))
    records = int(os.environ.get("RECORDS", "20000"))
    scratch = Path(tempfile.mkdtemp(prefix="millrace-lambda-bench."))
    stdout = open(scratch / "stdout", "w")
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(scratch / "data"),
         "--throughput-limits", "off", "--lambda-python", sys.executable],
        stdout=stdout, stderr=open(scratch / "stderr", "w"))
    try:
        endpoint = None
        for _ in range(300):
            text = (scratch / "stdout").read_text()
            if "listening on " in text:
                endpoint = text.split("listening on ", 1)[1].split()[0]
                break
            time.sleep(0.1)
        assert endpoint, "server did not start"
        kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="bench", aws_secret_access_key="bench")
        kinesis = boto3.client("kinesis", **kw)
        lam = boto3.client("lambda", **kw)

        # Latency: one shard, BatchSize 1, window 0, records one at a time.
        out = scratch / "latency.txt"
        kinesis.create_stream(StreamName="latency", ShardCount=1)
        lam.create_function(FunctionName="latency", Runtime="python3.12", Role=ROLE, Handler="h.handler",
                            Code={"ZipFile": zip_of("h.py", LATENCY_HANDLER)},
                            Environment={"Variables": {"OUT": str(out)}})
        lam.invoke(FunctionName="latency", Payload=b'{"Records": []}')  # warm the environment
        lam.create_event_source_mapping(FunctionName="latency", BatchSize=1, MaximumBatchingWindowInSeconds=0,
                                        StartingPosition="LATEST",
                                        EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/latency")
        for i in range(count):
            kinesis.put_record(StreamName="latency", PartitionKey="k", Data=("%.6f" % time.time()).encode())
            deadline = time.time() + 30
            while (len(out.read_text().splitlines()) if out.exists() else 0) < i + 1:
                if time.time() > deadline:
                    raise SystemExit(f"record {i} not delivered")
                time.sleep(0.001)
        latencies = [float(x) for x in out.read_text().split()]
        print(json.dumps({"row": "put-to-invoke latency, BatchSize 1, window 0", "records": len(latencies),
                          "p50_ms": round(percentile(latencies, 50), 2), "p99_ms": round(percentile(latencies, 99), 2),
                          "mean_ms": round(statistics.mean(latencies), 2)}))

        # Throughput: 4 shards, BatchSize 1,000.
        out = scratch / "count.txt"
        kinesis.create_stream(StreamName="drain", ShardCount=4)
        time.sleep(0.5)
        for start in range(0, records, 500):
            kinesis.put_records(StreamName="drain", Records=[
                {"PartitionKey": f"k{start + i}", "Data": b"x" * 100} for i in range(min(500, records - start))])
        lam.create_function(FunctionName="drain", Runtime="python3.12", Role=ROLE, Handler="h.handler",
                            Code={"ZipFile": zip_of("h.py", COUNT_HANDLER)},
                            Environment={"Variables": {"OUT": str(out)}})
        started = time.time()
        lam.create_event_source_mapping(FunctionName="drain", BatchSize=1000, StartingPosition="TRIM_HORIZON",
                                        EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/drain")
        while True:
            seen = sum(int(x) for x in out.read_text().split()) if out.exists() else 0
            if seen >= records:
                break
            if time.time() - started > 600:
                raise SystemExit(f"only {seen} of {records} records delivered")
            time.sleep(0.01)
        elapsed = time.time() - started
        print(json.dumps({"row": "records/s through a trivial Python function, BatchSize 1000, 4 shards",
                          "records": records, "seconds": round(elapsed, 2), "records_per_s": round(records / elapsed)}))

        # Invocations per second with BatchSize 1 on one shard: each batch is an invocation, a
        # durable log write and a durable checkpoint.
        singles = int(os.environ.get("SINGLES", "500"))
        out = scratch / "singles.txt"
        kinesis.create_stream(StreamName="singles", ShardCount=1)
        time.sleep(0.5)
        for start in range(0, singles, 500):
            kinesis.put_records(StreamName="singles", Records=[
                {"PartitionKey": "k", "Data": b"x"} for _ in range(min(500, singles - start))])
        lam.create_function(FunctionName="singles", Runtime="python3.12", Role=ROLE, Handler="h.handler",
                            Code={"ZipFile": zip_of("h.py", COUNT_HANDLER)},
                            Environment={"Variables": {"OUT": str(out)}})
        lam.invoke(FunctionName="singles", Payload=b'{"Records": []}')
        out.unlink()
        started = time.time()
        lam.create_event_source_mapping(FunctionName="singles", BatchSize=1, StartingPosition="TRIM_HORIZON",
                                        EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/singles")
        while (sum(int(x) for x in out.read_text().split()) if out.exists() else 0) < singles:
            if time.time() - started > 600:
                raise SystemExit("BatchSize 1 drain did not finish")
            time.sleep(0.01)
        elapsed = time.time() - started
        print(json.dumps({"row": "invocations/s with BatchSize 1, one shard", "records": singles,
                          "seconds": round(elapsed, 2), "invocations_per_s": round(singles / elapsed)}))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
