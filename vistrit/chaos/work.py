"""The work a chaos run gives its workers (``--tasks vistrit.chaos.work``).

``digest`` takes ``LABEL|MILLISECONDS``: it works for that long (at most
:data:`MAX_MILLISECONDS`), so that faults find tasks running, then returns the SHA-256 of
its whole input in hex. The answer depends on the input alone, so the checker knows the
right one (:func:`expected`) and can tell a wrong or a changed result.

Read next: :mod:`vistrit.chaos.checker`.
"""

from __future__ import annotations

import hashlib
import time

from vistrit.worker.functions import TaskContext, task

#: The longest a ``digest`` task works.
MAX_MILLISECONDS = 5000

#: The name workers know it by.
DIGEST = "digest"


def expected(data: str) -> str:
    """What ``digest`` returns for *data*."""
    return hashlib.sha256(data.encode()).hexdigest()


@task(name=DIGEST)
def digest(data: bytes, ctx: TaskContext) -> str:
    """Work for the milliseconds after the ``|`` (stopping early if cancelled), then
    return the SHA-256 of the input."""
    _, _, milliseconds = data.decode("utf-8", "replace").rpartition("|")
    wait = min(int(milliseconds), MAX_MILLISECONDS) / 1000 if milliseconds.isdigit() else 0.0
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not ctx.cancelled:
        time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return hashlib.sha256(data).hexdigest()
