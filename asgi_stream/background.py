"""Work that runs after the response is over.

A background task is the last thing a response does, in the same ASGI call,
after its final ``http.response.body`` has been sent (or after it learnt that
the client is gone). The server keeps the connection's task alive until the
call returns, so the work is neither lost nor run twice.

**When it runs.** Always, however the response ended:

* the body completed;
* the client disconnected mid-stream;
* the generator raised (the task runs, then the error is raised to the server).

Starlette skips the task when the generator raises. We do not: the usual
background task is cleanup (close a connection, delete a temporary file,
record the outcome), and cleanup is most needed exactly when something failed.

Sync functions run in the thread pool of :mod:`asgi_stream.concurrency`, so a
slow cleanup never blocks other connections. An exception from a task
propagates to the server, which logs it; tasks after it in a
:class:`BackgroundTasks` do not run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .concurrency import is_async_callable, run_in_threadpool

__all__ = ["BackgroundTask", "BackgroundTasks"]


class BackgroundTask:
    """``func(*args, **kwargs)``, sync or async, to be run after the response."""

    def __init__(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.is_async = is_async_callable(func)

    async def __call__(self) -> None:
        if self.is_async:
            await self.func(*self.args, **self.kwargs)
        else:
            await run_in_threadpool(self.func, *self.args, **self.kwargs)


class BackgroundTasks:
    """Several tasks, run one after another in the order they were added.

    A response takes it wherever it takes a :class:`BackgroundTask`.
    """

    def __init__(self, tasks: list[BackgroundTask] | None = None) -> None:
        self.tasks = list(tasks or [])

    def add_task(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    async def __call__(self) -> None:
        for task in self.tasks:
            await task()
