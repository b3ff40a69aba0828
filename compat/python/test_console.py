"""The web console in a real browser: headless Chromium driven by Selenium against a server with live
traffic, checking what a user sees (the streams, a stream's shards, a record just put, a lag chart with
points, the alarms) and saving screenshots to target/test-artifacts/console/."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import boto3
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from millrace_testlib import AWS_ENV, REGION, create_stream

ARTIFACTS = Path(__file__).resolve().parents[2] / "target" / "test-artifacts" / "console"


def find(name: str, *candidates: str) -> str:
    for candidate in (shutil.which(name), *candidates):
        if candidate and os.path.exists(candidate):
            return candidate
    raise AssertionError(f"{name} is not installed: run scripts/setup-test-deps.sh (installs chromium and chromium-driver)")


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = find("chromium", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(find("chromedriver", "/usr/bin/chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def kpl_aggregate(records: list[tuple[str, bytes]]) -> bytes:
    """The KPL's aggregated record format: magic, protobuf AggregatedRecord, MD5 of the protobuf."""
    keys = [key for key, _ in records]
    body = b"".join(field(1, key.encode()) for key in keys)
    for index, (_, data) in enumerate(records):
        body += field(3, varint(1 << 3 | 0) + varint(index) + field(3, data))
    return b"\xf3\x89\x9a\xc2" + body + hashlib.md5(body).digest()


def shot(driver, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait_for(driver, css: str, timeout: float = 15):
    return WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, css)))


def test_console_shows_streams_records_lag_and_alarms(server_factory, browser):
    server = server_factory()
    session = boto3.session.Session(aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                                    aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"], region_name=REGION)
    kinesis = session.client("kinesis", endpoint_url=server.endpoint)
    cloudwatch = session.client("cloudwatch", endpoint_url=server.endpoint)
    create_stream(kinesis, "web", shards=2)
    kinesis.put_records(StreamName="web", Records=[{"PartitionKey": str(i), "Data": b'{"n": %d}' % i} for i in range(20)])
    time.sleep(1.2)
    # A consumer reading old records: iterator age datapoints for the lag chart.
    iterator = kinesis.get_shard_iterator(StreamName="web", ShardId="shardId-000000000000",
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    kinesis.get_records(ShardIterator=iterator, Limit=1)
    cloudwatch.put_metric_alarm(AlarmName="web-lag", Namespace="AWS/Kinesis",
                                MetricName="GetRecords.IteratorAgeMilliseconds",
                                Dimensions=[{"Name": "StreamName", "Value": "web"}], Statistic="Maximum",
                                Period=60, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanThreshold")

    browser.get(f"{server.endpoint}/console#/signin")
    wait_for(browser, "#signin")
    browser.find_element(By.NAME, "key").send_keys(AWS_ENV["AWS_ACCESS_KEY_ID"])
    browser.find_element(By.NAME, "secret").send_keys(AWS_ENV["AWS_SECRET_ACCESS_KEY"])
    browser.find_element(By.CSS_SELECTOR, "#signin button").click()
    row = wait_for(browser, 'tr[data-stream="web"]')
    cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
    assert cells[:4] == ["web", "PROVISIONED", "ACTIVE", "2"], cells
    spark = row.find_element(By.CSS_SELECTOR, "svg.spark")
    assert int(spark.get_attribute("data-points")) > 0
    shot(browser, "streams")

    row.find_element(By.TAG_NAME, "a").click()
    wait_for(browser, "#shards")
    shards = browser.find_elements(By.CSS_SELECTOR, "#shards tr[data-shard]")
    assert [s.get_attribute("data-shard") for s in shards] == ["shardId-000000000000", "shardId-000000000001"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.keyspace rect")) == 2
    lag = browser.find_element(By.CSS_SELECTOR, "#lag svg.spark")
    assert int(lag.get_attribute("data-points")) > 0
    assert browser.find_elements(By.CSS_SELECTOR, "#lag polyline")

    put = browser.find_element(By.ID, "put")
    put.find_element(By.NAME, "key").clear()
    put.find_element(By.NAME, "key").send_keys("same-key")
    put.find_element(By.NAME, "data").send_keys("hello from the console")
    put.find_element(By.TAG_NAME, "button").click()
    result = WebDriverWait(browser, 15).until(
        lambda d: d.find_element(By.ID, "put-result") if d.find_element(By.ID, "put-result").text else False)
    shard = result.get_attribute("data-shard")
    browse = browser.find_element(By.ID, "browse")
    Select(browse.find_element(By.NAME, "shard")).select_by_visible_text(shard)
    browse.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(browser, 15).until(
        lambda d: "hello from the console" in d.find_element(By.ID, "records").text)
    shot(browser, "stream")

    # A KPL-aggregated record is shown as its user records.
    kinesis.put_record(StreamName="web", PartitionKey="same-key", Data=kpl_aggregate([("ka", b"first"), ("kb", b"second")]))
    browse.find_element(By.TAG_NAME, "button").click()
    WebDriverWait(browser, 15).until(lambda d: "KPL aggregate of 2 records" in d.find_element(By.ID, "records").text)
    text = browser.find_element(By.ID, "records").text
    assert "[0] ka: first" in text and "[1] kb: second" in text, text

    # Split the first shard from the console: three shards, the parent closed, lineage shown.
    browser.find_element(By.CSS_SELECTOR, 'button[data-split="shardId-000000000000"]').click()
    deadline = time.monotonic() + 15
    while len(browser.find_elements(By.CSS_SELECTOR, "#shards tr[data-shard]")) != 4:
        assert time.monotonic() < deadline, "the split did not show"
        time.sleep(0.2)
    children = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#shards tr[data-shard]")]
    assert sum("closed" in r for r in children) == 1 and sum("shardId-000000000000" in r for r in children) == 3, children
    assert len(kinesis.list_shards(StreamName="web")["Shards"]) == 4
    shot(browser, "split")

    browser.get(f"{server.endpoint}/console#/alarms")
    alarm = wait_for(browser, "#alarms td")
    assert alarm.text == "web-lag"
    shot(browser, "alarms")
