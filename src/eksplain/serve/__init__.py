"""``eksplain serve``: the HTTP API (FastAPI) and the web page, over the same facade as the CLI.

    app.py        create_app(): routes, errors, body limit, static page
    routes.py     one route per facade call: parse -> api.* -> eksplain.serialize
    problems.py   every error as application/problem+json
    limits.py     body size and simulation time limits
    guards.py     no file-system access through any parameter
    static/       the web page (HTML, CSS, vanilla JS; charts drawn as inline SVG)

FastAPI and uvicorn are imported only here, so the CLI starts without them.
"""

from __future__ import annotations

from eksplain.serve.app import create_app
from eksplain.serve.routes import Limits

__all__ = ["Limits", "create_app"]
