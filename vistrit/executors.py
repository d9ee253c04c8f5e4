"""A ``concurrent.futures.Executor`` on a Vistrit cluster, and one string to choose a backend.

::

    import vistrit
    import mytasks

    with vistrit.executor("vistrit://localhost:7878") as pool:   # or "local://4", "dask://..."
        areas = list(pool.map(mytasks.area, [1, 2, 3], [4, 5, 6]))  # [4, 10, 18]

:class:`VistritExecutor` sends each call as a v4 ``Call`` task (its function by import
path, its arguments as typed values), so the workers must be started with ``--tasks``
naming the function's module. Its futures keep the whole ``Future`` contract:
``running()`` is true only while a worker runs the task (the coordinator says so),
``cancel()`` is false once it runs, callbacks run once, and ``set_running_or_notify_cancel``
is what marks it running.

:func:`executor` makes the executor a URL names, so that a script moves from a laptop to
a cluster, or to Dask, by changing one string:

* ``vistrit://HOST:PORT[,HOST:PORT...]`` - a :class:`VistritExecutor`;
* ``local://N`` - a ``concurrent.futures.ProcessPoolExecutor`` of N processes (N
  omitted: one per core);
* ``dask://HOST:PORT`` - Dask's own executor (``distributed.Client(...).get_executor()``),
  where Dask is installed.

Read next: :mod:`vistrit.cli`.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vistrit import defaults
from vistrit.client import VistritClient
from vistrit.results import TaskFuture
from vistrit.submission import path_of, payload_of
from vistrit.worker.calls import MAP_SUFFIX


class ExecutorFuture(TaskFuture):
    """A task's future with ``concurrent.futures`` semantics: once the task runs, it
    cannot be cancelled (``cancel()`` is false), as with a process pool."""

    def cancel(self) -> bool:
        """Cancel the task if it has not started; False once it runs or has finished."""
        if self.done() or self.running():
            return self.cancelled()
        return super().cancel()

    def _on_running(self) -> None:
        self.set_running_or_notify_cancel()


class VistritExecutor(concurrent.futures.Executor):
    """An Executor whose calls run on a Vistrit cluster (see the module docstring).

    *retries*, *timeout*, *priority* and *tags* apply to every task it submits; other
    keywords go to its :class:`~vistrit.client.VistritClient` (``credentials``, ``tls``,
    ...). Pass *client* to use one you already have (it is not closed at shutdown)."""

    def __init__(
        self,
        coordinators: str = defaults.COORDINATOR,
        *,
        retries: int = 0,
        timeout: float = 0,
        priority: str = "normal",
        tags: Iterable[str] = (),
        client: VistritClient | None = None,
        **client_options: Any,
    ) -> None:
        self._own_client = client is None
        self.client = client or VistritClient(coordinators, **client_options)
        self._options: dict[str, Any] = dict(retries=retries, timeout=timeout)
        self._options.update(priority=priority, tags=tuple(tags))
        self._lock = threading.Lock()
        self._futures: set[TaskFuture] = set()  # not done yet: for shutdown
        self._shutdown = False

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> TaskFuture:
        """Run ``fn(*args, **kwargs)`` on a worker; its future, at once."""
        return self._call(fn, args, kwargs)

    def _call(self, fn: Callable[..., Any] | str, args: Any, kwargs: dict[str, Any]) -> TaskFuture:
        return self._calls(fn, [args], kwargs)[0]

    def _calls(
        self, fn: Callable[..., Any] | str, calls: list[Any], kwargs: dict[str, Any]
    ) -> list[TaskFuture]:
        """A task for each of *calls* (its positional arguments), each with *kwargs*: sent
        to a v4 coordinator in batches (one frame for up to 1,000 calls), as ``map`` does."""
        if isinstance(fn, str) and ":" not in fn:
            raise ValueError(f"an Executor calls a function or its 'module:name', not {fn!r}")
        entries = [payload_of(fn, args, kwargs) for args in calls]
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            futures = self.client.submit_all(entries, dict(self._options), ExecutorFuture)
            self._futures.update(futures)
        for future in futures:
            future.add_done_callback(self._forget)
        return futures

    def _forget(self, future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            self._futures.discard(future)

    def map(
        self,
        fn: Callable[..., Any],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[Any]:
        """``fn`` over the items of *iterables*, in order, as ``Executor.map``: every task
        is submitted now, in batches to a v4 coordinator; *timeout* counts from now. With
        *chunksize* above 1, each task calls ``fn`` on that many items (fewer round trips
        for small calls)."""
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        end = None if timeout is None else time.monotonic() + timeout
        if chunksize == 1:
            futures = self._calls(fn, list(zip(*iterables)), {})
        else:
            path, items = path_of(fn) + MAP_SUFFIX, iter(zip(*iterables))
            chunks = iter(lambda: list(itertools.islice(items, chunksize)), [])
            futures = self._calls(path, [(chunk,) for chunk in chunks], {})
        return _results(futures, end, chunked=chunksize > 1)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new tasks; with *cancel_futures*, cancel those not started; with *wait*,
        wait for the rest to finish. Closes the client it made."""
        with self._lock:
            self._shutdown = True
            futures = list(self._futures)
        if cancel_futures:
            for future in futures:
                future.cancel()
        if wait:
            concurrent.futures.wait(futures)
        if self._own_client:
            self.client.close()


def _results(futures: list[TaskFuture], end: float | None, chunked: bool) -> Iterator[Any]:
    """The futures' results in order (each a list of results, if *chunked*), waiting at
    most until *end*; what is left is cancelled if the caller stops early."""
    futures.reverse()
    try:
        while futures:
            left = None if end is None else end - time.monotonic()
            value = futures.pop().result(left)
            if chunked:
                yield from value
            else:
                yield value
    finally:
        for future in futures:
            future.cancel()


def executor(url: str, **options: Any) -> concurrent.futures.Executor:
    """The executor *url* names (see the module docstring); *options* go to it."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not an executor URL (vistrit://, local:// or dask://): {url!r}")
    if scheme == "vistrit":
        return VistritExecutor(rest or defaults.COORDINATOR, **options)
    if scheme == "local":
        if rest and not rest.isdigit():
            raise ValueError(f"local:// takes a number of processes, not {rest!r}")
        return concurrent.futures.ProcessPoolExecutor(int(rest) if rest else None, **options)
    if scheme == "dask":
        try:
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise ValueError("dask:// needs Dask: pip install 'dask[distributed]'") from None
        client = distributed.Client(f"tcp://{rest}", **options)
        return _DaskExecutor(client)
    raise ValueError(f"unknown executor scheme {scheme!r}: use vistrit://, local:// or dask://")


class _DaskExecutor(concurrent.futures.Executor):
    """Dask's executor, closing its client at shutdown (Dask's own leaves it open)."""

    def __init__(self, client: Any) -> None:
        self.dask = client
        self.inner = client.get_executor()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Dask's ``submit``."""
        return self.inner.submit(fn, *args, **kwargs)

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], timeout: float | None = None,
            chunksize: int = 1) -> Iterator[Any]:  # fmt: skip
        """Dask's ``map`` (which takes no chunksize)."""
        return self.inner.map(fn, *iterables, timeout=timeout)  # type: ignore[no-any-return]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Dask's ``shutdown`` (which cannot cancel), then the client is closed."""
        self.inner.shutdown(wait=wait)
        self.dask.close()


__all__ = ["ExecutorFuture", "VistritExecutor", "executor"]
