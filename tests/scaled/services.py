"""A private PostgreSQL and Redis for the scaled-mode tests and benchmarks, and the processes of
the scaled mode (web server, standalone agents) run against them.

Both servers come from Debian's packages (``postgresql``, ``redis-server``; ``make setup-test``
installs them) but never as their packages' services: each is started here in a directory of its
own, on a port of its own, and stopped after. PostgreSQL refuses to run as root, so as root it runs
as the ``postgres`` system user the package creates.

They listen on 127.0.0.1 (PostgreSQL also on a unix socket in its own directory) and accept any
client from 127.0.0.0/8 and 10.0.0.0/8 without a password: a throwaway server for tests. A test
that puts agents in other network namespaces makes them listen on its veth address as well with
``listen_also(address)``.

Importable without pytest (bench/ uses it): nothing here skips or fails a test.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

REPO_DIR = Path(__file__).resolve().parents[2]
# The ports these servers and the scaled-mode processes use: ``START-END`` (inclusive); each
# engineer or CI job sharing a machine gives its own block.
PORTS_ENV = "SYSOPS_TEST_PORTS"
DEFAULT_PORTS = "15400-15499"
# Generous: on a shared 2-core machine a Django process can take tens of seconds to start.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
# Clients any test may start, with room: agents (a database thread each), their runners, the
# web server, the test itself.
PG_MAX_CONNECTIONS = 200
TRUSTED_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8")


def missing() -> str | None:
    """Why the scaled-mode servers cannot run here, or None when they can."""
    lacking = []
    if postgres_bin_dir() is None:
        lacking.append("postgresql (initdb)")
    if shutil.which("redis-server") is None:
        lacking.append("redis-server")
    if lacking:
        return (
            f"missing Debian packages: {', '.join(lacking)}; `make setup-test` (as root) "
            "installs them"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no `postgres` user to run PostgreSQL as"
    return None


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's server programs (Debian keeps them off PATH)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


def port_block() -> range:
    start, _, end = os.environ.get(PORTS_ENV, DEFAULT_PORTS).partition("-")
    return range(int(start), int(end) + 1)


_handed_out: set[int] = set()


def free_port() -> int:
    """A port of this job's block that nothing listens on and this process has not handed out."""
    for port in port_block():
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
        _handed_out.add(port)
        return port
    raise RuntimeError(
        f"no free port left in {PORTS_ENV}={os.environ.get(PORTS_ENV, DEFAULT_PORTS)}"
    )


def wait_until(predicate: Any, *, timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        time.sleep(interval_s)


def _private_dir(prefix: str, owner: str | None) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class Postgres:
    """A PostgreSQL cluster of its own: ``initdb`` into a temporary directory, superuser
    ``postgres`` with no password, ``fsync`` off unless ``durable``."""

    def __init__(
        self,
        *,
        port: int | None = None,
        listen_addresses: Sequence[str] = ("127.0.0.1",),
        durable: bool = False,
    ) -> None:
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError(missing() or "no PostgreSQL")
        self.bin_dir = bin_dir
        self.port = port or free_port()
        self.listen_addresses = list(listen_addresses)
        self.durable = durable
        self.user = "postgres" if os.geteuid() == 0 else None
        self.dir = _private_dir("sysops-pg-", self.user)
        self.data_dir = self.dir / "data"
        self.log_path = self.dir / "server.log"

    # --- as the server's own user -----------------------------------------------------------
    def _argv(self, program: str, *args: str) -> list[str]:
        argv = [str(self.bin_dir / program), *args]
        return ["runuser", "-u", self.user, "--", *argv] if self.user else argv

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            self._argv(program, *args), capture_output=True, text=True, cwd=self.dir
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        try:
            return "\n--- server log ---\n" + self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    def _write_config(self) -> None:
        """Our settings, in a file postgresql.conf includes; rewritten on every start."""
        conf = {
            "port": str(self.port),
            "listen_addresses": f"'{','.join(self.listen_addresses)}'",
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": str(PG_MAX_CONNECTIONS),
            "fsync": "on" if self.durable else "off",
            "synchronous_commit": "on" if self.durable else "off",
            "full_page_writes": "on" if self.durable else "off",
        }
        text = "".join(f"{k} = {v}\n" for k, v in conf.items())
        path = self.data_dir / "sysops.conf"
        path.write_text(text)
        if self.user:
            shutil.chown(path, self.user)

    # --- life cycle ---------------------------------------------------------------------------
    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )
        hba = "".join(f"host all all {net} trust\n" for net in TRUSTED_NETWORKS)
        hba = "local all all trust\n" + hba
        (self.data_dir / "pg_hba.conf").write_text(hba)
        with open(self.data_dir / "postgresql.conf", "a") as f:
            f.write("include_if_exists = 'sysops.conf'\n")

    def start(self) -> None:
        self._write_config()
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w", "start")

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Stop (every client's connection is cut) and start again on the same port."""
        self.stop()
        self.start()

    def listen_also(self, address: str) -> None:
        """Listen on ``address`` too (a veth address of a test's); restarts the server."""
        if address not in self.listen_addresses:
            self.listen_addresses.append(address)
            self.restart()

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- clients --------------------------------------------------------------------------------
    def url(self, database: str = "postgres", *, host: str = "127.0.0.1") -> str:
        return f"postgres://postgres@{host}:{self.port}/{database}"

    def execute(self, sql: str, *, database: str = "postgres") -> None:
        """One statement outside a transaction (CREATE/DROP DATABASE need that)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """A new database (a copy of ``template``'s tables and rows, if given); its URL."""
        suffix = f" TEMPLATE {template}" if template else ""
        self.execute(f'CREATE DATABASE "{name}"{suffix}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Redis:
    """A redis-server of its own: no persistence, no password, a foreground child process."""

    def __init__(self, *, port: int | None = None, bind: Sequence[str] = ("127.0.0.1",)) -> None:
        self.port = port or free_port()
        self.bind = list(bind)
        self.dir = _private_dir("sysops-redis-", None)
        self.log_path = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def url_at(self, host: str) -> str:
        return f"redis://{host}:{self.port}/0"

    def start(self) -> None:
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port),
            "--bind", *self.bind,
            "--protected-mode", "no",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self.ping, timeout_s=START_TIMEOUT_S, what=f"redis-server on {self.port}")

    def ping(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited:\n{self._log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL when ``kill``: no goodbye to its clients)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def command(self, *args: str) -> Any:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            return client.execute_command(*args)
        finally:
            client.close()

    def flush(self) -> None:
        self.command("FLUSHALL")

    def listen_also(self, address: str) -> None:
        """Listen on ``address`` too (a veth address of a test's), without a restart."""
        if address not in self.bind:
            self.bind.append(address)
            self.command("CONFIG", "SET", "bind", " ".join(self.bind))

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Services:
    """Both servers, and a template database with the migrations applied once."""

    postgres: Postgres
    redis: Redis
    template: str = "sysops_template"

    @classmethod
    @contextlib.contextmanager
    def running(cls, *, durable: bool = False) -> Iterator[Services]:
        postgres = Postgres(durable=durable)
        redis = Redis()
        try:
            postgres.init()
            postgres.start()
            redis.start()
            services = cls(postgres, redis)
            services._migrate_template()
            yield services
        finally:
            redis.remove()
            postgres.remove()

    def _migrate_template(self) -> None:
        url = self.postgres.create_database(self.template)
        manage(["migrate", "--no-input"], env={"DATABASE_URL": url}, check=True)

    def new_stack(self) -> Stack:
        """A fresh database (migrated, empty) and an empty Redis for one test or benchmark."""
        name = f"sysops_{uuid.uuid4().hex[:12]}"
        url = self.postgres.create_database(name, template=self.template)
        self.redis.flush()
        return Stack(self, name, url)


def scaled_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment of a scaled-mode process: this one's, pointed at PostgreSQL and Redis."""
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    env.setdefault("SYSOPS_TEST_EXPERIMENTS", "1")
    env["SYSOPS_EMBEDDED_AGENT"] = "0"
    env.update(extra)
    if not env["REDIS_URL"]:
        del env["REDIS_URL"]
    return env


def manage(
    args: list[str], *, env: dict[str, str], check: bool = False, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_DIR,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)}: {done.stdout}{done.stderr}")
    return done


@dataclass
class Process:
    """A scaled-mode process this stack started; its output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, *, timeout_s: float = 30) -> int:
        """SIGTERM, then SIGKILL if it has not exited in ``timeout_s``; its exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return self.popen.returncode


@dataclass
class Viewer:
    """A run's live viewer in a process of its own (tests/scaled/viewer.py)."""

    process: Process
    out_path: Path

    def _lines(self) -> list[dict[str, Any]]:
        try:
            text = self.out_path.read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def wait_ready(self, *, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until its snapshot has arrived (it is in the run's group from then on)."""

        def ready() -> bool:
            if self.process.popen.poll() is not None and not self._lines():
                raise RuntimeError(f"the viewer exited:\n{self.process.log()}")
            return any(line.get("ready") for line in self._lines())

        wait_until(ready, timeout_s=timeout_s, what="the viewer's snapshot")

    def seen(self, *, timeout_s: float = 300) -> dict[str, Any]:
        """What it received, once it has finished watching."""
        try:
            self.process.popen.wait(timeout=timeout_s)
        finally:
            self.process.stop()
        for line in self._lines():
            if "seen" in line:
                return line["seen"]
        raise RuntimeError(f"the viewer reported nothing:\n{self.process.log()}")


@dataclass
class Stack:
    """One database and the Redis, and the processes started against them."""

    services: Services
    database: str
    database_url: str
    processes: list[Process] = field(default_factory=list)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sysops-scaled-")))

    @property
    def redis_url(self) -> str:
        return self.services.redis.url

    def env(self, **extra: str) -> dict[str, str]:
        return scaled_env(self.database_url, self.redis_url, **extra)

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        log_path = self.log_dir / f"{name}-{len(self.processes)}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - closed by Process.stop
        popen = subprocess.Popen(argv, cwd=REPO_DIR, env=env, stdout=log, stderr=log)
        process = Process(name, popen, log_path, log)
        self.processes.append(process)
        return process

    def start_agent(self, *, max_running: int = 1, host_name: str = "", **env: str) -> Process:
        """``manage.py sysops_worker`` against this stack (``host_name``: its SYSOPS_HOST_NAME)."""
        if host_name:
            env["SYSOPS_HOST_NAME"] = host_name
        argv = [sys.executable, "manage.py", "sysops_worker", "--max-running", str(max_running)]
        return self.spawn("agent", argv, self.env(**env))

    def start_viewer(self, run_id: int, *, embedded: bool = False, **env: str) -> Viewer:
        """A websocket viewer of ``run_id`` against this stack, watching until the run ends.
        ``embedded``: the viewer's process is the embedded mode's web server instead (its own
        agent, the in-memory channel layer) on this stack's database."""
        out_path = self.log_dir / f"viewer-{run_id}-{len(self.processes)}.jsonl"
        argv = [sys.executable, "-m", "tests.scaled.viewer", str(run_id), str(out_path)]
        if embedded:
            env.update(REDIS_URL="", SYSOPS_EMBEDDED_AGENT="1")
        return Viewer(self.spawn("viewer", argv, self.env(**env)), out_path)

    def start_web(self, **env: str) -> tuple[Process, str]:
        """The web app under daphne against this stack, once it answers; (process, base URL)."""
        port = free_port()
        argv = [
            str(Path(sys.executable).parent / "daphne"),
            "-b", "127.0.0.1",
            "-p", str(port),
            "playground.asgi:application",
        ]  # fmt: skip
        process = self.spawn("web", argv, self.env(**env))
        base_url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            if process.popen.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{process.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                return True
            return False

        wait_until(answers, timeout_s=START_TIMEOUT_S, what="daphne")
        return process, base_url

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        with contextlib.suppress(Exception):
            self.services.postgres.drop_database(self.database)
        shutil.rmtree(self.log_dir, ignore_errors=True)
