"""The JSON schema of the config models, as the Prefect UI's run form reads it.

Pydantic leaves the ``default`` out of the schema of a field with a ``default_factory`` (a list,
a section): the form then shows the benchmark list as "No items in this list" and every section
without its values, as if nothing were set. :func:`explicit_defaults` (a model's
``json_schema_extra``) writes those defaults into the schema, computed from the factories.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_core import to_jsonable_python


def explicit_defaults(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """Fill ``default`` of every ``default_factory`` field of ``model`` into its ``schema`` (in place)."""
    props = schema.get("properties", {})
    for name, field in model.model_fields.items():
        prop = props.get(field.alias or name)
        if prop is None or "default" in prop or field.default_factory is None:
            continue
        value = field.default_factory()  # type: ignore[call-arg]
        prop["default"] = (
            value.model_dump(mode="json") if isinstance(value, BaseModel) else to_jsonable_python(value)
        )
