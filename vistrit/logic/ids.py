"""Task and node ids as people read them: the first 8 hex digits, and prefixes back to ids.

A UUID has 32 hex digits; logs and tables print its first 8 (:func:`short`), and every
command that takes an id takes any unique prefix of it (:func:`match_prefix`), with or
without its dashes, so an id copied from a log works.

This module never touches sockets, clocks or logging. Read next: :mod:`vistrit.logic.tasks`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

#: How many hex digits of an id are printed.
SHORT = 8

#: The fewest hex digits a prefix may have (fewer would match too much by chance).
MIN_PREFIX = 4


def short(node_or_task_id: uuid.UUID) -> str:
    """The first :data:`SHORT` hex digits of an id, as logs and tables print it."""
    return node_or_task_id.hex[:SHORT]


def prefix_of(text: str) -> str | None:
    """*text* as a lower-case hex prefix without dashes, or None if it is not one."""
    digits = text.strip().lower().replace("-", "")
    if len(digits) < MIN_PREFIX or len(digits) > 32:
        return None
    return digits if all(c in "0123456789abcdef" for c in digits) else None


def match_prefix(prefix: str, ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """The ids among *ids* that start with the hex *prefix* (see :func:`prefix_of`)."""
    return sorted({i for i in ids if i.hex.startswith(prefix)}, key=str)


__all__ = ["MIN_PREFIX", "SHORT", "match_prefix", "prefix_of", "short"]
