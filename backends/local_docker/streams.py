"""The attach stream of a step container: its frames, and secret values masked in its output.

The engine multiplexes a container's stdout and stderr on one connection in frames (8 bytes of
header: the stream, three zero bytes, the payload's size) when the container has no terminal.
The step's output goes to its log with every secret value replaced (`Masker`), whatever the
chunks the frames cut it into.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

from pipec.backends.runner.secrets import MASK


class Masker:
    """Replaces secret values in a byte stream, whatever the chunks: the output is the same as
    for the whole stream at once (at every position the longest secret that starts there is
    masked), and no secret is left whole in it."""

    def __init__(self, secrets: Sequence[str]) -> None:
        values = sorted({s.encode() for s in secrets if s}, key=len, reverse=True)
        # Alternatives are tried in order at each position: the longest secret there wins.
        self.pattern = re.compile(b"|".join(re.escape(v) for v in values)) if values else None
        self.keep = max((len(v) for v in values), default=1) - 1
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        """What can be written of `data` now (a tail that may start a secret is held back)."""
        if self.pattern is None:
            return data
        self.pending += data
        return self._scan(len(self.pending) - self.keep)

    def finish(self) -> bytes:
        """The rest, at the end of the stream."""
        return self._scan(len(self.pending)) if self.pattern is not None else b""

    def _scan(self, stop: int) -> bytes:
        """Mask and emit the pending bytes before `stop`; a secret that starts before it is
        whole in `pending` (it holds `keep` bytes more), and is masked whole."""
        assert self.pattern is not None
        out = bytearray()
        position = 0
        for found in self.pattern.finditer(self.pending):
            if found.start() >= stop:
                break
            out += self.pending[position : found.start()] + MASK.encode()
            position = found.end()
        if position < stop:
            out += self.pending[position:stop]
            position = stop
        self.pending = self.pending[position:]
        return bytes(out)


def frames(stream: Any) -> Iterator[bytes]:
    """The payloads of the attach stream's frames (stdout and stderr, in arrival order)."""
    sock = raw(stream)
    while True:
        header = read_exactly(sock, 8)
        if len(header) < 8:
            return
        size = int.from_bytes(header[4:8], "big")
        payload = read_exactly(sock, size)
        if payload:
            yield payload
        if len(payload) < size:
            return


def read_exactly(sock: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def raw(stream: Any) -> Any:
    """The socket under the SDK's attach stream (a `socket.SocketIO` on a local engine)."""
    return getattr(stream, "_sock", stream)
