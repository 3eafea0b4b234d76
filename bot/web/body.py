"""The base of every response body the API declares: exactly its fields, so its schema tells the truth."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A response body: a route that returns a field its model lacks fails (in its tests) instead of
    quietly dropping it, so the published schema is what clients get."""

    model_config = ConfigDict(extra="forbid")
