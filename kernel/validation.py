"""Pydantic validation errors as the product reports them: the first problem, naming its field."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from kernel.errors import ClientRequestError

Model = TypeVar("Model", bound=BaseModel)


def first_problem(exc: ValidationError) -> tuple[str | None, str]:
    """(the dotted path of the field, or None, and what is wrong) of ``exc``'s first error; an
    extra field (``extra="forbid"``) is "unknown field"."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or None
    message = "unknown field" if err["type"] == "extra_forbidden" else str(err["msg"])
    return where, message


def parse_request(model: type[Model], data: Any) -> Model:
    """``data`` as ``model``; a ClientRequestError naming the field otherwise (HTTP 400)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        param, message = first_problem(exc)
        raise ClientRequestError(f"{param}: {message}" if param else message, param) from None
