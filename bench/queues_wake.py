"""Long-poll wake-up of Kinesis Queues: a ReceiveQueueRecords waiting (WaitTimeSeconds 20) on an
empty queue, then one PutRecord; prints how long after the put's reply, and after its start, the
receive returned, over N rounds.

    MILLRACE_BIN=target/release/millrace .venv/bin/python bench/queues_wake.py [ROUNDS]
"""

import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "compat" / "python"))
from millrace_testlib import MillraceServer, make_client  # noqa: E402


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    work = Path(tempfile.mkdtemp())
    server = MillraceServer(work / "data", work / "logs", [])
    server.start()
    try:
        kinesis = make_client(server.endpoint)
        kinesis.create_stream(StreamName="wake", StreamModeDetails={"StreamMode": "ON_DEMAND"})
        while kinesis.describe_stream_summary(StreamName="wake")["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
            time.sleep(0.05)
        stream_arn = kinesis.describe_stream_summary(StreamName="wake")["StreamDescriptionSummary"]["StreamARN"]
        queue = kinesis.create_queue(QueueName="wake", StreamConfigurationList=[{"StreamARN": stream_arn}])[
            "QueueDescription"]["QueueARN"]
        after_reply, after_start = [], []
        for _ in range(rounds):
            result = {}

            def poll():
                client = make_client(server.endpoint)
                records = client.receive_queue_records(QueueARN=queue, WaitTimeSeconds=20)["QueueRecords"]
                result["returned"], result["records"] = time.monotonic(), records

            thread = threading.Thread(target=poll)
            thread.start()
            time.sleep(0.5)
            started = time.monotonic()
            kinesis.put_record(StreamName="wake", PartitionKey="k", Data=b"x")
            replied = time.monotonic()
            thread.join()
            after_reply.append((result["returned"] - replied) * 1000)
            after_start.append((result["returned"] - started) * 1000)
            kinesis.acknowledge_queue_records(
                QueueARN=queue, Entries=[{"ReceiptHandle": r["ReceiptHandle"]} for r in result["records"]])
        for label, values in (("after the put's reply", after_reply), ("after the put started", after_start)):
            values.sort()
            print(f"receive returned {label}: p50 {values[len(values) // 2]:.1f} ms, "
                  f"max {values[-1]:.1f} ms ({rounds} rounds)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
