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


def _init_worker(threads, parent):
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


def _run_task(task):
    from .langevin import langevin_run
    return langevin_run(**task)


def run_ensemble(tasks, scheduler=None, workers=None, progress=None, desc="networks"):
    """Run every task (``langevin_run`` keyword dicts) and return the results in task order.

    Parameters
    ----------
    scheduler : None, an address string or a ``dask.distributed.Client``.
    workers : local processes (default: one per core; 1 runs in this process, where the fused
        kernel uses every core).
    progress : tqdm bar over finished networks (None: only on a terminal).
    """
    from kernelphase.progress import progress as _bar
    tasks = list(tasks)
    bar = _bar(total=len(tasks), desc=desc, enabled=progress)
    try:
        if scheduler is not None:
            return _run_dask(tasks, scheduler, bar)
        cores = local_cores()
        workers = min(len(tasks), cores if workers is None else int(workers))
        if workers <= 1:
            out = []
            for t in tasks:
                out.append(_run_task(t))
                bar.update(1)
            return out
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed
        out = [None] * len(tasks)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker,
                                 initargs=(max(1, cores // workers), os.getpid())) as pool:
            futures = {pool.submit(_run_task, t): i for i, t in enumerate(tasks)}
            for fut in as_completed(futures):
                out[futures[fut]] = fut.result()
                bar.update(1)
        return out
    finally:
        bar.close()


def _run_dask(tasks, scheduler, bar):
    from dask.distributed import as_completed
    client = connect(scheduler) if isinstance(scheduler, str) else scheduler
    try:
        futures = client.map(_run_task, tasks, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        out = [None] * len(tasks)
        for fut in as_completed(futures):
            out[index[fut.key]] = fut.result()
            bar.update(1)
        return out
    finally:
        if isinstance(scheduler, str):
            client.close()
