"""The `pipec ui` server: Starlette routes over the project's metadata and artifact stores.

Read-only: every request reads the stores through `pipec.runs` (a fresh view per request, so a
running run's page shows its progress) and nothing writes to them. Files are served only from
inside a recorded output's folder (`previews.file_in`). Every response carries a
Content-Security-Policy that allows no script, and the Host header must name this server (a web
page elsewhere cannot reach it through DNS rebinding).

    GET /                                         runs (?pipeline=NAME&status=STATUS)
    GET /runs/RUN_ID                              a run: parameters, DAG by status, steps
    GET /runs/RUN_ID/graph.svg                    the DAG alone
    GET /runs/RUN_ID/steps/LABEL                  a step instance (`train`, `train[2]`)
    GET /runs/RUN_ID/steps/LABEL/outputs/NAME/files/PATH   one file of an output
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipec import runs as history
from pipec.backends.runner.history import Use, lineage
from pipec.backends.runner.metadata import MetadataStore
from pipec.backends.runner.records import parse_iteration
from pipec.backends.runner.results import RunError, label_of
from pipec.backends.runner.runs import open_metadata
from pipec.graph.render import RendererMissing
from pipec.ui import pages, previews
from pipec.ui.previews import IMAGE_SUFFIXES

RUNS_SHOWN = 200
STATUSES = ("running", "succeeded", "failed", "interrupted")
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class _SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


def create_app(project_root: Path, host: str = "127.0.0.1") -> Starlette:
    """The web app for the project at `project_root`."""

    def run_of(request: Request) -> history.Run:
        run_id = str(request.path_params["run_id"])
        try:
            return history.get(run_id, project_root)
        except history.RunNotFound:
            raise _NotFound(f"no run {run_id!r} in this project") from None

    def step_of(request: Request, run: history.Run) -> Any:
        try:
            return run.step(str(request.path_params["label"]))
        except KeyError as exc:
            raise _NotFound(str(exc.args[0])) from None

    def runs_list(request: Request) -> Response:
        pipeline = request.query_params.get("pipeline", "")
        status = request.query_params.get("status", "")
        found = list(history.find(pipeline or None, status or None, RUNS_SHOWN, project_root))
        names = _pipeline_names(open_metadata(project_root))
        return HTMLResponse(pages.runs_page(found, names, pipeline, status, STATUSES))

    def run_page(request: Request) -> Response:
        run = run_of(request)
        picture, note = _picture(run)
        return HTMLResponse(pages.run_page(run, picture, note))

    def graph_svg(request: Request) -> Response:
        run = run_of(request)
        try:
            return Response(run.picture("svg"), media_type="image/svg+xml")
        except RendererMissing as exc:
            return Response(str(exc), status_code=501, media_type="text/plain")

    def step_page(request: Request) -> Response:
        run = run_of(request)
        step = step_of(request, run)
        outputs = [previews.output_html(run.id, step.label, o) for o in step.outputs.values()]
        metadata = open_metadata(project_root)
        uses = [
            (name, reader.run_id, _label(reader), reader.name)
            for name, output in step.outputs.items()
            for reader in _readers(metadata, output.uri)
        ]
        writers: dict[str, tuple[str, str]] = {}
        for uri in {u for uris in step.inputs.values() for u in uris}:
            writer = lineage(metadata, uri, up=False, down=False).produced_by
            if writer is not None:
                writers[uri] = (writer.run_id, _label(writer))
        page = pages.step_page(run, step, outputs, pages.readers_of(uses), writers)
        return HTMLResponse(page)

    def output_file(request: Request) -> Response:
        run = run_of(request)
        step = step_of(request, run)
        name = str(request.path_params["name"])
        output = step.outputs.get(name)
        if output is None:
            raise _NotFound(f"step {step.label} has no output {name!r}")
        found = previews.file_in(output.uri, str(request.path_params["path"]))
        if found is None:
            raise _NotFound("no such file in this output")
        inline = found.suffix.lower() in IMAGE_SUFFIXES
        disposition = "inline" if inline else "attachment"
        return FileResponse(found, filename=found.name, content_disposition_type=disposition)

    routes = [
        Route("/", runs_list),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/graph.svg", graph_svg),
        Route("/runs/{run_id}/steps/{label}", step_page),
        Route("/runs/{run_id}/steps/{label}/outputs/{name}/files/{path:path}", output_file),
    ]
    hosts = sorted({"127.0.0.1", "localhost", "[::1]", "::1", host})
    middleware = [
        Middleware(_SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={_NotFound: _not_found, RunError: _not_found},
    )


class _NotFound(Exception):
    """A run, step, output or file that is not there (a 404 page)."""


async def _not_found(request: Request, exc: Exception) -> Response:
    return HTMLResponse(pages.not_found(str(exc)), status_code=404)


def _picture(run: history.Run) -> tuple[str, str]:
    """The run's DAG as inline SVG, or (without Graphviz here) its Mermaid text and a note."""
    try:
        svg = run.picture("svg").decode("utf-8")
        return svg[svg.find("<svg"):], ""
    except RendererMissing as exc:
        mermaid = run.picture("mermaid").decode("utf-8")
        return f"<pre>{pages.esc(mermaid)}</pre>", f"no picture: {exc}"
    except RunError as exc:
        return "", str(exc)


def _readers(metadata: MetadataStore, uri: str) -> list[Use]:
    return lineage(metadata, uri, up=False, down=False).read_by


def _label(use: Use) -> str:
    return label_of(use.step_id, parse_iteration(use.iteration))


def _pipeline_names(metadata: MetadataStore) -> list[str]:
    return metadata.pipeline_names()


def serve(project_root: Path, host: str, port: int) -> None:
    """Serve the app until interrupted."""
    app = create_app(project_root, host)
    shown = f"[{host}]" if ":" in host else host
    print(f"pipec ui: http://{shown}:{port}/ (project {project_root}; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
