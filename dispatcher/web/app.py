"""The dashboard's Starlette application: a page, a JSON API, frames, thumbnails, timelines, buttons."""

from __future__ import annotations

import asyncio
import contextlib
import os

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import jobs
from ..spec import SpecError
from . import auth, data, files
from .gpus import DeviceHistory

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip
CACHED = {"Cache-Control": "private, max-age=60"}  # thumbnails and timelines (a timeline URL changes with its content)


class TokenGuard:
    """ASGI middleware: the token on every request, the origin on every POST, safe headers on answers."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        headers = dict(request.headers)
        query = dict(request.query_params)
        given = auth.request_token(headers, request.cookies, query)
        response: Response | None = None
        if not auth.token_matches(self.token, given):
            response = PlainTextResponse(
                "401: this dashboard needs its token: open the URL that `python -m dispatcher serve` printed\n",
                status_code=401, headers={"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        elif request.method not in ("GET", "HEAD") and not auth.same_origin(headers, request.url.scheme):
            response = PlainTextResponse("403: cross-origin request refused\n", status_code=403)
        elif request.method == "GET" and "token" in query and request.url.path == "/":
            redirect = RedirectResponse("/", status_code=303)  # keep the token out of the address bar
            redirect.set_cookie(auth.COOKIE, self.token, httponly=True, samesite="strict", path="/")
            response = redirect
        if response is not None:
            await response(scope, receive, _with_headers(send))
            return
        await self.app(scope, receive, _with_headers(send))


def _with_headers(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", [])) + SECURITY_HEADERS
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


class Dashboard:
    """The request handlers, over the job folders under ``root``."""

    def __init__(self, root: str, history: DeviceHistory):
        self.root = root
        self.history = history

    def job_dir(self, request: Request) -> str:
        job_dir = data.job_path(self.root, request.path_params["job"])
        if job_dir is None:
            raise _NotFound()
        return job_dir

    async def index(self, request: Request):
        return FileResponse(os.path.join(STATIC, "index.html"), media_type="text/html")

    async def state(self, request: Request):
        offset = _int(request.query_params.get("offset"), 0)
        limit = _int(request.query_params.get("limit"), data.PAGE_SIZE)
        page = await run_in_threadpool(data.list_jobs, self.root, offset, limit)
        return JSONResponse({**page, "devices": self.history.to_dict(), "jobs_root": self.root})

    async def job(self, request: Request):
        summary = await run_in_threadpool(data.job_summary, self.root, request.path_params["job"], True)
        return JSONResponse(summary) if summary else _not_found()

    async def cancel(self, request: Request):
        job_dir = self.job_dir(request)
        stopped = await run_in_threadpool(jobs.cancel_job, job_dir, 15.0)
        return JSONResponse({"job": os.path.basename(job_dir), "stopped": stopped})

    async def resume(self, request: Request):
        job_dir = self.job_dir(request)
        try:
            pid = await run_in_threadpool(jobs.resume_job, job_dir)
        except SpecError as error:
            return JSONResponse({"error": str(error)}, status_code=409)
        return JSONResponse({"job": os.path.basename(job_dir), "pid": pid})

    async def output_file(self, request: Request):
        path = await run_in_threadpool(_output_path, request, self.job_dir(request))
        return FileResponse(path, media_type=files.media_type(path)) if path else _not_found()

    async def thumb(self, request: Request):
        path = await run_in_threadpool(_output_path, request, self.job_dir(request))
        image = await run_in_threadpool(files.thumbnail, path) if path else None
        return Response(image, media_type="image/jpeg", headers=CACHED) if image else _not_found()

    async def timeline(self, request: Request):
        image = await run_in_threadpool(files.timeline_png, self.job_dir(request))
        return Response(image, media_type="image/png", headers=CACHED) if image else _not_found()


def create_app(jobs_root: str, token: str, history: DeviceHistory | None = None, sample: bool = True):
    """The ASGI application for the job folders under jobs_root, behind the token guard."""
    history = history or DeviceHistory()
    board = Dashboard(jobs_root, history)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        task = asyncio.create_task(_sample_forever(history)) if sample else None
        yield
        if task:
            task.cancel()

    routes = [
        Route("/", board.index),
        Route("/api/state", board.state),
        Route("/api/jobs/{job}", board.job),
        Route("/api/jobs/{job}/cancel", board.cancel, methods=["POST"]),
        Route("/api/jobs/{job}/resume", board.resume, methods=["POST"]),
        Route("/files/{job}/{path:path}", board.output_file),
        Route("/thumbs/{job}/{path:path}", board.thumb),
        Route("/timeline/{job}.png", board.timeline),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={_NotFound: lambda r, e: _not_found()})
    return TokenGuard(app, token)


class _NotFound(Exception):
    """A job or file that does not exist or may not be served: 404, saying no more."""


def _not_found() -> Response:
    return PlainTextResponse("404: not found\n", status_code=404)


def _output_path(request: Request, job_dir: str) -> str | None:
    try:
        spec = jobs.load_spec(job_dir)
    except (SpecError, OSError, ValueError, TypeError):
        return None
    return files.safe_output_file(spec.output_dir, request.path_params["path"])


def _int(value, default: int) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return default


async def _sample_forever(history: DeviceHistory) -> None:
    while True:
        with contextlib.suppress(Exception):  # a flaky NVML must not end the sampling
            await run_in_threadpool(history.sample)
        await asyncio.sleep(history.interval)
