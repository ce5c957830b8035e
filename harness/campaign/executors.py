"""Executors: fly a list of planned runs somewhere and yield their records as they finish.

* ``LocalExecutor``: a pebble ProcessPool on this machine's cores (forkserver context). pebble
  gives each task its own wall timeout and tells a task whose worker died (os._exit, segfault,
  OOM kill) from the others, killing and replacing only that worker; concurrent.futures'
  ProcessPoolExecutor can do neither (a dead worker breaks the whole pool, a running task cannot
  be stopped).
* ``DaskExecutor``: a dask.distributed cluster (``tcp://HOST:8786``) or any ``Client``. The wall
  timeout is kept on the worker (a task's runs fly in a thread; on timeout the task returns an error
  record and the campaign restarts that worker through its nanny, which ends the stuck thread).
  A worker that dies mid-run is retried by the scheduler up to its ``allowed-failures`` and then
  reported as KilledWorker: recorded as a crash.

Every record is a dict from ``worker.fly_one`` or ``worker.error_record``; nothing is raised for
a bad run.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import operator
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Iterable, Iterator

from harness.campaign.worker import error_record, fly_one, warm_up


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


class LocalExecutor:
    name = "local"

    def __init__(self, workers: int | None = None, start_method: str = "forkserver", rig: str = "loopback"):
        from pebble import ProcessPool

        self.workers = workers or _cpu_count()
        ctx = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            ctx.set_forkserver_preload(["harness.campaign.worker", "harness.runner", "numpy"])
        self.pool = ProcessPool(max_workers=self.workers, initializer=warm_up_quietly, initargs=(rig,), context=ctx)

    def describe(self) -> str:
        return f"local process pool, {self.workers} workers"

    def run(self, tasks: Iterable[dict], timeout_s: float, fn=None) -> Iterator[dict]:
        """Fly ``tasks`` with ``fn(task) -> record`` (a module-level function, default
        ``worker.fly_one``), taken from the iterable lazily: at most two per worker are queued, so a
        campaign claims a run from its database only shortly before flying it."""
        from pebble import ProcessExpired

        it = iter(tasks)
        futures = {}

        def submit() -> None:
            t = next(it, None)
            if t is not None:
                futures[self.pool.schedule(fn or fly_one, args=(t,), timeout=timeout_s)] = (t["run_id"], time.perf_counter())

        for _ in range(2 * self.workers):
            submit()
        while futures:
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for f in done:
                rid, _t0 = futures.pop(f)
                try:
                    yield f.result()
                except TimeoutError:
                    yield error_record(rid, "wall timeout", f"run {rid} was still flying after the per-run wall "
                                       f"timeout of {timeout_s:g} s (hung flight code or harness); its worker "
                                       f"process was killed and replaced", timeout_s)
                except ProcessExpired as exc:
                    yield error_record(rid, "worker crashed", f"the worker process (pid {exc.pid}) died with exit "
                                       f"code {exc.exitcode} while flying run {rid}: {exc}")
                except Exception as exc:  # noqa: BLE001 - pickling trouble, pool trouble: still a record
                    yield error_record(rid, type(exc).__name__, f"{type(exc).__name__}: {exc}")
                submit()

    def close(self, cancel: bool = False) -> None:
        if cancel:
            self.pool.stop()
        else:
            self.pool.close()
        self.pool.join(timeout=10)
        if cancel or self.pool.active:
            self.pool.stop()
            self.pool.join(timeout=5)


CHUNK_S = 1.0  # a Dask task flies runs for about this long (scheduler, client and worker: a few ms per task)
CHUNK_MAX = 32


def chunk_runs(mean_run_s: float | None, runs_left: int, threads: int, chunk_s: float = CHUNK_S) -> int:
    """How many runs the next Dask task flies: one until a run's time is known (``mean_run_s``,
    wall seconds), then about ``chunk_s`` of flying, at most CHUNK_MAX runs; and when the number of
    runs not yet handed out is known (``runs_left`` > 0), at most their share among the two
    tasks per thread kept submitted (guided self-scheduling: the tasks shrink as the campaign
    ends, so the workers finish within a run or two of each other instead of one idling through
    another's last full chunk)."""
    if mean_run_s is None:
        return 1
    k = max(1, min(CHUNK_MAX, int(chunk_s / max(mean_run_s, 1e-6))))
    if runs_left > 0:
        k = min(k, -(-runs_left // (2 * max(1, threads))))
    return k


def fly_chunk_guarded(tasks: list[dict], timeout_s: float, fn=None) -> tuple[list[dict], list[dict]]:
    """Dask task: fly ``tasks`` one after the other in one thread, each run under its own wall
    timeout of ``timeout_s`` (``fn(task) -> record``, default ``worker.fly_one``). Returns (records,
    runs not flown): after a timeout the worker is restarted (the record says so, naming the worker),
    so the runs after it come back unflown, to be flown elsewhere.

    The runs follow each other in the flight thread with no hand-over between them; this thread
    only wakes when the run in the air reaches its timeout (a thread per run, or a wake-up per run,
    costs a few milliseconds between runs on a busy machine: ~2 % of a 0.1 s descent)."""
    fly = fn or fly_one
    out: list[dict] = []
    now = [0, time.perf_counter()]  # the run in the air (index into tasks) and when it took off
    stop = threading.Event()  # set after a timeout: the flight thread starts no further run

    def flight() -> None:
        for i, t in enumerate(tasks):
            if stop.is_set():
                return
            now[:] = [i, time.perf_counter()]
            out.append(fly(t))

    th = threading.Thread(target=flight, daemon=True, name=f"fsil-runs-{tasks[0]['run_id']}" if tasks else "fsil-runs")
    th.start()
    while True:
        i, t0 = now
        th.join(max(0.0, t0 + timeout_s - time.perf_counter()))
        if not th.is_alive():
            return list(out), []
        if now == [i, t0] and len(out) == i:  # still the same run, past its timeout
            break
    stop.set()
    try:
        from distributed import get_worker

        addr = get_worker().address
    except Exception:  # noqa: BLE001 - not on a Dask worker (called directly)
        addr = ""
    rid = tasks[i]["run_id"]
    rec = error_record(rid, "wall timeout", f"run {rid} was still flying after the per-run wall timeout of "
                       f"{timeout_s:g} s on Dask worker {addr} (hung flight code or harness); that worker was "
                       f"restarted", time.perf_counter() - t0, addr)
    rec["restart_worker"] = addr
    return out[:i] + [rec], tasks[i + 1:]


class DaskExecutor:
    name = "dask"

    def __init__(self, scheduler: str | None = None, client=None, *, chunk_s: float = CHUNK_S, rig: str = "loopback"):
        from distributed import Client

        self.chunk_s = chunk_s
        self._restarts = []  # [start, end or None, thread] of each worker restart this executor asked for
        self.own_client = client is None
        if client is None and isinstance(scheduler, str):
            from distributed.comm import get_address_host_port, parse_address

            if parse_address(scheduler)[0] != "inproc":
                # a malformed address is refused here, naming it, before a Client starts its event
                # loop: a Client that fails in its start leaves distributed's shared loop runner
                # half started, and the next Client in this process then fails an assertion
                get_address_host_port(scheduler)
        self.client = client or Client(scheduler, timeout=30)
        self.address = self.client.scheduler.address
        try:  # load the flight code and the compiled kernels on every worker before the first run
            self.client.run(warm_up_quietly, rig)
        except Exception:  # noqa: BLE001 - a worker without fsil: each run's record names the cause
            pass

    @property
    def workers(self) -> int:
        return sum(self.client.nthreads().values())

    def describe(self) -> str:
        return f"dask cluster {self.address}, {len(self.client.nthreads())} workers, {self.workers} threads"

    def run(self, tasks: Iterable[dict], timeout_s: float, fn=None) -> Iterator[dict]:
        """Fly ``tasks`` on the cluster, several runs per Dask task once runs are short (so a task
        lasts about CHUNK_S and the scheduler's per-task cost stays a few per cent; fewer as the
        runs left run out, when ``tasks`` tells how many through ``__length_hint__``:
        :func:`chunk_runs`), one run per task at first, for runs lost with a worker and for a run
        after a timeout. A window of two tasks per thread is kept submitted: each worker has the
        next task at hand when one ends."""
        from distributed import as_completed

        threads = max(1, self.workers)
        window = 2 * threads
        it = iter(tasks)
        ids = {}
        retry = []  # runs to fly alone: lost with a dead worker, or not flown after a timeout in their chunk
        timing = [0.0, 0]  # wall seconds and runs back so far: the chunk size follows the runs' length
        submitted = {}  # key -> monotonic time of submission

        alone = [None]  # the key of a retried run in flight: it flies alone on the cluster

        def submit():
            if alone[0] is not None:
                return None
            if retry:
                # A run lost with a worker flies again alone on the whole cluster, so a bystander
                # queued on the same worker as a run that kills it is never lost (and blamed) twice.
                # It waits for the worker restarts this campaign asked for (after a wall timeout):
                # a restart landing on it would kill it a second time and blame it.
                if ids:
                    return None
                self._wait_restarts()
                chunk = [retry.pop()]
            else:
                k = chunk_runs(timing[0] / timing[1] if timing[1] else None, operator.length_hint(it, 0), threads,
                               self.chunk_s)
                chunk = [t for t in (next(it, None) for _ in range(k)) if t is not None]
            if not chunk:
                return None
            f = self.client.submit(fly_chunk_guarded, chunk, timeout_s, fn, pure=False,
                                   key=f"fsil-run-{chunk[0]['run_id']}-{os.getpid()}-{time.monotonic_ns()}")
            ids[f.key] = chunk
            submitted[f.key] = time.monotonic()
            if chunk[0].get("_lost_once"):
                alone[0] = f.key
            return f

        first = [f for f in (submit() for _ in range(window)) if f is not None]
        ac = as_completed(first)
        try:
            for f in ac:
                chunk = ids.pop(f.key)
                t_submit = submitted.pop(f.key)
                if alone[0] == f.key:
                    alone[0] = None
                try:
                    recs, unflown = f.result()
                except Exception as exc:  # noqa: BLE001
                    kind = type(exc).__name__
                    recs, unflown = [], []
                    # A worker this campaign restarted (after a wall timeout) takes the runs queued on it
                    # down too: such a loss is not the run's doing and does not count against it.
                    ours = self._restarted_since(t_submit)
                    for task in chunk:
                        rid = task["run_id"]
                        if kind == "KilledWorker" and ours:
                            retry.append(task)
                        elif kind == "KilledWorker" and not task.get("_lost_once"):
                            # A dead worker takes every run it holds with it, not only the one that killed
                            # it: fly each such run once more, alone; the culprit kills its next worker too.
                            retry.append({**task, "_lost_once": True})
                        elif kind == "KilledWorker":
                            recs.append(error_record(rid, "worker crashed", f"Dask workers died twice while "
                                                     f"flying run {rid} (KilledWorker: {exc})"))
                        else:
                            recs.append(error_record(rid, kind, f"{kind}: {exc}"))
                f.release()
                retry.extend(unflown)
                for rec in recs:
                    addr = rec.pop("restart_worker", None)
                    if addr:  # end the stuck thread: its worker restarts through its nanny (in the background)
                        th = threading.Thread(target=self._restart, args=(addr, len(self._restarts)), daemon=True)
                        self._restarts.append([time.monotonic(), None, th])
                        th.start()
                    elif rec.get("status") == "done" and (rec.get("wall_s") or 0.0) > 0.0:
                        timing[0] += float(rec["wall_s"])
                        timing[1] += 1
                    yield rec
                while len(ids) < window:  # keep the window full
                    nxt = submit()
                    if nxt is None:
                        break
                    ac.add(nxt)
        finally:
            left = list(getattr(ac, "futures", ()))
            if left:
                try:
                    self.client.cancel(left, force=True)
                except Exception:  # noqa: BLE001 - closing anyway
                    pass

    def _restart(self, addr: str, i: int) -> None:
        try:
            self.client.restart_workers([addr], timeout=60, raise_for_error=False)
        except Exception:  # noqa: BLE001 - the run's record already names the cause
            pass
        finally:
            self._restarts[i][1] = time.monotonic()

    def _restarted_since(self, t: float) -> bool:
        """Whether a worker restart of this campaign was in progress at any time after ``t``."""
        return any(end is None or end >= t for _start, end, _th in self._restarts)

    def _wait_restarts(self) -> None:
        for _start, _end, th in self._restarts:
            th.join(75)

    def close(self, cancel: bool = False) -> None:
        if self.own_client:
            self.client.close()


#: The dask configuration of a cluster that flies campaigns, as environment variables of the
#: ``dask scheduler`` and ``dask worker`` processes (``dask_cli_cluster`` sets them; docs/campaigns.md
#: "Executors" gives them, and the same as a YAML file, to a cluster user). Each keeps the workers'
#: cores on the descents; none changes a result. Measured on 2 cores, M2 mix (docs/performance.md):
#: an idle cluster's processes take 10 ms of CPU a second with them, 51-65 ms with dask's defaults.
DASK_CLUSTER_ENV = {
    # the statistical profiler samples the running task every 10 ms and takes the GIL from the
    # descent it watches: ~6 % of the throughput (Dask at 88 % of the local executor with it, 94 % without)
    "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False",
    # the allocator as in the local pool's workers (glibc's defaults): the nanny's default
    # MALLOC_TRIM_THRESHOLD_=65536 hands the memory a run freed back to the kernel, and the next run
    # faults it in again, page by page: ~600 page faults and ~2 ms of kernel time per M2 run (7 locally)
    "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": "{'MALLOC_TRIM_THRESHOLD_': None}",
    # every scheduler, nanny and worker wakes its event loop every 20 ms to see whether it is blocked
    # (warning past 3 s): 50 wake-ups a second each, and in a worker each one takes the GIL from the
    # descent; once a second still sees a blocked loop
    "DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL": "1s",
    # host and process statistics (psutil: CPU, memory, network, disk) every 500 ms in each process,
    # and the memory monitor of each worker and nanny (pause at 80 %, restart at 95 %) every 100 ms
    "DASK_DISTRIBUTED__ADMIN__SYSTEM_MONITOR__INTERVAL": "2s",
    "DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL": "1s",
}


def dask_command() -> str:
    """The ``dask`` command of this Python environment (next to the interpreter), else on PATH."""
    import shutil
    import sys
    from pathlib import Path

    here = Path(sys.executable).parent / "dask"
    found = str(here) if here.exists() else shutil.which("dask")
    if not found:
        raise RuntimeError("the dask command is not installed (pip install 'dask[distributed]')")
    return found


@contextlib.contextmanager
def dask_cli_cluster(n_workers: int = 2, *, threads: int = 1, env: dict | None = None, timeout_s: float = 120.0,
                     folder=None):
    """A Dask cluster on loopback TCP started as a cluster user starts one: a ``dask scheduler``
    process and a ``dask worker`` process (``--nworkers n_workers --nthreads threads``, each
    worker under its nanny), with ``env`` (e.g. PYTHONPATH so the workers import fsil) and, unless
    ``env`` sets them, the settings of ``DASK_CLUSTER_ENV``. Yields the scheduler address once every
    worker has joined; stops both processes afterwards."""
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    from distributed import Client

    dask = dask_command()
    env = {**(os.environ if env is None else env)}
    if "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON" not in env:
        # glibc reads MALLOC_TRIM_THRESHOLD_ from the environment the workers inherit, and a process
        # that ran a nanny itself (a LocalCluster) has the nanny's 65536 there: the nanny writes it
        # into its own process's environment before it spawns a worker
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
    for k, v in DASK_CLUSTER_ENV.items():  # what docs/campaigns.md asks a cluster user to set; env may override
        env.setdefault(k, v)
    tmp = Path(folder or tempfile.mkdtemp(prefix="fsil-dask-"))
    tmp.mkdir(parents=True, exist_ok=True)
    sched_file = tmp / "scheduler.json"
    sched_file.unlink(missing_ok=True)
    procs = []
    logs = []

    def start(args, name):
        log = open(tmp / f"{name}.log", "wb")
        logs.append(log)
        procs.append(subprocess.Popen([dask, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True))

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
               str(sched_file)], "scheduler")
        deadline = time.monotonic() + timeout_s
        address = None
        while address is None:
            if procs[0].poll() is not None:
                raise RuntimeError(f"dask scheduler exited ({procs[0].returncode}); see {tmp / 'scheduler.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dask scheduler did not start within {timeout_s:g} s; see {tmp}")
            try:
                import json

                address = json.loads(sched_file.read_text())["address"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.1)
        start(["worker", address, "--nworkers", str(n_workers), "--nthreads", str(threads), "--host", "127.0.0.1",
               "--no-dashboard", "--name", "fsil"], "worker")
        with Client(address, timeout=timeout_s) as client:
            client.wait_for_workers(n_workers, timeout=timeout_s)
        yield address
    finally:
        for p in reversed(procs):  # workers first (their nannies end their worker processes), then the scheduler
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)
        for log in logs:
            log.close()


def make_executor(workers: int | None = None, scheduler: str | None = None, rig: str = "loopback"):
    """The executor of a campaign: Dask on ``scheduler``, else a local pool of ``workers``; each
    worker warms up ``rig`` (the campaign's) before its first run."""
    if scheduler:
        try:
            return DaskExecutor(scheduler, rig=rig)
        except (OSError, ValueError) as exc:  # no scheduler there (a time-out is an OSError), not an address
            from harness.errors import ConfigError

            raise ConfigError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler ({exc}); allowed: the "
                              f"address of a running scheduler, tcp://HOST:PORT") from None
    return LocalExecutor(workers, rig=rig)


def warm_up_quietly(rig: str = "loopback") -> None:
    """A worker's warm-up: a rig that does not come up here is not fatal to the worker; each
    run's record names the cause (fly_one warms up again, inside its error handling)."""
    try:
        warm_up(rig)
    except Exception:  # noqa: BLE001 - reported by every run that needs it
        pass
