"""Fixtures that run the real millrace binary.

- `server_factory(args=..., name=...)` starts a server on 127.0.0.1:0 with a fresh data dir under the
  test's tmp dir; every server it started is shut down (SIGTERM) at the end of the test.
- `server` / `kinesis`: one default server per test and a boto3 client for it.
- `module_server` / `module_kinesis`: one server shared by the tests of a module.

A server object has `.endpoint`, `.data_dir`, `.restart(kill=False)`, `.kill9()`, `.stop()`,
`.client()` and `.segment_files()` (see millrace_testlib.MillraceServer).

Binary: $MILLRACE_BIN, default <repo>/target/debug/millrace.
"""

from __future__ import annotations

import itertools

import pytest

from millrace_testlib import MillraceServer, millrace_bin

_counter = itertools.count()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(node) -> bool:
    return any(getattr(getattr(node, "rep_" + w, None), "failed", False) for w in ("setup", "call"))


def pytest_report_header(config):
    binary = millrace_bin()
    return f"millrace binary: {binary} ({'present' if binary.exists() else 'MISSING'})"


class _Factory:
    def __init__(self, base_dir):
        self.base_dir = base_dir
        self.servers: list[MillraceServer] = []

    def __call__(self, args=(), name: str | None = None, data_dir=None, start: bool = True) -> MillraceServer:
        name = name or f"millrace{next(_counter)}"
        data_dir = data_dir or (self.base_dir / f"{name}-data")
        server = MillraceServer(data_dir, self.base_dir / "logs", args, name=name)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def close(self, failed: bool) -> None:
        for server in self.servers:
            if failed:
                print(server.stderr_tail(60))
            server.close()


@pytest.fixture
def server_factory(tmp_path, request):
    factory = _Factory(tmp_path)
    yield factory
    factory.close(_failed(request.node))


@pytest.fixture
def server(server_factory) -> MillraceServer:
    return server_factory(name="server")


@pytest.fixture
def kinesis(server):
    return server.client()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, request):
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    factory = _Factory(base)
    server = factory(name="module")
    yield server
    factory.close(failed=request.session.testsfailed > 0)


@pytest.fixture(scope="module")
def module_kinesis(module_server):
    return module_server.client()
