"""Credentials: the secrets a node proves it holds, read from a token file.

A token file is text, one credential per line, ``ROLE SECRET``:

.. code-block:: text

    # Vistrit credentials. Keep this file private (mode 0600).
    coordinator 9f1c...   (64 hex digits: 32 random bytes)
    worker      47aa...
    client      c02e...

``ROLE`` is ``coordinator``, ``worker``, ``client``, or ``all`` (one secret for every
role: what a coordinator generates when it finds no file, so that a cluster on one
machine works at once). A coordinator needs the secret of every role it admits; a worker
or a client needs only its own, so an operator can hand a client's line to a user without
giving away the right to run a worker or a coordinator.

Where the file is: ``--token-file PATH``, else the environment variable
``VISTRIT_TOKEN_FILE``, else ``~/.vistrit/token``. A coordinator that finds no file
creates one (random, mode 0600, in a folder of mode 0700) and logs where; other nodes on
the same machine then find it. For a node on another machine, copy the file (or the
lines it needs) there.

Read next: :mod:`vistrit.transport`.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from vistrit.logic.auth import MIN_SECRET_BYTES, ROLES, role_for
from vistrit.protocol.types import NodeType

log = logging.getLogger(__name__)

#: The environment variable naming the token file.
ENVIRONMENT = "VISTRIT_TOKEN_FILE"

#: The role that stands for every role in a token file.
ALL = "all"

#: How many random bytes a generated secret has.
GENERATED_BYTES = 32

#: The most bytes a token file may have: a few lines, never a large file read by mistake.
MAX_FILE_BYTES = 64 * 1024


class CredentialsError(Exception):
    """The token file is missing, unreadable or malformed; the message says which and why."""


def default_path() -> Path:
    """Where the token file is when no ``--token-file`` is given."""
    from_environment = os.environ.get(ENVIRONMENT)
    if from_environment:
        return Path(from_environment).expanduser()
    return Path.home() / ".vistrit" / "token"


@dataclass(frozen=True)
class Credentials:
    """Secrets by role, and the file they came from."""

    secrets: dict[str, bytes]
    path: Path | None = None

    def own(self, kind: NodeType) -> tuple[str, bytes]:
        """The role and secret a node of *kind* presents; CredentialsError if it has none
        that may join as *kind*."""
        role = role_for(kind, self.secrets)
        if role is None:
            where = f" in {self.path}" if self.path else ""
            raise CredentialsError(
                f"no credential{where} may join as a {kind.name.lower()} "
                f"(it holds: {', '.join(sorted(self.secrets)) or 'nothing'})"
            )
        return role, self.secrets[role]

    @classmethod
    def parse(cls, text: str, path: Path | None = None) -> Credentials:
        """Read a token file's text; CredentialsError naming the line if it is malformed."""
        where = str(path) if path else "the token file"
        found: dict[str, bytes] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            if len(words) != 2:
                raise CredentialsError(f"{where}, line {number}: expected 'ROLE SECRET'")
            role, hex_secret = words
            if role != ALL and role not in ROLES:
                choices = ", ".join((*ROLES, ALL))
                raise CredentialsError(f"{where}, line {number}: unknown role {role!r} ({choices})")
            try:
                secret = bytes.fromhex(hex_secret)
            except ValueError:
                raise CredentialsError(f"{where}, line {number}: the secret is not hex") from None
            if len(secret) < MIN_SECRET_BYTES:
                raise CredentialsError(
                    f"{where}, line {number}: the secret has {len(secret)} bytes; "
                    f"at least {MIN_SECRET_BYTES} are needed"
                )
            for each in ROLES if role == ALL else (role,):
                if each in found:
                    raise CredentialsError(f"{where}, line {number}: a second secret for {each}")
                found[each] = secret
        if not found:
            raise CredentialsError(f"{where}: no credential in it")
        return cls(found, path)

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """Read the token file at *path*; CredentialsError if it is missing or malformed.
        A file that others may read is used, with a warning."""
        try:
            info = path.stat()
            if info.st_size > MAX_FILE_BYTES:
                raise CredentialsError(
                    f"{path}: {info.st_size} bytes is too large for a token file"
                )
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CredentialsError(
                f"no token file at {path}: copy the coordinator's (or give --token-file)"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsError(f"cannot read the token file {path}: {exc}") from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("%s can be read by other users; chmod 600 it", path)
        return cls.parse(text, path)

    @classmethod
    def create(cls, path: Path) -> Credentials:
        """Write a new token file at *path* with one random secret for every role (mode
        0600; never over an existing file)."""
        secret = secrets.token_bytes(GENERATED_BYTES)
        text = (
            "# Vistrit credentials: 'ROLE SECRET' per line (see vistrit.credentials).\n"
            "# Keep this file private; copy it to the machines of the cluster.\n"
            f"{ALL} {secret.hex()}\n"
        )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written whole under a name of its own, then linked into place: a coordinator
        # starting at the same moment sees no file, or the whole file, never half of one.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.link(temporary, path)  # FileExistsError if another was first
        finally:
            temporary.unlink()
        return cls.parse(text, path)

    @classmethod
    def load_or_create(cls, path: Path) -> Credentials:
        """What a coordinator does: read the token file, or create it if there is none."""
        if path.exists():
            return cls.load(path)
        try:
            created = cls.create(path)
        except FileExistsError:  # another coordinator created it meanwhile: whole, linked
            return cls.load(path)
        except OSError as exc:
            raise CredentialsError(f"cannot create the token file {path}: {exc}") from None
        log.warning("created the token file %s; copy it to the other machines", path)
        return created


__all__ = ["ALL", "ENVIRONMENT", "Credentials", "CredentialsError", "default_path"]
