"""Run the networks of an ensemble: in this process, on a local process pool, or on Dask.

Each network is one task, a dict of :func:`~kernelphase.validation.langevin.langevin_run`
keyword arguments carrying its own seed key and checkpoint ``(run_dir, name)``, so the numbers do
not depend on where or in which order the tasks run. The run folder's lock
(:class:`kernelphase.io.RunDir`) stays with the calling process; workers get an unlocked view of
the same folder and write their networks' state files through it. Locally the tasks go to a
:class:`concurrent.futures.ProcessPoolExecutor` (spawned workers, one numba thread each); with
``scheduler=ADDRESS`` to a ``dask.distributed`` cluster (the optional extra ``cluster``), whose
workers must see the same file system for checkpoints. No distribution layer of our own.
"""
import os

__all__ = ["connect", "run_ensemble", "local_cores", "worker_view", "concurrent_tasks",
           "check_memory", "MEMORY_LIMIT", "network_status", "report_status", "ensemble_means"]


def _detail(message):
    """``message`` without its leading status text."""
    return message.split(": ", 1)[1] if ": " in message else message


def ensemble_means(results):
    """Per-network posterior means of a cell's accumulators: (sample counts, test outputs
    (one row per network), the train output averaged over networks, the Phi histogram summed
    over networks of per-network frequencies).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace as NS
    >>> from kernelphase.validation.ensemble import ensemble_means
    >>> acc = lambda c, f: {"count": c, "f_test": c * np.array(f), "f_train": c * np.array(f),
    ...                     "hist": c * np.array([1.0, 0.0])}
    >>> cnt, f_nets, f_train, hist = ensemble_means([NS(acc=acc(10, [1.0])), NS(acc=acc(5, [3.0]))])
    >>> cnt.tolist(), f_nets.tolist(), f_train.tolist(), hist.tolist()
    ([10, 5], [[1.0], [3.0]], [2.0], [2.0, 0.0])
    """
    import numpy as np
    cnt = np.array([r.acc["count"] for r in results])
    f_nets = np.array([r.acc["f_test"] / c for r, c in zip(results, cnt)])
    f_train = np.mean([r.acc["f_train"] / c for r, c in zip(results, cnt)], 0)
    hist = np.sum([r.acc["hist"] / c for r, c in zip(results, cnt)], 0)
    return cnt, f_nets, f_train, hist


def network_status(results):
    """Indices of the networks of one cell that can be averaged (status 0, at least one
    sample), and the cell's ``status``/``message`` (6 with ``diverged_networks`` when a
    network diverged).

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> from kernelphase.validation.ensemble import network_status
    >>> ok = NS(status=0, message="converged", acc={"count": 10})
    >>> bad = NS(status=6, message="run diverged: NaN at step 5", acc={"count": 0})
    >>> network_status([ok, ok])
    ([0, 1], {'status': 0, 'message': 'converged'})
    >>> idx, cell = network_status([ok, bad, ok])
    >>> idx, cell["status"], cell["diverged_networks"]
    ([0, 2], 6, [1])
    """
    from kernelphase.results import status_message
    ok = [i for i, r in enumerate(results) if r.status == 0 and r.acc.get("count", 0) > 0]
    bad = [i for i, r in enumerate(results) if r.status != 0]
    if not bad:
        return ok, {"status": 0, "message": status_message(0)}
    first = _detail(results[bad[0]].message)
    return ok, {"status": 6, "message": status_message(
        6, f"networks {bad} of {len(results)} diverged; first: {first}"),
        "diverged_networks": bad}


def report_status(rows):
    """Status and detail of a report from its rows: 6 (a network diverged) before 7 (a
    learning curve too short to measure, in ``row["grokking"]``) before 0.

    Examples
    --------
    >>> from kernelphase.validation.ensemble import report_status
    >>> report_status([{"sigma2": 0.3, "status": 0}, {"sigma2": 0.1, "status": 0}])
    (0, None)
    >>> report_status([{"sigma2": 0.3, "status": 6, "message": "run diverged: NaN"}])[0]
    6
    """
    for code in (6, 7):
        bad, first = [], None
        for r in rows:
            g = r.get("grokking")
            msg = (r["message"] if r.get("status") == code else
                   g.message if g is not None and g.status == code else None)
            if msg is not None:
                bad.append(r)
                first = first or msg
        if bad:
            where = ", ".join(f"N={r['width']} sigma2={r['sigma2']:g}" if "width" in r
                              else f"sigma2={r['sigma2']:g}" for r in bad)
            return code, f"{len(bad)} of {len(rows)} rows ({where}); first: {_detail(first)}"
    return 0, None

#: largest memory estimate (bytes) that a run may need before it is refused
MEMORY_LIMIT = 8 * 2 ** 30


def concurrent_tasks(n_tasks, workers=None, scheduler=None):
    """How many tasks run at once in this machine's memory: one per local worker process
    (default one per core), or one per Dask worker (counted per worker) with a scheduler.

    Examples
    --------
    >>> from kernelphase.validation.ensemble import concurrent_tasks
    >>> concurrent_tasks(8, workers=1), concurrent_tasks(1, workers=2)
    (1, 1)
    """
    if scheduler is not None:
        return 1
    return max(1, min(int(n_tasks), local_cores() if workers is None else int(workers)))


def check_memory(nbytes, what, limit=None):
    """Refuse a run whose memory estimate ``nbytes`` exceeds ``limit`` (default
    :data:`MEMORY_LIMIT`) with a one-line ValueError: ``the run needs X GiB ...``.

    Examples
    --------
    >>> from kernelphase.validation.ensemble import check_memory
    >>> check_memory(2**20, "one network")
    1048576
    >>> check_memory(2**40, "a huge ensemble")
    Traceback (most recent call last):
        ...
    ValueError: the run needs ...
    """
    limit = MEMORY_LIMIT if limit is None else limit
    if nbytes > limit:
        raise ValueError(f"the run needs {nbytes / 2 ** 30:.3g} GiB of memory ({what}), above "
                         f"the limit of {limit / 2 ** 30:g} GiB; lower the sizes, --nets or "
                         f"--workers")
    return nbytes


def worker_view(run_dir):
    """An unlocked, picklable :class:`~kernelphase.io.RunDir` on the same folder, key and
    resume flag, for worker processes (the caller keeps the lock).

    Examples
    --------
    >>> from kernelphase.io import RunDir
    >>> from kernelphase.validation.ensemble import worker_view
    >>> with RunDir("run", {"seed": 0}) as rd:
    ...     view = worker_view(rd)
    ...     view.path == rd.path, view.key == rd.key
    (True, True)
    """
    from kernelphase.io import RunDir
    return RunDir(run_dir.path, run_dir.key, resume=run_dir.resume, option=run_dir.option)


def _portable(task):
    """``task`` with its checkpoint's run folder replaced by :func:`worker_view`."""
    ck = task.get("checkpoint")
    return task if ck is None else dict(task, checkpoint=(worker_view(ck[0]), ck[1]))


def local_cores():
    """Cores this process may use.

    Examples
    --------
    >>> from kernelphase.validation.ensemble import local_cores
    >>> local_cores() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def connect(address, timeout=5.0):
    """A ``dask.distributed.Client`` for ``address``; a one-line ValueError if it cannot be had.

    Examples
    --------
    >>> from kernelphase.validation.ensemble import connect
    >>> connect("tcp://127.0.0.1:9", timeout=0.2)   # no scheduler there
    Traceback (most recent call last):
        ...
    ValueError: ...
    """
    try:
        from dask.distributed import Client
    except ImportError:
        raise ValueError(f"scheduler={address!r} needs dask.distributed: "
                         "pip install 'kernelphase[cluster]'") from None
    try:
        return Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise ValueError(f"scheduler={address!r} is unreachable within {timeout:g} s "
                         f"({reason[:120]})") from None


#: upper bound of ``workers`` (local processes)
_MAX_WORKERS = 4096

_STEPS = None          # a worker's shared step counter (multiprocessing.Value), set at start


class _StepCounter:
    """``bar``-like object for ``langevin_run`` in a pool worker: adds finished steps to the
    shared counter that the parent's progress bar reads, in batches to keep the lock cold."""

    def __init__(self, shared, batch=200):
        self.shared, self.batch, self.pending = shared, batch, 0

    def update(self, k=1):
        self.pending += k
        if self.pending >= self.batch:
            self.flush()

    def flush(self):
        with self.shared.get_lock():
            self.shared.value += self.pending
        self.pending = 0


def _init_worker(threads, parent, steps=None):
    """Give each local worker its share of the cores, for numba and for BLAS alike, and end it
    when its parent dies (a killed run must not leave workers writing its checkpoints while it
    is resumed)."""
    import threading
    import time

    import numba
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(threads)
    threadpool_limits(threads)              # for the worker's lifetime

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()
    global _STEPS
    _STEPS = steps


def _run_task(task):
    from .langevin import langevin_run
    if _STEPS is None:
        return langevin_run(**task)
    counter = _StepCounter(_STEPS)
    try:
        return langevin_run(**task, bar=counter)
    finally:
        counter.flush()


def run_ensemble(tasks, scheduler=None, workers=None, progress=None, desc="Langevin steps"):
    """Run every task (``langevin_run`` keyword dicts) and return their
    :class:`~kernelphase.validation.langevin.LangevinState` results in task order.

    Parameters
    ----------
    scheduler : None, an address string or a ``dask.distributed.Client``.
    workers : local processes, an integer >= 1 (default: one per core; 1 runs in this process,
        where the fused kernel uses every core).
    progress : tqdm bar over the Langevin steps of all networks (None: only on a terminal);
        updated as the steps are taken, locally, and per finished network on Dask.

    Examples
    --------
    >>> from kernelphase.validation.ensemble import run_ensemble
    >>> run_ensemble([], workers=1, progress=False)    # tasks are langevin_run keyword dicts
    []
    >>> run_ensemble([], workers=0)
    Traceback (most recent call last):
        ...
    ValueError: workers=0 is outside the valid range ...
    """
    from kernelphase.progress import progress as _bar
    tasks = list(tasks)
    if workers is not None:
        from kernelphase._checks import check_int
        workers = check_int("workers", workers, 1, _MAX_WORKERS)
    bar = _bar(total=sum(t["steps"] for t in tasks), desc=desc, enabled=progress)
    try:
        if scheduler is not None:
            return _run_dask(tasks, scheduler, bar)
        cores = local_cores()
        workers = min(len(tasks), cores if workers is None else int(workers))
        if workers <= 1:
            from .langevin import langevin_run
            return [langevin_run(**t, bar=bar) for t in tasks]
        return _run_pool(tasks, workers, cores, bar)
    finally:
        bar.close()


def _run_pool(tasks, workers, cores, bar):
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    ctx = multiprocessing.get_context("spawn")
    steps = ctx.Value("q", 0)
    out = [None] * len(tasks)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(max(1, cores // workers), os.getpid(), steps)) as pool:
        futures = {pool.submit(_run_task, _portable(t)): i for i, t in enumerate(tasks)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                out[futures[fut]] = fut.result()
            bar.update(steps.value - bar.n)
    return out


def _run_dask(tasks, scheduler, bar):
    from dask.distributed import as_completed
    client = connect(scheduler) if isinstance(scheduler, str) else scheduler
    try:
        futures = client.map(_run_task, [_portable(t) for t in tasks], pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(tasks)
        for fut in as_completed(futures):
            out[index[fut.key]] = fut.result()
            bar.update(tasks[index[fut.key]]["steps"])
        return out
    finally:
        if isinstance(scheduler, str):
            client.close()
