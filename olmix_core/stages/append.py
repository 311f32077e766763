"""Rounds in one swarm: append a batch of mixtures to an existing group (`olmix launch run --append`).

Appended runs are ordinary swarm runs (`purpose: swarm`, so result pulls and fits include them) that continue the
group's numbering after every run it has (swarm and verify runs alike) and record their `round` in their spec.
metadata.json lists each round's runs under `rounds`. Appending is idempotent: a mixture that is already a swarm run
of the group is that run, so appending the same file twice (or again after a crash half-way) adds nothing new, and
the runs of a resumed append keep the round they were first given.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.metadata import RoundRecord, update_metadata
from olmix_core.names import is_run_name, parse_run_name
from olmix_core.runspec import RunSpec, now_iso
from olmix_core.sampling import Mixture
from olmix_core.stages.setup import _same_mixtures, check_mixtures, store_priors, store_run_specs
from olmix_core.store import SwarmStore


class Appended(BaseModel):
    """What an append did: the round, every run of the batch (new or already there) and which were new."""

    round: int
    specs: list[RunSpec]
    new_runs: list[str]


def _weights(spec: dict[str, Any]) -> Mixture:
    return {m["leaf"]: [float(m["weight"])] for m in spec["mixture"]}


def append_runs(config: ExperimentConfig, swarm: SwarmStore, mixtures: list[Mixture], where: str = "--mixtures") -> Appended:
    """Add `mixtures` to the group as a new round (see the module doc); returns all of the batch's specs."""
    if swarm.store.read_json_or(swarm.key(SwarmStore.MIXTURES), None) is None:
        raise ConfigError(f"group_id {swarm.group_id}: the group has no swarm yet ({swarm.url(SwarmStore.MIXTURES)} is "
                          "missing); launch it first, then append rounds to it", fields=("group_id",))
    key = swarm.key(SwarmStore.CONFIG)
    if swarm.store.exists(key) and swarm.store.read_text(key) != config.to_yaml():
        raise ConfigError(f"group_id {swarm.group_id}: the config differs from the one the group ran with "
                          f"({swarm.url(SwarmStore.CONFIG)}); appended runs must train like the others", fields=("group_id",))
    priors = store_priors(config, swarm)
    checked = check_mixtures(config, priors["token_counts"], mixtures, where)
    existing = swarm.read_run_files("spec.json")
    swarm_specs = {n: s for n, s in existing.items() if s.get("purpose", "swarm") == "swarm"}
    found: dict[int, str] = {}  # index in the batch -> existing run with that mixture
    for i, mix in enumerate(checked):
        for name, spec in sorted(swarm_specs.items()):
            if _same_mixtures([_weights(spec)], [mix]):
                found[i] = name
                break
    rounds = [int(s.get("round", 0)) for s in swarm_specs.values()]
    resumed = [int(swarm_specs[n].get("round", 0)) for n in found.values() if swarm_specs[n].get("round", 0) > 0]
    round_ = max(resumed) if resumed else max(rounds, default=0) + 1
    todo = [mix for i, mix in enumerate(checked) if i not in found]
    new: list[RunSpec] = []
    if todo:
        used = [parse_run_name(n)[2] for n in existing if is_run_name(n)]
        first = max([config.variants - 1, *used]) + 1
        new = store_run_specs(config, swarm, todo, first_variant=first, round=round_)
    by_name = {s.run_name: s for s in new}
    specs, it = [], iter(new)
    for i in range(len(checked)):
        specs.append(RunSpec.model_validate(swarm_specs[found[i]]) if i in found else next(it))
    if new:
        entries = {e.round: e for e in swarm.metadata().rounds}
        entry = entries.get(round_) or RoundRecord(round=round_, created=now_iso())
        again = {n for n in found.values() if swarm_specs[n].get("round") == round_}
        entries[round_] = entry.model_copy(update={"runs": sorted(set(entry.runs) | set(by_name) | again)})
        update_metadata(swarm, rounds=[entries[k] for k in sorted(entries)])
    if not new:  # everything was there: the batch's round is the one its runs were given
        round_ = max(int(swarm_specs[n].get("round", 0)) for n in found.values())
    return Appended(round=round_, specs=specs, new_runs=sorted(by_name))


def swarm_specs(swarm: SwarmStore) -> list[RunSpec]:
    """Every swarm run of the group, all rounds, by variant (what the offline-eval script and the fit cover)."""
    specs = [RunSpec.model_validate(s) for s in swarm.read_run_files("spec.json").values()]
    return sorted((s for s in specs if s.purpose == "swarm"), key=lambda s: s.variant)
