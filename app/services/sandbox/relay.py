"""The first process INSIDE a sandbox that has endpoints: loopback ports bridged to service sockets.

Run as `python -I -S relay.py PORT=SOCKET [PORT=SOCKET ...] -- COMMAND...` (stdlib only, no site).
It listens on 127.0.0.1:PORT in the sandbox's own network namespace (which has nothing but `lo`),
copies each accepted connection byte for byte to the Unix socket SOCKET (bound into the sandbox by
the service), starts COMMAND with the inherited stdio, environment and cwd, forwards SIGTERM/SIGINT/
SIGHUP to it, and exits with its status. Its exit ends the sandbox's PID namespace, and with it
everything COMMAND left behind. This file is read by the sandbox; it imports nothing of the service.
"""

import os
import signal
import socket
import sys
import threading

_CHUNK = 65536


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(_CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _bridge(conn: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        conn.close()
        upstream.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
    back.start()
    _pump(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def _serve(listener: socket.socket, path: str) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_bridge, args=(conn, path), daemon=True).start()


def main(args: list[str]) -> int:
    if "--" not in args:
        sys.stderr.write("relay: usage: relay.py PORT=SOCKET ... -- COMMAND...\n")
        return 2
    sep = args.index("--")
    command = args[sep + 1:]
    for mapping in args[:sep]:
        port, _, path = mapping.partition("=")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", int(port)))
        listener.listen(64)
        threading.Thread(target=_serve, args=(listener, path), daemon=True).start()
    # fork+exec rather than subprocess: the relay's own start-up is paid on every CLI call.
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)  # noqa: S606 - argv from the service, no shell
        except OSError as exc:
            sys.stderr.write(f"relay: cannot run {command[:1]}: {exc}\n")
        os._exit(127)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: os.kill(pid, signum))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
