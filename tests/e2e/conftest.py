"""Fixtures for the end-to-end suite.

The suite drives the real `az` CLI and the real Azure SDK for Python against a running
armlet binary ($ARMLET_BIN, default target/debug/armlet):

* ``armlet`` (session): one `armlet serve --in-memory` on ephemeral ports, stopped with
  SIGTERM at the end of the session, which must exit 0 (graceful shutdown).
* ``az_env`` (function): a fresh temp dir set up by `armlet env`, returned as an environment
  dict (os.environ + the exported variables), so every test has its own AZURE_CONFIG_DIR.
* ``az(env, *args, expect_ok=True)``: runs the `az` that lives next to sys.executable.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_RE = re.compile(r"^armlet ready: https=(https://\S+) http=(http://\S+)$")
READY_TIMEOUT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
AZ_TIMEOUT_S = 300.0
ENV_TIMEOUT_S = 60.0

# Keep at most this many log lines of armlet's output in memory.
MAX_LOG_LINES = 20000


# Outer variables that would change how armlet, az or the SDK behave (a developer may have
# eval'd `armlet env` or set Azure defaults in their shell): the suite must not see them.
_STRIPPED_PREFIXES = ("ARMLET_", "AZURE_", "ARM_", "MSAL_")
_STRIPPED_NAMES = {
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
}


def clean_environ() -> Dict[str, str]:
    """os.environ without Azure/armlet settings, with loopback exempt from any proxy."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_STRIPPED_PREFIXES) and k not in _STRIPPED_NAMES
    }
    for var in ("NO_PROXY", "no_proxy"):
        parts = [p for p in env.get(var, "").split(",") if p]
        for host in ("127.0.0.1", "localhost"):
            if host not in parts:
                parts.append(host)
        env[var] = ",".join(parts)
    return env


def armlet_bin() -> Path:
    raw = os.environ.get("ARMLET_BIN")
    path = Path(raw) if raw else REPO_ROOT / "target" / "debug" / "armlet"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"armlet binary not found or not executable at {path} "
            "(set ARMLET_BIN or run `cargo build --bins` first)",
            pytrace=False,
        )
    return path


# --------------------------------------------------------------------------------------
# armlet server
# --------------------------------------------------------------------------------------


@dataclass
class Armlet:
    proc: subprocess.Popen
    https_url: str
    http_url: str
    bin: Path
    log: List[str] = field(default_factory=list)
    log_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def https_authority(self) -> str:
        """host:port of the HTTPS listener, e.g. "127.0.0.1:43121"."""
        return self.https_url.split("://", 1)[1].rstrip("/")

    def log_len(self) -> int:
        with self.log_lock:
            return len(self.log)

    def log_since(self, start: int) -> List[str]:
        with self.log_lock:
            return list(self.log[start:])


_CURRENT_ARMLET: Optional[Armlet] = None


def _pump(stream, name: str, sink: List[str], lock: threading.Lock, lines_q) -> None:
    """Read a pipe to EOF so it never fills up; keep the lines for diagnostics."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        with lock:
            sink.append(f"[{name}] {line}")
            if len(sink) > MAX_LOG_LINES:
                del sink[: len(sink) - MAX_LOG_LINES]
        if lines_q is not None:
            lines_q.append(line)
    stream.close()


@contextlib.contextmanager
def running_armlet(*extra_args: str) -> Iterator[Armlet]:
    """`armlet serve --in-memory` on ephemeral ports, ready once it prints its ready line,
    stopped by SIGTERM to its own PID and required to exit 0 (graceful shutdown). Tests
    whose scenario moves the clock run their own server through this."""
    binary = armlet_bin()
    env = clean_environ()
    # One line per request on stderr, attached to a failing test's report.
    env["ARMLET_LOG"] = "info"
    cmd = [str(binary), "serve", "--in-memory", "--bind", "127.0.0.1", "--https-port", "0", "--http-port", "0", *extra_args]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(REPO_ROOT),
    )
    log: List[str] = []
    lock = threading.Lock()
    stdout_lines: collections.deque = collections.deque()
    t_out = threading.Thread(target=_pump, args=(proc.stdout, "stdout", log, lock, stdout_lines), daemon=True)
    t_err = threading.Thread(target=_pump, args=(proc.stderr, "stderr", log, lock, None), daemon=True)
    t_out.start()
    t_err.start()

    def captured() -> str:
        with lock:
            return "\n".join(log[-200:])

    match = None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while match is None:
        while stdout_lines and match is None:
            match = READY_RE.match(stdout_lines.popleft())
        if match is not None:
            break
        if proc.poll() is not None:
            t_out.join(timeout=2)
            # One last look at lines that arrived just before exit.
            while stdout_lines and match is None:
                match = READY_RE.match(stdout_lines.popleft())
            if match is None:
                pytest.fail(
                    f"armlet exited with code {proc.returncode} before printing its ready line.\n"
                    f"command: {shlex.join(cmd)}\noutput:\n{captured()}",
                    pytrace=False,
                )
            break
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(
                f"armlet did not print 'armlet ready: https=... http=...' within "
                f"{READY_TIMEOUT_S:.0f}s.\ncommand: {shlex.join(cmd)}\noutput:\n{captured()}",
                pytrace=False,
            )
        time.sleep(0.02)

    server = Armlet(
        proc=proc,
        https_url=match.group(1).rstrip("/"),
        http_url=match.group(2).rstrip("/"),
        bin=binary,
        log=log,
        log_lock=lock,
    )
    try:
        yield server
    finally:
        exited_by_itself = proc.poll() is not None
        if not exited_by_itself:
            proc.send_signal(signal.SIGTERM)  # to this child's own PID only
        try:
            code = proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
            killed = True
        t_out.join(timeout=5)
        t_err.join(timeout=5)
        assert not exited_by_itself, f"armlet exited on its own (code {code}).\noutput:\n{captured()}"
        assert not killed, f"armlet did not exit within {SHUTDOWN_TIMEOUT_S:.0f}s of SIGTERM; killed it.\noutput:\n{captured()}"
        assert code == 0, f"armlet exited with code {code} after SIGTERM (expected 0: graceful shutdown).\noutput:\n{captured()}"


def _control_url(target: Any) -> str:
    return target.http_url if isinstance(target, Armlet) else target["ARMLET_URL"]


def control(target: Any, path: str, body: Optional[dict] = None) -> dict:
    """POSTs to armlet's control API (`/_armlet/...`) of a server or an `armlet env` dict."""
    request = urllib.request.Request(
        f"{_control_url(target)}{path}",
        data=json.dumps(body or {}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def advance_clock(target: Any, by: str) -> dict:
    """Moves the simulated clock forward (past a propagation delay, a rotation, an expiry)."""
    return control(target, "/_armlet/clock/advance", {"by": by})


def freeze_clock(target: Any) -> dict:
    return control(target, "/_armlet/clock/freeze")


def env_for(server: Armlet, directory: Path) -> Dict[str, str]:
    """os.environ (cleaned) + `armlet env` for a fresh config dir, like the az_env fixture."""
    directory.mkdir(parents=True, exist_ok=True)
    env = EnvDict(clean_environ())
    env.update(armlet_env(server, directory))
    return env


@pytest.fixture(scope="session")
def armlet():
    """The armlet the whole session shares."""
    global _CURRENT_ARMLET
    with running_armlet() as server:
        _CURRENT_ARMLET = server
        try:
            yield server
        finally:
            _CURRENT_ARMLET = None


# Attach armlet's output from the duration of a failing test to its report.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    server = _CURRENT_ARMLET
    if report.failed and server is not None:
        start = item.stash.get(_LOG_START_KEY, 0)
        lines = server.log_since(start)
        if lines:
            report.sections.append(
                (f"armlet output (test {report.when})", "\n".join(lines[-300:]))
            )


_LOG_START_KEY = pytest.StashKey[int]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    server = _CURRENT_ARMLET
    item.stash[_LOG_START_KEY] = server.log_len() if server is not None else 0


# --------------------------------------------------------------------------------------
# `armlet env`
# --------------------------------------------------------------------------------------


def parse_env_exports(text: str) -> Dict[str, str]:
    """Parse lines of `export NAME='value'` (POSIX-shell quoted) and `#` comments."""
    out: Dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = shlex.split(stripped, comments=True, posix=True)
        if not tokens:
            continue
        if tokens[0] != "export" or len(tokens) < 2:
            raise ValueError(f"line {lineno}: not an `export NAME='value'` line: {line!r}")
        for tok in tokens[1:]:
            name, sep, value = tok.partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"line {lineno}: bad assignment {tok!r} in {line!r}")
            out[name] = value
    return out


def armlet_env(server: Armlet, directory: Path, url: Optional[str] = None) -> Dict[str, str]:
    """Run `armlet env --url <url> --dir <directory>` and return only the exported vars."""
    cmd = [
        str(server.bin),
        "env",
        "--url",
        url or server.http_url,
        "--dir",
        str(directory),
    ]
    res = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_environ(),
        timeout=ENV_TIMEOUT_S,
    )
    assert res.returncode == 0, (
        f"`{shlex.join(cmd)}` failed with exit code {res.returncode}\n"
        f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
    )
    try:
        return parse_env_exports(res.stdout)
    except ValueError as e:
        pytest.fail(f"cannot parse `{shlex.join(cmd)}` output: {e}\nstdout:\n{res.stdout}")


REQUIRED_ENV_VARS = (
    "AZURE_CONFIG_DIR",
    "ARM_CLOUD_METADATA_URL",
    "REQUESTS_CA_BUNDLE",
    "AZURE_CORE_INSTANCE_DISCOVERY",
    "AZURE_CORE_COLLECT_TELEMETRY",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "ARMLET_CLIENT_ID",
    "ARMLET_CLIENT_SECRET",
    "ARMLET_TENANT_ID",
    "ARMLET_SUBSCRIPTION_ID",
)


@pytest.fixture
def armlet_vars(armlet, tmp_path) -> Dict[str, str]:
    """Only the variables printed by `armlet env` for a fresh directory."""
    d = tmp_path / "armlet-env"
    d.mkdir()
    exported = armlet_env(armlet, d)
    missing = [v for v in REQUIRED_ENV_VARS if v not in exported]
    assert not missing, f"`armlet env` did not export {missing}; got {sorted(exported)}"
    return exported


class EnvDict(dict):
    """An environment dict whose repr (shown in test failures) lists only armlet's vars."""

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.items() if k.startswith(("ARMLET_", "AZURE_", "ARM_"))}
        return f"<env: {len(self)} vars; {shown!r}>"


@pytest.fixture
def az_env(armlet_vars) -> Dict[str, str]:
    """os.environ + the variables from `armlet env` (fresh AZURE_CONFIG_DIR per test).

    Outer Azure/armlet variables are dropped first (see clean_environ)."""
    env = EnvDict(clean_environ())
    env.update(armlet_vars)
    return env


# --------------------------------------------------------------------------------------
# `az`
# --------------------------------------------------------------------------------------


def az_path() -> Path:
    p = Path(sys.executable).parent / "az"
    if not p.exists():
        pytest.fail(
            f"`az` not found next to {sys.executable} (install tests/e2e/requirements.txt "
            "into the interpreter that runs pytest)",
            pytrace=False,
        )
    return p


class AzResult(collections.namedtuple("AzResult", "returncode stdout stderr")):
    """(returncode, stdout, stderr) of one `az` run; `.json` parses stdout."""

    args: List[str]

    @property
    def json(self) -> Any:
        text = self.stdout.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise AssertionError(
                f"`az {shlex.join(self.args)}` printed non-JSON output ({e}):\n{self.stdout}"
            ) from None


def az(env: Dict[str, str], *args: str, expect_ok: Optional[bool] = True) -> AzResult:
    """Run `az ARGS` (adding `-o json` unless -o/--output is given).

    expect_ok=True asserts exit code 0, expect_ok=False asserts a non-zero exit code,
    expect_ok=None asserts nothing. The assertion messages show az's stderr.
    """
    argv = [str(a) for a in args]
    if not any(a in ("-o", "--output") or a.startswith("--output=") for a in argv):
        argv += ["-o", "json"]
    run_env = dict(env)
    # No colours, no survey prompts, no telemetry.
    run_env.setdefault("AZURE_CORE_NO_COLOR", "true")
    run_env.setdefault("AZURE_CORE_SURVEY_MESSAGE", "false")
    run_env.setdefault("AZURE_CORE_COLLECT_TELEMETRY", "false")
    try:
        res = subprocess.run(
            [str(az_path()), *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=run_env,
            timeout=AZ_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"`az {shlex.join(argv)}` timed out after {AZ_TIMEOUT_S:.0f}s\n"
            f"stdout:\n{e.stdout}\nstderr:\n{e.stderr}"
        ) from None
    result = AzResult(res.returncode, res.stdout, res.stderr)
    result.args = argv
    if expect_ok is True:
        assert res.returncode == 0, (
            f"`az {shlex.join(argv)}` failed with exit code {res.returncode}\n"
            f"stderr:\n{res.stderr}\nstdout:\n{res.stdout}"
        )
    elif expect_ok is False:
        assert res.returncode != 0, (
            f"`az {shlex.join(argv)}` unexpectedly succeeded\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}"
        )
    return result


def az_login(env: Dict[str, str], *, secret: Optional[str] = None, expect_ok=True) -> AzResult:
    """`az login --service-principal` with the armlet credentials from env."""
    return az(
        env,
        "login",
        "--service-principal",
        "-u",
        env["ARMLET_CLIENT_ID"],
        "-p",
        env["ARMLET_CLIENT_SECRET"] if secret is None else secret,
        "--tenant",
        env["ARMLET_TENANT_ID"],
        expect_ok=expect_ok,
    )


@pytest.fixture
def logged_in_env(az_env) -> Dict[str, str]:
    """az_env after a successful `az login --service-principal`."""
    az_login(az_env)
    return az_env
