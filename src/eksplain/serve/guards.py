"""What the HTTP API refuses that the CLI allows: anything that would read the server's files.

The CLI reads paths a user types (a model's ``config.json``, ``traffic.trace``, price files);
over HTTP the same strings would let a caller read the server's file system. So a model must be
a catalogue id or alias, or a config.json sent inline as a JSON object in the string, and
``traffic.trace`` must be empty. Each refusal names the field, so
the web page can show it beside the input.
"""

from __future__ import annotations

from eksplain import api
from eksplain.catalog import (  # the catalogue lookup, and inline configs, without paths
    find_model,
    inline_config,
    resolve_model,
)
from eksplain.errors import EksplainError
from eksplain.serve.problems import ProblemError

__all__ = ["catalogue_model", "no_files"]


def catalogue_model(name: str, field: tuple[str, ...] = ("body", "model")) -> str:
    """``name`` when it is a catalogue id or alias; else a 422 naming the field.

    The name is kept as sent (the JSON echoes it, as the CLI's does, and render names the
    namespace after it). A catalogue name is not a path a caller chooses: the facade reads a
    directory by that name only if the server's operator made one in its working directory.
    """
    try:
        if inline_config(name) is not None:  # a config.json sent inline, not a path
            resolve_model(name)
            return name
        find_model(api.models(), name)
    except EksplainError as exc:
        raise ProblemError(422, exc.message, "GET /v1/models lists the catalogue; the HTTP API "
                           "takes catalogue ids or aliases, never paths", field,
                           exc.suggestions) from exc
    return name


def no_files(spec: api.WorkloadSpec) -> api.WorkloadSpec:
    """The spec, when its model is a catalogue name and it names no file."""
    if spec.traffic.trace is not None:
        raise ProblemError(422, "traffic.trace names a file; the HTTP API reads no files on the "
                           "server.", "leave traffic.trace empty (use the CLI to replay a trace)",
                           ("body", "traffic", "trace"))
    catalogue_model(spec.model)
    return spec
