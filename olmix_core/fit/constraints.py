"""Constraints on a proposed mixture, honoured exactly in what a proposer returns.

* minimum weight: every weight is 0 or >= `min_weight_per_domain` (semi-continuous, so the feasible set is a union
  of boxes; proposers choose a support, then optimise inside it);
* fixed weights: `fixed_weights[d]` exactly;
* token caps: ``w_d × target_tokens <= token_counts_d × repetition_factor_d``;
* Pareto improvement: no metric predicted worse than the reference mixture's prediction by more than `tol`
  (checked by the proposers with the fitted models, see `proposers.Problem`).

The options themselves are `options.ConstraintsOptions` (the `constraints` section of the fit options).
`resolve_bounds` turns the first three into per-domain bounds and raises `InfeasibleError` naming the constraint
that cannot be met; `repair` maps any point to a nearby mixture that satisfies them exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from olmix_core.errors import DataError, InfeasibleError
from olmix_core.fit.options import ConstraintsOptions


@dataclass
class Bounds:
    """Per-domain bounds derived from fixed weights, token caps and the minimum weight."""

    domains: list[str]
    lo: np.ndarray  # fixed weight for fixed domains, else 0
    hi: np.ndarray  # fixed weight for fixed domains, else the token cap (0 when the cap is below the minimum)
    fixed: np.ndarray  # bool
    min_weight: float
    caps: dict[str, float]  # token caps that bind below 1 (for reports)

    @property
    def free(self) -> np.ndarray:
        return ~self.fixed & (self.hi > 0)

    @property
    def remaining(self) -> float:
        """Mass left for the free domains once fixed weights are placed."""
        return max(0.0, 1.0 - float(self.lo[self.fixed].sum()))

    def support_ok(self, support: np.ndarray) -> bool:
        R = self.remaining
        if R <= 0:
            return not support.any()
        return bool(self.hi[support].sum() >= R - 1e-12 and support.sum() * self.min_weight <= R + 1e-12)

    def restricted(self, support: np.ndarray) -> Bounds:
        """Bounds for one support choice: free domains in `support` get [min weight, cap], the others 0. The
        semi-continuous minimum becomes an ordinary lower bound, so a continuous optimiser can work inside it."""
        keep = self.free & support
        lo = np.where(self.fixed, self.lo, np.where(keep, self.min_weight, 0.0))
        hi = np.where(self.fixed, self.hi, np.where(keep, self.hi, 0.0))
        return Bounds(self.domains, lo, hi, self.fixed.copy(), 0.0, self.caps)

    def violations(self, x: np.ndarray, tol: float = 1e-9) -> list[str]:
        """What `x` violates (empty when it is a valid constrained mixture); `tol` absorbs float rounding only."""
        out = []
        if np.any(x < 0):
            out.append(f"negative weights: {[self.domains[i] for i in np.flatnonzero(x < 0)]}")
        if abs(x.sum() - 1.0) > tol:
            out.append(f"weights sum to {x.sum()!r}")
        for i, d in enumerate(self.domains):
            if self.fixed[i] and abs(x[i] - self.lo[i]) > tol:
                out.append(f"{d}: {x[i]} != fixed weight {self.lo[i]}")
            if x[i] > self.hi[i] + (tol if self.fixed[i] else 0.0):
                out.append(f"{d}: {x[i]} above its cap {self.hi[i]}")
            if not self.fixed[i] and x[i] < self.lo[i]:
                out.append(f"{d}: {x[i]} below its lower bound {self.lo[i]}")
            if self.min_weight > 0 and 0 < x[i] < self.min_weight and not self.fixed[i]:
                out.append(f"{d}: {x[i]} is neither 0 nor >= min weight {self.min_weight}")
        return out


def _cap(tokens: float, rep: float, target: float) -> float:
    """Largest float w with w × target <= tokens × rep (so the cap holds exactly after rounding)."""
    limit = tokens * rep
    w = min(1.0, limit / target)
    while w > 0 and w * target > limit:
        w = math.nextafter(w, 0.0)
    return w


def resolve_bounds(
    constraints: ConstraintsOptions, domains: list[str], token_counts: dict[str, float] | None = None
) -> Bounds:
    """Bounds per domain; InfeasibleError (naming the constraint) when no mixture satisfies them all."""
    d = len(domains)
    index = {name: i for i, name in enumerate(domains)}
    lo, hi = np.zeros(d), np.ones(d)
    fixed = np.zeros(d, bool)
    mw = constraints.min_weight_per_domain
    for name, w in constraints.fixed_weights.items():
        if name not in index:
            raise DataError(f"fit.constraints.fixed_weights: {name!r} is not a domain of the swarm ({domains})")
        i = index[name]
        fixed[i] = True
        lo[i] = hi[i] = w
        if 0 < w < mw:
            raise InfeasibleError(
                f"fit.constraints.fixed_weights {name}={w} is below fit.constraints.min_weight_per_domain {mw} (weights must be 0 or >= it)"
            )
    caps: dict[str, float] = {}
    if constraints.caps_on:
        assert constraints.target_tokens is not None
        if token_counts is None:
            raise DataError("fit.constraints.target_tokens needs token_counts in the priors")
        rep = 1.0 if constraints.repetition_factor is None else constraints.repetition_factor
        if isinstance(rep, dict):
            unknown = sorted(set(rep) - set(domains))
            if unknown:
                raise DataError(f"repetition_factor: {unknown} are not domains of the swarm")
        for i, name in enumerate(domains):
            r = rep.get(name, 1.0) if isinstance(rep, dict) else rep
            cap = _cap(float(token_counts[name]), r, float(constraints.target_tokens))
            if cap < 1.0:
                caps[name] = cap
            if fixed[i]:
                if lo[i] > cap:
                    raise InfeasibleError(
                        f"fit.constraints.fixed_weights {name}={lo[i]} exceeds its token cap {cap:.6g} "
                        f"(token_counts {token_counts[name]:.6g} × repetition {r} / target tokens {constraints.target_tokens:.6g})"
                    )
            else:
                hi[i] = cap
    fixed_total = float(lo[fixed].sum())
    if fixed_total > 1.0 + 1e-12:
        raise InfeasibleError(f"fit.constraints.fixed_weights values sum to {fixed_total:.6g} > 1")
    free = ~fixed
    zeroed = [domains[i] for i in np.flatnonzero(free & (hi < mw))] if mw > 0 else []
    if mw > 0:
        hi[free & (hi < mw)] = 0.0  # a domain capped below the minimum can only be 0
    bounds = Bounds(list(domains), lo, hi, fixed, mw, caps)
    R = bounds.remaining
    if R <= 1e-12:
        hi[free] = 0.0
        return bounds
    if not free.any():
        raise InfeasibleError(f"fit.constraints.fixed_weights: every domain is fixed but the weights sum to {fixed_total:.6g}, not 1")
    avail = np.sort(hi[free])[::-1]
    if avail.sum() < R - 1e-12:
        what = "token caps" if caps else "bounds"
        detail = ", ".join(f"{k}≤{v:.4g}" for k, v in caps.items())
        raise InfeasibleError(
            f"{what}: the free domains can take at most {avail.sum():.6g} of the mixture but {R:.6g} must be filled "
            f"(raise fit.constraints.repetition_factor or lower fit.constraints.target_tokens; caps: {detail}"
            + (f"; capped below fit.constraints.min_weight_per_domain (so 0): {zeroed}" if zeroed else "")
            + ")"
        )
    if mw > 0:
        if R < mw:
            raise InfeasibleError(
                f"fit.constraints.min_weight_per_domain {mw}: fixed weights leave {R:.6g} for the other domains, below the minimum"
            )
        k = int(np.searchsorted(np.cumsum(avail), R - 1e-12) + 1)
        if k * mw > R + 1e-12:
            raise InfeasibleError(
                f"fit.constraints.min_weight_per_domain {mw} with token caps: filling {R:.6g} needs at least {k} domains, "
                f"and {k} × {mw} > {R:.6g}"
            )
    return bounds


# ------------------------------------------------------------------------------------------------- projections
def project_rows(
    V: np.ndarray, lo: np.ndarray, hi: np.ndarray, total: float | np.ndarray, iters: int = 64
) -> np.ndarray:
    """Euclidean projection of each row of V onto {lo <= y <= hi, sum(y) = total} (rows feasible by assumption).

    Bisection on the shift τ in y = clip(v - τ, lo, hi), vectorised over rows; the last rounding error of the sum is
    put on one coordinate strictly inside its bounds, so bounds hold exactly and the sum to float precision."""
    V = np.atleast_2d(V)
    lo = np.broadcast_to(lo, V.shape)
    hi = np.broadcast_to(hi, V.shape)
    total = np.broadcast_to(np.asarray(total, float), (V.shape[0],))
    a = (V - hi).min(1)
    b = (V - lo).max(1)
    for _ in range(iters):
        mid = 0.5 * (a + b)
        s = np.clip(V - mid[:, None], lo, hi).sum(1)
        big = s > total
        a = np.where(big, mid, a)
        b = np.where(big, b, mid)
    Y = np.clip(V - (0.5 * (a + b))[:, None], lo, hi)
    err = total - Y.sum(1)
    room = np.where(err[:, None] > 0, hi - Y, Y - lo)
    j = room.argmax(1)
    rows = np.arange(len(Y))
    fix = np.abs(err) <= room[rows, j]
    Y[rows[fix], j[fix]] += err[fix]
    return np.clip(Y, lo, hi)


def repair(x: np.ndarray, bounds: Bounds, threshold: float | None = None) -> np.ndarray:
    """The nearest mixture to `x` (Euclidean, on a chosen support) that satisfies the bounds exactly.

    With a minimum weight, domains below `threshold` (default: half the minimum) go to 0 and the others get at
    least the minimum; if that support cannot hold the remaining mass (caps) or exceeds it (too many minimums),
    domains are added or dropped greedily by weight."""
    x = np.maximum(np.asarray(x, float), 0.0)
    out = np.where(bounds.fixed, bounds.lo, 0.0)
    R = bounds.remaining
    free = bounds.free
    if R <= 0 or not free.any():
        return out
    mw = bounds.min_weight
    if mw <= 0:
        idx = np.flatnonzero(free)
        out[idx] = project_rows(x[idx], bounds.lo[idx], bounds.hi[idx], R)[0]
        return out
    thr = mw / 2 if threshold is None else threshold
    support = free & (x >= thr)
    if not support.any():
        support[np.flatnonzero(free)[np.argmax(x[free])]] = True
    order = [i for i in np.argsort(-x, kind="stable") if free[i]]
    for _ in range(2 * len(order) + 1):
        if bounds.hi[support].sum() < R - 1e-12:
            nxt = next((i for i in order if not support[i]), None)
            if nxt is None:
                break
            support[nxt] = True
        elif support.sum() * mw > R + 1e-12:
            ins = [i for i in order if support[i]]
            support[ins[-1]] = False
        else:
            break
    if not bounds.support_ok(support):  # greedy failed: the largest caps always work (checked in resolve_bounds)
        support = np.zeros_like(free)
        by_cap = [i for i in np.argsort(-bounds.hi, kind="stable") if free[i]]
        acc = 0.0
        for i in by_cap:
            support[i] = True
            acc += bounds.hi[i]
            if acc >= R - 1e-12:
                break
    idx = np.flatnonzero(support)
    out[idx] = project_rows(x[idx], mw, bounds.hi[idx], R)[0]
    return out


def repair_rows(X: np.ndarray, bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `repair` for many candidates: (repaired rows, valid mask). Rows whose thresholded support
    cannot be made feasible are marked invalid rather than fixed one by one (cheap for simulation)."""
    X = np.maximum(np.asarray(X, float), 0.0)
    n = len(X)
    out = np.broadcast_to(np.where(bounds.fixed, bounds.lo, 0.0), X.shape).copy()
    R = bounds.remaining
    free = bounds.free
    if R <= 0 or not free.any():
        return out, np.ones(n, bool)
    idx = np.flatnonzero(free)
    V = X[:, idx]
    hi = np.broadcast_to(bounds.hi[idx], V.shape)
    mw = bounds.min_weight
    if mw > 0:
        on = V >= mw / 2
        lo_r = np.where(on, mw, 0.0)
        hi_r = np.where(on, hi, 0.0)
    else:
        lo_r = np.broadcast_to(bounds.lo[idx], V.shape)
        hi_r = hi
    valid = (hi_r.sum(1) >= R - 1e-12) & (lo_r.sum(1) <= R + 1e-12)
    if valid.any():
        out[np.ix_(np.flatnonzero(valid), idx)] = project_rows(V[valid], lo_r[valid], hi_r[valid], R)
    return out, valid
