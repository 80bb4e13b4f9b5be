"""Session fixtures: one real `tessera serve` per test session, a team with API keys, and
clients that talk to it only through the official SDK (`scaleapi==2.18.4`) or raw `requests`.

Environment:
  TESSERA_BIN               the binary (default: target/debug/tessera; build it first)
  TESSERA_SDK_DATABASE_URL  run against this database (e.g. a fresh PostgreSQL database)
                            instead of SQLite in the temporary data directory
  TESSERA_SDK_KEEP          keep the temporary data directory and server log (prints where)
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import scaleapi

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "long password 123"
RUN = uuid.uuid4().hex[:8]  # makes every name in this session unique
START_TIMEOUT = 60.0
# Delays between callback retries the server is started with: three attempts in ~3 s in all.
CALLBACK_RETRY_SCHEDULE = "1s,2s"


def _binary() -> Path:
    env = os.environ.get("TESSERA_BIN")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "debug" / "tessera"


@dataclass
class Server:
    root_url: str  # http://127.0.0.1:PORT
    api_url: str  # http://127.0.0.1:PORT/v1 (what the SDK is given)
    data_dir: Path
    log_path: Path
    database_url: str | None
    process: subprocess.Popen
    team: str
    admin_email: str
    test_key: str = ""
    live_key: str = ""
    other_team: str = ""
    other_admin_email: str = ""
    other_test_key: str = ""
    extra: dict = field(default_factory=dict)

    def storage_args(self):
        args = ["--data-dir", str(self.data_dir)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        return args

    def admin(self, *args: str) -> str:
        """Runs `tessera admin ARGS` against this server's storage; returns stdout."""
        cmd = [str(_binary()), "admin", *args, *self.storage_args()]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, env=_child_env()
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`{' '.join(cmd)}` exited with {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done.stdout

    def create_key(self, team: str, mode: str, label: str | None = None) -> str:
        args = ["create-api-key", "--team", team, "--mode", mode]
        if label:
            args += ["--label", label]
        out = self.admin(*args)
        lines = [line.strip() for line in out.splitlines() if line.strip()]
        assert lines, f"create-api-key printed nothing (mode {mode})"
        key = lines[-1]
        assert key.startswith(f"{mode}_"), f"create-api-key printed {out!r}"
        return key

    def log_text(self) -> str:
        return self.log_bytes().decode(errors="replace")

    def log_bytes(self) -> bytes:
        try:
            return self.log_path.read_bytes()
        except FileNotFoundError:
            return b""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def alive(self) -> bool:
        return self.process.poll() is None


def _child_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env["TESSERA_LOG"] = os.environ.get("TESSERA_LOG", "info,sqlx=warn")
    env["NO_COLOR"] = "1"  # plain server logs
    env["TESSERA_LOG_MAIL_BODIES"] = "1"  # invitation links are read from the log (no SMTP)
    return env


_SERVER: Server | None = None
_CRASH_LOG: list[str] = []  # the log of a server that exited on its own, for the summary


@pytest.fixture(scope="session")
def server():
    global _SERVER
    binary = _binary()
    if not binary.is_file():
        pytest.exit(
            f"no tessera binary at {binary}: run `cargo build` first (or set TESSERA_BIN)",
            returncode=3,
        )
    keep = bool(os.environ.get("TESSERA_SDK_KEEP"))
    tmp = Path(tempfile.mkdtemp(prefix="tessera-sdk-"))
    data_dir = tmp / "data"
    log_path = tmp / "server.log"
    database_url = os.environ.get("TESSERA_SDK_DATABASE_URL") or None
    cmd = [
        str(binary),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(data_dir),
        "--allow-private-callbacks",
        # A failing callback is retried a few times quickly and then given up, instead of
        # following the production schedule (20 retries over a day) for the whole session.
        "--callback-retry-schedule",
        CALLBACK_RETRY_SCHEDULE,
    ]
    if database_url:
        cmd += ["--database-url", database_url]
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=_child_env(),
        start_new_session=True,
    )
    srv = Server(
        root_url="",
        api_url="",
        data_dir=data_dir,
        log_path=log_path,
        database_url=database_url,
        process=proc,
        team=f"SDK Team {RUN}",
        admin_email=f"admin-{RUN}@example.com",
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while time.monotonic() < deadline:
            m = re.search(r"Tessera is running at (http://[0-9.:\[\]a-z]+)", srv.log_text())
            if m:
                url = m.group(1).rstrip("/")
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if not url:
            raise RuntimeError(
                f"tessera serve did not start (exit code {proc.poll()}):\n{srv.log_text()}"
            )
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"/healthz never answered 200:\n{srv.log_text()}")
        srv.root_url = url
        srv.api_url = url + "/v1"

        srv.admin(
            "create-team",
            "--name",
            srv.team,
            "--admin-email",
            srv.admin_email,
            "--password",
            PASSWORD,
        )
        srv.test_key = srv.create_key(srv.team, "test", "sdk tests")
        srv.live_key = srv.create_key(srv.team, "live", "sdk tests live")
        srv.other_team = f"Other Team {RUN}"
        srv.other_admin_email = f"other-admin-{RUN}@example.com"
        srv.admin(
            "create-team",
            "--name",
            srv.other_team,
            "--admin-email",
            srv.other_admin_email,
            "--password",
            PASSWORD,
        )
        srv.other_test_key = srv.create_key(srv.other_team, "test")
        _SERVER = srv
        yield srv
    finally:
        _SERVER = None
        if proc.poll() is not None and srv.root_url:
            _CRASH_LOG.append(
                f"the server exited on its own with {proc.poll()}; its log:\n"
                + srv.log_text()[-20000:]
            )
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
        if keep:
            print(f"\n[sdk-tests] kept data dir and server log in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# --- clients -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def client(server) -> scaleapi.ScaleClient:
    """Test-mode client of the main team."""
    return scaleapi.ScaleClient(server.test_key, api_instance_url=server.api_url)


@pytest.fixture(scope="session")
def live_client(server) -> scaleapi.ScaleClient:
    """Live-mode client of the main team (tasks stay pending)."""
    return scaleapi.ScaleClient(server.live_key, api_instance_url=server.api_url)


@pytest.fixture(scope="session")
def other_client(server) -> scaleapi.ScaleClient:
    """Test-mode client of a different team."""
    return scaleapi.ScaleClient(server.other_test_key, api_instance_url=server.api_url)


class Raw:
    """Raw HTTP against /v1 with Basic auth, for what the SDK cannot express."""

    def __init__(self, api_url: str, key: str | None):
        self.api_url = api_url
        self.key = key

    def request(self, method, path, *, auth=True, headers=None, **kw):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if auth and self.key is not None and "auth" not in kw:
            kw["auth"] = (self.key, "")
        return requests.request(
            method, f"{self.api_url}/{path.lstrip('/')}", headers=h, timeout=30, **kw
        )

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="session")
def raw(server) -> Raw:
    return Raw(server.api_url, server.test_key)


@pytest.fixture(scope="session")
def raw_live(server) -> Raw:
    return Raw(server.api_url, server.live_key)


_counter = [0]


@pytest.fixture
def uniq():
    """uniq("proj") -> a name unique in this session, e.g. 'proj-1a2b3c4d-7'."""

    def make(prefix: str = "n") -> str:
        _counter[0] += 1
        return f"{prefix}-{RUN}-{_counter[0]}"

    return make


# --- the server log on failure -----------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if _SERVER is not None:
        item._tessera_log_offset = _SERVER.log_size()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and _SERVER is not None:
        offset = getattr(item, "_tessera_log_offset", 0)
        text = _SERVER.log_bytes()[offset:].decode(errors="replace")
        lines = text.splitlines()
        if len(lines) > 80:
            lines = ["[... earlier lines cut ...]"] + lines[-80:]
        alive = "running" if _SERVER.alive() else f"EXITED with {_SERVER.process.poll()}"
        report.sections.append(
            (f"server log during this test (server {alive})", "\n".join(lines) or "(nothing)")
        )


def pytest_terminal_summary(terminalreporter):
    for text in _CRASH_LOG:
        terminalreporter.section("tessera server crashed")
        terminalreporter.write_line(text)
