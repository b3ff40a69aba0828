"""Opt-in (slow) interoperability with the Java KCL 3.x: an unchanged KCL application
(compat/java-kcl/InteropApp.java on amazon-kinesis-client 3.1.0, AWS SDK for Java v2 pointed at Millrace
for Kinesis, DynamoDB and CloudWatch) consumes a stream; and a Java worker (in its mode compatible
with KCL 2.x workers) shares one application's lease table with a `millrace kcl` worker.

    bash compat/java-kcl/setup.sh && MILLRACE_JAVA_KCL=1 .venv/bin/pytest -q compat/python/test_java_kcl.py

Without MILLRACE_JAVA_KCL=1 the module is skipped: a KCL 3.x worker needs about a minute to start."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from millrace_testlib import create_stream
from test_dynamodb import ddb_client
from test_kcl_daemon import SAMPLE, daemons, leases, owners, put_records, wait_for  # noqa: F401 (daemons is a fixture)

JAVA_DIR = Path(__file__).resolve().parents[1] / "java-kcl"

pytestmark = pytest.mark.skipif(
    os.environ.get("MILLRACE_JAVA_KCL") != "1", reason="opt-in: MILLRACE_JAVA_KCL=1 after bash compat/java-kcl/setup.sh"
)


class JavaWorker:
    def __init__(self, tmp: Path, endpoint: str, stream: str, app: str, worker: str, compatible: bool):
        assert (JAVA_DIR / "classes" / "InteropApp.class").exists(), "run bash compat/java-kcl/setup.sh"
        self.log_path = tmp / f"{worker}.java.log"
        self.log = open(self.log_path, "wb")
        args = ["java", "-cp", f"{JAVA_DIR / 'classes'}:{JAVA_DIR / 'jars'}/*", "InteropApp", endpoint, stream, app, worker]
        if compatible:
            args.append("2x")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def records(self) -> set[int]:
        text = self.log_path.read_text(errors="replace")
        return {int(line.split()[-1]) for line in text.splitlines() if line.startswith("JAVA record ")}

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill9()
        self.log.close()


@pytest.fixture
def java(tmp_path):
    started: list[JavaWorker] = []

    def start(*args, **kwargs) -> JavaWorker:
        worker = JavaWorker(tmp_path, *args, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


def test_java_kcl_application_consumes_through_millrace(server, kinesis, java):
    create_stream(kinesis, "java", shards=2)
    acked = put_records(kinesis, "java", 50, "j")
    expected = {seq for seqs in acked.values() for seq in seqs}
    worker = java(server.endpoint, "java", "java-app", "java-1", compatible=False)
    wait_for(lambda: expected <= worker.records(), 240, "the Java KCL to process every record", interval=1)
    ddb = ddb_client(server.endpoint)
    wait_for(
        lambda: all(leases(ddb, "java-app")[s]["checkpoint"]["S"] == str(max(q)) for s, q in acked.items()),
        60,
        "Java checkpoints in the lease table",
        interval=1,
    )


def test_java_and_millrace_workers_share_a_lease_table(server, kinesis, java, daemons):
    create_stream(kinesis, "mixed", shards=4)
    acked = put_records(kinesis, "mixed", 100, "m")
    expected = {seq for seqs in acked.values() for seq in seqs}
    ddb = ddb_client(server.endpoint)
    rust = daemons("rust-1", server.endpoint, "mixed", "mixed-app", str(SAMPLE), {"retrievalMode": "POLLING"})
    jvm = java(server.endpoint, "mixed", "mixed-app", "java-1", compatible=True)
    wait_for(lambda: sorted(owners(ddb, "mixed-app").values()) == ["java-1", "java-1", "rust-1", "rust-1"], 240,
             "the leases split between the Java and the Millrace worker", interval=1)
    wait_for(lambda: expected <= jvm.records() | {s for _, s in rust.processed()}, 120, "every record", interval=1)
    jvm.kill9()
    wait_for(lambda: set(owners(ddb, "mixed-app").values()) == {"rust-1"}, 60, "the Millrace worker taking the Java leases")
    assert rust.stop() == 0


def test_java_worker_takes_over_from_a_killed_millrace_worker(server, kinesis, java, daemons):
    create_stream(kinesis, "mixed2", shards=4)
    put_records(kinesis, "mixed2", 40, "r")
    ddb = ddb_client(server.endpoint)
    rust = daemons("rust-2", server.endpoint, "mixed2", "mixed2-app", str(SAMPLE), {"retrievalMode": "POLLING"})
    java(server.endpoint, "mixed2", "mixed2-app", "java-2", compatible=True)
    wait_for(lambda: sorted(owners(ddb, "mixed2-app").values()) == ["java-2", "java-2", "rust-2", "rust-2"], 240,
             "the leases split between the Java and the Millrace worker", interval=1)
    rust.kill9()
    wait_for(lambda: set(owners(ddb, "mixed2-app").values()) == {"java-2"}, 90, "the Java worker taking the Millrace leases",
             interval=1)
