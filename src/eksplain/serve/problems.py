"""Errors as ``application/problem+json`` (RFC 9457), the one error shape of the HTTP API.

    EksplainError (InputError, CatalogError, InfeasibleError, RenderError)  -> 422, or 404
        for a path item that does not exist (an unknown glossary term)
    RequestValidationError: malformed JSON -> 400, wrong fields or types -> 422
    RequestTooLarge (the body limit)                                        -> 413
    HTTPException (unknown route, wrong method)                             -> its own status
    anything else                                                           -> 500, logged,
        with no traceback in the response

Every problem carries ``detail`` (what is wrong), ``hint`` (how to fix it), ``suggestions``
("did you mean") and, for field errors, ``errors[]`` whose ``field`` is the dotted path in the
request (``traffic.rps``) so a form can show the message beside that field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from eksplain.errors import EksplainError

__all__ = ["PROBLEM_MEDIA_TYPE", "FieldError", "Problem", "ProblemError", "install_handlers",
           "problem_response", "problem_responses"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("eksplain.serve")

_TITLES = {400: "Malformed request", 404: "Not found", 405: "Method not allowed",
           413: "Request body too large", 422: "Invalid request", 429: "Too many requests",
           500: "Internal error"}


class FieldError(BaseModel):
    """One invalid field: where it is and what is wrong with it."""

    field: str = Field(description="dotted path in the request: traffic.rps, query.duration")
    loc: list[str | int] = Field(description="the path as a list, as pydantic reports it")
    msg: str


class Problem(BaseModel):
    """An error response (RFC 9457 problem details, with eksplain's hint and suggestions)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = Field(description="what is wrong")
    hint: str = Field(default="", description="how to fix it")
    suggestions: list[str] = Field(default_factory=list, description="did you mean")
    errors: list[FieldError] = Field(default_factory=list, description="invalid fields")


class ProblemError(Exception):
    """An error a route raises with its own status and, optionally, the field at fault."""

    def __init__(self, status: int, detail: str, hint: str = "",
                 field: Sequence[str | int] = (), suggestions: Iterable[str] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.hint = hint
        self.field = tuple(field)
        self.suggestions = tuple(suggestions)


def problem_response(status: int, detail: str, hint: str = "",
                     suggestions: Iterable[str] = (),
                     errors: Iterable[FieldError] = ()) -> JSONResponse:
    body = Problem(title=_TITLES.get(status, "Error"), status=status, detail=detail, hint=hint,
                   suggestions=list(suggestions), errors=list(errors))
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries: each status answers a Problem as problem+json."""
    return {s: {"model": Problem, "description": _TITLES.get(s, "Error"),
                "content": {PROBLEM_MEDIA_TYPE: {}}} for s in statuses}


def _field_error(loc: Sequence[str | int], msg: str) -> FieldError:
    # "body" is where FastAPI puts a JSON body; the form knows fields by their path inside it
    path = list(loc[1:]) if loc and loc[0] == "body" else list(loc)
    return FieldError(field=".".join(str(p) for p in path) or "body", loc=list(loc), msg=msg)


def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    invalid = [e for e in exc.errors() if e.get("type") == "json_invalid"]
    if invalid:  # its loc is a character offset, not a field
        where = invalid[0].get("loc", ())
        at = f" (at character {where[-1]})" if where and isinstance(where[-1], int) else ""
        return problem_response(400, f"The request body is not valid JSON{at}.",
                                hint="send a JSON object with Content-Type: application/json")
    errors = [_field_error(tuple(e.get("loc", ())), str(e.get("msg", ""))) for e in exc.errors()]
    detail = "; ".join(f"{e.field}: {e.msg}" for e in errors)
    return problem_response(422, detail or "Invalid request.",
                            hint="GET /openapi.json describes every field", errors=errors)


def _eksplain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, EksplainError)
    return problem_response(422, exc.message, exc.hint, exc.suggestions)


def _problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    errors = [_field_error(exc.field, exc.detail)] if exc.field else []
    return problem_response(exc.status, exc.detail, exc.hint, exc.suggestions, errors)


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = problem_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})  # 405 says which methods are allowed
    return response


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug, not a user error: log it here, and keep the traceback out of the response.
    _log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "eksplain failed on this request; this is a bug.",
                            hint="please report it with the request body")


def install_handlers(app: FastAPI) -> None:
    """Answer every error as problem+json."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(EksplainError, _eksplain)
    app.add_exception_handler(ProblemError, _problem)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
