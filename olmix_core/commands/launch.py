"""`olmix launch run|status|cancel|validate`: a swarm's proxy runs on a launcher (local or Beaker)."""

from __future__ import annotations

import json
import shlex
import sys
from collections import Counter
from typing import TYPE_CHECKING

import click

from olmix_core.commands._common import config_option, handle_errors, write_local_file

if TYPE_CHECKING:
    from olmix_core.config import ExperimentConfig
    from olmix_core.launch.base import Launcher
    from olmix_core.runspec import RunSpec, RunStatus
    from olmix_core.stages.setup import Prepared
    from olmix_core.store import SwarmStore


@click.group()
def launch() -> None:
    """Launch a swarm's proxy runs, follow them, cancel them."""


def _storage_root_option(fn):
    return click.option(
        "--storage-root",
        default=None,
        help="Store to look the group up in when no --config is given (default: $OLMIX_STORAGE_ROOT or .olmix/store).",
    )(fn)


@launch.command("run")
@config_option
@click.option("--launcher", "launcher_kind", type=click.Choice(["local", "beaker"]), default=None, help="Launcher (default: the config's `launcher`).")
@click.option("--mixtures", "mixtures_path", default=None, help="A mixtures.json to run instead of sampling (list of {leaf: [weight, repetition]}).")
@click.option("--group-id", default=None, help="Resume this group: reuses its stored mixtures and skips runs already queued, running or done.")
@click.option("--append", is_flag=True, help="Add the --mixtures to the existing group --group-id as its next round (adaptive swarms).")
@click.option("--dry-run", is_flag=True, help="Print a summary of the runs (counts, per-leaf weights, a few runs) and write or submit nothing.")
@click.option("--specs-out", default=None, type=click.Path(dir_okay=False), help="With --dry-run: also write every run spec (JSON list) to this file ('-': stdout).")
@click.option("--wait", "wait_", is_flag=True, help="Block until every run has finished; exit 1 if any failed.")
@click.option("--eval-script-dir", default="output/eval_scripts", show_default=True, help="Where to write the offline-eval script olmix-{group}.sh.")
@handle_errors
def run(
    config_path: str, launcher_kind: str | None, mixtures_path: str | None, group_id: str | None, append: bool, dry_run: bool,
    specs_out: str | None, wait_: bool, eval_script_dir: str,
) -> None:
    """Sample mixtures (or read --mixtures), write run specs, submit them, emit the eval script and record the
    swarm's metadata (group id, git commit, run names, job ids) in the store. With --append, the --mixtures become
    the next round of the group --group-id (numbering continues; appending the same file again adds nothing)."""
    from olmix_core import stages
    from olmix_core.config import ExperimentConfig
    from olmix_core.errors import ConfigError
    from olmix_core.sampling import read_mixtures_file
    from olmix_core.stages.append import append_runs, swarm_specs

    config = ExperimentConfig.from_yaml(config_path)
    kind = launcher_kind or config.launcher
    if append and not (group_id and mixtures_path):
        raise ConfigError("--append needs --group-id (the group to add to) and --mixtures (the new batch)")
    if append and dry_run:
        raise ConfigError("--append and --dry-run: use `olmix mix next` to inspect a batch before appending it")
    mixtures = read_mixtures_file(mixtures_path) if mixtures_path else None
    if specs_out and not dry_run:
        raise ConfigError("--specs-out writes the specs of a dry run: use it with --dry-run")
    if append:
        assert mixtures is not None and mixtures_path is not None
        swarm = stages.open_swarm(config, group_id)
        appended = append_runs(config, swarm, mixtures, mixtures_path)
        specs = appended.specs
        click.echo(f"group {swarm.group_id}: round {appended.round}, {len(appended.new_runs)} new runs "
                   f"({len(specs) - len(appended.new_runs)} of the {len(specs)} mixtures already in the group) -> {swarm.url()}")
    else:
        prepared = stages.prepare(config, group_id, mixtures, launcher=kind, dry_run=dry_run)
        swarm, specs = prepared.swarm, prepared.specs
        if dry_run:
            _dry_run_report(config, prepared, specs_out)
            return
        click.echo(f"group {swarm.group_id}: {len(specs)} runs of {config.name} -> {swarm.url()}")
    launcher = stages.make_launcher(kind, config, swarm)
    statuses = stages.submit_swarm(config, swarm, specs, launcher)
    script = stages.emit_eval_script(config, swarm, swarm_specs(swarm), eval_script_dir)  # every round's runs
    click.echo(f"eval script: {script.path}")
    click.echo(format_statuses(statuses))
    click.echo(f"follow with: olmix launch status --group-id {swarm.group_id} --config {shlex.quote(config_path)}")
    if wait_:
        final = _wait(config, swarm, launcher, specs)
        click.echo(format_statuses(final))
        bad = sorted(n for n, s in final.items() if s.state.value != "succeeded")
        if bad:
            click.echo(f"error: {len(bad)} run(s) did not succeed: {', '.join(bad)}", err=True)
            sys.exit(1)


DRY_RUN_EXAMPLES = 3


def _dry_run_report(config: ExperimentConfig, prepared: Prepared, specs_out: str | None) -> None:
    """A summary of what a launch would write (counts, weights per leaf, a few runs), and every spec in `specs_out`
    ('-': stdout) when asked: a huge swarm's specs are hundreds of MB."""
    from olmix_core.commands.mix import format_summary
    from olmix_core.sampling import summary_rows

    specs = prepared.specs
    if specs_out:
        text = json.dumps([s.model_dump(mode="json") for s in specs], indent=2)
        if specs_out == "-":
            click.echo(text)
        else:
            write_local_file(specs_out, text + "\n")
    summary = [
        f"dry run: {len(specs)} runs of {config.name} for group {prepared.group_id} ({prepared.swarm.url()}); "
        f"{config.target_tokens:,d} tokens each",
        format_summary(summary_rows(prepared.mixtures, config.leaf_names(), prepared.priors.get("relative_sizes"))),
        *(f"  {s.run_name}: " + ", ".join(f"{m.leaf}={m.weight:.4f}" for m in s.mixture) for s in specs[:DRY_RUN_EXAMPLES]),
        *([f"  ... and {len(specs) - DRY_RUN_EXAMPLES} more"] if len(specs) > DRY_RUN_EXAMPLES else []),
        f"specs: {specs_out}" if specs_out and specs_out != "-" else "every spec as JSON: add --specs-out FILE",
        "nothing written or submitted",
    ]
    click.echo("\n".join(summary), err=specs_out == "-")


@launch.command("status")
@click.option("--group-id", required=True, help="The swarm's group id.")
@click.option("--config", "-c", "config_path", default=None, help="The swarm's config (else the config stored with the group).")
@_storage_root_option
@click.option("--json", "as_json", is_flag=True, help="Print the statuses as JSON.")
@handle_errors
def status(group_id: str, config_path: str | None, storage_root: str | None, as_json: bool) -> None:
    """A table of the group's run states (from the store; works from any process)."""
    launcher = _group_launcher(group_id, config_path, storage_root)
    statuses = launcher.status()
    if as_json:
        click.echo(json.dumps({n: s.model_dump(mode="json") for n, s in statuses.items()}, indent=2))
    else:
        click.echo(format_statuses(statuses))


@launch.command("cancel")
@click.option("--group-id", required=True, help="The swarm's group id.")
@click.option("--config", "-c", "config_path", default=None, help="The swarm's config (else the config stored with the group).")
@_storage_root_option
@handle_errors
def cancel(group_id: str, config_path: str | None, storage_root: str | None) -> None:
    """Cancel every unfinished run of the group."""
    launcher = _group_launcher(group_id, config_path, storage_root)
    click.echo(format_statuses(launcher.cancel()))


@launch.command("validate")
@config_option
@handle_errors
def validate(config_path: str) -> None:
    """Check a config end to end (fields, data files, token caps, feasibility of sampling) and print what it resolves
    to; exit 1 with the errors otherwise."""
    from olmix_core import stages
    from olmix_core.config import ExperimentConfig
    from olmix_core.reuse import resolve_reuse
    from olmix_core.sampling import build_problem

    config, plan = resolve_reuse(ExperimentConfig.from_yaml(config_path))  # a reuse update: its reduced swarm's size
    if plan is not None:
        click.echo(plan.summary())
        if not plan.needs_swarm:
            click.echo(f"ok: {config_path} is valid (no swarm needed)")
            return
    # the prepare stage in memory: raises when the data, caps or constraints admit too few mixtures
    priors = stages.prepare(config, dry_run=True).priors
    check_eval_sources(config)
    problem = build_problem(config, priors["token_counts"])
    click.echo(format_resolved(config, priors, dict(zip(problem.leaves, problem.caps.tolist()))))
    click.echo(f"ok: {config_path} is valid ({config.variants} variants can be sampled)")


def check_eval_sources(config: ExperimentConfig) -> None:
    """Every in-loop eval file must exist (training would fail at its first evaluation otherwise)."""
    from olmix_core.errors import ConfigError
    from olmix_core.store import open_fs

    missing = []
    for label, paths in config.evaluation.sources.items():
        for pattern in paths:
            fs, path = open_fs(pattern)
            if not (fs.glob(path) if any(c in path for c in "*?[") else fs.exists(path)):
                missing.append(f"{label}: {pattern}")
    if missing:
        raise ConfigError("evaluation.sources: no file at " + "; ".join(missing))


def format_resolved(config: ExperimentConfig, priors: dict, max_weights: dict[str, float]) -> str:
    caps = config.leaf_repetition_caps()
    t = config.training
    model = t.model or config.proxy_model_id or f"custom d_model={t.d_model} n_layers={t.n_layers} n_heads={t.n_heads}"
    lines = [
        f"name: {config.name}",
        f"storage root: {config.storage_root}",
        f"launcher: {config.launcher}; variants: {config.variants}; seed: {config.seed}",
        f"target tokens per run: {config.target_tokens:,d}; sequence length: {config.sequence_length}; dtype: {config.dtype.value}; tokenizer: {config.tokenizer}",
        f"model: {model}; threads per run: {t.threads_per_run}; device: {t.device}",
        f"eval sources: {', '.join(config.evaluation.sources) or '(none)'}; objective: {config.fit.filtering.objective or 'mean of the fit metrics'}",
        "",
    ]
    width = max(len("leaf"), *(len(leaf) for leaf in config.leaf_names()))
    head = f"{'leaf':<{width}}  {'tokens':>13}  {'prior':>7}  {'rep cap':>7}  {'max weight':>10}  paths"
    lines += [head, "-" * len(head)]
    for leaf, paths, _ in config.leaves():
        lines.append(
            f"{leaf:<{width}}  {priors['token_counts'][leaf]:>13,d}  {priors['relative_sizes'][leaf]:7.4f}  "
            f"{caps[leaf]:7.2f}  {min(1.0, max_weights[leaf]):10.4f}  {' '.join(paths)}"
        )
    return "\n".join(lines)


def _group_launcher(group_id: str, config_path: str | None, storage_root: str | None) -> Launcher:
    """The launcher that ran a group: from the given config, else the config and launcher stored with the group."""
    from olmix_core.locate import locate_swarm
    from olmix_core.stages import make_launcher

    config, swarm = locate_swarm(group_id, config_path, storage_root)
    return make_launcher(swarm.metadata().launcher or config.launcher, config, swarm)


def _wait(config: ExperimentConfig, swarm: SwarmStore, launcher: Launcher, specs: list[RunSpec]) -> dict[str, RunStatus]:
    """Until every run is finished, resubmitting preempted/failed runs while they have attempts left."""
    from olmix_core.stages.runs import state_counts, wait_for

    return wait_for(config, swarm, launcher, specs, on_change=lambda st: click.echo("  " + state_counts(st), err=True))


def format_statuses(statuses: dict[str, RunStatus]) -> str:
    """One row per run (name, state, attempts, step / total steps and last train loss as the run reported them, job,
    updated, reason), then the counts per state."""
    from olmix_core.swarm_report import steps_text

    rows = [
        (name, s.state.value, str(s.attempts), steps_text(s),
         f"{s.progress.train_loss:.4f}" if s.progress and s.progress.train_loss is not None else "",
         s.url or s.job_id or "", s.updated, (s.reason or "").replace("\n", " ")[:100])
        for name, s in sorted(statuses.items())
    ]
    head = ("run", "state", "attempts", "step", "loss", "job", "updated", "reason")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    lines = [fmt.format(*head), "-" * (sum(widths[:-1]) + 2 * len(widths[:-1]) + len(head[-1]))]
    lines += [fmt.format(*r).rstrip() for r in rows]
    counts = Counter(s.state.value for s in statuses.values())
    lines.append(f"{len(statuses)} runs: " + (", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"))
    return "\n".join(lines)
