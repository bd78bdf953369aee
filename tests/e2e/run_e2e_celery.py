"""End-to-end test on a distributed Airflow 3 deployment (``make e2e-celery``).

Starts, from the project's venv and in temporary folders, everything on free ports:

* PostgreSQL (``initdb`` + ``postgres`` in the foreground, as the ``postgres`` user when run as
  root) as the metadata DB and the Celery result backend, Redis (``--save ''``) as the broker,
* the emulator (``python -m airflow_provider_cancel.emulator``) as both APIs,
* ``airflow api-server``, ``scheduler`` (CeleryExecutor), ``dag-processor``, **two triggerers**
  and **two Celery workers** (concurrency 2 each), sharing one JWT secret and the execution API
  URL. ``tests/e2e/process_name.py`` names each process, so a task instance's ``hostname`` says
  which worker ran it and a triggerer job's ``hostname`` which triggerer it is,

then runs four scenarios through the REST API (and reads the ``trigger``/``task_instance``/
``job`` tables directly where a count over hundreds of rows is needed):

``parallel-runs``
    40 runs of the example DAGs at once: every run and task ends as ``make e2e`` expects, every
    job a DAG submitted is cancelled exactly once, tasks ran on both workers.
``triggers-spread``
    500 deferred sensors (``celery_dags/e2e_celery_deferred.py``, one WriteText request each, held
    in ``Cancelling``): both triggerers hold triggers (``[triggerer] capacity`` 400, so neither can
    take all), the emulator flips every request to ``Cancelled`` and every trigger fires within
    the poll interval + 10 s, every sensor succeeds; WriteText token requests per triggerer process
    (from the trigger logs each triggerer writes, cross-checked with the emulator's counter).
``triggerer-killed``
    40 deferred sensors; ``kill -9`` (the process group) of a triggerer that holds some: they move
    to the other triggerer and succeed; no request is cancelled by anyone (``cancel_calls`` 0).
``worker-killed``
    ``kill -9`` (the process group) of the Celery worker running a 500-id bulk cancel
    (``celery_dags/e2e_celery_bulk_cancel.py``): the scheduler's task heartbeat timeout fails the
    try, the retry runs on the other worker, every job ends cancelled and the retry's report says
    ``cancelled`` or ``already_finished`` for each id.

Each scenario prints ``scenario <name>: ok|FAILED — <figures>`` and its wall time, then a summary
table. A failing run copies every process, task and trigger log to ``.e2e/logs-<timestamp>/``
(``E2E_KEEP_LOGS=1`` keeps them after a passing run too). Everything started here is stopped on
exit, failure or Ctrl-C. ``E2E_CELERY_SCENARIOS=a,b`` runs a subset; ``E2E_CELERY_SENSORS``
changes the 500.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e import run_e2e as base
from tests.e2e.celery_dags.e2e_celery_deferred import POLL_INTERVAL
from tests.e2e.expectations import EXPECTED_RUN, EXPECTED_TASKS, SUBMIT_TASKS
from tests.e2e.run_e2e import (
    Airflow,
    E2EFailure,
    Emulator,
    free_port,
    http,
    log,
    wait_for,
)

E2E_DIR = Path(__file__).resolve().parent
CELERY_DAGS = E2E_DIR / "celery_dags"

SCENARIOS = ("parallel-runs", "triggers-spread", "triggerer-killed", "worker-killed")
EXAMPLES: tuple[str, ...] = ("example_useapi_cancel", "example_writetext_bulk_cancel")
EXAMPLES += ("example_cancel_on_failure", "example_cleanup_on_failure")
RUNS_PER_EXAMPLE = 10  # 4 example DAGs x 10 = 40 runs at once
SENSORS = int(os.environ.get("E2E_CELERY_SENSORS", "500"))
KILLED_TRIGGERER_SENSORS = 40
BULK_IDS = 500
DEFERRED_DAG = "e2e_celery_deferred"
BULK_DAG = "e2e_celery_bulk_cancel"
TRIGGERER_CAPACITY = 400  # < SENSORS: one triggerer cannot take every trigger
HEARTBEAT_TIMEOUT = 30  # [scheduler] task_instance_heartbeat_timeout (default 300)
TRIGGERER_HEALTH_THRESHOLD = 20  # [triggerer] triggerer_health_check_threshold (default 30)
TIMEOUT = float(os.environ.get("E2E_CELERY_TIMEOUT", "900"))  # per long wait
TOKEN_LINE = "got an access token"  # WriteTextHook's INFO line when it fetches a token


# ---------------------------------------------------------------------- processes


class Cluster(base.Deployment):
    """The LocalExecutor e2e's process handling, with a per-process environment and user."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.pg_port = 0
        self.pg_folder: Path | None = None
        self.db_url = ""

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            env={**self.env, "E2E_PROCESS_NAME": name, **(env or {})},
            cwd=cwd or self.root,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
        )
        out.close()
        self.processes[name] = process
        log(f"started {name} (pid {process.pid}): {' '.join(Path(a).name for a in argv[:3])} ...")
        return process

    def kill9(self, name: str) -> int:
        """``kill -9`` a process and everything in its session, as a lost machine would.

        The whole session, not just the process group: Airflow's supervisor puts each task
        process in a process group of its own.
        """
        process = self.processes.pop(name)
        for pid in session_members(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=30)
        return process.pid

    def stop(self, name: str, timeout: float = 30) -> None:
        process = self.processes.get(name)
        if process is not None and name == "postgres":
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)  # fast shutdown; SIGTERM waits for clients
        super().stop(name, timeout)
        for pid in session_members(process.pid) if process is not None else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # task processes in process groups of their own


def session_members(sid: int) -> list[int]:
    """Every process whose session id is ``sid`` (read from ``/proc``)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[3]) == sid:
                members.append(int(stat.parent.name))
    return members


def start_postgres(dep: Cluster) -> None:
    """PostgreSQL in the foreground (stopped with the rest), on a free port, in a temp folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
    if not found and not shutil.which("initdb"):
        raise E2EFailure("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(found[-1]).parent if found else Path(str(shutil.which("initdb"))).parent
    folder = Path(tempfile.mkdtemp(prefix="apc-e2e-pg-"))
    dep.pg_folder = folder
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        user = "postgres"
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", user], check=True)
        shutil.chown(folder, user)
    data = folder / "data"
    with (dep.logs / "initdb.log").open("wb") as out:
        done = subprocess.run(
            [str(bindir / "initdb"), "-D", str(data), "-U", "airflow", "-A", "trust", "-E", "UTF8"],
            stdout=out,
            stderr=subprocess.STDOUT,
            user=user,
            cwd=folder,
        )
    if done.returncode:
        raise E2EFailure(f"initdb failed; see {dep.logs / 'initdb.log'}")
    dep.pg_port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": str(folder),
        "max_connections": "300",
        "fsync": "off",  # a throw-away database: durability buys nothing here
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(dep.pg_port)]
    for key, value in settings.items():
        argv += ["-c", f"{key}={value}"]
    dep.start("postgres", argv, user=user, cwd=folder)

    import psycopg2

    def accepting() -> bool:
        dep.check_alive()
        try:
            conn = psycopg2.connect(
                host="127.0.0.1", port=dep.pg_port, user="airflow", dbname="postgres"
            )
        except psycopg2.OperationalError:  # not listening yet
            return False
        with contextlib.closing(conn):
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE airflow")
        return True

    wait_for("PostgreSQL to accept connections", accepting, 60, 0.5)
    dep.db_url = f"postgresql+psycopg2://airflow@127.0.0.1:{dep.pg_port}/airflow"
    log(f"PostgreSQL {bindir.parent.name} on 127.0.0.1:{dep.pg_port}")


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path))


def start_redis(dep: Cluster) -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise E2EFailure("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    dep.start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    )

    def ready() -> bool:
        dep.check_alive()
        return "Ready to accept connections" in (dep.logs / "redis.log").read_text(errors="replace")

    wait_for("Redis to accept connections", ready, 30, 0.2)
    log(f"Redis on 127.0.0.1:{port}")
    return f"redis://127.0.0.1:{port}/0"


class Database:
    """Read-only queries on the metadata DB, for counts over hundreds of rows."""

    def __init__(self, port: int) -> None:
        import psycopg2

        self.conn = psycopg2.connect(host="127.0.0.1", port=port, user="airflow", dbname="airflow")
        self.conn.autocommit = True

    def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def states(self, dag_id: str, run_id: str, task_id: str) -> Counter[str]:
        found = self.rows(
            "SELECT coalesce(state, 'none'), count(*) FROM task_instance "
            "WHERE dag_id = %s AND run_id = %s AND task_id = %s GROUP BY 1",
            dag_id,
            run_id,
            task_id,
        )
        return Counter({state: int(n) for state, n in found})

    def triggers_per_triggerer(self, dag_id: str, run_id: str) -> dict[str, int]:
        """Triggers of a run's deferred task instances, per triggerer (its process name)."""
        found = self.rows(
            "SELECT coalesce(j.hostname, 'unassigned'), count(*) FROM task_instance ti "
            "JOIN trigger t ON t.id = ti.trigger_id LEFT JOIN job j ON j.id = t.triggerer_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s GROUP BY 1",
            dag_id,
            run_id,
        )
        return {str(name): int(n) for name, n in found}

    def triggerer_names(self) -> dict[int, str]:
        return {int(i): str(h) for i, h in self.rows("SELECT id, hostname FROM job")}


def configure(dep: Cluster, emulator_url: str, db_url: str, broker_url: str) -> None:
    base.configure_airflow(dep, free_port(), emulator_url)
    for source in sorted(CELERY_DAGS.glob("*.py")):
        shutil.copy(source, dep.dags / source.name)
    dep.env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(E2E_DIR), os.environ.get("PYTHONPATH")])),
        AIRFLOW__CORE__HOSTNAME_CALLABLE="process_name.process_name",
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CORE__PARALLELISM="32",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=db_url,
        AIRFLOW__CELERY__BROKER_URL=broker_url,
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+{db_url}",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=str(HEARTBEAT_TIMEOUT),
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
        # The task supervisor notices that its task finished only at its next heartbeat tick:
        # with the default 5 s, a 0.5 s task holds its worker slot for about 5 s. Set it in the
        # environment to compare (docs/deploying.md).
        AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=os.environ.get(
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "1"
        ),
        AIRFLOW__TRIGGERER__CAPACITY=str(TRIGGERER_CAPACITY),
        AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD=str(TRIGGERER_HEALTH_THRESHOLD),
    )


def start_airflow(dep: Cluster) -> Airflow:
    airflow = base.migrate_and_start_core(dep, " (PostgreSQL)")
    for n in (1, 2):  # each on its own log-server port
        port = str(free_port())
        dep.start(
            f"triggerer-{n}",
            [airflow, "triggerer"],
            env={"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": port},
        )
        dep.start(
            f"worker-{n}",
            [airflow, "celery", "worker", "--concurrency", "2", "-H", f"worker-{n}@%h"],
            env={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())},
        )

    def healthy() -> bool:
        dep.check_alive()
        status, body = http("GET", f"{dep.api_url}/api/v2/monitor/health", timeout=5)
        if status != 200 or not isinstance(body, dict):
            return False
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        if not all((body.get(part) or {}).get("status") == "healthy" for part in parts):
            return False
        return all(
            " ready." in (dep.logs / f"worker-{n}.log").read_text(errors="replace") for n in (1, 2)
        )

    wait_for("every Airflow component and both Celery workers to be ready", healthy, 300, 1)
    api = Airflow(dep.api_url)
    api.login()
    log(f"Airflow (CeleryExecutor) is up at {dep.api_url}")
    return api


def wait_for_dags(dep: Cluster, api: Airflow) -> None:
    wanted = {*EXAMPLES, DEFERRED_DAG, BULK_DAG}

    def parsed() -> bool:
        dep.check_alive()
        errors = api.call("GET", "/importErrors")
        if errors.get("total_entries"):
            raise E2EFailure(f"DAG import errors: {json.dumps(errors['import_errors'], indent=1)}")
        return wanted <= {dag["dag_id"] for dag in api.call("GET", "/dags?limit=100")["dags"]}

    wait_for("the DAG processor to parse every DAG", parsed, 180, 1)


# ---------------------------------------------------------------------- scenarios


@dataclass
class Context:
    dep: Cluster
    api: Airflow
    emulator: Emulator
    db: Database


@dataclass
class Outcome:
    figures: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)


def trigger(api: Airflow, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    run = api.call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
    return str(run["dag_run_id"])


def wait_run(ctx: Context, dag_id: str, run_id: str, timeout: float = TIMEOUT) -> str:
    def finished() -> str | None:
        ctx.dep.check_alive()
        state = ctx.api.run_state(dag_id, run_id)
        return state if state in ("success", "failed") else None

    return str(wait_for(f"{dag_id} run {run_id} to finish", finished, timeout, 2))


def create_jobs(emulator: Emulator, api: str, status: str, count: int) -> list[str]:
    return [
        str(emulator.call("POST", "jobs", {"api": api, "status": status})["id"])
        for _ in range(count)
    ]


def parallel_runs(ctx: Context) -> Outcome:
    out = Outcome()
    runs = [(d, trigger(ctx.api, d)) for d in EXAMPLES for _ in range(RUNS_PER_EXAMPLE)]
    log(f"triggered {len(runs)} example DAG runs at once")
    states = {(d, r): wait_run(ctx, d, r) for d, r in runs}
    log("every run finished; checking runs, tasks and jobs")
    hosts: Counter[str] = Counter()
    job_ids: list[str] = []
    jobs: dict[str, Any] = {}
    for (dag_id, run_id), state in states.items():
        tis = ctx.api.task_instances(dag_id, run_id)
        tasks = {task_id: str(ti["state"]) for task_id, ti in sorted(tis.items())}
        hosts.update(str(ti.get("hostname")) for ti in tis.values() if ti.get("hostname"))
        out.check(state == EXPECTED_RUN[dag_id], f"{dag_id} {run_id}: run ended {state}")
        out.check(tasks == EXPECTED_TASKS[dag_id], f"{dag_id} {run_id}: tasks {tasks}")
        for task_id in SUBMIT_TASKS[dag_id]:
            value = ctx.api.xcom(dag_id, run_id, task_id)
            ids = [value] if isinstance(value, str) else list(value or [])
            job_ids.extend(ids)
            jobs.update(base.settled_jobs(ctx.emulator, dag_id, ids))
    calls = Counter(job["cancel_calls"] if job else "unknown" for job in jobs.values())
    cancelled = sum(1 for job in jobs.values() if job and job["normalized"] == "cancelled")
    out.check(len(set(job_ids)) == len(job_ids), "a job id was submitted twice")
    out.check(cancelled == len(job_ids), f"{len(job_ids) - cancelled} jobs not cancelled")
    out.check(set(calls) == {1}, f"cancel calls per job: {dict(calls)} (expected 1 each)")
    workers = {h: n for h, n in hosts.items() if h.startswith("worker-")}
    out.check(len(workers) == 2, f"tasks ran on {dict(hosts)}, expected both workers")
    ok_runs = sum(1 for (d, _), s in states.items() if s == EXPECTED_RUN[d])
    out.figures += [
        f"{ok_runs}/{len(runs)} runs as expected",
        f"{sum(hosts.values())} task runs ({', '.join(f'{h} {n}' for h, n in sorted(hosts.items()))})",
        f"{cancelled}/{len(job_ids)} jobs cancelled, cancel calls per job {dict(calls)}",
    ]
    return out


def token_lines(dep: Cluster, dag_id: str, run_id: str) -> tuple[Counter[int], int]:
    """WriteText token fetches logged in a run: per triggerer job id, and by worker tasks."""
    folder = dep.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    per_triggerer: Counter[int] = Counter()
    by_tasks = 0
    for path in folder.rglob("*.log*"):
        count = path.read_text(errors="replace").count(TOKEN_LINE)
        match = re.search(r"\.log\.trigger\.(\d+)\.log$", path.name)
        if match:
            per_triggerer[int(match.group(1))] += count
        else:
            by_tasks += count
    return per_triggerer, by_tasks


def deferred_run(ctx: Context, count: int) -> tuple[str, list[str]]:
    """Trigger the deferred DAG over ``count`` WriteText requests held in Cancelling; wait until
    every sensor is deferred on a triggerer."""
    ids = create_jobs(ctx.emulator, "writetext", "Cancelling", count)
    run_id = trigger(ctx.api, DEFERRED_DAG, {"job_ids": ids})
    started = time.monotonic()
    last_report = [started]

    def all_deferred() -> bool:
        ctx.dep.check_alive()
        states = ctx.db.states(DEFERRED_DAG, run_id, "wait_cancelled")
        bad = {s: n for s, n in states.items() if s in ("failed", "upstream_failed", "success")}
        if bad:
            raise E2EFailure(f"sensors left deferral before the flip: {bad}")
        if time.monotonic() - last_report[0] > 30:
            last_report[0] = time.monotonic()
            log(f"  sensors so far: {dict(states)}")
        spread = ctx.db.triggers_per_triggerer(DEFERRED_DAG, run_id)
        return states.get("deferred") == count and "unassigned" not in spread

    wait_for(f"{count} sensors to be deferred on a triggerer", all_deferred, TIMEOUT, 2)
    log(f"{count} sensors deferred in {time.monotonic() - started:.0f}s")
    return run_id, ids


def flip_and_wait(ctx: Context, run_id: str, ids: list[str], out: Outcome) -> tuple[float, float]:
    """Flip every request to Cancelled; returns (seconds until every trigger fired, seconds
    until every sensor succeeded), both counted from the end of the flip."""
    for job_id in ids:
        ctx.emulator.set_status(job_id, "Cancelled")
    flipped = time.monotonic()

    def fired() -> bool:
        ctx.dep.check_alive()
        return ctx.db.states(DEFERRED_DAG, run_id, "wait_cancelled").get("deferred", 0) == 0

    wait_for("every trigger to fire", fired, TIMEOUT, 0.5)
    fire_s = time.monotonic() - flipped
    state = wait_run(ctx, DEFERRED_DAG, run_id)
    done_s = time.monotonic() - flipped
    states = ctx.db.states(DEFERRED_DAG, run_id, "wait_cancelled")
    out.check(state == "success", f"{DEFERRED_DAG} run ended {state}")
    out.check(states == Counter(success=len(ids)), f"sensor states {dict(states)}")
    return fire_s, done_s


def triggers_spread(ctx: Context) -> Outcome:
    out = Outcome()
    tokens_before = ctx.emulator.call("GET", "counters")["token_requests"]
    run_id, ids = deferred_run(ctx, SENSORS)
    spread = ctx.db.triggers_per_triggerer(DEFERRED_DAG, run_id)
    log(f"triggers per triggerer (trigger table): {spread}")
    out.check(
        len(spread) == 2 and all(n > 0 for n in spread.values()),
        f"triggers not on both triggerers: {spread}",
    )
    fire_s, done_s = flip_and_wait(ctx, run_id, ids, out)
    bar = POLL_INTERVAL + 10
    out.check(fire_s <= bar, f"triggers fired {fire_s:.1f}s after the flip (bar {bar}s)")
    jobs = ctx.emulator.jobs()
    calls = Counter(jobs[i]["cancel_calls"] for i in ids)
    out.check(set(calls) == {0}, f"something cancelled the requests: {dict(calls)}")
    per_triggerer, by_tasks = token_lines(ctx.dep, DEFERRED_DAG, run_id)
    names = ctx.db.triggerer_names()
    tokens = {names.get(i, str(i)): n for i, n in sorted(per_triggerer.items())}
    emulator_tokens = ctx.emulator.call("GET", "counters")["token_requests"] - tokens_before
    out.check(
        len(tokens) == 2 and set(tokens.values()) == {1},
        f"token requests per triggerer {tokens} (expected 1 each)",
    )
    out.check(
        emulator_tokens == sum(per_triggerer.values()) + by_tasks,
        f"the emulator counted {emulator_tokens} token requests, the logs "
        f"{sum(per_triggerer.values())} (triggerers) + {by_tasks} (worker tasks)",
    )
    out.figures += [
        f"{SENSORS} sensors on triggerers {spread}",
        f"all fired {fire_s:.1f}s after the flip (bar {bar}s), all succeeded after {done_s:.0f}s",
        f"token requests per triggerer {tokens}; {by_tasks} by worker tasks (one per task "
        f"process); emulator total {emulator_tokens}",
    ]
    return out


def triggerer_killed(ctx: Context) -> Outcome:
    out = Outcome()
    run_id, ids = deferred_run(ctx, KILLED_TRIGGERER_SENSORS)
    spread = ctx.db.triggers_per_triggerer(DEFERRED_DAG, run_id)
    victim = max(spread, key=lambda name: spread[name])
    survivor = "triggerer-2" if victim == "triggerer-1" else "triggerer-1"
    polls = ctx.emulator.call("GET", "counters")["status_requests"]
    wait_for(
        "the triggers to poll on their first triggerers",
        lambda: ctx.emulator.call("GET", "counters")["status_requests"] - polls >= len(ids),
        TIMEOUT,
        1,
    )
    pid = ctx.dep.kill9(victim)
    killed = time.monotonic()
    log(f"kill -9 {victim} (pid {pid} and its trigger runner) while it held {spread[victim]}")

    def moved() -> bool:
        ctx.dep.check_alive()
        now = ctx.db.triggers_per_triggerer(DEFERRED_DAG, run_id)
        return now == {survivor: len(ids)}

    wait_for(f"every trigger to move to {survivor}", moved, TIMEOUT, 1)
    move_s = time.monotonic() - killed
    log(f"all {len(ids)} triggers on {survivor} {move_s:.0f}s after the kill")
    fire_s, done_s = flip_and_wait(ctx, run_id, ids, out)
    jobs = ctx.emulator.jobs()
    calls = Counter(jobs[i]["cancel_calls"] for i in ids)
    out.check(set(calls) == {0}, f"a request was cancelled after the kill: {dict(calls)}")
    out.figures += [
        f"killed {victim} holding {spread[victim]} of {len(ids)} triggers",
        f"all on {survivor} {move_s:.0f}s later (health threshold {TRIGGERER_HEALTH_THRESHOLD}s)",
        f"all fired {fire_s:.1f}s after the flip, succeeded after {done_s:.0f}s",
        f"cancel calls per request {dict(calls)}",
    ]
    return out


def worker_killed(ctx: Context) -> Outcome:
    out = Outcome()
    ids = create_jobs(ctx.emulator, "useapi_v2", "started", BULK_IDS)
    cancels_before = ctx.emulator.call("GET", "counters")["cancel_requests"]
    # Slow every API answer down so that the bulk cancel lasts long enough to be interrupted.
    ctx.emulator.configure(latency=0.2)
    try:
        run_id = trigger(ctx.api, BULK_DAG, {"job_ids": ids})

        def cancelling() -> dict[str, Any] | None:
            ctx.dep.check_alive()
            done = ctx.emulator.call("GET", "counters")["cancel_requests"] - cancels_before
            ti = ctx.api.task_instances(BULK_DAG, run_id).get("cancel_all") or {}
            if ti.get("state") not in (None, "scheduled", "queued", "running"):
                raise E2EFailure(f"cancel_all ended {ti.get('state')} before the kill")
            return ti if done >= 100 and ti.get("state") == "running" else None

        ti = wait_for("the bulk cancel to be under way", cancelling, TIMEOUT, 0.5)
        victim = str(ti["hostname"])
        survivor = "worker-2" if victim == "worker-1" else "worker-1"
        done = ctx.emulator.call("GET", "counters")["cancel_requests"] - cancels_before
        pid = ctx.dep.kill9(victim)
        killed = time.monotonic()
        log(f"kill -9 {victim} (pid {pid} and its children) after {done} of {BULK_IDS} cancels")
        state = wait_run(ctx, BULK_DAG, run_id)
    finally:
        ctx.emulator.configure(latency=0)
    recovered_s = time.monotonic() - killed
    tries = ctx.api.call(
        "GET", f"/dags/{BULK_DAG}/dagRuns/{ctx.api.q(run_id)}/taskInstances/cancel_all/tries"
    )["task_instances"]
    seen = [(t["try_number"], t.get("hostname"), t["state"]) for t in tries]
    log(f"cancel_all tries (try, hostname, state): {seen}")
    out.check(state == "success", f"{BULK_DAG} run ended {state}")
    out.check(
        len(seen) == 2 and seen[0][1] == victim and seen[1][1] == survivor,
        f"expected try 1 on {victim} and try 2 on {survivor}, got {seen}",
    )
    report = ctx.api.xcom(BULK_DAG, run_id, "cancel_all") or {}
    outcomes = Counter(str(entry.get("outcome")) for entry in report.values())
    out.check(set(report) == set(ids), f"the retry's report covers {len(report)} of {len(ids)} ids")
    out.check(
        set(outcomes) <= {"cancelled", "already_finished"},
        f"the retry's report has outcomes {dict(outcomes)}",
    )
    jobs = ctx.emulator.jobs()
    cancelled = sum(1 for i in ids if jobs[i]["normalized"] == "cancelled")
    calls = Counter(jobs[i]["cancel_calls"] for i in ids)
    out.check(cancelled == len(ids), f"{len(ids) - cancelled} jobs not cancelled")
    received, ignored = _received(ctx.dep, survivor, BULK_DAG, "cancel_all")
    out.figures += [
        f"killed {victim} after {done}/{BULK_IDS} cancels",
        f"try 2 on {survivor}, run success {recovered_s:.0f}s after the kill "
        f"(heartbeat timeout {HEARTBEAT_TIMEOUT}s)",
        f"retry report {dict(outcomes)}",
        f"{cancelled}/{len(ids)} cancelled, cancel calls per job {dict(calls)}",
        f"{survivor} took {received} Celery message(s) for cancel_all "
        f"({ignored} ignored as redelivered)",
    ]
    return out


def _received(dep: Cluster, worker: str, dag_id: str, task_id: str) -> tuple[int, int]:
    """Celery messages for a task a worker took, and how many messages it ignored as a
    redelivery of a task already running elsewhere."""
    text = (dep.logs / f"{worker}.log").read_text(errors="replace")
    ours = [
        line
        for line in text.splitlines()
        if "Executing workload" in line and dag_id in line and f"task_id='{task_id}'" in line
    ]
    ignored = text.count("ignoring redelivered message")
    return len(ours), ignored


SCENARIO_FUNCTIONS: dict[str, Callable[[Context], Outcome]] = {
    "parallel-runs": parallel_runs,
    "triggers-spread": triggers_spread,
    "triggerer-killed": triggerer_killed,
    "worker-killed": worker_killed,
}


# ---------------------------------------------------------------------- main


@dataclass
class Result:
    name: str
    ok: bool
    seconds: float
    figures: str


def run_scenarios(ctx: Context, names: list[str], results: list[Result]) -> None:
    for name in names:
        print(f"\n== scenario {name}", flush=True)
        started = time.monotonic()
        try:
            outcome = SCENARIO_FUNCTIONS[name](ctx)
        except E2EFailure as error:
            outcome = Outcome(failures=[str(error)])
        except Exception as error:  # report it and go on with the next scenario
            traceback.print_exc()
            outcome = Outcome(failures=[f"unexpected {type(error).__name__}: {error}"])
        seconds = time.monotonic() - started
        ok = not outcome.failures
        figures = "; ".join(outcome.figures + outcome.failures)
        results.append(Result(name, ok, seconds, figures))
        print(f"scenario {name}: {'ok' if ok else 'FAILED'} — {figures}", flush=True)
        print(f"   wall time {seconds:.0f}s", flush=True)


def main() -> int:
    started = time.monotonic()
    names = [
        n.strip() for n in os.environ.get("E2E_CELERY_SCENARIOS", ",".join(SCENARIOS)).split(",")
    ]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        print(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
        return 2
    root = Path(tempfile.mkdtemp(prefix="apc-e2e-celery-"))
    dep = Cluster(root)
    log(f"deployment folder {root}")
    base.raise_on_sigterm()
    results: list[Result] = []
    setup: list[str] = []
    db: Database | None = None
    try:
        start_postgres(dep)
        broker = start_redis(dep)
        emulator_url = base.start_emulator(dep)
        configure(dep, emulator_url, dep.db_url, broker)
        api = start_airflow(dep)
        wait_for_dags(dep, api)
        db = Database(dep.pg_port)
        results.append(Result("setup", True, time.monotonic() - started, "deployment up"))
        run_scenarios(Context(dep, api, Emulator(emulator_url), db), names, results)
    except (E2EFailure, KeyboardInterrupt) as error:
        setup.append(f"{type(error).__name__}: {error}")
    except Exception as error:
        setup.append(f"unexpected {type(error).__name__}: {error}")
        traceback.print_exc()
    finally:
        log("stopping every process started here")
        if db is not None:
            db.conn.close()
        dep.stop_all()
    elapsed = time.monotonic() - started
    failed = bool(setup) or not all(r.ok for r in results) or len(results) < len(names) + 1

    print("\nsummary (make e2e-celery)")
    print(f"  {'scenario':<18} {'result':<7} {'seconds':>7}")
    for r in results:
        print(f"  {r.name:<18} {'ok' if r.ok else 'FAILED':<7} {r.seconds:>7.0f}")
    print(f"  {'total':<18} {'FAILED' if failed else 'ok':<7} {elapsed:>7.0f}")
    for problem in setup:
        print(f"  {problem}")
    keep = failed or os.environ.get("E2E_KEEP_LOGS")
    if keep:
        print(f"All process, task and trigger logs: {base.collect_logs(dep)}")
    shutil.rmtree(root, ignore_errors=True)
    if dep.pg_folder is not None:
        shutil.rmtree(dep.pg_folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
