"""The explorer's web application (Starlette): JSON API, event streams and the static page.

Routes (all JSON unless noted; every error is ``{"error": message}`` with a 4xx/5xx status,
never a stack trace):

==========================================  =================================================
``GET /``                                   the page (HTML); ``?token=`` sets the cookie
``GET /static/{name}``                      the page's JS/CSS (shipped in the package)
``GET /api/info``                           subjects, folders, limits
``GET /api/subjects/{name}``                a subject, its inputs and the method catalogue
``GET /api/subjects/{name}/inputs/{i}``     one input's preview and the model's prediction
``POST /api/subjects/{name}/inputs``        add inputs: raw ``.npy``/``.csv``/image body with
                                            ``?filename=``, or JSON ``{"text_a", "text_b"}``
``POST /api/jobs``                          start explain / compare / components / training
``GET /api/jobs/{id}``                      status, progress, result
``GET /api/jobs/{id}/events``               server-sent events: progress, then the end state
``DELETE /api/jobs/{id}``                   cancel (also ``POST /api/jobs/{id}/cancel``)
``GET /api/leaderboard``                    rows of every ``results.json`` under ``--results``
``GET /api/files/{data|results}/{path}``    a file under the data or results folder
==========================================  =================================================
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, TributeError
from ..params import check_seed
from . import compute
from ._deps import require
from .jobs import Job, JobManager
from .leaderboard import load_leaderboard
from .security import (
    LOOPBACK_NAMES,
    MAX_UPLOAD_BYTES,
    is_loopback,
    load_upload,
    read_csv_upload,
    resolve_under,
    token_matches,
)
from .subjects import Subject, SubjectSpec

__all__ = ["ExplorerConfig", "create_app"]

log = logging.getLogger("tribute.explorer")

#: Largest JSON request body accepted (jobs, typed sentences).
MAX_JSON_BYTES = 64 * 1024
_STATIC = ("app.js", "style.css")
_JOB_FIELDS = {"kind", "subject", "index", "method", "methods", "params", "budget", "seed",
               "removal"}


@dataclass
class ExplorerConfig:
    """What one server serves.

    Attributes:
        subjects: the models (built lazily); the first is shown first.
        data_dir: folder whose files ``/api/files/data/...`` may serve (the ``--data`` file's
            folder), or None.
        results_dir: folder of ``tribute bench`` results (``--results``), or None.
        token: required on every request when set.
        host: the address the server binds (loopback: only loopback Host headers served).
        workers: background job threads. cache_items: results kept in the LRU cache.
    """

    subjects: list[SubjectSpec]
    data_dir: Path | None = None
    results_dir: Path | None = None
    token: str | None = None
    host: str = "127.0.0.1"
    workers: int = 1
    cache_items: int = 128
    extra_hosts: tuple[str, ...] = field(default_factory=tuple)


def clean_json(v: Any) -> Any:
    """``v`` with non-finite floats as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {str(k): clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
    if isinstance(v, np.generic):
        return clean_json(v.item())
    return v


def _json_response(data: Any, status_code: int = 200) -> Any:
    from starlette.responses import Response

    body = json.dumps(clean_json(data), allow_nan=False, separators=(",", ":"))
    # nosniff: an error echoing a request's text (a subject named "<script>") is never read
    # as HTML by a browser that guesses types
    return Response(body, status_code=status_code, media_type="application/json",
                    headers={"X-Content-Type-Options": "nosniff"})


def _error(status: int, message: str) -> Any:
    return _json_response({"error": message}, status_code=status)


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: Bodies a page on another site can send without asking first (no CORS preflight).
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def _cross_site(headers: Any) -> str:
    """Why a state-changing request is refused as coming from another site ("" if it is not).

    A page on any site the user visits can POST to a server on 127.0.0.1 (it cannot read the
    answer, but the job runs, the upload is added): its browser names that page's origin in
    ``Origin`` and says ``cross-site`` in ``Sec-Fetch-Site``.
    """
    from urllib.parse import urlsplit

    if headers.get("sec-fetch-site", "") == "cross-site":
        return "cross-site request refused: the explorer answers its own page only."
    origin = headers.get("origin")
    if origin is None:
        return ""  # not a browser's cross-origin request (curl, scripts, same-origin GETs)
    if origin == "null" or urlsplit(origin).netloc.lower() != (headers.get("host") or "").lower():
        return (f"request from origin {origin!r} refused: the explorer answers its own page "
                "only (open it at the address the server printed).")
    return ""


class _Guard:
    """ASGI middleware: token and Host checks before anything else runs."""

    def __init__(self, app: Any, config: ExplorerConfig) -> None:
        self.app = app
        self.config = config
        self.hosts = None if not is_loopback(config.host) else \
            {*LOOPBACK_NAMES, *config.extra_hosts}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        request = Request(scope)
        if self.hosts is not None:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0] \
                if not (request.headers.get("host") or "").startswith("[") else \
                (request.headers.get("host") or "").split("]")[0] + "]"
            if host not in self.hosts:
                await _error(400, f"host {host!r} is not served; this server answers on "
                                  "127.0.0.1/localhost only.")(scope, receive, send)
                return
        if scope["type"] == "http" and scope["method"] not in _SAFE_METHODS:
            refusal = _cross_site(request.headers)
            if refusal:
                await _error(403, refusal)(scope, receive, send)
                return
        token = self.config.token
        if token is not None:
            auth = request.headers.get("authorization", "")
            given = (request.headers.get("x-tribute-token")
                     or (auth[7:] if auth.lower().startswith("bearer ") else None)
                     or request.query_params.get("token")
                     or request.cookies.get("tribute_token"))
            if not token_matches(given, token):
                await _error(401, "missing or wrong token: open the address the server printed "
                                  "(it ends in ?token=...), or send the X-Tribute-Token header."
                             )(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(config: ExplorerConfig) -> Any:
    """The Starlette application serving ``config`` (run it with uvicorn, or
    :func:`tribute.explorer.serve`)."""
    require("starlette")
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, Response, StreamingResponse
    from starlette.routing import Route

    manager = JobManager(workers=config.workers, cache_items=config.cache_items)
    specs = {s.name: s for s in config.subjects}
    static = resources.files("tribute.explorer") / "static"

    async def subject_of(name: str) -> Subject:
        spec = specs.get(name)
        if spec is None:
            raise InputError(f"subject {name!r} is not served; subjects: {sorted(specs)}.")
        return await asyncio.to_thread(spec.get)

    def handler(fn: Callable[[Request], Awaitable[Any]]) -> Callable[[Request], Awaitable[Any]]:
        async def wrapped(request: Request) -> Any:
            try:
                return await fn(request)
            except (InputError, TributeError) as exc:
                return _error(400, str(exc))
            except FileNotFoundError as exc:
                return _error(404, f"file not found: {exc}")
            except HTTPException:
                raise
            except Exception as exc:
                log.exception("explorer request %s failed", request.url.path)
                return _error(500, f"internal error ({type(exc).__name__}); the server keeps "
                                   "running; see its log.")

        return wrapped

    async def json_body(request: Request) -> dict[str, Any]:
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            # a form on another site can send text/plain JSON without the browser asking first
            raise InputError(f"the request body must be JSON sent with Content-Type: "
                             f"application/json; got {ctype or 'no content type'!r}.")
        body = await _read_body(request, MAX_JSON_BYTES)
        try:
            data = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"the request body is not JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise InputError("the request body must be a JSON object.")
        return data

    # ------------------------------------------------------------------ page
    async def index(request: Request) -> Any:
        html = (static / "index.html").read_text(encoding="utf-8")
        resp = HTMLResponse(html, headers=_SECURITY_HEADERS)
        if config.token is not None and request.query_params.get("token"):
            resp.set_cookie("tribute_token", config.token, httponly=True, samesite="strict")
        return resp

    async def static_file(request: Request) -> Any:
        name = request.path_params["name"]
        if name not in _STATIC:
            return _error(404, f"no static file {name!r}.")
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return Response((static / name).read_text(encoding="utf-8"), media_type=kind,
                        headers={"Cache-Control": "no-cache", **_SECURITY_HEADERS})

    # ------------------------------------------------------------------ api
    @handler
    async def info(request: Request) -> Any:
        from importlib.metadata import PackageNotFoundError, version

        try:
            __version__ = version("tribute")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            __version__ = "unknown"

        return _json_response({
            "version": __version__,
            "subjects": [{"name": s.name, "title": s.title, "kind": s.kind, "ready": s.ready}
                         for s in config.subjects],
            "results": config.results_dir is not None, "data": config.data_dir is not None,
            "max_upload_bytes": MAX_UPLOAD_BYTES, "token_required": config.token is not None})

    @handler
    async def subject(request: Request) -> Any:
        s = await subject_of(request.path_params["name"])
        return _json_response({**s.summary(), "labels": s.labels,
                             "methods": compute.method_catalogue(s),
                             "default_budget": compute.DEFAULT_BUDGET.get(s.kind)})

    @handler
    async def input_preview(request: Request) -> Any:
        s = await subject_of(request.path_params["name"])
        index = _int(request.path_params["index"], "index")
        out = compute.preview(s, index)
        out["prediction"] = await asyncio.to_thread(compute.predict, s, index)
        return _json_response(out)

    @handler
    async def add_inputs(request: Request) -> Any:
        s = await subject_of(request.path_params["name"])
        if (request.headers.get("content-type") or "").startswith("application/json"):
            data = await json_body(request)
            if s.tokenize is None:
                raise InputError(f"subject {s.name!r} does not take typed text; upload a file.")
            extra = set(data) - {"text_a", "text_b"}
            if extra:
                raise InputError(f"unknown field(s) {sorted(extra)}; send text_a and text_b.")
            ids, toks = s.tokenize(data.get("text_a"), data.get("text_b"))  # type: ignore[arg-type]
            new = s.add_inputs(ids, [f"{data['text_a']}  |  {data['text_b']}"], [toks],
                               texts=[(data["text_a"], data["text_b"])])
            return _json_response({"indices": new})
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype in _FORM_TYPES:
            raise InputError(f"upload: send the file's bytes as the body with Content-Type: "
                             f"application/octet-stream, not {ctype!r}.")
        name = request.query_params.get("filename", "")
        body = await _read_body(request, MAX_UPLOAD_BYTES)
        rgb = s.channel_axis is not None and s.sample_shape[s.channel_axis] == 3
        notes: list[str] = []
        if name.lower().endswith(".csv") and s.kind == "tabular":
            # read as --data reads a file (one reader: index column, header, row counter), its
            # warnings shown in the page
            arr, header, notes = read_csv_upload(name, body)
            if header is not None and header == [str(i) for i in range(len(header))]:
                header = None  # unnamed columns (pandas numbers them): by position, as --data reads them
            try:
                rows = _fit_rows(s, _by_column_name(s, arr, header, name), name)
            except InputError as exc:
                # a column of row numbers one too many: the refusal says which column it is
                raise InputError(" ".join([str(exc), *notes])) from None
        else:
            rows = _fit_rows(s, load_upload(name, body, s.kind, channels=3 if rgb else 1), name)
        await asyncio.to_thread(_model_takes, s, rows, name)
        new = s.add_inputs(rows, [f"{name} [{i}]" for i in range(int(rows.shape[0]))])
        return _json_response({"indices": new, "warnings": notes})

    @handler
    async def start_job(request: Request) -> Any:
        data = await json_body(request)
        extra = set(data) - _JOB_FIELDS
        if extra:
            raise InputError(f"unknown field(s) {sorted(extra)} (models are chosen on the command "
                             f"line, never by a request); fields: {sorted(_JOB_FIELDS)}.")
        kind = data.get("kind")
        s = await subject_of(str(data.get("subject")))
        index = _int(data.get("index", 0), "index")
        # refused here (400), not by the job after a 202 (seed=-1 or 2**64: a failed job)
        seed = check_seed(_int(data.get("seed", 0), "seed"))
        budget = compute.check_budget(data.get("budget"))
        if kind == "training":
            # refused before its job starts (a bad method or test point was a 202, then a failed
            # job); in a thread: the case is built (a model fitted) on first use
            await asyncio.to_thread(compute.check_training, s, index,
                                    data.get("method") or "influence")
        job = _plan(manager, s, kind, index, seed, budget, data)
        if job.cached and isinstance(job.result, dict) and job.result.get("index", index) != index:
            # the cache is keyed by the input's content: an identical input at another index
            # (an upload) got the first one's result with its "index" (asked 7, told 4) (aud43x)
            job.result = {**job.result, "index": index}
        return _json_response(job.public(), status_code=202 if not job.terminal else 200)

    @handler
    async def job_status(request: Request) -> Any:
        job = _job(manager, request.path_params["id"])
        return _json_response(job.public())

    @handler
    async def job_cancel(request: Request) -> Any:
        job = manager.cancel(request.path_params["id"])
        if job is None:
            raise FileNotFoundError(f"job {request.path_params['id']!r}")
        return _json_response(job.public(with_result=False))

    @handler
    async def job_events(request: Request) -> Any:
        job = _job(manager, request.path_params["id"])

        async def stream() -> AsyncIterator[str]:
            seen = -1
            beat = 0
            while True:
                if job.seq != seen:
                    seen = job.seq
                    event = "end" if job.terminal else "progress"
                    yield f"event: {event}\ndata: {json.dumps(clean_json(job.public(with_result=False)))}\n\n"
                    if job.terminal:
                        return
                beat += 1
                if beat % 100 == 0:
                    yield ": keep-alive\n\n"
                    if await request.is_disconnected():
                        return
                await asyncio.sleep(0.05)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @handler
    async def leaderboard(request: Request) -> Any:
        if config.results_dir is None:
            return _json_response({"runs": [], "hint": "start the server with --results DIR (a "
                                                     "folder of `tribute bench --out` results)"})
        root = config.results_dir
        return _json_response(await asyncio.to_thread(load_leaderboard, root))

    @handler
    async def files(request: Request) -> Any:
        root_name = request.path_params["root"]
        root = {"data": config.data_dir, "results": config.results_dir}.get(root_name)
        if root is None:
            raise FileNotFoundError(f"{root_name}/ (no such folder is served)")
        path = resolve_under(root, request.path_params["path"])
        html = path.suffix.lower() in (".html", ".htm")
        return FileResponse(path, headers=_REPORT_HEADERS if html else _FILE_HEADERS)

    async def not_found(request: Request, exc: Exception) -> Any:
        status = getattr(exc, "status_code", 500)
        detail = getattr(exc, "detail", "") or ""
        return _error(status, f"{request.method} {request.url.path}: {detail or 'error'}")

    routes = [
        Route("/", index),
        Route("/static/{name}", static_file),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/api/info", info),
        Route("/api/subjects/{name}", subject),
        Route("/api/subjects/{name}/inputs/{index}", input_preview),
        Route("/api/subjects/{name}/inputs", add_inputs, methods=["POST"]),
        Route("/api/jobs", start_job, methods=["POST"]),
        Route("/api/jobs/{id}", job_status, methods=["GET"]),
        Route("/api/jobs/{id}", job_cancel, methods=["DELETE"]),
        Route("/api/jobs/{id}/cancel", job_cancel, methods=["POST"]),
        Route("/api/jobs/{id}/events", job_events),
        Route("/api/leaderboard", leaderboard),
        Route("/api/files/{root}/{path:path}", files),
    ]

    async def lifespan(app: Any) -> AsyncIterator[None]:
        await asyncio.to_thread(_load_registries)
        yield
        await asyncio.to_thread(manager.shutdown)

    import contextlib

    app = Starlette(routes=routes, middleware=[Middleware(_Guard, config=config)],
                    exception_handlers={HTTPException: not_found, 500: not_found},
                    lifespan=contextlib.asynccontextmanager(lifespan))
    app.state.manager = manager
    app.state.config = config
    return app


_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; connect-src 'self'",
}


#: A bench ``report.html`` is self-contained: inline style and script. The page's policy blocked
#: both (the report opened unstyled, its checks never ran); this one lets them run in a sandbox
#: (an opaque origin: no cookie, no API, nothing fetched).
_REPORT_HEADERS = {
    **_SECURITY_HEADERS,
    "Content-Security-Policy": "sandbox allow-scripts; default-src 'none'; img-src data:; "
                               "style-src 'unsafe-inline'; script-src 'unsafe-inline'",
}


#: Any other file of the served folders is data, never a page of this origin: an ``.svg`` in
#: the data folder ran its ``<script href="/api/files/data/x.js">`` (allowed by the page's
#: ``script-src 'self'``) with the explorer's origin and token cookie, reading and driving the
#: API (audit aud40x). A sandbox (opaque origin, no scripts) keeps it a file to look at.
_FILE_HEADERS = {
    **_SECURITY_HEADERS,
    "Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self' data:; "
                               "style-src 'unsafe-inline'",
}


async def _read_body(request: Any, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes (before reading it all)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise InputError(f"request body of {int(length):,} bytes is over the {limit:,}-byte limit.")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputError(f"request body is over the {limit:,}-byte limit.")
        chunks.append(chunk)
    return b"".join(chunks)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise InputError(f"{name}={value!r} must be an int.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 12:
        return int(value)
    raise InputError(f"{name}={value!r} must be an int.")


def _job(manager: JobManager, job_id: str) -> Job:
    job = manager.get(job_id)
    if job is None:
        raise FileNotFoundError(f"job {job_id!r}")
    return job


def _key(*parts: Any) -> str:
    return json.dumps(parts, sort_keys=True, default=str)


def _load_registries() -> None:
    """Import every method and metric before the first request.

    The registries import their modules on first read, flagged loaded before the imports
    finish: a request checking a method name while a job's thread was still loading them saw
    12 of the 47 methods ("method 'deeplift' is not a feature method").
    """
    from ..methods.base import METHODS
    from ..metrics.base import METRICS

    METHODS.load()
    METRICS.load()


def _one_at_a_time(s: Subject, fn: Callable[[Job], Any]) -> Callable[[Job], Any]:
    """``fn`` run while its job holds the subject's model (:attr:`Subject.model_lock`).

    With several workers, jobs on one subject ran at once: guided backprop beside a components
    job read the patching hooks (credits off by 1.23), DeepLIFT's hooks refused the other's
    batches. A waiting job says so and can be cancelled while it waits.
    """
    def run(job: Job) -> Any:
        if not s.model_lock.acquire(blocking=False):
            job.step = "waiting for another job on this model"
            job.seq += 1
            while not s.model_lock.acquire(timeout=0.1):
                job.check()
        try:
            return fn(job)
        finally:
            s.model_lock.release()

    return run


def _plan(manager: JobManager, s: Subject, kind: Any, index: int, seed: int, budget: int | None,
          data: dict[str, Any]) -> Job:
    """Check the request and submit its job (or answer it from the cache); jobs on one subject
    run one at a time."""
    def submit(key: str, fn: Callable[[Job], Any], steps: int = 1) -> Job:
        return manager.submit(str(kind), key, _one_at_a_time(s, fn), steps=steps)

    removal = compute.check_removal(s, data.get("removal"))
    if kind not in ("explain", "compare") and data.get("removal") not in (None, ""):
        raise InputError(f"removal applies to kinds 'explain' and 'compare', not {kind!r}.")
    if kind == "explain":
        method = compute.check_method(s, data.get("method"), removal)
        params = compute.parse_params(method, data.get("params"))
        key = _key(kind, s.name, s.input_key(index), method, params, budget, seed, removal)
        return submit(key, lambda job: compute.explain_one(
            job, s, index, method, params, budget, seed, removal))
    if data.get("params"):
        raise InputError(f"params apply to kind 'explain' only, not {kind!r}.")
    if kind == "compare":
        names = data.get("methods")
        if not isinstance(names, list) or not 2 <= len(names) <= 6 or len(set(map(str, names))) \
                != len(names):
            raise InputError(f"methods={names!r}: give a list of 2 to 6 different method names.")
        names = [compute.check_method(s, n, removal) for n in names]
        key = _key(kind, s.name, s.input_key(index), names, budget, seed, removal)
        return submit(key, lambda job: compute.compare(
            job, s, index, names, budget, seed, removal=removal),
            steps=compute.compare_steps(len(names)))
    if kind == "components":
        method = data.get("method") or "feature_ablation"
        s.row(index)
        compute.check_components(s, method)
        key = _key(kind, s.name, s.input_key(index), method)
        return submit(key, lambda job: compute.component_effects(
            job, s, index, str(method)))
    if kind == "training":
        method = data.get("method") or "influence"
        key = _key(kind, s.name, index, method)
        return submit(key, lambda job: compute.training_points(
            job, s, index, str(method)))
    raise InputError(f"kind={kind!r}: choose 'explain', 'compare', 'components' or 'training'.")


def _by_column_name(s: Subject, arr: np.ndarray, header: list[str] | None, name: str) -> np.ndarray:
    """A CSV upload's columns in the subject's feature order: a header naming the features in
    another order is reordered (positions alone put column ``a``'s values into feature ``e``);
    one naming other columns is refused."""
    names = s.feature_names
    if header is None or names is None or header == list(names):
        return arr
    stripped = [str(n).strip() for n in names]
    if len(set(stripped)) == len(stripped):
        # ``t, a, b`` (a space after each comma): pandas keeps the spaces in the column names
        # (read_csv_upload); the upload's reader before it stripped them: names match without
        # their outer spaces, on both sides (a subject whose own file's names hold spaces) (rev40a)
        header, names = [h.strip() for h in header], stripped
    if sorted(header) != sorted(names) or len(set(header)) != len(header):
        raise InputError(f"upload {name!r}: its columns {header} are not the subject's features "
                         f"{list(names)}; give those columns (any order), or numbers only.")
    return arr[:, [header.index(n) for n in names]]


def _model_takes(s: Subject, rows: Any, name: str) -> None:
    """Refuse uploaded inputs the model cannot take (a token id past its vocabulary), before
    they are added: added, each of their previews and jobs failed with an internal error."""
    from .subjects import _typed_rows, numpy_outputs

    model = s.predictor
    try:
        if isinstance(model, torch.nn.Module):
            with torch.no_grad():
                model(rows)
        else:
            numpy_outputs(model, rows if not s.column_dtypes or s.feature_names is None
                          else _typed_rows(rows, s.feature_names, s.column_dtypes))
    except Exception as exc:  # the model's own error says what it refused
        raise InputError(f"upload {name!r}: the model of subject {s.name!r} cannot take these "
                         f"inputs ({type(exc).__name__}: {exc}).") from None


def _fit_rows(s: Subject, arr: np.ndarray, name: str) -> Any:
    """Uploaded arrays as a batch of the subject's inputs (images resized to its size; digits
    drawn dark on light are inverted to the data's light-on-dark)."""
    shape = s.sample_shape
    hw = s.image_size
    picture = name.lower().endswith((".png", ".jpg", ".jpeg"))
    if hw is not None and (picture or (arr.ndim == 3 and not s.channels_last
                                       and tuple(arr.shape[1:]) != hw)):
        # a decoded picture (1 x C x H x W) or N x H x W arrays of another size (an H x W x C
        # input of a channels-last subject is one input, never resized)
        img = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        img = img[:, None] if img.ndim == 3 else img
        if tuple(img.shape[-2:]) != hw:
            img = torch.nn.functional.interpolate(img, size=hw, mode="area")
        if picture and img.shape[1] == 1 and float(img.mean()) > 0.5:
            img = 1.0 - img
        if len(shape) != 3:
            arr = img[:, 0].numpy()
        else:  # N x H x W x C inputs take the picture's channels last
            arr = img.permute(0, 2, 3, 1).numpy() if s.channels_last else img.numpy()
    if arr.size == 0:
        raise InputError(f"upload {name!r}: holds no inputs (an array of shape "
                         f"{list(arr.shape)}); give at least one row.")
    if tuple(arr.shape) == tuple(shape):
        arr = arr[None]
    if arr.ndim == len(shape) and s.channel_axis is not None and shape[s.channel_axis] == 1:
        arr = arr[..., None] if s.channels_last else arr[:, None]
    if tuple(arr.shape[1:]) != tuple(shape):
        raise InputError(f"upload {name!r}: got an array of shape {list(arr.shape)}; subject "
                         f"{s.name!r} takes inputs of shape {list(shape)} (one, or a batch "
                         f"N x {' x '.join(map(str, shape))}).")
    if arr.shape[0] > 64:
        raise InputError(f"upload {name!r}: {arr.shape[0]} inputs; at most 64 per upload.")
    if not np.all(np.isfinite(np.asarray(arr, dtype=np.float64))):
        raise InputError(f"upload {name!r}: holds NaN or infinite values.")
    integer = not (s.inputs.dtype.is_floating_point if isinstance(s.inputs, torch.Tensor)
                   else np.issubdtype(s.inputs.dtype, np.floating))
    if integer:
        # token ids (or a table of integers): 1.7 was cast to 1 without a word (aud43x)
        a = np.asarray(arr, dtype=np.float64)
        wrong = (a != np.round(a)) | ((a < 0) if s.kind == "text" else False)
        bad = np.flatnonzero(np.asarray(wrong).reshape(-1))
        if bad.size:
            what = "non-negative integers (token ids)" if s.kind == "text" else \
                "integers (its --data holds integers)"
            raise InputError(f"upload {name!r}: subject {s.name!r} takes {what}; value "
                             f"{float(a.reshape(-1)[bad[0]])!r} at flat position {int(bad[0])} "
                             "is not one.")
    if isinstance(s.inputs, torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(arr)).to(s.inputs.dtype)
    return np.asarray(arr, dtype=s.inputs.dtype)
