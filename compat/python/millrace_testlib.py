"""Helpers shared by the compat tests: running the millrace binary, AWS clients, raw HTTP calls.

Everything here talks to a real `millrace serve` process over loopback. Nothing is mocked.
"""

from __future__ import annotations

import base64
import datetime as _dt
import http.client
import json
import os
import re
import resource
import signal
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import boto3
import botocore.config
import botocore.exceptions

REPO_ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "000000000000"
REGION = "us-east-1"
TARGET_PREFIX = "Kinesis_20131202"
JSON_CT = "application/x-amz-json-1.1"
MAX_HASH_KEY = 2**128 - 1

# Hermetic AWS configuration for boto3 and the CLI: dummy credentials, no config files, no IMDS.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIDMILLRACETEST",
    "AWS_SECRET_ACCESS_KEY": "millrace-test-secret",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent/millrace/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/millrace/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_PAGER": "",
}
for _k, _v in AWS_ENV.items():
    os.environ[_k] = _v
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_SESSION_TOKEN", None)
os.environ.pop("AWS_ENDPOINT_URL", None)


def millrace_bin() -> Path:
    """The server binary: $MILLRACE_BIN, else target/debug/millrace under the repository root."""
    env = os.environ.get("MILLRACE_BIN")
    if env:
        return Path(env)
    return REPO_ROOT / "target" / "debug" / "millrace"


LISTENING_RE = re.compile(r"^listening on (http://127\.0\.0\.1:(\d+))\s*$")

# Control-plane delays used unless a test asks for others: short, so streams turn ACTIVE quickly,
# but not zero, so the CREATING state really exists.
DEFAULT_DELAYS = {
    "--create-stream-ms": "50",
    "--delete-stream-ms": "50",
    "--update-stream-ms": "50",
}


class ServerStartError(RuntimeError):
    pass


class MillraceServer:
    """One `millrace serve` process bound to 127.0.0.1:0, restartable on the same data dir."""

    def __init__(self, data_dir: Path, log_dir: Path, args: Iterable[str] = (), name: str = "server"):
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.name = name
        self.args = self._merge_args(list(args))
        self.proc: Optional[subprocess.Popen] = None
        self.endpoint: Optional[str] = None
        self.port: Optional[int] = None
        self.generation = 0
        self.exit_codes: list[int] = []
        # Soft and hard RLIMIT_NOFILE for the server process (None: inherit).
        self.open_file_limit: Optional[int] = None

    @staticmethod
    def _merge_args(args: list[str]) -> list[str]:
        merged = list(args)
        for flag, value in DEFAULT_DELAYS.items():
            if flag not in merged:
                merged += [flag, value]
        return merged

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.generation}.stderr.log"

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.generation}.stdout.log"

    def command(self) -> list[str]:
        return [
            str(millrace_bin()),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            str(self.data_dir),
            # Tests write as fast as they like unless they test the limits themselves.
            *([] if "--throughput-limits" in self.args else ["--throughput-limits", "off"]),
            *self.args,
        ]

    def start(self, timeout: float = 30.0) -> "MillraceServer":
        assert self.proc is None, "server already running"
        binary = millrace_bin()
        if not binary.exists():
            raise ServerStartError(
                f"millrace binary not found at {binary}; build it with `cargo build -p millrace-cli` "
                "or set MILLRACE_BIN"
            )
        self.generation += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        limit = self.open_file_limit

        def limit_open_files() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        try:
            self.proc = subprocess.Popen(
                self.command(), stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                preexec_fn=limit_open_files if limit is not None else None,
            )
        finally:
            out.close()
            err.close()
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout_path.read_text(errors="replace")
            if "\n" in text:
                first = text.split("\n", 1)[0]
                m = LISTENING_RE.match(first)
                if not m:
                    self._abort()
                    raise ServerStartError(
                        f"unexpected first stdout line from millrace: {first!r}\n{self.stderr_tail()}"
                    )
                self.endpoint = m.group(1)
                self.port = int(m.group(2))
                return self
            code = self.proc.poll()
            if code is not None:
                self.proc = None
                self.exit_codes.append(code)
                raise ServerStartError(
                    f"millrace exited with {code} before listening: {self.command()}\n{self.stderr_tail()}"
                )
            if time.monotonic() > deadline:
                self._abort()
                raise ServerStartError(f"millrace did not print its listening line within {timeout}s\n{self.stderr_tail()}")
            time.sleep(0.01)

    def _abort(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self, timeout: float = 15.0) -> int:
        """Clean shutdown with SIGTERM; returns the exit code. Falls back to SIGKILL after `timeout`."""
        assert self.proc is not None, "server not running"
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"millrace did not exit within {timeout}s of SIGTERM\n{self.stderr_tail()}")
        self.proc = None
        self.endpoint = None
        self.exit_codes.append(code)
        return code

    def kill9(self) -> None:
        """SIGKILL: the process gets no chance to flush anything."""
        assert self.proc is not None, "server not running"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.endpoint = None

    def restart(self, *, kill: bool = False, args: Optional[Iterable[str]] = None) -> "MillraceServer":
        """Stops (SIGTERM, or SIGKILL with kill=True) and starts again on the same data dir.

        The port changes: make new clients afterwards."""
        if self.proc is not None:
            if kill:
                self.kill9()
            else:
                self.stop()
        if args is not None:
            self.args = self._merge_args(list(args))
        return self.start()

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.stop(timeout=10)
            except AssertionError:
                pass

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no stderr log)"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"--- millrace stderr ({self.stderr_path}) ---\n{tail}"

    def client(self, **kwargs):
        assert self.endpoint, "server not running"
        return make_client(self.endpoint, **kwargs)

    def segment_files(self) -> list[Path]:
        return sorted(self.data_dir.glob("**/*.seg"))


# --------------------------------------------------------------------------------------------------
# boto3


def make_client(
    endpoint: str,
    *,
    max_attempts: int = 1,
    validate: bool = True,
    read_timeout: float = 60,
    connect_timeout: float = 5,
):
    session = boto3.session.Session(
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    config = botocore.config.Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        parameter_validation=validate,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=20,
    )
    return session.client("kinesis", endpoint_url=endpoint, config=config)


def wait_status(client, name: str, status: str = "ACTIVE", timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        if summary["StreamStatus"] == status:
            return summary
        if time.monotonic() > deadline:
            raise AssertionError(f"stream {name} still {summary['StreamStatus']} after {timeout}s, wanted {status}")
        time.sleep(0.05)


def wait_gone(client, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.describe_stream_summary(StreamName=name)
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return
            raise
        if time.monotonic() > deadline:
            raise AssertionError(f"stream {name} still exists after {timeout}s")
        time.sleep(0.05)


def create_stream(client, name: str, shards: int = 1, timeout: float = 30.0) -> dict:
    client.create_stream(StreamName=name, ShardCount=shards)
    return wait_status(client, name, "ACTIVE", timeout)


def shard_ids(client, name: str) -> list[str]:
    return [s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"]]


def read_iterator(client, iterator: str, *, expected: Optional[int] = None, max_empty: int = 3, limit: Optional[int] = None,
                  timeout: float = 60.0) -> list[dict]:
    """Follows NextShardIterator from `iterator` and returns every record.

    Stops once `expected` records were seen (if given), or after `max_empty` consecutive empty
    responses that report MillisBehindLatest == 0, or at shard end."""
    records: list[dict] = []
    empty = 0
    deadline = time.monotonic() + timeout
    while iterator:
        kwargs = {"ShardIterator": iterator}
        if limit is not None:
            kwargs["Limit"] = limit
        out = client.get_records(**kwargs)
        batch = out["Records"]
        records.extend(batch)
        iterator = out.get("NextShardIterator")
        if expected is not None and len(records) >= expected:
            break
        if batch:
            empty = 0
        else:
            if out.get("MillisBehindLatest", 0) == 0:
                empty += 1
            if empty >= max_empty:
                break
        if time.monotonic() > deadline:
            raise AssertionError(f"reading did not finish within {timeout}s ({len(records)} records so far)")
    return records


def read_shard(client, stream: str, shard_id: str, iterator_type: str = "TRIM_HORIZON", **kwargs) -> list[dict]:
    read_kwargs = {k: kwargs.pop(k) for k in ("expected", "max_empty", "limit", "timeout") if k in kwargs}
    it = client.get_shard_iterator(
        StreamName=stream, ShardId=shard_id, ShardIteratorType=iterator_type, **kwargs
    )["ShardIterator"]
    return read_iterator(client, it, **read_kwargs)


def client_error(fn: Callable, *args, **kwargs) -> botocore.exceptions.ClientError:
    """Calls fn and returns the ClientError it must raise."""
    try:
        result = fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return e
    raise AssertionError(f"expected an error, got success: {result!r}")


def seq_int(seq: str) -> int:
    return int(seq)


def decode_sequence_number(seq: str) -> dict:
    """Splits a sequence number into the fields of the documented 47-hex-digit layout."""
    h = format(int(seq), "x")
    assert len(h) == 47, f"sequence number {seq} is {len(h)} hex digits, expected 47"
    return {
        "constant": h[0],
        "shard_created": int(h[1:10], 16),
        "shard_low": int(h[10], 16),
        "counter": int(h[11:27], 16),
        "zero_byte": h[27:29],
        "arrival": int(h[29:38], 16),
        "shard_index": int(h[38:46], 16),
        "version": h[46],
    }


def encode_sequence_number(shard_created: int, shard_index: int, counter: int, arrival: int) -> str:
    value = (
        (2 << 184)
        | ((shard_created & (2**36 - 1)) << 148)
        | ((shard_index & 0xF) << 144)
        | ((counter & (2**63 - 1)) << 80)
        | ((arrival & (2**36 - 1)) << 36)
        | ((shard_index & 0xFFFFFFFF) << 4)
        | 2
    )
    return str(value)


# --------------------------------------------------------------------------------------------------
# Raw HTTP


def fake_auth_headers(now: Optional[_dt.datetime] = None, target_signed: bool = True) -> dict[str, str]:
    """A well-formed SigV4 Authorization header with a made-up signature (the server accepts any)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    day = now.strftime("%Y%m%d")
    signed = "host;x-amz-date;x-amz-target" if target_signed else "host;x-amz-date"
    return {
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential=AKID/{day}/{REGION}/kinesis/aws4_request, "
            f"SignedHeaders={signed}, Signature={'0' * 64}"
        ),
        "X-Amz-Date": now.strftime("%Y%m%dT%H%M%SZ"),
    }


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    _json: Any = field(default=None, repr=False)

    @property
    def json(self) -> Any:
        if self._json is None:
            assert self.body, f"empty response body (status {self.status})"
            try:
                self._json = json.loads(self.body)
            except ValueError as e:
                raise AssertionError(f"response body is not JSON: {self.body[:500]!r}") from e
        return self._json

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())


def raw_request(
    endpoint: str,
    operation: Optional[str],
    body: Any = b"{}",
    *,
    content_type: Optional[str] = JSON_CT,
    method: str = "POST",
    path: str = "/",
    auth: bool = True,
    extra_headers: Optional[dict[str, str]] = None,
    target: Optional[str] = None,
    timeout: float = 120,
) -> RawResponse:
    """Sends one request with http.client. `body` may be bytes, str, or a JSON-able object."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    url = urllib.parse.urlsplit(endpoint)
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if target is None and operation is not None:
        target = f"{TARGET_PREFIX}.{operation}"
    if target is not None:
        headers["X-Amz-Target"] = target
    if auth:
        headers.update(fake_auth_headers())
    if extra_headers:
        headers.update(extra_headers)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return RawResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --------------------------------------------------------------------------------------------------
# Error assertions

_VALIDATION_RE = re.compile(r"^(\d+) validation errors? detected: (.*)$", re.S)


def validation_entry(value: Optional[str], path: str, constraint: str) -> str:
    """One entry of a ValidationException message. `value` None means the member was absent."""
    shown = "null" if value is None else f"'{value}'"
    return f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"


def validation_message(*entries: str) -> str:
    n = len(entries)
    return f"{n} validation error{'s' if n != 1 else ''} detected: " + "; ".join(entries)


def assert_validation_message(actual: Optional[str], entries: Iterable[str]) -> None:
    """Compares a ValidationException message with the expected entries, in any order."""
    entries = list(entries)
    assert actual is not None, "ValidationException without a message"
    m = _VALIDATION_RE.match(actual)
    assert m, f"not a validation message: {actual!r}\nexpected: {validation_message(*entries)!r}"
    got_entries = m.group(2).split("; ")
    assert int(m.group(1)) == len(got_entries), f"count {m.group(1)} != {len(got_entries)} entries in {actual!r}"
    assert sorted(got_entries) == sorted(entries), (
        f"validation entries differ\n  actual:   {actual!r}\n  expected: {validation_message(*entries)!r}"
    )
    # "error" for 1, "errors" otherwise.
    assert actual.startswith(validation_message(*entries).split(":")[0] + ":"), actual


class Message:
    """Matchers for error messages used by assert_error."""

    ABSENT = object()

    @staticmethod
    def regex(pattern: str) -> re.Pattern:
        return re.compile(pattern, re.S)


def _message_of(body: dict) -> tuple[Optional[str], Optional[str]]:
    for key in ("message", "Message"):
        if key in body:
            return key, body[key]
    return None, None


def assert_error(
    resp: RawResponse,
    code: str,
    message: Any = None,
    *,
    status: int = 400,
    message_key: Optional[str] = None,
    validation: Optional[Iterable[str]] = None,
) -> None:
    """Checks a raw JSON error response.

    message: exact string, a compiled regex (fullmatch), Message.ABSENT (no message key at all), or
    None (not checked). validation: expected ValidationException entries (any order).
    message_key: 'message' or 'Message' when the casing matters."""
    desc = f"status {resp.status}, headers {resp.headers}, body {resp.body[:2000]!r}"
    assert resp.status == status, f"expected HTTP {status} {code}, got {desc}"
    body = resp.json
    assert isinstance(body, dict), desc
    type_ = body.get("__type", "")
    bare = type_.split("#")[-1].split(":")[0]
    assert bare == code, f"expected __type {code}, got {type_!r}; {desc}"
    key, text = _message_of(body)
    if message is Message.ABSENT:
        assert key is None, f"expected no message, got {key}={text!r}"
    if validation is not None:
        assert_validation_message(text, validation)
    if isinstance(message, str):
        assert text == message, f"message differs\n  actual:   {text!r}\n  expected: {message!r}"
    elif isinstance(message, re.Pattern):
        assert text is not None and message.fullmatch(text), f"message {text!r} does not match {message.pattern!r}"
    if message_key is not None:
        assert key == message_key, f"expected the message under {message_key!r}, body {body!r}"


def assert_client_error(
    err: botocore.exceptions.ClientError,
    code: str,
    message: Any = None,
    *,
    status: int = 400,
    validation: Optional[Iterable[str]] = None,
) -> None:
    """Same checks as assert_error, on what botocore parsed."""
    e = err.response.get("Error", {})
    got_status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    assert got_status == status, f"expected HTTP {status}, got {got_status}: {err.response!r}"
    assert e.get("Code") == code, f"expected {code}, got {e.get('Code')!r}: {err.response!r}"
    text = e.get("Message")
    if validation is not None:
        assert_validation_message(text, validation)
    if message is Message.ABSENT:
        assert not text, f"expected no message, got {text!r}"
    elif isinstance(message, str):
        assert text == message, f"message differs\n  actual:   {text!r}\n  expected: {message!r}"
    elif isinstance(message, re.Pattern):
        assert text is not None and message.fullmatch(text), f"message {text!r} does not match {message.pattern!r}"


def not_found(stream: str) -> str:
    return f"Stream {stream} under account {ACCOUNT} not found."


def shard_not_found(stream: str, shard: str = "shardId-000000000000") -> str:
    return f"Shard {shard} in stream {stream} under account {ACCOUNT} does not exist"


def hash_ranges(n: int) -> list[tuple[int, int]]:
    """The AWS layout for CreateStream(n): step floor(2^128/n), last shard ends at 2^128-1."""
    step = 2**128 // n
    ranges = [(i * step, (i + 1) * step - 1) for i in range(n)]
    ranges[-1] = (ranges[-1][0], MAX_HASH_KEY)
    return ranges
