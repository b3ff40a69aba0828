"""CloudWatch on the Kinesis endpoint: the AWS/Kinesis metrics after a known load, over the three
protocols CloudWatch speaks (awsJson 1.0, which boto3 1.44.5 and the AWS CLI pick; Smithy RPC v2
CBOR, the model's first protocol; awsQuery), custom metrics, metric math, alarms, durability across
restarts, and the Prometheus endpoint read by prometheus_client's parser."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import botocore.session
import pytest
from prometheus_client.parser import text_string_to_metric_families

from millrace_testlib import AWS_ENV, REGION, create_stream

MODEL = Path(__file__).resolve().parents[3] / "shared" / "aws-models" / "cloudwatch" / "service-2.json"
SHARD0 = "shardId-000000000000"


def cloudwatch(endpoint: str, protocol: str | None = None, tmp_path: Path | None = None):
    """A boto3 CloudWatch client; with `protocol`, botocore is given a copy of the model that lists
    only that protocol (botocore 1.44.5 supports all three and otherwise picks `json`)."""
    core = botocore.session.Session()
    if protocol is not None:
        assert tmp_path is not None
        model = json.loads(MODEL.read_text())
        model["metadata"]["protocols"] = [protocol]
        model["metadata"]["protocol"] = protocol
        target = tmp_path / protocol / "cloudwatch" / "2010-08-01"
        target.mkdir(parents=True, exist_ok=True)
        (target / "service-2.json").write_text(json.dumps(model))
        core.set_config_variable("data_path", str(tmp_path / protocol))
    session = boto3.session.Session(
        botocore_session=core,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    client = session.client("cloudwatch", endpoint_url=endpoint,
                            config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}))
    assert client.meta.service_model.resolved_protocol == (protocol or "json")
    return client


def kinesis_client(endpoint: str, retries: bool = False):
    session = boto3.session.Session(aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"], region_name=REGION)
    attempts = 5 if retries else 1
    return session.client("kinesis", endpoint_url=endpoint,
                          config=botocore.config.Config(retries={"total_max_attempts": attempts, "mode": "standard"}))


def window():
    now = dt.datetime.now(dt.timezone.utc)
    return now - dt.timedelta(minutes=10), now + dt.timedelta(minutes=2)


def stream_sum(cw, metric: str, stream: str, statistic: str = "Sum") -> float:
    start, end = window()
    out = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName=metric,
                                   Dimensions=[{"Name": "StreamName", "Value": stream}],
                                   StartTime=start, EndTime=end, Period=60, Statistics=[statistic])
    values = [p[statistic] for p in out["Datapoints"]]
    if statistic == "Sum":
        return sum(values)
    return max(values) if statistic == "Maximum" else min(values) if values else 0.0


@pytest.fixture
def loaded(server_factory):
    """A stream after a known load: 150 small records accepted, then big entries of which some are
    throttled by the 1 MiB/s shard limit."""
    server = server_factory(args=["--alarm-evaluation-ms", "300", "--throughput-limits", "on"])
    kinesis = kinesis_client(server.endpoint)
    create_stream(kinesis_client(server.endpoint, retries=True), "watched")
    kinesis_client(server.endpoint, retries=True).enable_enhanced_monitoring(
        StreamName="watched", ShardLevelMetrics=["IncomingRecords", "WriteProvisionedThroughputExceeded"])
    accepted = 0
    for batch in range(3):
        out = kinesis.put_records(StreamName="watched", Records=[
            {"PartitionKey": f"k{i}", "Data": b"x" * 100} for i in range(50)])
        accepted += 50 - out["FailedRecordCount"]
    throttled = 0
    calls = 0
    while throttled == 0:
        calls += 1
        assert calls <= 20, "20 MiB were accepted at once: the write limit is not enforced"
        out = kinesis.put_records(StreamName="watched", Records=[
            {"PartitionKey": "big", "Data": os.urandom(100 * 1024)} for _ in range(10)])
        throttled += sum(1 for r in out["Records"] if r.get("ErrorCode") == "ProvisionedThroughputExceededException")
        accepted += sum(1 for r in out["Records"] if "SequenceNumber" in r)
    return server, kinesis, accepted, throttled, 150 + 10 * calls


@pytest.mark.parametrize("protocol", [None, "smithy-rpc-v2-cbor", "query"])
def test_kinesis_metrics_after_a_known_load(loaded, protocol, tmp_path):
    server, _, accepted, throttled, total = loaded
    cw = cloudwatch(server.endpoint, protocol, tmp_path)
    assert stream_sum(cw, "IncomingRecords", "watched") == accepted
    assert stream_sum(cw, "WriteProvisionedThroughputExceeded", "watched") == throttled
    assert stream_sum(cw, "PutRecords.ThrottledRecords", "watched") == throttled
    assert stream_sum(cw, "PutRecords.TotalRecords", "watched") == total
    start, end = window()
    for metric, expected in (("IncomingRecords", accepted), ("WriteProvisionedThroughputExceeded", throttled)):
        out = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName=metric, StartTime=start, EndTime=end,
                                       Period=60, Statistics=["Sum"],
                                       Dimensions=[{"Name": "StreamName", "Value": "watched"},
                                                   {"Name": "ShardId", "Value": SHARD0}])
        assert sum(p["Sum"] for p in out["Datapoints"]) == expected, metric
    names = {m["MetricName"] for m in cw.list_metrics(Namespace="AWS/Kinesis")["Metrics"]}
    assert {"IncomingBytes", "IncomingRecords", "PutRecords.Latency", "PutRecords.Success"} <= names
    start, end = window()
    out = cw.get_metric_data(StartTime=start, EndTime=end, MetricDataQueries=[
        {"Id": "total", "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "PutRecords.TotalRecords",
                                                  "Dimensions": [{"Name": "StreamName", "Value": "watched"}]},
                                       "Period": 60, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "ok", "MetricStat": {"Metric": {"Namespace": "AWS/Kinesis", "MetricName": "PutRecords.SuccessfulRecords",
                                               "Dimensions": [{"Name": "StreamName", "Value": "watched"}]},
                                    "Period": 60, "Stat": "Sum"}, "ReturnData": False},
        {"Id": "failed", "Expression": "total - ok", "Label": "failed entries"},
    ])
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert set(results) == {"failed"}
    assert sum(results["failed"]["Values"]) == throttled
    assert results["failed"]["Label"] == "failed entries"


def test_custom_metrics_statistics_and_math(server_factory, tmp_path):
    server = server_factory()
    cw = cloudwatch(server.endpoint)
    cw.put_metric_data(Namespace="Shop/Orders", MetricData=[
        {"MetricName": "Latency", "Dimensions": [{"Name": "Service", "Value": "api"}], "Unit": "Milliseconds",
         "Values": [10, 20, 30, 1000], "Counts": [10, 10, 10, 1]},
        {"MetricName": "Count", "Value": 4, "Unit": "Count"},
        {"MetricName": "Count", "StatisticValues": {"SampleCount": 2, "Sum": 6, "Minimum": 1, "Maximum": 5}, "Unit": "Count"},
    ])
    start, end = window()
    out = cw.get_metric_statistics(Namespace="Shop/Orders", MetricName="Latency",
                                   Dimensions=[{"Name": "Service", "Value": "api"}], StartTime=start, EndTime=end,
                                   Period=300, ExtendedStatistics=["p50", "p99"])
    [point] = out["Datapoints"]
    assert point["Unit"] == "Milliseconds"
    assert abs(point["ExtendedStatistics"]["p50"] - 20) <= 2
    assert 30 <= point["ExtendedStatistics"]["p99"] <= 1000
    out = cw.get_metric_statistics(Namespace="Shop/Orders", MetricName="Count", StartTime=start, EndTime=end,
                                   Period=60, Statistics=["Sum", "SampleCount", "Minimum", "Maximum", "Average"])
    [point] = out["Datapoints"]
    assert (point["Sum"], point["SampleCount"], point["Minimum"], point["Maximum"]) == (10, 3, 1, 5)
    out = cw.get_metric_data(StartTime=start, EndTime=end, ScanBy="TimestampAscending", MetricDataQueries=[
        {"Id": "c", "MetricStat": {"Metric": {"Namespace": "Shop/Orders", "MetricName": "Count"}, "Period": 60,
                                   "Stat": "Sum"}, "ReturnData": False},
        {"Id": "filled", "Expression": "FILL(c, 0)", "Period": 60},
        {"Id": "big", "Expression": "IF(c > 5, 1, 0)"},
    ])
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert sum(results["filled"]["Values"]) == 10
    assert len(results["filled"]["Values"]) >= 10  # every minute of the window, zeros filled in
    assert results["big"]["Values"] == [1.0]
    listed = cw.list_metrics(Namespace="Shop/Orders", Dimensions=[{"Name": "Service"}])["Metrics"]
    assert listed == [{"Namespace": "Shop/Orders", "MetricName": "Latency",
                       "Dimensions": [{"Name": "Service", "Value": "api"}]}]


def test_bad_input_gets_cloudwatch_errors(server_factory):
    server = server_factory()
    cw = cloudwatch(server.endpoint)
    with pytest.raises(cw.exceptions.InvalidParameterValueException) as raised:
        cw.put_metric_data(Namespace="AWS/Kinesis", MetricData=[{"MetricName": "IncomingRecords", "Value": 1}])
    assert raised.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    now = dt.datetime.now(dt.timezone.utc)
    with pytest.raises(cw.exceptions.InvalidParameterValueException) as raised:
        cw.get_metric_statistics(Namespace="N", MetricName="M", StartTime=now, EndTime=now - dt.timedelta(minutes=1),
                                 Period=60, Statistics=["Sum"])
    assert raised.value.response["Error"]["Message"] == \
        "The parameter StartTime must be less than the parameter EndTime."
    with pytest.raises(cw.exceptions.InvalidParameterCombinationException):
        cw.put_metric_data(Namespace="N", MetricData=[
            {"MetricName": "M", "Value": 1, "StatisticValues": {"SampleCount": 1, "Sum": 1, "Minimum": 1, "Maximum": 1}}])
    with pytest.raises(cw.exceptions.ResourceNotFound):
        cw.set_alarm_state(AlarmName="nope", StateValue="ALARM", StateReason="test")
    # Nothing was stored by the refused calls.
    assert cw.list_metrics()["Metrics"] == []
    assert cw.describe_alarms()["MetricAlarms"] == []


def test_iterator_age_alarm_follows_a_stalled_consumer(server_factory):
    """A consumer that falls behind raises GetRecords.IteratorAgeMilliseconds and the alarm on it goes to
    ALARM; once it catches up the age drops and the alarm returns to OK. The alarm uses Minimum so that
    the running minute, which holds both phases, turns back as soon as the consumer is at the tip."""
    server = server_factory(args=["--alarm-evaluation-ms", "300", "--throughput-limits", "off"])
    kinesis = kinesis_client(server.endpoint)
    cw = cloudwatch(server.endpoint)
    create_stream(kinesis, "lagging")
    cw.put_metric_alarm(AlarmName="consumer-lag", Namespace="AWS/Kinesis",
                        MetricName="GetRecords.IteratorAgeMilliseconds",
                        Dimensions=[{"Name": "StreamName", "Value": "lagging"}], Statistic="Minimum", Period=60,
                        EvaluationPeriods=1, Threshold=1500, ComparisonOperator="GreaterThanThreshold",
                        TreatMissingData="notBreaching",
                        AlarmActions=["arn:aws:sns:us-east-1:000000000000:oncall"])
    # Both phases must fall in one running minute (the alarm evaluates it): start early in a minute.
    if time.time() % 60 > 20:
        time.sleep(60.5 - time.time() % 60)
    kinesis.put_records(StreamName="lagging", Records=[{"PartitionKey": str(i), "Data": b"r"} for i in range(20)])
    time.sleep(2.0)
    iterator = kinesis.get_shard_iterator(StreamName="lagging", ShardId=SHARD0,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    # The stalled consumer: one old record per call.
    for _ in range(3):
        out = kinesis.get_records(ShardIterator=iterator, Limit=1)
        iterator = out["NextShardIterator"]
    assert stream_sum(cw, "GetRecords.IteratorAgeMilliseconds", "lagging", "Maximum") >= 1500
    state = wait_alarm(cw, "consumer-lag", "ALARM")
    assert state["StateReason"].startswith("Threshold Crossed: 1 datapoint [")
    # It catches up and keeps polling at the tip.
    deadline = time.monotonic() + 20
    while True:
        out = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        iterator = out["NextShardIterator"]
        if not out["Records"]:
            break
    assert stream_sum(cw, "GetRecords.IteratorAgeMilliseconds", "lagging", "Minimum") < 1500
    wait_alarm(cw, "consumer-lag", "OK", deadline)
    history = cw.describe_alarm_history(AlarmName="consumer-lag")["AlarmHistoryItems"]
    summaries = [h["HistorySummary"] for h in history]
    assert "Alarm updated from ALARM to OK" in summaries
    assert any(s.startswith("Alarm updated from") and s.endswith("to ALARM") for s in summaries)
    actions = [h for h in history if h["HistoryItemType"] == "Action"]
    assert actions and "arn:aws:sns:us-east-1:000000000000:oncall" in actions[-1]["HistorySummary"]


def wait_alarm(cw, name: str, state: str, deadline: float | None = None) -> dict:
    deadline = deadline or time.monotonic() + 15
    while True:
        alarm = cw.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
        if alarm["StateValue"] == state:
            return alarm
        assert time.monotonic() < deadline, f"alarm still {alarm['StateValue']}: {alarm['StateReason']}"
        time.sleep(0.2)


def test_alarm_operations(server_factory):
    server = server_factory()
    cw = cloudwatch(server.endpoint)
    for name in ("a-one", "a-two"):
        cw.put_metric_alarm(AlarmName=name, Namespace="App", MetricName="Errors", Statistic="Sum", Period=60,
                            EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=1,
                            ComparisonOperator="GreaterThanOrEqualToThreshold")
    alarms = cw.describe_alarms(AlarmNamePrefix="a-")["MetricAlarms"]
    assert [a["AlarmName"] for a in alarms] == ["a-one", "a-two"]
    assert alarms[0]["StateValue"] == "INSUFFICIENT_DATA"
    assert alarms[0]["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:000000000000:alarm:a-one"
    assert alarms[0]["DatapointsToAlarm"] == 2
    cw.set_alarm_state(AlarmName="a-one", StateValue="ALARM", StateReason="testing")
    assert [a["AlarmName"] for a in cw.describe_alarms(StateValue="ALARM")["MetricAlarms"]] == ["a-one"]
    cw.disable_alarm_actions(AlarmNames=["a-two"])
    assert cw.describe_alarms(AlarmNames=["a-two"])["MetricAlarms"][0]["ActionsEnabled"] is False
    for_metric = cw.describe_alarms_for_metric(Namespace="App", MetricName="Errors")["MetricAlarms"]
    assert len(for_metric) == 2
    cw.delete_alarms(AlarmNames=["a-one", "a-two"])
    assert cw.describe_alarms()["MetricAlarms"] == []
    # Alarm changes are audited, metric data calls (CloudTrail data events) are not.
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "Errors", "Value": 1}])
    audit = Path(server.data_dir) / "audit" / "audit.log"
    deadline = time.monotonic() + 10
    while True:
        events = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []
        names = [e["eventName"] for e in events if e["eventSource"] == "monitoring.amazonaws.com"]
        if "DeleteAlarms" in names or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert names.count("PutMetricAlarm") == 2 and "DeleteAlarms" in names
    assert "PutMetricData" not in names and "DescribeAlarms" in names


def test_metric_math_alarm(server_factory):
    server = server_factory(args=["--alarm-evaluation-ms", "300"])
    cw = cloudwatch(server.endpoint)
    cw.put_metric_alarm(AlarmName="error-rate", EvaluationPeriods=1, Threshold=10,
                        ComparisonOperator="GreaterThanThreshold", Metrics=[
                            {"Id": "errors", "ReturnData": False, "MetricStat": {
                                "Metric": {"Namespace": "App", "MetricName": "Errors"}, "Period": 60, "Stat": "Sum"}},
                            {"Id": "requests", "ReturnData": False, "MetricStat": {
                                "Metric": {"Namespace": "App", "MetricName": "Requests"}, "Period": 60, "Stat": "Sum"}},
                            {"Id": "rate", "Expression": "100 * errors / requests", "Label": "error %"}])
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "Errors", "Value": 3},
                                                    {"MetricName": "Requests", "Value": 20}])
    assert wait_alarm(cw, "error-rate", "ALARM")["StateReason"].startswith("Threshold Crossed")
    with pytest.raises(cw.exceptions.InvalidParameterValueException):
        cw.put_metric_alarm(AlarmName="bad", EvaluationPeriods=1, Threshold=1, ComparisonOperator="LessThanThreshold",
                            Metrics=[{"Id": "a", "Expression": "1"}, {"Id": "b", "Expression": "2"}])


def test_metrics_and_alarms_survive_restarts(server_factory):
    server = server_factory()
    kinesis = kinesis_client(server.endpoint)
    create_stream(kinesis, "durable")
    kinesis.put_records(StreamName="durable", Records=[{"PartitionKey": str(i), "Data": b"d"} for i in range(7)])
    cw = cloudwatch(server.endpoint)
    cw.put_metric_data(Namespace="App", MetricData=[{"MetricName": "Jobs", "Value": 3}])
    cw.put_metric_alarm(AlarmName="kept", Namespace="App", MetricName="Jobs", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=100, ComparisonOperator="GreaterThanThreshold")
    server.restart()  # SIGTERM: the running minute of Kinesis counters is flushed
    cw = cloudwatch(server.endpoint)
    assert stream_sum(cw, "IncomingRecords", "durable") == 7
    server.restart(kill=True)  # kill -9: PutMetricData and alarms were durable when acknowledged
    cw = cloudwatch(server.endpoint)
    start, end = window()
    out = cw.get_metric_statistics(Namespace="App", MetricName="Jobs", StartTime=start, EndTime=end, Period=60,
                                   Statistics=["Sum"])
    assert [p["Sum"] for p in out["Datapoints"]] == [3.0]
    assert [a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]] == ["kept"]
    assert stream_sum(cw, "IncomingRecords", "durable") == 7


def scrape(endpoint: str) -> dict:
    with urllib.request.urlopen(endpoint + "/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_prometheus_endpoint(server_factory):
    server = server_factory()
    kinesis = kinesis_client(server.endpoint)
    create_stream(kinesis, "scraped", shards=2)
    kinesis.put_records(StreamName="scraped", Records=[{"PartitionKey": str(i), "Data": b"p"} for i in range(9)])
    samples = scrape(server.endpoint)
    labels = (("account", "000000000000"), ("region", REGION), ("stream", "scraped"))
    assert samples[("kinesis_incoming_records_total", labels)] == 9
    assert ("kinesis_put_records_latency_milliseconds_count", labels) in samples
    assert ("process_resident_memory_bytes", ()) in samples
    assert not any(dict(k[1]).get("shard") for k in samples), "shard labels without enhanced monitoring"
    kinesis.enable_enhanced_monitoring(StreamName="scraped", ShardLevelMetrics=["IncomingRecords"])
    kinesis.put_records(StreamName="scraped", Records=[{"PartitionKey": str(i), "Data": b"p"} for i in range(9)])
    samples = scrape(server.endpoint)
    per_shard = {dict(k[1])["shard"]: v for k, v in samples.items()
                 if k[0] == "kinesis_incoming_records_total" and "shard" in dict(k[1])}
    assert sum(per_shard.values()) == 9 and set(per_shard) <= {SHARD0, "shardId-000000000001"}
    cw = cloudwatch(server.endpoint)
    start, end = window()
    out = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName="IncomingRecords", StartTime=start,
                                   EndTime=end, Period=60, Statistics=["Sum"],
                                   Dimensions=[{"Name": "StreamName", "Value": "scraped"},
                                               {"Name": "ShardId", "Value": SHARD0}])
    assert sum(p["Sum"] for p in out["Datapoints"]) == per_shard.get(SHARD0, 0)


def aws_cli() -> str:
    candidate = Path(sys.executable).parent / "aws"
    return str(candidate if candidate.exists() else Path(__file__).resolve().parents[2] / ".venv" / "bin" / "aws")


def test_aws_cli_cloudwatch(loaded):
    server, _, accepted, throttled, _ = loaded
    start, end = window()

    def cli(*args):
        done = subprocess.run([aws_cli(), "--endpoint-url", server.endpoint, "--output", "json", "--region", REGION,
                               "cloudwatch", *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else None

    out = cli("get-metric-statistics", "--namespace", "AWS/Kinesis", "--metric-name", "IncomingRecords",
              "--dimensions", "Name=StreamName,Value=watched", "--start-time", start.isoformat(),
              "--end-time", end.isoformat(), "--period", "60", "--statistics", "Sum")
    assert sum(p["Sum"] for p in out["Datapoints"]) == accepted
    queries = json.dumps([{"Id": "w", "MetricStat": {"Metric": {
        "Namespace": "AWS/Kinesis", "MetricName": "WriteProvisionedThroughputExceeded",
        "Dimensions": [{"Name": "StreamName", "Value": "watched"}]}, "Period": 60, "Stat": "Sum"}}])
    out = cli("get-metric-data", "--metric-data-queries", queries, "--start-time", start.isoformat(),
              "--end-time", end.isoformat())
    assert sum(out["MetricDataResults"][0]["Values"]) == throttled
    out = cli("list-metrics", "--namespace", "AWS/Kinesis", "--metric-name", "IncomingBytes")
    assert out["Metrics"] == [{"Namespace": "AWS/Kinesis", "MetricName": "IncomingBytes",
                               "Dimensions": [{"Name": "StreamName", "Value": "watched"}]}]


def test_cloudwatch_is_authorized_in_enforce_mode(server_factory):
    """In `enforce`, a caller without policies is denied every CloudWatch operation (and nothing changes);
    a policy on cloudwatch:PutMetricData / an alarm's ARN allows exactly that."""
    root_key, root_secret = "AKIAMILLRACEROOT0009", "root-secret-for-the-cloudwatch-tests"
    server = server_factory(args=["--auth", "enforce", "--root-access-key-id", root_key,
                                  "--root-secret-access-key", root_secret])

    def client_for(service, key, secret):
        return boto3.client(service, endpoint_url=server.endpoint, region_name=REGION, aws_access_key_id=key,
                            aws_secret_access_key=secret,
                            config=botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}))

    iam = client_for("iam", root_key, root_secret)

    def user(name, policy=None):
        iam.create_user(UserName=name)
        if policy:
            iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return client_for("cloudwatch", key["AccessKeyId"], key["SecretAccessKey"])

    admin = client_for("cloudwatch", root_key, root_secret)
    admin.put_metric_alarm(AlarmName="guarded", Namespace="App", MetricName="M", Statistic="Sum", Period=60,
                           EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    nobody = user("nobody")
    start, end = window()
    calls = [
        ("put_metric_data", {"Namespace": "App", "MetricData": [{"MetricName": "M", "Value": 1}]}),
        ("get_metric_statistics", {"Namespace": "App", "MetricName": "M", "StartTime": start, "EndTime": end,
                                   "Period": 60, "Statistics": ["Sum"]}),
        ("get_metric_data", {"StartTime": start, "EndTime": end, "MetricDataQueries": [
            {"Id": "m", "MetricStat": {"Metric": {"Namespace": "App", "MetricName": "M"}, "Period": 60, "Stat": "Sum"}}]}),
        ("list_metrics", {}),
        ("describe_alarms", {}),
        ("describe_alarms_for_metric", {"Namespace": "App", "MetricName": "M"}),
        ("describe_alarm_history", {"AlarmName": "guarded"}),
        ("put_metric_alarm", {"AlarmName": "other", "Namespace": "App", "MetricName": "M", "Statistic": "Sum",
                              "Period": 60, "EvaluationPeriods": 1, "Threshold": 1,
                              "ComparisonOperator": "GreaterThanThreshold"}),
        ("set_alarm_state", {"AlarmName": "guarded", "StateValue": "ALARM", "StateReason": "x"}),
        ("disable_alarm_actions", {"AlarmNames": ["guarded"]}),
        ("enable_alarm_actions", {"AlarmNames": ["guarded"]}),
        ("delete_alarms", {"AlarmNames": ["guarded"]}),
    ]
    for operation, params in calls:
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            getattr(nobody, operation)(**params)
        error = raised.value.response["Error"]
        assert error["Code"] == "AccessDenied" or error["Code"] == "AccessDeniedException", (operation, error)
        assert "is not authorized to perform: cloudwatch:" in error["Message"], (operation, error)
    alarms = admin.describe_alarms()["MetricAlarms"]
    assert [(a["AlarmName"], a["StateValue"]) for a in alarms] == [("guarded", "INSUFFICIENT_DATA")]
    assert admin.list_metrics()["Metrics"] == []
    publisher = user("publisher", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"},
        {"Effect": "Allow", "Action": "cloudwatch:SetAlarmState",
         "Resource": f"arn:aws:cloudwatch:{REGION}:000000000000:alarm:guarded"}]})
    publisher.put_metric_data(Namespace="App", MetricData=[{"MetricName": "M", "Value": 1}])
    publisher.set_alarm_state(AlarmName="guarded", StateValue="OK", StateReason="manual")
    with pytest.raises(botocore.exceptions.ClientError):
        publisher.list_metrics()
    assert [m["MetricName"] for m in admin.list_metrics()["Metrics"]] == ["M"]


def test_consumer_metrics_of_enhanced_fan_out(server_factory):
    """SubscribeToShard and its events are counted with the StreamName and ConsumerName dimensions."""
    server = server_factory()
    kinesis = kinesis_client(server.endpoint)
    create_stream(kinesis, "fanned")
    arn = kinesis.describe_stream_summary(StreamName="fanned")["StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="reader")["Consumer"]["ConsumerARN"]
    deadline = time.monotonic() + 15
    while kinesis.describe_stream_consumer(ConsumerARN=consumer)["ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    kinesis.put_records(StreamName="fanned", Records=[{"PartitionKey": str(i), "Data": b"e"} for i in range(4)])
    response = kinesis.subscribe_to_shard(ConsumerARN=consumer, ShardId=SHARD0,
                                          StartingPosition={"Type": "TRIM_HORIZON"})
    received = 0
    for event in response["EventStream"]:
        received += len(event["SubscribeToShardEvent"]["Records"])
        if received >= 4:
            break
    response["EventStream"].close()
    cw = cloudwatch(server.endpoint)
    start, end = window()
    dimensions = [{"Name": "StreamName", "Value": "fanned"}, {"Name": "ConsumerName", "Value": "reader"}]

    def total(metric):
        out = cw.get_metric_statistics(Namespace="AWS/Kinesis", MetricName=metric, Dimensions=dimensions,
                                       StartTime=start, EndTime=end, Period=60, Statistics=["Sum"])
        return sum(p["Sum"] for p in out["Datapoints"])

    assert total("SubscribeToShard.Success") == 1
    assert total("SubscribeToShardEvent.Records") == 4
    assert total("SubscribeToShardEvent.Bytes") == 4 * 2  # data and partition key
