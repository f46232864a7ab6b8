"""Zero-copy relaying of blob bodies from the upstream socket to the client socket.

Copying a large blob through Python (aiohttp reads, ASGI messages, transport writes) costs about
half of the registry's own throughput on a 2-core machine. `os.splice` moves the bytes between the
two sockets through a kernel pipe instead, so the relay runs near the speed of the registry.

This needs plain TCP on both sides (TLS is terminated in front of the gate, and the upstream is
reached over HTTP) and an ASGI server that exposes the client socket. `SpliceHttpProtocol` is
uvicorn's httptools protocol with one addition: every request scope gets the extension
`regward.splice`, an async callable `splice(source_fd, count)` that writes `count` body bytes from
`source_fd` to the client and accounts for them as if they had been sent with
`http.response.body`. When the extension is missing, the gate relays through Python.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import select
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)

SPLICE_EXTENSION = "regward.splice"
PIPE_SIZE = 1024 * 1024
"""Requested size of the kernel pipe between the sockets; Linux may grant less."""
STALL_TIMEOUT_MS = 30_000
"""A relay that moves no byte for this long is aborted, like the client's read timeout."""
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)

# Each relay occupies a thread while it runs; the threads spend their time in splice() and poll(),
# which release the GIL.
_EXECUTOR = ThreadPoolExecutor(max_workers=64, thread_name_prefix="regward-splice")

Splice = Callable[[int, int], Awaitable[None]]


class SpliceError(OSError):
    """The relay stopped before `count` bytes were moved."""


def splice_available() -> bool:
    """Tell whether this platform has os.splice (Linux, Python 3.10+)."""
    return hasattr(os, "splice")


def _wait(fd: int, events: int) -> None:
    poller = select.poll()
    poller.register(fd, events | select.POLLERR | select.POLLHUP)
    ready = poller.poll(STALL_TIMEOUT_MS)
    if not ready:
        raise SpliceError(f"relay stalled for {STALL_TIMEOUT_MS} ms")


def splice_exactly(source_fd: int, target_fd: int, count: int) -> None:
    """Move exactly `count` bytes from `source_fd` to `target_fd` through a pipe (blocking)."""
    read_end, write_end = os.pipe()
    try:
        try:
            fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass  # The default pipe size (64 KiB) still works, only with more system calls.
        remaining = count
        while remaining > 0:
            try:
                moved = os.splice(source_fd, write_end, min(remaining, PIPE_SIZE), flags=_FLAGS)
            except BlockingIOError:
                _wait(source_fd, select.POLLIN)
                continue
            if moved == 0:
                raise SpliceError(f"upstream closed the connection with {remaining} bytes left")
            in_pipe = moved
            while in_pipe > 0:
                try:
                    written = os.splice(read_end, target_fd, in_pipe, flags=_FLAGS)
                except BlockingIOError:
                    _wait(target_fd, select.POLLOUT)
                    continue
                in_pipe -= written
            remaining -= moved
    finally:
        os.close(read_end)
        os.close(write_end)


def _make_splice(protocol: HttpToolsProtocol, cycle: Any) -> Splice:
    async def splice(source_fd: int, count: int) -> None:
        transport = protocol.transport
        if cycle.flow.write_paused:
            await cycle.flow.drain()
        # Bytes the transport still buffers (the status line and headers) must reach the socket
        # before the spliced body does.
        for _ in range(1000):
            if transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.001)
        else:
            raise SpliceError("client socket did not drain the response headers")
        client_socket = transport.get_extra_info("socket")
        if client_socket is None:
            raise SpliceError("client socket is not available")
        # Duplicated descriptors keep both event loops' registrations untouched.
        source = os.dup(source_fd)
        target = os.dup(client_socket.fileno())
        try:
            await asyncio.get_running_loop().run_in_executor(
                _EXECUTOR, splice_exactly, source, target, count
            )
        finally:
            os.close(source)
            os.close(target)
        cycle.expected_content_length -= count

    return splice


class SpliceHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that offers `regward.splice` to the application."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle: Any = self.cycle
        # Spliced bytes would bypass TLS, so the extension exists only on plain TCP listeners.
        if cycle is not None and splice_available() and not self.config.is_ssl:
            extensions: dict[str, Any] = cycle.scope.setdefault("extensions", {})
            extensions[SPLICE_EXTENSION] = _make_splice(self, cycle)
