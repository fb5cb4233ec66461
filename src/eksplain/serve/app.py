"""The FastAPI application: routes, problem+json errors, the body limit and the web page.

``create_app`` builds a fresh app (tests make one per test); ``eksplain serve`` runs it with
uvicorn. The page is static files shipped in the package (no CDN, no build step): it calls the
same ``/v1`` API any other client calls.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from eksplain import __version__
from eksplain.render import cel
from eksplain.serve.limits import BodyLimit
from eksplain.serve.problems import install_handlers
from eksplain.serve.routes import Limits, router

__all__ = ["create_app"]

STATIC = Path(str(resources.files("eksplain.serve") / "static"))

DESCRIPTION = """Plan, size, price, render and simulate AI/ML workloads on Amazon EKS.

Request bodies are the workload spec (`eksplain schema`) or an estimate request; results are
the JSON documents of `--json` (docs/json.md). Errors are `application/problem+json` with a
`hint` and, for invalid fields, `errors[].field`. Models are catalogue ids or aliases
(`GET /v1/models`); the API never reads files on the server."""


def create_app(limits: Limits | None = None) -> FastAPI:
    """The eksplain HTTP API and web page, with ``limits`` (body size, simulation time)."""
    limits = limits or Limits()
    cel.prepare()  # a process-wide side effect of the CEL library, once, before any request
    app = FastAPI(title="eksplain", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None)  # their pages load scripts from a CDN
    app.state.limits = limits
    app.state.simulation_slots = threading.BoundedSemaphore(limits.simulations)
    install_handlers(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_middleware(BodyLimit, limit_bytes=limits.body_bytes)
    return app
