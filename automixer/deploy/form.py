"""The run form: :func:`parameter_schema` returns the deployment's ``parameter_openapi_schema`` (what
the UI renders as the run form), and :func:`form_fields` lists that form's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automixer.deploy.api import _client, _resolve


def parameter_schema(deployment_name: str) -> dict[str, Any]:
    """The deployment's ``parameter_openapi_schema`` (the JSON schema the UI renders as its form)."""
    with _client() as client:
        return dict(_resolve(client, deployment_name).parameter_openapi_schema or {})


@dataclass(frozen=True)
class FormField:
    """One input of a deployment's run form, as the UI renders it from the parameter schema."""

    path: str  # dotted, e.g. ``config.execution.mode``
    type: str  # ``string``, ``integer | null``, ``section``, ``one of local, workpool, dask``...
    default: Any
    description: str  # the field's own, else its section model's; "" when there is none
    required: bool
    has_default: bool = True  # False: no default in the schema (required, or computed by a factory)


def _ref_of(prop: dict[str, Any]) -> str | None:
    candidates = [prop, prop.get("items") or {}]
    for key in ("allOf", "anyOf", "oneOf"):
        candidates += prop.get(key, [])
    for c in candidates:
        if isinstance(c, dict) and "$ref" in c:
            return str(c["$ref"]).rsplit("/", 1)[-1]
    return None


def _type_of(prop: dict[str, Any], ref: str | None) -> str:
    if ref:
        return "section" + (" | null" if any(o.get("type") == "null" for o in prop.get("anyOf", [])) else "")
    if "enum" in prop:
        return "one of " + ", ".join(map(str, prop["enum"]))
    options = prop.get("anyOf") or [prop]
    names = []
    for o in options:
        if "enum" in o:
            names.append("one of " + ", ".join(map(str, o["enum"])))
        elif o.get("type") == "array":
            names.append(f"list of {(o.get('items') or {}).get('type', 'any')}")
        else:
            names.append(str(o.get("type", "any")))
    return " | ".join(names)


def form_fields(schema: dict[str, Any]) -> list[FormField]:
    """Every input of the run form of ``schema`` (a parameter schema), sections expanded, in order.

    A field that refers to a section model is described by its own description or the model's (the
    UI merges the referenced definition into the field).
    """
    defs = schema.get("definitions") or schema.get("$defs") or {}
    out: list[FormField] = []

    def walk(props: dict[str, Any], required: list[str], prefix: str, seen: frozenset[str]) -> None:
        for name, prop in props.items():
            ref = _ref_of(prop)
            model = defs.get(ref, {}) if ref else {}
            description = str(prop.get("description") or model.get("description") or "")
            out.append(
                FormField(
                    path=prefix + name,
                    type=_type_of(prop, ref),
                    default=prop.get("default"),
                    description=" ".join(description.split()),
                    required=name in required,
                    has_default="default" in prop,
                )
            )
            if ref and ref not in seen and model:
                walk(model.get("properties", {}), model.get("required", []), f"{prefix}{name}.", seen | {ref})

    walk(schema.get("properties", {}), schema.get("required", []), "", frozenset())
    return out


def local_parameter_schema(entrypoint: str) -> dict[str, Any]:
    """The parameter schema ``prefect deploy`` computes for a flow entrypoint (``path.py:function``)."""
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema as flow_schema

    return dict(flow_schema(load_flow_from_entrypoint(entrypoint)).model_dump_for_openapi())
