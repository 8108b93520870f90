"""Matrix transport package (matrix-nio, end-to-end encrypted).

``bot.transports.matrix_store`` (SQLCipher store) and ``bot.transports.matrix_crosssign``
(device cross-signing) stay separate modules; this package composes them.
"""

from __future__ import annotations

from bot.transports.matrix.transport import MatrixError, MatrixTransport

__all__ = ["MatrixError", "MatrixTransport"]
