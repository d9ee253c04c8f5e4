"""All of Vistrit's socket code: framed, blocking TCP connections and the threaded server.

* :mod:`vistrit.transport.connection` - :class:`Connection`, one framed, blocking TCP
  connection (send from any thread, receive on one, every wait bounded), and
  :func:`connect`;
* :mod:`vistrit.transport.server` - :class:`FrameServer`, the threaded server: a thread
  per connection, limits on how many, and a stop that leaves nothing behind;
* :mod:`vistrit.transport.tls` - optional, mutual TLS around the same blocking sockets.

Nothing else in Vistrit imports ``socket``. Read first: :mod:`vistrit.transport.connection`.
"""

from vistrit.transport.connection import (
    Connection,
    ConnectionClosed,
    PeerTimeout,
    connect,
    resolve,
)
from vistrit.transport.server import FrameServer
from vistrit.transport.tls import TLSConfig, TLSError

__all__ = [
    "Connection",
    "ConnectionClosed",
    "FrameServer",
    "PeerTimeout",
    "TLSConfig",
    "TLSError",
    "connect",
    "resolve",
]
