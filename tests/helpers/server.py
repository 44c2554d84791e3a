"""A real daphne server in a subprocess, on its own database, for tests of what the server
itself does (request limits, many viewers): ``with daphne_server() as server: server.url``."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Ports of this project's tests (the rest of the machine keeps clear of them).
PORTS = range(16100, 16200)
START_TIMEOUT_S = 60
DEFAULT_APPLICATION = "playground.asgi:application"


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    pid: int
    var_dir: Path
    env: Mapping[str, str]

    def manage(self, *args: str) -> str:
        """``manage.py ARGS`` on this server's database; returns its output."""
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=dict(self.env),
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def create_users(self, names: list[str], password: str) -> None:
        self.manage(
            "shell",
            "-c",
            "from django.contrib.auth.models import User\n"
            f"for name in {names!r}: User.objects.create_user(name, password={password!r})",
        )

    def opener(self, user: str | None = None, password: str = "") -> urllib.request.OpenerDirector:
        """A cookie-keeping client, signed in as ``user`` when given."""
        opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )
        if user:
            self._post(opener, "/login/", {"username": user, "password": password})
        return opener

    def _post(
        self, opener: urllib.request.OpenerDirector, path: str, fields: Mapping[str, object]
    ) -> str:
        """POST a form as a browser would (CSRF token from the page); returns the final URL."""
        page = opener.open(self.url + path, timeout=60).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token}).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Referer": self.url + path}
        )
        with opener.open(request, timeout=60) as response:
            return response.url

    def runs(self) -> list[dict[str, object]]:
        """Every run's row, read straight from the server's SQLite database."""
        with contextlib.closing(sqlite3.connect(self.var_dir / "db.sqlite3", timeout=30)) as db:
            db.row_factory = sqlite3.Row
            return [
                dict(row)
                for row in db.execute(
                    "SELECT r.*, u.username FROM sysops_run r"
                    " LEFT JOIN auth_user u ON u.id = r.user_id ORDER BY r.id"
                )
            ]

    def run_logs(self) -> list[str]:
        with contextlib.closing(sqlite3.connect(self.var_dir / "db.sqlite3", timeout=30)) as db:
            return [message for (message,) in db.execute("SELECT message FROM sysops_runlog")]

    def rss_bytes(self) -> int:
        """The server process's resident memory (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def queue_run(
        self,
        slug: str,
        params: Mapping[str, object],
        opener: urllib.request.OpenerDirector | None = None,
    ) -> int:
        """Submit the experiment's form as a browser would; returns the new run's id."""
        url = self._post(opener or self.opener(), f"/experiments/{slug}/", params)
        return int(re.search(r"/runs/(\d+)/", url).group(1))

    def cpu_s(self) -> float:
        """User + system CPU seconds the server process used."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


@contextlib.contextmanager
def daphne_server(
    env: dict[str, str] | None = None,
    application: str = DEFAULT_APPLICATION,
    *,
    port: int | None = None,
    var_dir: str | None = None,
) -> Iterator[Server]:
    """A server on its own database in a new directory (or in ``var_dir``, which it leaves),
    on ``port`` or a free one of PORTS."""
    with contextlib.ExitStack() as stack:
        if var_dir is None:
            var_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="sysops-server-"))
        full_env = {
            **os.environ,
            "SYSOPS_VAR_DIR": var_dir,
            "SYSOPS_TEST_EXPERIMENTS": "1",
            "DJANGO_SETTINGS_MODULE": "playground.settings",
            **(env or {}),
        }
        full_env.pop("DATABASE_URL", None)
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=REPO_ROOT, env=full_env, check=True
        )
        port = port or free_port()
        if application == DEFAULT_APPLICATION:
            # As `make run` serves: daphne with the embedded agent started at once.
            command = [sys.executable, "manage.py", "serve", "-b", "127.0.0.1", "-p", str(port)]
        else:
            daphne = str(Path(sys.executable).parent / "daphne")
            command = [daphne, "-b", "127.0.0.1", "-p", str(port), application]
        proc = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(var_dir) / "server.log", "wb"),  # noqa: SIM115 - the child owns it
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while True:
                try:
                    urllib.request.urlopen(url + "/", timeout=5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.2)
            yield Server(url=url, port=port, pid=proc.pid, var_dir=Path(var_dir), env=full_env)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
