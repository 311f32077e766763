"""`olmix-{group}.sh`: one `olmo-cookbook-eval evaluate` per variant, on its latest checkpoint found at run time.

The script is run by hand from an environment that has olmo-cookbook (no dependency from olmix on it). Every value
from the config reaches the script through `shlex.quote`; the script passes `bash -n` and `shellcheck`.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime

from olmix_core.checkpoints import checkpoint_dirs
from olmix_core.config import ExperimentConfig
from olmix_core.errors import ConfigError
from olmix_core.evals.tasks import default_offline_tasks
from olmix_core.metadata import update_metadata
from olmix_core.names import check_group_id, parse_run_name, run_name
from olmix_core.store import ArtifactStore, SwarmStore

DEFAULT_OUTPUT_DIR = "output/eval_scripts"
_STAMP_RE = re.compile(r"^[0-9T:.+-]+Z?$")
COOKBOOK_RESULTS_PREFIX = "s3://ai2-llm/evaluation"  # olmo-cookbook-eval's own --remote-output-prefix default

def dashboard_name(group_id: str) -> str:
    return f"olmix-{check_group_id(group_id)}"


def script_name(group_id: str) -> str:
    return f"{dashboard_name(group_id)}.sh"


def eval_tasks(config: ExperimentConfig) -> list[str]:
    """`config.eval_tasks`, or the 109 olmo3 offline BPB tasks."""
    if config.eval_tasks is None:
        return default_offline_tasks()
    if not config.eval_tasks:
        raise ConfigError("eval_tasks: empty list (leave it out to use the 109 default offline BPB tasks)")
    return list(config.eval_tasks)


def results_prefix(config: ExperimentConfig) -> str:
    """Where eval dashboards live: `eval_results_prefix`, else `{storage_root}/evals`."""
    if config.eval_results_prefix:
        return config.eval_results_prefix.rstrip("/")
    return f"{ArtifactStore(config.storage_root).root_url.rstrip('/')}/evals"


def script_results_prefix(config: ExperimentConfig) -> str:
    """The prefix the script's evaluation jobs write to: `results_prefix`, unless that is a local path (jobs run
    elsewhere), then olmo-cookbook's default."""
    prefix = results_prefix(config)
    return prefix if "://" in prefix else COOKBOOK_RESULTS_PREFIX


def _run_list(config: ExperimentConfig, group_id: str, runs: int | Sequence[str] | None) -> list[tuple[int, str]]:
    if runs is None:
        runs = config.variants
    if isinstance(runs, int):
        return [(v, run_name(config.name, group_id, v)) for v in range(runs)]
    out = []
    for r in runs:
        try:
            _, group, variant = parse_run_name(r)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if group != group_id:
            raise ConfigError(f"run {r!r} does not belong to group {group_id}")
        out.append((variant, r))
    return out


def render_eval_script(
    config: ExperimentConfig,
    group_id: str,
    runs: int | Sequence[str] | None = None,
    beaker_user: str | None = None,
    generated: str | None = None,
) -> str:
    """The script's text (see `write_eval_script`)."""
    check_group_id(group_id)
    variants = _run_list(config, group_id, runs)
    if not variants:
        raise ConfigError("no runs to evaluate")
    user = beaker_user or config.beaker.user
    dirs = checkpoint_dirs(config, group_id, [r for _, r in variants], user)
    tasks = eval_tasks(config)
    prefix = script_results_prefix(config)
    local_prefix = results_prefix(config) if prefix != results_prefix(config) else None
    q = shlex.quote
    generated = generated or datetime.now(UTC).isoformat(timespec="seconds")
    if not _STAMP_RE.match(generated):
        raise ValueError(f"generated {generated!r} must be an ISO timestamp")
    # No config value goes into a comment (a newline there would end it and run as a command): comments hold only
    # what olmix generates (group id, counts, time); config values are quoted assignments below.
    lines = [
        "#!/usr/bin/env bash",
        "# shellcheck disable=SC2016",
        "# Evaluation script for the swarm named in SWARM below.",
        f"# Group ID: {group_id}",
        f"# Generated: {generated}",
        f"# Variants: {len(variants)}",
        "#",
        "# Run from an environment with olmo-cookbook installed (olmo-cookbook-eval on PATH):",
        f"#   ./{script_name(group_id)} [--dry-run]",
        "# Each variant is evaluated on its latest checkpoint (the highest stepN, found at run time). A variant without",
        "# a trained checkpoint yet is reported and skipped; the script then ends with a summary and exit status 1.",
        "# Afterwards: olmix results pull --config CONFIG --group-id " + group_id + " --from dashboard",
        "",
        "set -o pipefail",
        "# Config values below are single-quoted literals on purpose (SC2016 above).",
        "",
        f"SWARM={q(config.name)}",
        f"DASHBOARD={q(dashboard_name(group_id))}",
        f"CLUSTER={q(config.eval_cluster)}",
        f"MODEL_BACKEND={q(config.eval_model_backend)}",
    ]
    lines += [f"RESULTS_PREFIX={q(prefix)}"]
    if local_prefix is not None:
        lines += [
            "# The config's results prefix is a local path that evaluation jobs cannot write to; results go to",
            "# olmo-cookbook's default (RESULTS_PREFIX): pull them with --results-prefix set to it.",
            f"CONFIG_RESULTS_PREFIX={q(local_prefix)}",
            'echo "note: results go to $RESULTS_PREFIX, not the local $CONFIG_RESULTS_PREFIX: pull with --results-prefix $RESULTS_PREFIX" >&2',
        ]
    lines += [f"# {len(tasks)} tasks", "TASKS=("]
    lines += [f"    {q(t)}" for t in tasks]
    lines += [")", "", _BODY.strip("\n"), ""]
    for variant, run in variants:
        lines.append(f"evaluate_variant {variant:04d} {q(run)} {q(dirs[run])}")
    lines += ["", _SUMMARY.strip("\n"), ""]
    return "\n".join(lines)


def write_eval_script(
    config: ExperimentConfig,
    group_id: str,
    runs: int | Sequence[str] | None = None,
    beaker_user: str | None = None,
    output_dir: str = DEFAULT_OUTPUT_DIR,
    swarm: SwarmStore | None = None,
) -> str:
    """Write `{output_dir}/olmix-{group}.sh` (executable) and return its path.

    `runs`: the number of variants, or the run names (default `config.variants`). With `swarm`, the script is also
    stored at `eval_scripts/olmix-{group}.sh` and its locations are recorded in the swarm's metadata."""
    text = render_eval_script(config, group_id, runs, beaker_user)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.abspath(os.path.join(output_dir, script_name(group_id)))
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    if swarm is not None:
        url = swarm.store.write_text(swarm.eval_script_key(), text)
        update_metadata(swarm, eval_script={"path": path, "url": url, "dashboard": dashboard_name(group_id)})
    return path


_BODY = r"""
DRY_RUN=()
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=(--dry-run) ;;
        -h|--help) sed -n '3,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (usage: $0 [--dry-run])" >&2; exit 2 ;;
    esac
done

TASK_ARGS=()
for task in "${TASKS[@]}"; do
    TASK_ARGS+=(--tasks "$task")
done

# Highest N of the stepN folders under a checkpoint folder (s3://, gs:// or a mounted path); empty when none.
latest_step() {
    local listing
    case "$1" in
        s3://*) listing=$(aws s3 ls "$1/" 2>/dev/null) ;;
        gs://*) listing=$(gsutil ls "$1/" 2>/dev/null) ;;
        *) listing=$(ls -1 "$1" 2>/dev/null) ;;
    esac
    printf '%s\n' "$listing" | awk '{print $NF}' | sed -e 's#/$##' -e 's#.*/##' \
        | grep -E '^step[0-9]+$' | sed -e 's/^step//' | sort -n | tail -n 1
}

EVALUATED=()
SKIPPED=()
FAILED=()

evaluate_variant() {
    local variant="$1" run="$2" ckpt_dir="$3" step
    step=$(latest_step "$ckpt_dir")
    if [[ -z "$step" || "$step" == 0 ]]; then
        echo "variant $variant ($run): no trained checkpoint under $ckpt_dir yet; skipped" >&2
        SKIPPED+=("$run")
        return 0
    fi
    echo "variant $variant ($run): evaluating $ckpt_dir/step$step"
    if olmo-cookbook-eval evaluate "$ckpt_dir/step$step" \
        --dashboard "$DASHBOARD" \
        "${TASK_ARGS[@]}" \
        --cluster "$CLUSTER" \
        --model-backend "$MODEL_BACKEND" \
        --remote-output-prefix "$RESULTS_PREFIX" \
        "${DRY_RUN[@]}"; then
        EVALUATED+=("$run")
    else
        echo "variant $variant ($run): olmo-cookbook-eval failed" >&2
        FAILED+=("$run")
    fi
}

echo "swarm $SWARM: evaluating into dashboard $DASHBOARD"
"""

_SUMMARY = r"""
echo
echo "Summary for $DASHBOARD: ${#EVALUATED[@]} evaluated, ${#SKIPPED[@]} skipped (no checkpoint yet), ${#FAILED[@]} failed"
for run in "${SKIPPED[@]}"; do echo "  skipped: $run"; done
for run in "${FAILED[@]}"; do echo "  failed:  $run"; done
echo "Results: $RESULTS_PREFIX/$DASHBOARD/"
if (( ${#SKIPPED[@]} + ${#FAILED[@]} > 0 )); then
    exit 1
fi
"""
