"""Aggregation (DESIGN §1 steps 4-6) against weights worked out by hand and a slow bootstrap loop."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

from automixer_core.aggregation import (
    RESIDUAL,
    AggregationConfig,
    aggregate,
    alpha_weights,
    artifact_steps,
    floor_weights,
)
from automixer_core.errors import AutoMixerError, ConfigError

NO_BOOT = AggregationConfig(bootstrap=0)


def _hand_table() -> pd.DataFrame:
    """Five documents, two benchmarks A (step 300) and B (step 100)."""
    return pd.DataFrame(
        {
            "doc_id": ["d1", "d2", "d3", "d4", "d5"],
            "n_tokens": [10, 30, 20, 20, 10],
            "A": [2.0, 1.0, -1.0, 0.0, -2.0],
            "B": [1.0, -1.0, 3.0, 2.0, -1.0],
            "domain": ["x", "y", "y", "x", "z"],
        }
    )


STEPS = {"A": 300, "B": 100}


def test_hand_case_step_alpha() -> None:
    agg = aggregate(_hand_table(), STEPS, NO_BOOT)
    # α_A = 300/400 = 0.75, α_B = 100/400 = 0.25.
    assert agg.alpha == pytest.approx({"A": 0.75, "B": 0.25})
    # I_joint: d1 = .75*2 + .25*1 = 1.75; d2 = .75 - .25 = 0.5; d3 = -.75 + .75 = 0;
    #          d4 = 0 + .5 = 0.5; d5 = -1.5 - .25 = -1.75.
    mem = agg.membership.set_index("doc_id")
    assert mem["joint_score"].tolist() == pytest.approx([1.75, 0.5, 0.0, 0.5, -1.75])
    # Groups: argmax → d1, d2 in A; d3, d4 in B; d5 negative everywhere → residual.
    assert mem["group"].tolist() == ["A", "A", "B", "B", RESIDUAL]
    g = agg.groups.set_index("name")
    # ρ_A = (1.75*10 + 0.5*30) / 40 = 32.5/40 = 13/16; ρ_B = (0*20 + 0.5*20)/40 = 1/4;
    # ρ_residual = -1.75*10/10 = -1.75.
    assert g.loc["A", "density"] == pytest.approx(13 / 16)
    assert g.loc["B", "density"] == pytest.approx(1 / 4)
    assert g.loc[RESIDUAL, "density"] == pytest.approx(-1.75)
    # w = ρ⁺/Σρ⁺: A = (13/16)/(17/16) = 13/17, B = 4/17, residual floored to 0.
    assert g.loc["A", "weight"] == pytest.approx(13 / 17)
    assert g.loc["B", "weight"] == pytest.approx(4 / 17)
    assert g.loc[RESIDUAL, "weight"] == 0.0
    assert agg.floored == [RESIDUAL]
    assert g["tokens"].tolist() == [40, 40, 10]
    assert g["documents"].tolist() == [2, 2, 1]
    assert g.loc["A", "mean_doc_tokens"] == pytest.approx(20.0)
    assert any("floored" in n for n in agg.notes)
    assert g.loc["A", "weight_ci"] is None  # no bootstrap


def test_hand_case_driven_by() -> None:
    agg = aggregate(_hand_table(), STEPS, NO_BOOT)
    assert agg.groups["name"].iloc[0] == "A"
    drivers: list[dict[str, Any]] = agg.groups["driven_by"].tolist()[0]
    # C_A,A = .75*(2*10 + 1*30)/40 = 0.9375; C_A,B = .25*(1*10 - 1*30)/40 = -0.125; sum = ρ_A.
    # shares |C|/Σ|C|: 0.9375/1.0625 = 15/17, 0.125/1.0625 = 2/17.
    assert [d["benchmark"] for d in drivers] == ["A", "B"]
    assert [d["contribution"] for d in drivers] == pytest.approx([0.9375, -0.125])
    assert [d["share"] for d in drivers] == pytest.approx([15 / 17, 2 / 17])


def test_hand_case_uniform_alpha() -> None:
    agg = aggregate(_hand_table(), STEPS, AggregationConfig(alpha="uniform", bootstrap=0))
    assert agg.alpha == pytest.approx({"A": 0.5, "B": 0.5})
    # I_joint = (A+B)/2: d1 1.5, d2 0, d3 1, d4 1, d5 -1.5.
    # ρ_A = (1.5*10 + 0*30)/40 = 0.375; ρ_B = (1*20 + 1*20)/40 = 1 → w_A = 0.375/1.375 = 3/11.
    w = agg.weights
    assert w["A"] == pytest.approx(3 / 11)
    assert w["B"] == pytest.approx(8 / 11)
    assert w[RESIDUAL] == 0.0


def test_without_residual_group() -> None:
    agg = aggregate(_hand_table(), STEPS, AggregationConfig(residual=False, bootstrap=0))
    # d5 (A=-2, B=-1) now joins B: ρ_B = (0*20 + 0.5*20 - 1.75*10)/50 = -7.5/50 = -0.15 → floored.
    g = agg.groups.set_index("name")
    assert list(g.index) == ["A", "B"]
    assert g.loc["B", "density"] == pytest.approx(-0.15)
    assert agg.weights == pytest.approx({"A": 1.0, "B": 0.0})
    assert agg.floored == ["B"]


def test_min_weight_floor() -> None:
    # m = 0.1: residual (ρ < 0) gets exactly 0.1; A and B share 0.9 as 13:4.
    w = aggregate(_hand_table(), STEPS, AggregationConfig(min_weight=0.1, bootstrap=0)).weights
    assert w[RESIDUAL] == pytest.approx(0.1)
    assert w["A"] == pytest.approx(0.9 * 13 / 17)
    assert w["B"] == pytest.approx(0.9 * 4 / 17)
    # m = 0.25: residual 0.25; B's share 0.75*4/17 = 0.176 < 0.25, so B is floored too; A = 0.5.
    agg = aggregate(_hand_table(), STEPS, AggregationConfig(min_weight=0.25, bootstrap=0))
    assert agg.weights == pytest.approx({"A": 0.5, "B": 0.25, RESIDUAL: 0.25})
    assert sorted(agg.floored) == ["B", RESIDUAL]
    with pytest.raises(ConfigError, match="min_weight"):
        aggregate(_hand_table(), STEPS, AggregationConfig(min_weight=0.4, bootstrap=0))


def test_all_negative_falls_back_to_token_shares() -> None:
    df = pd.DataFrame({"doc_id": ["a", "b"], "n_tokens": [10, 30], "A": [-1.0, -3.0], "B": [-2.0, -1.0]})
    agg = aggregate(df, STEPS, AggregationConfig(alpha="uniform", residual=False, bootstrap=0))
    # a → A (ρ = -1.5), b → B (ρ = -2): no positive density, so token shares 10/40 and 30/40.
    assert agg.weights == pytest.approx({"A": 0.25, "B": 0.75})
    assert any("token shares" in n for n in agg.notes)


def test_domain_weights() -> None:
    agg = aggregate(_hand_table(), STEPS, NO_BOOT)
    assert agg.domains is not None
    d = agg.domains.set_index("name")
    # x = {d1, d4}: (1.75*10 + 0.5*20)/30 = 11/12; y = {d2, d3}: (0.5*30 + 0)/50 = 0.3;
    # z = {d5}: -1.75 → floored. w_x = (11/12)/(11/12 + 3/10) = 55/73, w_y = 18/73.
    assert d.loc["x", "density"] == pytest.approx(11 / 12)
    assert d.loc["y", "density"] == pytest.approx(0.3)
    assert d.loc["x", "weight"] == pytest.approx(55 / 73)
    assert d.loc["y", "weight"] == pytest.approx(18 / 73)
    assert d.loc["z", "weight"] == 0.0 and bool(d.loc["z", "floored"])
    assert agg.membership["domain"].tolist() == ["x", "y", "y", "x", "z"]


def test_alpha_weights_and_steps() -> None:
    a, notes = alpha_weights({"A": 100.0, "B": 300.0})
    assert a == pytest.approx({"A": 0.25, "B": 0.75}) and not notes
    a, notes = alpha_weights({"A": 0.0, "B": 0.0})
    assert a == pytest.approx({"A": 0.5, "B": 0.5}) and "uniform" in notes[0]
    # top_k: a list of steps is averaged ((100 + 300)/2 = 200 vs 200).
    agg = aggregate(_hand_table(), {"A": [100, 300], "B": 200}, NO_BOOT)
    assert agg.alpha == pytest.approx({"A": 0.5, "B": 0.5})
    sel = pd.DataFrame({"benchmark": ["A", "A", "B"], "step": [100, 300, 200]})
    assert artifact_steps(sel) == {"A": 200.0, "B": 200.0}


def test_score_prefix_columns_accepted() -> None:
    df = _hand_table().rename(columns={"A": "score__A", "B": "score__B"})
    assert aggregate(df, STEPS, NO_BOOT).weights == pytest.approx({"A": 13 / 17, "B": 4 / 17, RESIDUAL: 0.0})


def test_input_errors() -> None:
    df = _hand_table()
    with pytest.raises(ConfigError, match="no column for benchmark 'C'"):
        aggregate(df, {**STEPS, "C": 5}, NO_BOOT)
    with pytest.raises(ConfigError, match="n_tokens"):
        aggregate(df.drop(columns="n_tokens"), STEPS, NO_BOOT)
    bad = df.copy()
    bad.loc[2, "A"] = np.nan
    with pytest.raises(AutoMixerError, match="'d3'"):
        aggregate(bad, STEPS, NO_BOOT)
    dup = df.copy()
    dup.loc[1, "doc_id"] = "d1"
    with pytest.raises(AutoMixerError, match="more than once"):
        aggregate(dup, STEPS, NO_BOOT)
    with pytest.raises(ConfigError, match="residual"):
        aggregate(df.rename(columns={"A": RESIDUAL}), {RESIDUAL: 1, "B": 1}, NO_BOOT)
    with pytest.raises(ConfigError, match="step"):
        aggregate(df, {"A": -1, "B": 1}, NO_BOOT)
    with pytest.raises(pydantic.ValidationError):
        AggregationConfig(min_wieght=0.1)  # type: ignore[call-arg]


def _random_table(n: int, b: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"doc_id": [f"d{i}" for i in range(n)], "n_tokens": rng.integers(1, 500, n)})
    for j in range(b):
        df[f"b{j}"] = rng.normal(shift + 0.1 * j, 1.0, n)
    df["domain"] = rng.choice(["p", "q", "r"], n)
    return df


@pytest.mark.parametrize("seed", range(6))
def test_properties_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    b = int(rng.integers(1, 6))
    df = _random_table(int(rng.integers(5, 400)), b, seed, shift=float(rng.normal(0, 0.5)))
    steps = {f"b{j}": int(rng.integers(0, 1000)) for j in range(b)}
    m = float(rng.choice([0.0, 0.01, 0.05]))
    cfg = AggregationConfig(
        alpha=str(rng.choice(["step", "uniform"])),
        min_weight=m,
        residual=bool(seed % 2) or seed == 4,
        residual_rule="all_negative" if seed % 3 == 0 else "negative_joint",
        normalize=str(rng.choice(["none", "zscore", "rank"])),
        residual_domains=("relative", "negative", "off")[seed % 3],
        bootstrap=30,
    )
    agg = aggregate(df, steps, cfg)
    w = agg.groups["weight"].to_numpy()
    assert (w >= m - 1e-12).all() and w.sum() == pytest.approx(1.0)
    assert agg.groups["tokens"].sum() == df["n_tokens"].sum()
    assert agg.groups["documents"].sum() == len(df)
    assert sum(agg.alpha.values()) == pytest.approx(1.0)
    for drivers in agg.groups["driven_by"]:
        assert sum(d["share"] for d in drivers) == pytest.approx(1.0)
        shares = [d["share"] for d in drivers]
        assert shares == sorted(shares, reverse=True)
    for row, dens in zip(agg.groups["driven_by"], agg.groups["density"], strict=True):
        assert sum(d["contribution"] for d in row) == pytest.approx(dens)
    assert agg.weight_samples is not None
    assert np.allclose(agg.weight_samples.sum(axis=1), 1.0) and (agg.weight_samples >= m - 1e-12).all()
    assert agg.domains is not None and agg.domains["weight"].sum() == pytest.approx(1.0)
    # Membership, written out per document: the argmax of the normalised scores, or residual when
    # harmful (all negative; or, by negative_joint, a negative α-weighted sum; or of a domain whose
    # token-weighted mean α-weighted sum is negative, or below −0.5 × the median of their sizes).
    names = [f"b{j}" for j in range(b)]
    mat = df[names].to_numpy()
    joints = [sum(agg.alpha[n] * mat[i, j] for j, n in enumerate(names)) for i in range(len(df))]
    dens = {}
    for d in set(df["domain"]):
        rows = [i for i in range(len(df)) if df["domain"].iloc[i] == d]
        tokens = sum(df["n_tokens"].iloc[i] for i in rows)
        dens[d] = sum(joints[i] * df["n_tokens"].iloc[i] for i in rows) / tokens
    cut = {"negative": 0.0, "relative": -0.5 * float(np.median([abs(v) for v in dens.values()]))}
    bad_domains = {
        d for d, v in dens.items() if cfg.residual_domains in cut and v < cut[cfg.residual_domains]
    }
    expect = []
    for i in range(len(df)):
        if cfg.normalize == "zscore":
            row = [(mat[i, j] - mat[:, j].mean()) / (mat[:, j].std() or 1.0) for j in range(b)]
        elif cfg.normalize == "rank":
            row = [
                (np.sum(mat[:, j] < mat[i, j]) + (np.sum(mat[:, j] == mat[i, j]) + 1) / 2) / len(df)
                for j in range(b)
            ]
        else:
            row = list(mat[i])
        group = names[int(np.argmax(row))]
        harmful = (
            all(v < 0 for v in mat[i])
            or (cfg.residual_rule == "negative_joint" and joints[i] < 0)
            or df["domain"].iloc[i] in bad_domains
        )
        expect.append(RESIDUAL if cfg.residual and harmful else group)
    assert agg.membership["group"].tolist() == expect
    # Each moved document is counted once, under the first rule that moved it.
    moved = sum(m["documents"] for m in agg.residual_moves)
    assert moved == (expect.count(RESIDUAL) if cfg.residual else 0)
    for m in agg.residual_moves:
        assert sum(m["by_domain"].values()) == m["documents"] > 0


def test_floor_weights_vectorised_rows_match_single_rows() -> None:
    rng = np.random.default_rng(3)
    rho = rng.normal(0, 1, (50, 6))
    tok = rng.integers(1, 100, (50, 6))
    w, fl, fb = floor_weights(rho, tok, 0.08)
    for r in range(50):
        w1, fl1, fb1 = floor_weights(rho[r], tok[r], 0.08)
        assert np.allclose(w[r], w1) and (fl[r] == fl1).all() and fb[r] == fb1
    assert np.allclose(w.sum(axis=1), 1.0) and (w >= 0.08 - 1e-12).all()


# --- bootstrap -----------------------------------------------------------------------------------


def _slow_weights(df: pd.DataFrame, groups: list[str], alpha: dict[str, float], m: float) -> list[float]:
    """Plain-Python weights of ``groups`` for a (resampled) table whose ``group`` column is fixed."""
    dens: dict[str, float] = {}
    toks: dict[str, float] = {}
    for g in groups:
        rows = df[df["group"] == g]
        t = float(rows["n_tokens"].sum())
        joint = sum(alpha[b] * rows[b] for b in alpha)
        toks[g] = t
        dens[g] = float((joint * rows["n_tokens"]).sum()) / t if t > 0 else 0.0
    base = {g: max(d, 0.0) for g, d in dens.items()}
    if sum(base.values()) <= 0:
        base = dict(toks)
    floored = {g for g in groups if base[g] <= 0}
    while True:
        free = [g for g in groups if g not in floored]
        rest = 1.0 - m * len(floored)
        total = sum(base[g] for g in free)
        w = {g: (rest * base[g] / total if g in free else m) for g in groups}
        low = {g for g in free if w[g] < m}
        if not low:
            return [w[g] for g in groups]
        floored |= low


@pytest.mark.parametrize("min_weight", [0.0, 0.1])
def test_bootstrap_matches_slow_loop(min_weight: float) -> None:
    df = _random_table(60, 3, seed=7, shift=0.2)
    steps = {"b0": 100, "b1": 200, "b2": 400}
    cfg = AggregationConfig(bootstrap=25, seed=11, ci=0.9, min_weight=min_weight)
    agg = aggregate(df, steps, cfg)
    groups = agg.groups["name"].tolist()
    labelled = df.assign(group=agg.membership["group"].to_numpy())
    rng = np.random.default_rng(11)
    slow = []
    for _ in range(25):
        idx = rng.integers(0, len(df), len(df))
        slow.append(_slow_weights(labelled.iloc[idx], groups, agg.alpha, min_weight))
    slow_arr = np.array(slow)
    assert agg.weight_samples is not None
    np.testing.assert_allclose(agg.weight_samples, slow_arr, atol=1e-12)
    lo, hi = np.quantile(slow_arr, [0.05, 0.95], axis=0)
    for j, ci in enumerate(agg.groups["weight_ci"]):
        assert ci == pytest.approx((lo[j], hi[j]))


def test_bootstrap_contains_estimate_and_shrinks_with_more_docs() -> None:
    steps = {"b0": 100, "b1": 200, "b2": 300}
    widths = []
    for n in (400, 20_000):
        agg = aggregate(_random_table(n, 3, seed=5, shift=0.3), steps, AggregationConfig(bootstrap=200))
        for w, (lo, hi) in zip(agg.groups["weight"], agg.groups["weight_ci"], strict=True):
            assert lo - 1e-12 <= w <= hi + 1e-12
        widths.append(np.mean([hi - lo for lo, hi in agg.groups["weight_ci"]]))
    # Width ~ 1/sqrt(N): 50x the documents should shrink it several-fold.
    assert widths[1] < widths[0] / 3


def test_bootstrap_is_fast_and_seeded() -> None:
    df = _random_table(50_000, 8, seed=1, shift=0.05)
    steps = {f"b{j}": 100 * (j + 1) for j in range(8)}
    t0 = time.perf_counter()
    a1 = aggregate(df, steps, AggregationConfig(bootstrap=200, seed=4))
    elapsed = time.perf_counter() - t0
    assert elapsed < 10.0, f"200 resamples over 50k documents took {elapsed:.1f}s"
    a2 = aggregate(df, steps, AggregationConfig(bootstrap=200, seed=4))
    assert a1.weight_samples is not None and a2.weight_samples is not None
    assert np.array_equal(a1.weight_samples, a2.weight_samples)


def test_a_document_harmful_overall_leaves_the_weighted_groups_and_the_note_says_so() -> None:
    """Positive for one benchmark, strongly negative for the other: by argmax it would join `a`;
    negative_joint sends it to residual and says from which domain; all_negative keeps it in `a`."""
    df = pd.DataFrame(
        {
            "doc_id": ["good", "harm", "bad"],
            "n_tokens": [10, 20, 30],
            "domain": ["x", "wrong", "y"],
            "a": [1.0, 0.1, -1.0],
            "b": [0.5, -5.0, -1.0],
        }
    )
    steps = {"a": 100, "b": 100}
    joint = aggregate(df, steps, AggregationConfig(bootstrap=0, residual_domains="off"))
    assert joint.membership["group"].tolist() == ["a", RESIDUAL, RESIDUAL]
    assert any("1 documents (20 tokens)" in n and "from wrong 1" in n for n in joint.notes)
    old = aggregate(
        df, steps, AggregationConfig(bootstrap=0, residual_rule="all_negative", residual_domains="off")
    )
    assert old.membership["group"].tolist() == ["a", "a", RESIDUAL]
    assert not any("moved out" in n for n in old.notes)


def test_a_domain_harmful_overall_leaves_the_weighted_groups_whole() -> None:
    """Domain `wrong`: one document helpful for `a` (kept by both document rules), five very
    harmful; its joint density is negative, so the domain rule moves all six. `meh` is negative on
    average but noisy: `negative` moves it, `confident` (its 0.75 quantile is above 0) keeps it."""
    rng = np.random.default_rng(0)
    meh = rng.normal(0.0, 1.0, 40)
    meh = meh - meh.mean() - 0.02  # mean −0.02, standard error about 0.16
    wrong = [f"w{i}" for i in range(1, 7)]
    df = pd.DataFrame(
        {
            "doc_id": ["g1", "g2", *wrong] + [f"m{i}" for i in range(40)],
            "n_tokens": [10] * 48,
            "domain": ["good", "good"] + ["wrong"] * 6 + ["meh"] * 40,
            "a": [1.0, 2.0, 0.5, *[-9.0] * 5, *meh],
            "b": [1.0, 1.0, 0.5, *[-9.0] * 5, *meh],
        }
    )
    steps = {"a": 100, "b": 100}
    assert df.loc[df.domain == "meh", "a"].mean() < 0
    by_doc = aggregate(df, steps, AggregationConfig(bootstrap=0, residual_domains="off"))
    assert by_doc.membership.set_index("doc_id").loc["w1", "group"] == "a"  # the document rules keep it
    neg = aggregate(df, steps, AggregationConfig(bootstrap=0, residual_domains="negative"))
    neg = neg.membership.set_index("doc_id")["group"]
    assert (neg[wrong] == RESIDUAL).all() and (neg[[f"m{i}" for i in range(40)]] == RESIDUAL).all()
    assert neg["g1"] != RESIDUAL and neg["g2"] != RESIDUAL
    # relative (the default): `wrong` (−7.4) is below −0.5 × median(|1.25|, |−7.4|, |−0.02|); `meh` is not
    rel = aggregate(df, steps, AggregationConfig(bootstrap=0)).membership.set_index("doc_id")["group"]
    assert (rel[wrong] == RESIDUAL).all() and (rel[[f"m{i}" for i in range(40)]] != RESIDUAL).any()
    conf = aggregate(df, steps, AggregationConfig(bootstrap=200, residual_domains="confident"))
    groups = conf.membership.set_index("doc_id")["group"]
    assert groups["w1"] == RESIDUAL  # the whole interval of `wrong` is below 0
    assert (groups[[f"m{i}" for i in range(40)]] != RESIDUAL).any()  # `meh` stays
    moves = {m["rule"]: m for m in conf.residual_moves}
    assert moves["negative_domain"]["by_domain"] == {"wrong": 1} and moves["negative_domain"]["tokens"] == 10
