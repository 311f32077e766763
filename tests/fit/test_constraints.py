"""Constraint resolution (infeasible sets name the constraint) and exact repair/projection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from olmix_core.errors import DataError, InfeasibleError
from olmix_core.fit.constraints import project_rows, repair, repair_rows, resolve_bounds
from olmix_core.fit.options import ConstraintsOptions as Constraints

DOMS = ["a", "b:x", "c", "d", "e"]


def test_no_constraints():
    b = resolve_bounds(Constraints(), DOMS)
    assert b.free.all() and b.remaining == 1.0 and not b.caps
    x = repair(np.array([0.5, 0.5, 0.5, 0.0, 0.0]), b)
    np.testing.assert_allclose(x, [1 / 3, 1 / 3, 1 / 3, 0, 0])


def test_token_caps_are_exact_and_by_name():
    tokens = {"e": 10.0, "a": 1.0, "b:x": 1e9, "c": 3.0, "d": 7.0}  # deliberately not in domain order
    c = Constraints(target_tokens=100.0, repetition_factor=3.0)
    b = resolve_bounds(c, DOMS, tokens)
    assert b.caps == {"a": 0.03, "c": 0.09, "d": 0.21, "e": 0.3}
    for i, d in enumerate(DOMS):
        assert b.hi[i] * 100.0 <= tokens[d] * 3.0
    x = repair(np.array([0.9, 0.0, 0.05, 0.05, 0.0]), b)
    assert not b.violations(x, tol=0.0)[1:]  # bounds hold exactly; sum within float rounding
    assert abs(x.sum() - 1) < 1e-15
    for i, d in enumerate(DOMS):
        assert x[i] * 100.0 <= tokens[d] * 3.0


def test_per_domain_repetition():
    b = resolve_bounds(Constraints(target_tokens=5.0, repetition_factor={"a": 4.0}), DOMS, dict.fromkeys(DOMS, 1.0))
    assert b.hi[0] == pytest.approx(0.8) and b.hi[1] == pytest.approx(0.2)


@pytest.mark.parametrize(
    "constraints, tokens, message",
    [
        (dict(fixed_weights={"a": 0.7, "c": 0.5}), None, "fit.constraints.fixed_weights values sum to 1.2 > 1"),
        (dict(fixed_weights=dict.fromkeys(DOMS, 0.1)), None, "every domain is fixed"),
        (
            dict(fixed_weights={"a": 0.02}, min_weight_per_domain=0.05),
            None,
            "fit.constraints.fixed_weights a=0.02 is below fit.constraints.min_weight_per_domain",
        ),
        (
            dict(fixed_weights={"a": 0.5}, target_tokens=100.0),
            {"a": 10.0},
            "fit.constraints.fixed_weights a=0.5 exceeds its token cap 0.1",
        ),
        (dict(target_tokens=100.0), dict.fromkeys(DOMS, 10.0), "token caps: the free domains can take at most 0.5"),
        (dict(fixed_weights={"a": 0.97}, min_weight_per_domain=0.05), None, "leave 0.03 for the other domains"),
        (
            dict(target_tokens=100.0, min_weight_per_domain=0.3),
            {"a": 30.0, "b:x": 30.0, "c": 30.0, "d": 30.0, "e": 5.0},
            "needs at least 4 domains",
        ),
        (
            dict(target_tokens=100.0, min_weight_per_domain=0.3),
            {"a": 30.0, "b:x": 30.0, "c": 35.0, "d": 5.0, "e": 5.0},
            "capped below fit.constraints.min_weight_per_domain (so 0): ['d', 'e']",
        ),
    ],
)
def test_infeasible_constraints_are_named(constraints, tokens, message):
    tok = dict.fromkeys(DOMS, 1e12)
    tok.update(tokens or {})
    with pytest.raises(InfeasibleError) as e:
        resolve_bounds(Constraints(**constraints), DOMS, tok)
    assert message in str(e.value)


def test_bad_constraint_input():
    with pytest.raises(DataError, match="'zz' is not a domain"):
        resolve_bounds(Constraints(fixed_weights={"zz": 0.1}), DOMS)
    with pytest.raises(DataError, match="fit.constraints.target_tokens needs token_counts"):
        resolve_bounds(Constraints(target_tokens=1e9), DOMS)
    with pytest.raises(ValueError, match="min_weight_per_domain"):
        Constraints(min_weight_per_domain=1.5)


def test_domain_capped_below_minimum_is_zero():
    b = resolve_bounds(
        Constraints(min_weight_per_domain=0.1, target_tokens=100.0), DOMS, {**dict.fromkeys(DOMS, 1e6), "c": 5.0}
    )
    assert b.hi[2] == 0.0
    x = repair(np.array([0.1, 0.1, 0.6, 0.1, 0.1]), b)
    assert x[2] == 0.0 and not b.violations(x)


def test_project_rows_matches_reference_solution():
    rng = np.random.default_rng(0)
    V = rng.normal(size=(50, 6))
    lo = np.zeros(6)
    hi = rng.uniform(0.2, 0.6, 6)
    Y = project_rows(V, lo, hi, 1.0)
    assert np.all(Y >= lo) and np.all(Y <= hi)
    np.testing.assert_allclose(Y.sum(1), 1.0, atol=1e-12)
    # optimality: no feasible pair move reduces the distance (KKT for the box-simplex projection)
    for v, y in zip(V, Y):
        g = y - v
        inner = (y > lo + 1e-12) & (y < hi - 1e-12)
        if inner.sum() >= 2:
            assert np.ptp(g[inner]) < 1e-9


@settings(max_examples=120, deadline=None)
@given(
    x=st.lists(st.floats(0, 1), min_size=5, max_size=5),
    mw=st.sampled_from([0.0, 0.02, 0.1, 0.19]),
    fixed=st.sampled_from([{}, {"a": 0.3}, {"a": 0.0, "c": 0.25}]),
    caps=st.lists(st.floats(0.05, 2.0), min_size=5, max_size=5),
)
def test_repair_satisfies_every_constraint_exactly(x, mw, fixed, caps):
    tokens = dict(zip(DOMS, caps))
    try:
        b = resolve_bounds(Constraints(min_weight_per_domain=mw, fixed_weights=fixed, target_tokens=1.0), DOMS, tokens)
    except InfeasibleError:
        return
    y = repair(np.array(x), b)
    assert b.violations(y, tol=1e-12) == []
    for i, d in enumerate(DOMS):
        assert y[i] * 1.0 <= tokens[d]
        assert y[i] == 0 or y[i] >= mw or d in fixed
    Y, valid = repair_rows(np.array([x, x[::-1]]), b)
    for row, ok in zip(Y, valid):
        if ok:
            assert b.violations(row, tol=1e-12) == []
