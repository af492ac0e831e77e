"""A Unix-socket server on its own thread and event loop (shared by the model and egress proxies).

Callers live on several loops (FastAPI's, DBOS's worker threads), so the server must not borrow any
of them: `start()` spawns a thread that owns a fresh loop, binds the socket there and returns once it
accepts connections (or re-raises the bind error); `close()` stops serving, drops the connections
still open, runs the subclass's teardown on that loop, joins the thread and removes the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import threading
from pathlib import Path

log = logging.getLogger(__name__)

READ_CHUNK = 65536
_STOP_GRACE_SEC = 10.0

# Headers of one hop, never forwarded by either proxy (RFC 9110 §7.6.1, plus the legacy ones).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

class UnixSocketServer:
    """Subclasses implement `_serve_connection` and may override `_setup`/`_teardown` (run on the
    server's loop: create/close clients there)."""

    thread_name = "unix-socket-server"

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)
        self._lifecycle = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._start_error: BaseException | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.connections_accepted = 0  # since construction (tests and diagnostics)

    # ----- lifecycle (any thread) -----
    def start(self) -> None:
        with self._lifecycle:
            if self._thread is not None:
                return
            self._prepare_path()
            ready = threading.Event()
            self._start_error = None
            thread = threading.Thread(target=self._run, args=(ready,), name=self.thread_name, daemon=True)
            thread.start()
            ready.wait()
            if self._start_error is not None:
                thread.join()
                error, self._start_error = self._start_error, None
                raise error
            self._thread = thread

    def close(self) -> None:
        with self._lifecycle:
            thread, loop, stop = self._thread, self._loop, self._stop
            if thread is not None and loop is not None and stop is not None:
                with contextlib.suppress(RuntimeError):  # loop already gone
                    loop.call_soon_threadsafe(stop.set)
                thread.join(_STOP_GRACE_SEC + 5)
            self._thread = None
            self._remove_socket()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def __enter__(self) -> UnixSocketServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- hooks (server loop) -----
    async def _setup(self) -> None:
        return None

    async def _teardown(self) -> None:
        return None

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    # ----- internals -----
    def _prepare_path(self) -> None:
        """Remove a stale socket left by a crashed process; refuse a live one or a non-socket."""
        try:
            mode = os.lstat(self.socket_path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(f"{self.socket_path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.socket_path))
        except OSError:
            self._remove_socket()  # nobody listens: stale
            return
        finally:
            probe.close()
        raise OSError(f"{self.socket_path} is in use by another server")

    def _remove_socket(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.lstat(self.socket_path).st_mode):
                os.unlink(self.socket_path)

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(ready))
        except BaseException as exc:  # reported to start() or logged, never lost
            if not ready.is_set():
                self._start_error = exc
            else:
                log.exception("unix_socket_server_crashed", extra={"server": self.thread_name})
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    async def _main(self, ready: threading.Event) -> None:
        self._stop = asyncio.Event()
        await self._setup()
        try:
            server = await asyncio.start_unix_server(self._accept, path=str(self.socket_path))
        except BaseException:
            await self._teardown()
            raise
        try:
            os.chmod(self.socket_path, 0o600)
            ready.set()
            await self._stop.wait()
        finally:
            server.close()
            for task in list(self._connections):
                task.cancel()
            if self._connections:
                await asyncio.wait(list(self._connections), timeout=_STOP_GRACE_SEC)
            await self._teardown()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.connections_accepted += 1
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # close() dropping the connection. Not re-raised: asyncio's stream callback would
            # report a cancelled connection task as an error ("Exception in callback ...").
            pass
        except Exception:
            log.exception("unix_socket_connection_failed", extra={"server": self.thread_name})
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
