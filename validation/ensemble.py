"""Run the networks of an ensemble: in this process, on a local process pool, or on Dask.

Each network is one task, a dict of :func:`~kernelphase.validation.langevin.langevin_run`
keyword arguments carrying its own seed key and checkpoint path, so the numbers do not depend on
where or in which order the tasks run. Locally the tasks go to a
:class:`concurrent.futures.ProcessPoolExecutor` (spawned workers, one numba thread each); with
``scheduler=ADDRESS`` to a ``dask.distributed`` cluster (the optional extra ``cluster``), whose
workers must see the same file system for checkpoints. No distribution layer of our own.
"""
import os

__all__ = ["connect", "run_ensemble", "local_cores"]


def local_cores():
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def connect(address, timeout=5.0):
    """A ``dask.distributed.Client`` for ``address``; a one-line ValueError if it cannot be had."""
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
    """Run every task (``langevin_run`` keyword dicts) and return the results in task order.

    Parameters
    ----------
    scheduler : None, an address string or a ``dask.distributed.Client``.
    workers : local processes (default: one per core; 1 runs in this process, where the fused
        kernel uses every core).
    progress : tqdm bar over the Langevin steps of all networks (None: only on a terminal);
        updated as the steps are taken, locally, and per finished network on Dask.
    """
    from kernelphase.progress import progress as _bar
    tasks = list(tasks)
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
        futures = {pool.submit(_run_task, t): i for i, t in enumerate(tasks)}
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
        futures = client.map(_run_task, tasks, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(tasks)
        for fut in as_completed(futures):
            out[index[fut.key]] = fut.result()
            bar.update(tasks[index[fut.key]]["steps"])
        return out
    finally:
        if isinstance(scheduler, str):
            client.close()
