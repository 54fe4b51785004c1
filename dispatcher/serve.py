"""``python -m dispatcher serve``: a web dashboard of the job folders (dispatcher/web/), for render servers.

Needs the optional ``web`` extra (Starlette on uvicorn); the rest of the dispatcher imports without it,
and this module only imports them when the server starts.
"""

from __future__ import annotations

import os
import socket
import sys

from .spec import SpecError

EXTRA_HINT = "the web dashboard needs the 'web' extra: pip install 'gpu-render-farm[web]' (Starlette and uvicorn)"


def add_arguments(parser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, this machine)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--token-file", help="read the access token from this file (created, mode 0600, if missing)")
    parser.add_argument("--jobs-dir", help="folder of job folders (default: the one the CLI uses)")


def _require_framework() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise SpecError(EXTRA_HINT) from None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise SpecError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.listen(128)
    return sock


def main(args) -> int:
    """Start the dashboard; prints the URL with its token, then serves until Ctrl+C."""
    _require_framework()
    import uvicorn

    from . import jobs
    from .web.app import create_app
    from .web.auth import is_loopback, load_token

    if not 0 <= args.port <= 65535:
        raise SpecError(f"port must be 0-65535, not {args.port}")
    root = jobs.make_private_dir(os.path.abspath(args.jobs_dir or jobs.default_jobs_root()))
    token = load_token(args.token_file)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"dashboard: http://{shown}:{port}/?token={token}", flush=True)
    print(f"  jobs: {root}", flush=True)
    if not is_loopback(args.host):
        print("  note: plain HTTP; every request needs the token. Prefer an SSH tunnel on untrusted networks.",
              flush=True)  # fmt: skip
    app = create_app(root, token)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("dashboard stopped", file=sys.stderr)
    return 0
