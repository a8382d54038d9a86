"""What the Prefect UI shows of a published mixture: the weights tables, a markdown summary (facts,
weights chart, links to the files) and a link to the report.
"""

from __future__ import annotations

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from automixer_core.mixture import Mixture, MixtureDomain, MixtureGroup
from automixer_core.plots import ARTIFACT_DPI, weights_plot
from automixer_core.report import MEMBERSHIP_SENTENCE
from automixer_core.report.common import interval, note_sentence, pct
from automixer_core.report.weights import driven_by, token_shares
from automixer_core.store import Store
from tasks.keys import mixture_key
from tasks.reports import markdown_image

#: Benchmarks named in a weights table's "driven by" cell: three overflow the Prefect UI's table at
#: a 1440-pixel window (docs/screenshots/artifact-weights.png); report.html names three.
ARTIFACT_DRIVERS = 2


def weight_rows(entries: list[MixtureGroup] | list[MixtureDomain], what: str) -> list[dict[str, str]]:
    """Rows of a weights table artifact, largest weight first; every cell a short string."""
    share = token_shares(entries)
    rows = []
    for e in sorted(entries, key=lambda x: (-x.weight, x.name)):
        row = {
            what: e.name,
            "weight": pct(e.weight),
            "interval": interval(e.weight_ci),
            "token share": pct(share[e.name]),
            "tokens": f"{e.tokens:,}",
            "documents": f"{e.documents:,}",
        }
        if isinstance(e, MixtureGroup):
            row["driven by"] = driven_by(e, top=ARTIFACT_DRIVERS) or "–"
        rows.append(row)
    return rows


def browser_link(store: Store, key: str, text: str) -> str:
    """A markdown link that opens in a browser (a presigned https URL), or where the file is when
    none can (a local store: browsers do not open file:// links from a web page)."""
    url = store.public_url(key)
    if url is not None and url.startswith(("https://", "http://")):
        return f"[{text}]({url})"
    where = url if url is not None else store.uri(key)
    return f"{text}: `{where}`"


def summary_markdown(mixture: Mixture, store: Store, files: list[str]) -> str:
    """The mixture's markdown artifact: the facts in sentences, the weights chart (small data-URI
    image) and the files, as links where a browser can open them."""
    folder = mixture_key(mixture.id, "")
    share = token_shares(mixture.groups)
    tokens = sum(g.tokens for g in mixture.groups)
    docs = sum(g.documents for g in mixture.groups)
    top = sorted(mixture.groups, key=lambda g: -g.weight)[:3]
    lines = [
        f"## Mixture `{mixture.id}`",
        "",
        f"{docs:,} scored documents ({tokens:,} tokens) in {len(mixture.groups)} groups. Largest weights: "
        + "; ".join(f"**{g.name}** {pct(g.weight)} (from {pct(share[g.name])} of the tokens)" for g in top)
        + ".",
        "",
    ]
    if mixture.notes:
        lines += ["**Notes**", "", *[f"- {note_sentence(n)}" for n in mixture.notes], ""]
    lines += [
        markdown_image(
            weights_plot(mixture.groups, "Group weights and token shares", dpi=ARTIFACT_DPI),
            "group weights",
            store.uri(mixture_key(mixture.id, "report.html")),
        ),
        "",
        "**Files**",
        "",
        *[f"- {browser_link(store, folder + name, name)}" for name in files],
        "",
        MEMBERSHIP_SENTENCE,
    ]
    url = store.public_url(mixture_key(mixture.id, "report.html")) or ""
    if url.startswith("https://"):
        lines += ["", "Links are presigned: they open for 7 days."]
    elif not url.startswith("http"):
        lines += [
            "",
            "These files are on the machine that ran the flow (a local store): a browser does not open "
            "them from this page; open the paths there.",
        ]
    return "\n".join(lines)


def _artifacts(mixture: Mixture, store: Store, files: list[str]) -> None:
    create_table_artifact(
        key="mixture-weights",
        table=weight_rows(mixture.groups, "group"),
        description=f"mixture {mixture.id}: group weights (% of training tokens) and token shares",
    )
    if mixture.domains:
        create_table_artifact(
            key="mixture-domain-weights",
            table=weight_rows(mixture.domains, "domain"),
            description=f"mixture {mixture.id}: per-domain weights by the same rule",
        )
    create_markdown_artifact(key="mixture-summary", markdown=summary_markdown(mixture, store, files))
    report = mixture_key(mixture.id, "report.html")
    url = store.public_url(report)
    create_link_artifact(
        key="mixture-report",
        link=url if url is not None else store.uri(report),
        link_text="report.html",
        description=f"the report of mixture {mixture.id}; a file:// link opens only on the machine that holds it",
    )
