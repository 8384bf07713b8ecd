"""Response shapes shared by every route module."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")


class DataList(BaseModel, Generic[T]):
    """A complete, short list."""

    data: list[T]


class Page(BaseModel, Generic[T]):
    """One page of a long list. Pass ``next_cursor`` back as ``cursor`` for the next page."""

    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(None, description="Opaque; null on the last page")


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str


class ErrorResponse(BaseModel):
    error: ErrorDetail
