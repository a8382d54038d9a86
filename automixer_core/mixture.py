"""The published mixture document and its membership table (DESIGN §1 step 7).

A :class:`Mixture` holds the groups with their weights (token shares, sum 1), intervals, token
and document counts, densities and ``driven_by`` breakdowns; optional per-domain weights; notes;
and the provenance of the run. It serialises to JSON (``to_json`` / ``from_json``) with a schema
``version``. Its ``id`` names the *inputs*: the first 16 hex digits of the sha256 of the canonical
JSON of the provenance without its floats (checkpoint fingerprints, artifact choices, estimator,
layers, config hash, inputs digest, code version). Float sums depend on thread counts, BLAS
kernels and devices, so two machines can compute the same mixture with weights that differ in the
last bits: they get the same id, and :func:`mixture_differences` compares their values to a
stated tolerance (group membership exactly). ``content_digest`` hashes the exact values and
guards the document against edits.

The membership table (one row per document: ``doc_id, group, joint_score, n_tokens`` and
optionally ``domain``) travels as parquet bytes beside the JSON (``membership_to_parquet`` /
``membership_from_parquet``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from automixer_core import __version__
from automixer_core.aggregation import Aggregation
from automixer_core.errors import AutoMixerError, ConfigError

SCHEMA_VERSION = 1
WEIGHT_TOLERANCE = 1e-6
MEMBERSHIP_COLUMNS = ("doc_id", "group", "joint_score", "n_tokens")
SCORE_COLUMN_PREFIX = "score__"
_PARQUET_META_KEY = b"automixer_mixture"


class Driver(BaseModel):
    """One benchmark's part of a group's density (see ``aggregation`` module doc)."""

    model_config = ConfigDict(extra="forbid")

    benchmark: str
    share: float = Field(ge=0.0, le=1.0 + WEIGHT_TOLERANCE, description="|C_gb| / Σ_b |C_gb|")
    contribution: float = Field(description="signed C_gb; Σ_b C_gb = the group's density")


class _WeightedEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    weight: float = Field(ge=0.0, le=1.0 + WEIGHT_TOLERANCE, description="token share w_g")
    weight_ci: tuple[float, float] | None = Field(None, description="bootstrap percentile interval")
    tokens: int = Field(ge=0, description="T_g")
    documents: int = Field(ge=0)
    density: float = Field(description="ρ_g = (1/T_g) Σ_{x∈g} I_joint(x) n_x")
    mean_doc_tokens: float = Field(ge=0.0, description="T_g / documents")
    floored: bool = Field(False, description="weight set by the min_weight floor, not the density")

    @field_validator("weight_ci")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and v[0] > v[1]:
            raise ValueError(f"weight_ci lower bound {v[0]} exceeds upper bound {v[1]}")
        return v


class MixtureGroup(_WeightedEntry):
    """A task-aligned group (a benchmark's name, or ``residual``)."""

    driven_by: list[Driver] = Field(default_factory=list)


class MixtureDomain(_WeightedEntry):
    """Per-domain weights by the same density rule (where the corpus has labels)."""


class ResidualMove(BaseModel):
    """What one residual rule moved out of the weighted groups (aggregation step 5)."""

    rule: Literal["all_negative", "negative_joint", "negative_domain"]
    documents: int = Field(ge=0)
    tokens: int = Field(ge=0)
    by_domain: dict[str, int] = Field(default_factory=dict, description="domain label → documents")


class CheckpointRef(BaseModel):
    """A checkpoint that was evaluated."""

    model_config = ConfigDict(extra="allow")

    name: str
    step: int
    fingerprint: str


class ArtifactRef(BaseModel):
    """The artifact model chosen for one benchmark."""

    model_config = ConfigDict(extra="allow")

    benchmark: str
    checkpoint: str
    step: int
    score: float
    metric: str = "acc_norm"


class Provenance(BaseModel):
    """Where the mixture came from. Extra keys are kept (and hashed into the id)."""

    model_config = ConfigDict(extra="allow")

    checkpoints: list[CheckpointRef]
    artifacts: list[ArtifactRef]
    estimator: str
    layers: list[str] | str
    alpha: dict[str, float]
    config_hash: str
    code_version: str = __version__
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


#: Fields added after schema version 1 was published: left out of the content hash while empty,
#: so documents written before them keep their digest.
_ADDED_FIELDS = ("residual_moves",)


class Mixture(BaseModel):
    """The published mixture (schema ``version`` = :data:`SCHEMA_VERSION`)."""

    model_config = ConfigDict(extra="forbid")

    version: int = SCHEMA_VERSION
    id: str = ""
    content_digest: str = Field("", description="sha256 (16 hex) of the exact values; empty in old documents")
    groups: list[MixtureGroup] = Field(min_length=1)
    domains: list[MixtureDomain] | None = None
    notes: list[str] = Field(default_factory=list)
    residual_moves: list[ResidualMove] = Field(
        default_factory=list, description="documents each residual rule moved (first rule that moved them)"
    )
    provenance: Provenance

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"schema version {v} is not supported (this code reads {SCHEMA_VERSION})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Mixture:
        for label, entries in (("groups", self.groups), ("domains", self.domains or [])):
            names = [e.name for e in entries]
            if len(set(names)) != len(names):
                raise ValueError(f"{label} names are not unique: {names}")
            if entries:
                total = math.fsum(e.weight for e in entries)
                if abs(total - 1.0) > WEIGHT_TOLERANCE:
                    raise ValueError(f"{label} weights sum to {total!r}, not 1")
        return self

    # --- identity ----------------------------------------------------------------------------
    def identity_hash(self) -> str:
        """sha256 (16 hex) of what the mixture was computed from: the provenance without its floats.

        Left out: ``created_at``, ``alpha`` (a function of the artifact steps and the config) and
        each artifact's ``score`` (a float from the evaluation; the checkpoint chosen is kept).
        """
        prov = self.provenance.model_dump(mode="json", exclude={"created_at", "alpha"})
        for artifact in prov["artifacts"]:
            artifact.pop("score", None)
        payload = {"version": self.version, "provenance": prov}
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def content_hash(self) -> str:
        """sha256 (16 hex) of the canonical JSON of every value (floats exact), without ``id``,
        ``content_digest`` and ``provenance.created_at``."""
        data = self.model_dump(
            mode="json", exclude={"id": True, "content_digest": True, "provenance": {"created_at"}}
        )
        for added in _ADDED_FIELDS:  # absent from documents written before they existed
            if not data.get(added):
                data.pop(added, None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def with_id(self) -> Mixture:
        """A copy whose ``id`` is its identity hash and ``content_digest`` its content hash."""
        return self.model_copy(update={"id": self.identity_hash(), "content_digest": self.content_hash()})

    # --- access ------------------------------------------------------------------------------
    @property
    def weights(self) -> dict[str, float]:
        """Group name → weight (token share)."""
        return {g.name: g.weight for g in self.groups}

    def group(self, name: str) -> MixtureGroup:
        for g in self.groups:
            if g.name == name:
                return g
        raise AutoMixerError(
            f"Mixture {self.id!r} has no group {name!r}",
            expected=f"one of {[g.name for g in self.groups]}",
        )

    # --- JSON --------------------------------------------------------------------------------
    def to_json(self, *, indent: int | None = 2) -> str:
        """The document as JSON text (keys in schema order)."""
        return self.model_dump_json(indent=indent) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, verify_id: bool = True) -> Mixture:
        """Parse and validate a mixture document.

        Raises:
            ConfigError: not JSON, not a valid mixture, or (with ``verify_id``) the id does not
                match the content.
        """
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"The mixture document is not valid JSON ({exc})",
                fix="pass the mixture.json written by the publish step",
            ) from exc
        try:
            mixture = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(document)"
            raise ConfigError(
                f"Invalid mixture document: {where}: {first['msg']} ({exc.error_count()} error(s))",
                expected=f"a mixture of schema version {SCHEMA_VERSION}",
                fix="regenerate it with the publish step, or repair the field named",
            ) from exc
        if verify_id and mixture.id != mixture.identity_hash():
            raise ConfigError(
                f"Mixture id {mixture.id!r} does not match its provenance (hash {mixture.identity_hash()!r})",
                expected="an unedited document (the id is the hash of the inputs in its provenance)",
                fix="regenerate the mixture, or load with verify_id=False and save with .with_id()",
            )
        if verify_id and mixture.content_digest and mixture.content_digest != mixture.content_hash():
            raise ConfigError(
                f"Mixture {mixture.id!r}: content_digest {mixture.content_digest!r} does not match its "
                f"content (hash {mixture.content_hash()!r})",
                expected="an unedited document (content_digest is the hash of its values)",
                fix="regenerate the mixture, or load with verify_id=False and save with .with_id()",
            )
        return mixture


def _ci(value: Any) -> tuple[float, float] | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    lo, hi = value
    return (float(lo), float(hi))


def _entry(r: Mapping[Hashable, Any]) -> dict[str, Any]:
    """The fields a group and a domain share, from one row of an aggregation table."""
    return {
        "name": str(r["name"]),
        "weight": float(r["weight"]),
        "weight_ci": _ci(r["weight_ci"]),
        "tokens": int(r["tokens"]),
        "documents": int(r["documents"]),
        "density": float(r["density"]),
        "mean_doc_tokens": float(r["mean_doc_tokens"]),
        "floored": bool(r["floored"]),
    }


def mixture_from_aggregation(
    aggregation: Aggregation, provenance: Provenance | dict[str, Any], *, notes: list[str] | None = None
) -> Mixture:
    """The mixture document of an :class:`Aggregation`, with its content-hash id.

    ``provenance.alpha`` is filled from the aggregation when left empty.
    """
    prov = provenance if isinstance(provenance, Provenance) else Provenance.model_validate(provenance)
    if not prov.alpha:
        prov = prov.model_copy(update={"alpha": dict(aggregation.alpha)})
    groups = [
        MixtureGroup(**_entry(r), driven_by=[Driver(**d) for d in r["driven_by"]])
        for r in aggregation.groups.to_dict("records")
    ]
    domains = None
    if aggregation.domains is not None:
        domains = [MixtureDomain(**_entry(r)) for r in aggregation.domains.to_dict("records")]
    mixture = Mixture(
        groups=groups,
        domains=domains,
        notes=list(aggregation.notes) + list(notes or []),
        residual_moves=[ResidualMove(**m) for m in aggregation.residual_moves],
        provenance=prov,
    )
    return mixture.with_id()


# --- membership table ----------------------------------------------------------------------------


def membership_to_parquet(membership: pd.DataFrame, *, mixture_id: str | None = None) -> bytes:
    """Parquet bytes of the membership table (``mixture_id`` goes into the schema metadata), with each
    document's per-benchmark scores (``score__<benchmark>`` columns) where the table has them."""
    missing = [c for c in MEMBERSHIP_COLUMNS if c not in membership.columns]
    if missing:
        raise AutoMixerError(
            f"The membership table lacks column(s) {missing}",
            expected=f"columns {list(MEMBERSHIP_COLUMNS)} (and optionally domain)",
            fix="pass Aggregation.membership",
        )
    cols: dict[str, pa.Array] = {
        "doc_id": pa.array(membership["doc_id"].astype(str).tolist(), pa.string()),
        "group": pa.array(membership["group"].astype(str).tolist(), pa.string()).dictionary_encode(),
        "joint_score": pa.array(membership["joint_score"].to_numpy(dtype="float64"), pa.float64()),
        "n_tokens": pa.array(membership["n_tokens"].to_numpy(dtype="int64"), pa.int64()),
    }
    if "domain" in membership.columns:
        cols["domain"] = pa.array(membership["domain"].astype(str).tolist(), pa.string()).dictionary_encode()
    for col in sorted(c for c in membership.columns if str(c).startswith(SCORE_COLUMN_PREFIX)):
        cols[str(col)] = pa.array(
            membership[col].to_numpy(dtype="float64"), pa.float64()
        )  # I_b per benchmark
    meta = {"mixture_id": mixture_id, "schema_version": SCHEMA_VERSION}
    table = pa.table(cols).replace_schema_metadata({_PARQUET_META_KEY: json.dumps(meta).encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def membership_from_parquet(data: bytes) -> pd.DataFrame:
    """The membership table from parquet bytes; ``df.attrs["mixture_id"]`` holds its mixture id."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise AutoMixerError(
            f"The membership data is not a readable parquet file ({exc})",
            fix="pass the membership.parquet written with the mixture",
        ) from exc
    missing = [c for c in MEMBERSHIP_COLUMNS if c not in table.column_names]
    if missing:
        raise AutoMixerError(
            f"The membership parquet lacks column(s) {missing}",
            expected=f"columns {list(MEMBERSHIP_COLUMNS)}",
            fix="pass the membership.parquet written with the mixture",
        )
    df = table.to_pandas()
    for c in ("group", "domain"):
        if c in df.columns:
            df[c] = df[c].astype(str)
    raw = (table.schema.metadata or {}).get(_PARQUET_META_KEY)
    df.attrs["mixture_id"] = json.loads(raw).get("mixture_id") if raw else None
    return df


# --- sameness ------------------------------------------------------------------------------------
#: Weights, intervals and densities of two computations of one mixture agree to this relative
#: tolerance (float32 sums over a few thousand documents move the last 1-2 digits of 7; 1e-4 leaves
#: two orders of margin) plus this absolute one (for values near 0).
SAME_RTOL = 1e-4
SAME_ATOL = 1e-7


def _close(a: float, b: float, rtol: float, atol: float) -> bool:
    return math.isclose(a, b, rel_tol=rtol, abs_tol=atol)


def mixture_differences(
    a: Mixture,
    b: Mixture,
    membership_a: pd.DataFrame | None = None,
    membership_b: pd.DataFrame | None = None,
    *,
    rtol: float = SAME_RTOL,
    atol: float = SAME_ATOL,
) -> list[str]:
    """What makes two mixtures *not* the same, in words; ``[]`` when they are the same.

    The same mixture (docs/DECISIONS.md): equal ids (equal inputs), equal group and domain names,
    token and document counts, floors, notes and residual moves, exactly equal group membership of every document,
    and weights, intervals, densities and per-document scores equal to ``rtol``/``atol``.
    """
    out: list[str] = []
    if a.id != b.id:
        out.append(f"id {a.id} != {b.id}")
    for label, ea, eb in (("group", a.groups, b.groups), ("domain", a.domains or [], b.domains or [])):
        if [e.name for e in ea] != [e.name for e in eb]:
            out.append(f"{label} names {[e.name for e in ea]} != {[e.name for e in eb]}")
            continue
        for x, y in zip(ea, eb, strict=True):
            for field in ("tokens", "documents", "floored"):
                if getattr(x, field) != getattr(y, field):
                    out.append(f"{label} {x.name}: {field} {getattr(x, field)} != {getattr(y, field)}")
            pairs = [("weight", x.weight, y.weight), ("density", x.density, y.density)]
            if (x.weight_ci is None) != (y.weight_ci is None):
                out.append(f"{label} {x.name}: weight_ci {x.weight_ci} != {y.weight_ci}")
            elif x.weight_ci is not None and y.weight_ci is not None:
                pairs += [("weight_ci[0]", x.weight_ci[0], y.weight_ci[0])]
                pairs += [("weight_ci[1]", x.weight_ci[1], y.weight_ci[1])]
            for field, u, v in pairs:
                if not _close(u, v, rtol, atol):
                    out.append(f"{label} {x.name}: {field} {u!r} != {v!r} (rtol {rtol}, atol {atol})")
    if a.notes != b.notes:
        out.append(f"notes {a.notes} != {b.notes}")
    if a.residual_moves != b.residual_moves:
        out.append(f"residual moves {a.residual_moves} != {b.residual_moves}")
    if membership_a is not None and membership_b is not None:
        ma = membership_a.set_index("doc_id").sort_index()
        mb = membership_b.set_index("doc_id").sort_index()
        if not ma.index.equals(mb.index):
            out.append(f"membership documents differ ({len(ma)} vs {len(mb)})")
            return out
        moved = ma.index[ma["group"].to_numpy() != mb["group"].reindex(ma.index).to_numpy()]
        if len(moved):
            out.append(f"{len(moved)} documents in other groups, e.g. {list(moved[:3])}")
        numeric = [c for c in ma.columns if c in mb.columns and pd.api.types.is_float_dtype(ma[c])]
        for col in numeric:
            xs = np.asarray(ma[col], dtype=np.float64)
            ys = np.asarray(mb[col].reindex(ma.index), dtype=np.float64)
            bad = ~(np.abs(xs - ys) <= atol + rtol * np.abs(ys))
            if bad.any():
                out.append(f"membership {col}: {int(bad.sum())} documents differ beyond rtol {rtol}")
    return out
