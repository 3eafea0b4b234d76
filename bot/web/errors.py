"""The API's own error body, {"detail": {"code", "message"}}, and its place in the OpenAPI document.

Routes raise `api_error(...)`; routers and operations declare what they answer with `errors(...)`, so the
published schema lists each status a route gives and the body that comes with it. A 422 comes in two
shapes: ours (a check of our own, e.g. `invalid_visitor_id`) and FastAPI's (the request failed validation).
`install_error_handlers` makes FastAPI's own answers (no such path, wrong method, invalid request) fit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable and machine-readable: not_found, forbidden, rate_limited, ...")
    message: str = Field(description="What was wrong and how to fix it, for people")


class ApiError(BaseModel):
    """The API's error body."""

    detail: ErrorDetail


class InvalidField(BaseModel):
    model_config = ConfigDict(extra="allow")  # pydantic adds input, ctx, url

    loc: list[str | int]
    msg: str
    type: str


class InvalidRequest(BaseModel):
    """FastAPI's answer to a request that failed validation."""

    detail: list[InvalidField]


DESCRIPTIONS = {
    400: "Bad request",
    401: "No valid bearer token (log in with POST /api/v1/auth/login); comes with WWW-Authenticate: Bearer",
    403: "Not allowed: the role is too low, or the conversation is with another agent",
    404: "No such thing",
    409: "Conflicts with the current state",
    422: "A check of ours failed (ApiError with its code), or the request failed validation",
    413: "The request body is larger than this route takes (body_too_large)",
    429: "Too many requests: wait Retry-After seconds",
    500: "Failed unexpectedly; nothing was changed",
    502: "The messaging platform refused",
    503: "Not ready, or cannot be handled now: try again",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
}


def api_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> HTTPException:
    """Return the API's error shape: {"detail": {"code", "message"}} (with WWW-Authenticate on 401)."""
    merged = dict(headers or {})
    if status == 401:
        merged["WWW-Authenticate"] = "Bearer"
    return HTTPException(status, detail={"code": code, "message": message}, headers=merged or None)


def errors(*statuses: int, described: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """Return `responses=` for these statuses, each with the ApiError body (a 422 also FastAPI's)."""
    described = described or {}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "model": ApiError | InvalidRequest if status == 422 else ApiError,
            "description": described.get(status, DESCRIPTIONS[status]),
        }
        if status in _HEADERS:
            response["headers"] = _HEADERS[status]
        responses[status] = response
    return responses


_UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's 400 when a body cannot be decoded


def install_error_handlers(app: FastAPI) -> None:
    """Answer FastAPI's own errors in the API's shapes (see `invalid_request` and `http_error`)."""
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)


async def invalid_request(_: Request, exc: Exception) -> Response:
    """Answer 422 in FastAPI's shape, escaping what JSON's UTF-8 cannot carry as it is."""
    assert isinstance(exc, RequestValidationError)
    # FastAPI's own handler echoes the input, and a lone surrogate ("\ud800", valid JSON) made it a 500
    body = json.dumps({"detail": jsonable_encoder(exc.errors())}, ensure_ascii=True)
    return Response(body, status_code=422, media_type="application/json")


async def http_error(request: Request, exc: Exception) -> Response:
    """Under /api/, an unknown path or method also answers in the API's shape ({"detail": {code, message}})."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
        # a body that is not even text (invalid UTF-8): answered as any other invalid JSON, a documented 422
        problem = {"loc": ["body"], "msg": "the body is not valid JSON (UTF-8)", "type": "json_invalid"}
        return JSONResponse({"detail": [problem]}, status_code=422)
    if request.url.path.startswith("/api/") and isinstance(exc.detail, str):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        if code is not None:
            what = "no such API path" if exc.status_code == 404 else f"{request.method} is not allowed here"
            message = f"{what}: {request.method} {request.url.path} (the API is described at /docs)"
            body = {"detail": {"code": code, "message": message}}
            return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)
