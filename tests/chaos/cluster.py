"""A whole installation of our own: private PostgreSQL and Redis, gunicorn with the
production configuration (``deploy/gunicorn.conf.py``), Celery workers and beat, in
production mode. Each part can be killed and started again by the fault scheduler."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.postgres import PostgresServer
from tests.support.processes import ROOT, Process, Worker, free_port, production_env, wait_for
from tests.support.redis import RedisServer

DBNAME = "cordiale_chaos"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc), empty once it is gone."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` in KiB, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Cluster:
    """The installation under test; ``settings`` are extra environment variables."""

    def __init__(
        self,
        workdir: Path,
        *,
        web_workers: int = 2,
        celery_workers: int = 2,
        concurrency: int = 3,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.web_workers = web_workers
        self.celery_count = celery_workers
        self.concurrency = concurrency
        self.settings = settings or {}
        self.postgres = PostgresServer("cordiale-chaos-pg")
        self.redis = RedisServer(workdir)
        self.web: Process | None = None
        self.base_url = ""
        self.workers: list[Worker] = []
        self.beat: Process | None = None
        self._starts = 0
        self._env: dict[str, str] | None = None

    # -- lifecycle --------------------------------------------------------------

    @property
    def database_url(self) -> str:
        return self.postgres.url(DBNAME)

    def env(self) -> dict[str, str]:
        """One environment for every process (one secret key: webhook secrets are
        encrypted with it)."""
        if self._env is None:
            self._env = self._production_env()
        return dict(self._env)

    def _production_env(self) -> dict[str, str]:
        return production_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            DJANGO_ALLOWED_HOSTS="127.0.0.1",
            DJANGO_SECURE_SSL_REDIRECT="false",
            DJANGO_LOG_LEVEL="INFO",
            CORDIALE_WEBHOOK_ALLOW_PRIVATE="true",
            WEB_CONCURRENCY=str(self.web_workers),
            PYTHONPATH=str(ROOT),
            **self.settings,
        )

    def start(self) -> None:
        self.postgres.init()
        self.postgres.start()
        self.postgres.createdb(DBNAME)
        self.redis.start()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env(),
            check=True,
            timeout=300,
        )
        self.start_web()
        for _ in range(self.celery_count):
            self.workers.append(self._new_worker())
        self.start_beat()

    def start_web(self) -> None:
        port = free_port()
        config = str(ROOT / "deploy" / "gunicorn.conf.py")
        argv = [sys.executable, "-m", "gunicorn", "--config", config]
        argv += ["-b", f"127.0.0.1:{port}", "forum.wsgi:application"]
        self.web = Process(argv, self.env(), self._log("web"))
        self.base_url = f"http://127.0.0.1:{port}"
        self.web.wait_for(self._healthy, "gunicorn to answer /healthz", timeout=60)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _new_worker(self) -> Worker:
        worker = Worker(self.env(), self._log("worker"), self.concurrency, beat=False)
        worker.start()
        return worker

    def start_beat(self) -> None:
        schedule = self.workdir / "beat-schedule"
        argv = [sys.executable, "-m", "celery", "-A", "forum", "beat", "-l", "info"]
        argv += ["-s", str(schedule), "--max-interval", "5"]
        self.beat = Process(argv, self.env(), self._log("beat"))

    def _log(self, role: str) -> Path:
        self._starts += 1
        return self.workdir / f"{role}-{self._starts}.log"

    def stop(self) -> None:
        for stop in (self._stop_beat, self._stop_workers, self._stop_web, self.redis.kill):
            with contextlib.suppress(Exception):
                stop()
        self.postgres.destroy()

    def _stop_beat(self) -> None:
        if self.beat is not None:
            self.beat.stop()

    def _stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()

    def _stop_web(self) -> None:
        if self.web is not None:
            self.web.stop()

    # -- faults -----------------------------------------------------------------

    def web_worker_pids(self) -> list[int]:
        return children(self.web.popen.pid) if self.web else []

    def kill_web_worker(self, pid: int) -> None:
        """SIGKILL one gunicorn worker; the arbiter starts a new one."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def celery_pool_pids(self) -> list[int]:
        pids: list[int] = []
        for worker in self.workers:
            if worker.process is not None:
                pids += children(worker.process.pid)
        return pids

    def kill_celery_child(self, pid: int) -> None:
        """SIGKILL one pool process; its worker starts a replacement, and the task it ran
        (acknowledged late) goes back to the queue."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def kill_celery_worker(self, index: int = 0) -> None:
        """SIGKILL a whole worker (main process and pool), then start a new one."""
        worker = self.workers[index]
        worker.kill(signal.SIGKILL)
        self.workers[index] = self._new_worker()

    def kill_beat(self) -> None:
        """SIGKILL beat, then start it again (as a supervisor would)."""
        if self.beat is not None and self.beat.popen.poll() is None:
            os.killpg(self.beat.popen.pid, signal.SIGKILL)
            self.beat.popen.wait(10)
        self.start_beat()

    def stop_redis(self) -> None:
        self.redis.kill()

    def start_redis(self) -> None:
        self.redis.start()  # same port: clients reconnect to the same URL

    def stop_postgres(self) -> None:
        self.postgres.stop("fast")

    def start_postgres(self) -> None:
        self.postgres.start()

    def postgres_answers(self) -> bool:
        return self.postgres.answers()

    def revive(self) -> list[str]:
        """Start again what died on its own, as a container runtime would; says what."""
        crashed = []
        for index, worker in enumerate(self.workers):
            if worker.process is not None and worker.process.poll() is not None:
                code = worker.process.returncode
                crashed.append(
                    f"Celery worker {index} exited on its own ({code}; {worker.log.name})"
                )
                self.workers[index] = self._new_worker()
        if self.beat is not None and self.beat.popen.poll() is not None:
            crashed.append(f"beat exited on its own ({self.beat.popen.returncode})")
            self.start_beat()
        return crashed

    # -- observation ------------------------------------------------------------

    def rss(self) -> dict[str, int]:
        """KiB resident per role: every gunicorn worker, every Celery pool process."""
        sizes: dict[str, int] = {}
        for role, pids in (("web", self.web_worker_pids()), ("celery", self.celery_pool_pids())):
            values = [v for v in (rss_kib(p) for p in pids) if v is not None]
            if values:
                sizes[f"{role}_max"] = max(values)
                sizes[f"{role}_sum"] = sum(values)
        return sizes

    def wait_healthy(self, timeout: float = 120) -> None:
        wait_for(self._healthy, timeout, "the web processes to answer again", step=0.5)
        wait_for(self.postgres_answers, timeout, "PostgreSQL to answer", step=0.5)
