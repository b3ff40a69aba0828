"""KCL daemon benchmark (not part of the test suite): records per second processed end to end by
`millrace kcl` with a trivial amazon_kclpy processor on a 4-shard stream, and the failover time
after kill -9 of one of two workers.

    cd compat/python && ../../.venv/bin/python kcl_bench.py [--records 20000] [--failover-ms 2000] [--failover-under-backlog]

Uses $MILLRACE_BIN (default target/debug/millrace) and the amazon_kclpy sources that
scripts/setup-test-deps.sh unpacks into .venv/kclpy."""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from millrace_testlib import MillraceServer, create_stream
from test_dynamodb import ddb_client
from test_kcl_daemon import Daemon, owners, put_records, wait_for

TRIVIAL = r'''#!/usr/bin/env python3
import sys
from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor

class Counter(processor.RecordProcessorBase):
    def initialize(self, initialize_input):
        self.count = 0
    def process_records(self, process_records_input):
        self.count += len(process_records_input.records)
        records = process_records_input.records
        if records:
            process_records_input.checkpointer.checkpoint(records[-1].sequence_number, records[-1].sub_sequence_number)
        sys.stderr.write("BATCH %d\n" % len(records)); sys.stderr.flush()
    def lease_lost(self, lease_lost_input):
        pass
    def shard_ended(self, shard_ended_input):
        shard_ended_input.checkpointer.checkpoint()
    def shutdown_requested(self, shutdown_requested_input):
        shutdown_requested_input.checkpointer.checkpoint()

kcl.KCLProcess(Counter()).run()
'''


def processed(daemon: Daemon) -> int:
    return sum(int(n) for n in re.findall(r"BATCH (\d+)", daemon.text()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20000)
    parser.add_argument("--failover-ms", type=int, default=2000)
    parser.add_argument("--failover-under-backlog", action="store_true",
                        help="measure failover on the benchmark stream while the survivor works through its backlog")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        server = MillraceServer(tmp / "data", tmp / "logs", name="bench")
        server.start()
        try:
            kinesis = server.client()
            create_stream(kinesis, "bench", shards=4)
            script = tmp / "trivial.py"
            script.write_text(TRIVIAL)
            script.chmod(0o755)
            put_records(kinesis, "bench", args.records, "r")
            started = time.monotonic()
            daemon = Daemon(tmp, "bench-w1", server.endpoint, "bench", "bench-app", str(script), {"maxRecords": "10000"})
            wait_for(lambda: processed(daemon) >= args.records, 600, "every record", interval=0.05)
            elapsed = time.monotonic() - started
            print(f"throughput: {args.records} records in {elapsed:.2f} s = {args.records / elapsed:.0f} records/s "
                  "(4 shards, one worker, from daemon start to the last batch processed and checkpointed)")
            daemon.stop()

            import test_kcl_daemon

            test_kcl_daemon.FAILOVER_MS = args.failover_ms
            ddb = ddb_client(server.endpoint)
            stream = "bench" if args.failover_under_backlog else "idle"
            if stream == "idle":
                create_stream(kinesis, "idle", shards=4)
            a = Daemon(tmp, "fa", server.endpoint, stream, "failover-app", str(script), {"failoverTimeMillis": str(args.failover_ms)})
            b = Daemon(tmp, "fb", server.endpoint, stream, "failover-app", str(script), {"failoverTimeMillis": str(args.failover_ms)})
            wait_for(lambda: sorted(owners(ddb, "failover-app").values()) == ["fa", "fa", "fb", "fb"], 120, "an even split")
            a.kill9()
            killed = time.monotonic()
            wait_for(lambda: set(owners(ddb, "failover-app").values()) == {"fb"}, 120, "takeover", interval=0.05)
            print(f"failover: {time.monotonic() - killed:.2f} s from kill -9 to the survivor holding every lease "
                  f"(failoverTimeMillis={args.failover_ms}, stream {stream!r})")
            b.stop()
        finally:
            server.close()


if __name__ == "__main__":
    main()
