"""Matrix transport package (matrix-nio, end-to-end encrypted).

One public class, :class:`MatrixTransport` (``transport.py``), wires small modules:
connection (login, device, store), receiving (sync loop), sending, rendering, rooms and
their membership, media, and the crypto store and cross-signing (``crypto_store.py``,
``crosssign.py``). See ``transport.py`` for the map.
"""

from __future__ import annotations

from bot.transports.matrix.common import MatrixError
from bot.transports.matrix.transport import MatrixTransport

__all__ = ["MatrixError", "MatrixTransport"]
