"""The whole spine in a real daphne server: the embedded agent claims runs, runners run them in
the sandbox, and the web process keeps serving whatever the worker does."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from channels.testing import ChannelsLiveServerTestCase
from django.conf import settings

from sysops.agent.agent import Agent
from sysops.models import Run
from sysops.sandbox import cgroups, uids
from tests.helpers.runs import database_url, wait_for

FINISH_TIMEOUT_S = 90


def errno_names(run):
    return {row["metric"]: row["note"].split()[0] for row in run.results if row.get("note")}


def find_processes(pattern, uid):
    """Live processes of ``uid`` (the run's recorded uid) whose command line has ``pattern``."""
    assert uid is not None, "the run did not record its sandbox uid"
    found = []
    for pid, state in uids.processes_of_uid(uid).items():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state != "Z" and pattern in cmdline:
            found.append(pid)
    return found


class LiveServerCase(ChannelsLiveServerTestCase):
    serve_static = False

    def get(self, path="/"):
        with urllib.request.urlopen(self.live_server_url + path, timeout=10) as response:
            return response.status, response.read().decode()

    def wait_for(self, run, predicate):
        return wait_for(run, predicate, FINISH_TIMEOUT_S)

    def wait_finished(self, run):
        return self.wait_for(run, lambda r: r.is_terminal)


class HostileRunsTest(LiveServerCase):
    def test_every_attack_is_contained_and_the_web_process_keeps_serving(self):
        bystander = subprocess.Popen(["sleep", "120"])
        self.addCleanup(bystander.wait)
        self.addCleanup(bystander.kill)
        database = settings.DATABASES["default"]["NAME"]
        cases = {
            "fork_bomb": {},
            "memory_hog": {},
            "busy_loop": {"cpu_s": 2},
            "sleep": {"sleep_s": 30, "wall_s": 2},
            "big_write": {},
            "connect_out": {},
            "read_secret": {"path": str(database)},
            "mount": {},
            "unshare": {},
            "ptrace": {},
            "kill_all": {},
        }
        runs = {
            case: Run.objects.create(
                experiment="hostile",
                params={"case": case, "sleep_s": 0, "path": "", "wall_s": 20, "cpu_s": 5, **extra},
            )
            for case, extra in cases.items()
        }
        assert self.get()[0] == 200  # the first request starts the embedded agent

        done = {case: self.wait_finished(run) for case, run in runs.items()}
        for case, run in done.items():
            assert run.reason, case
            assert not find_processes("", run.sandbox_uid), case

        assert done["fork_bomb"].status == Run.Status.FAILED
        assert "RLIMIT_NPROC" in done["fork_bomb"].reason or "pids" in done["fork_bomb"].reason
        hog = done["memory_hog"]
        assert "OOM" in hog.reason or errno_names(hog) == {"allocate and touch memory": "ENOMEM"}
        assert done["busy_loop"].status == Run.Status.FAILED
        assert "RLIMIT_CPU 2 s" in done["busy_loop"].reason
        assert done["sleep"].status == Run.Status.TIMED_OUT
        assert "wall-clock limit of 2 s" in done["sleep"].reason
        assert set(errno_names(done["big_write"]).values()) <= {"EFBIG", "ENOSPC"}
        assert errno_names(done["big_write"])
        assert set(errno_names(done["connect_out"]).values()) == {"ENETUNREACH"}
        assert errno_names(done["read_secret"]) == {
            "read /etc/shadow": "ENOENT",
            f"read {database}": "ENOENT",
        }
        assert set(errno_names(done["mount"]).values()) == {"EPERM"}
        # unshare and clone with namespace flags get EPERM; clone3 gets ENOSYS (glibc falls back).
        assert set(errno_names(done["unshare"]).values()) == {"EPERM", "ENOSYS"}
        assert "EPERM" in set(errno_names(done["ptrace"]).values())
        assert done["kill_all"].status == Run.Status.FAILED
        assert bystander.poll() is None  # kill(-1) inside touched nothing outside

        status, body = self.get()
        assert status == 200 and "Syscall Playground" in body
        assert self.get(f"/runs/{runs['fork_bomb'].pk}/")[0] == 200


class DeathTest(LiveServerCase):
    def test_a_worker_killed_mid_run_fails_its_run_with_the_reason(self):
        run = Run.objects.create(
            experiment="epoll-echo", params={"clients": 4, "message_bytes": 64, "duration_s": 20}
        )
        self.get()
        self.wait_for(run, lambda r: r.progress > 0)
        run.refresh_from_db()
        workers = find_processes("sysops.worker", run.sandbox_uid)
        assert workers
        for pid in workers:
            # (One may already be gone with another: the sandbox's processes die together.)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        run = self.wait_finished(run)
        assert run.status == Run.Status.FAILED
        assert "SIGKILL" in run.reason
        assert self.get()[0] == 200

    def test_an_agent_restart_finishes_a_run_whose_runner_died(self):
        run = Run.objects.create(
            experiment="epoll-echo", params={"clients": 2, "message_bytes": 64, "duration_s": 20}
        )
        # Claim it as an agent would, then start its runner alone and kill it mid-run.
        agent = Agent(max_running=1)
        assert agent.claim_next() == run.pk
        env = {**os.environ, "DATABASE_URL": database_url()}
        runner = subprocess.Popen(
            [sys.executable, "-m", "sysops.agent.runner_process", str(run.pk)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        Run.objects.filter(pk=run.pk).update(runner_pid=runner.pid)
        self.wait_for(run, lambda r: r.progress > 0)
        runner.kill()
        runner.wait()
        run.refresh_from_db()
        assert run.status == Run.Status.RUNNING  # nobody has noticed yet

        assert Agent().recover_stale() == [run.pk]  # what a restarted agent does first
        run.refresh_from_db()
        assert run.status == Run.Status.FAILED
        assert "runner died" in run.reason
        # The sandbox died with its runner (--die-with-parent): nothing of the run is left.
        uid = run.sandbox_uid
        deadline = time.monotonic() + 5
        while find_processes("", uid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not find_processes("", uid)
        # Its cgroups, which the killed runner never removed, went with the recovery.
        pattern = cgroups.run_cgroup_glob(run.pk, uid, runner.pid)
        leftovers = list(Path("/sys/fs/cgroup").rglob(pattern))
        assert leftovers == []


@pytest.fixture(autouse=True)
def _test_experiments():
    assert os.environ.get("SYSOPS_TEST_EXPERIMENTS") == "1"


class CancelTest(LiveServerCase):
    def test_cancelling_a_running_run_stops_its_sandbox(self):
        run = Run.objects.create(
            experiment="epoll-echo", params={"clients": 2, "message_bytes": 64, "duration_s": 30}
        )
        self.get()
        self.wait_for(run, lambda r: r.progress > 0)
        self.client.post(f"/runs/{run.pk}/cancel/", HTTP_HOST="localhost")
        run = self.wait_finished(run)
        assert run.status == Run.Status.CANCELLED
        assert run.reason == "cancelled by the user"
        assert not find_processes("", run.sandbox_uid)
