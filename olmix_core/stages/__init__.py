"""The stages of a swarm as library functions with typed results; `olmix swarm`, `olmix launch run` and the
Prefect flows all compose these (see docs/design.md for the stage → function → task → command table).

    prepare   prepare(config, group_id, mixtures, launcher, dry_run) -> Prepared   (open_swarm, store_priors,
              store_mixtures, write_specs; emit_eval_script)
    submit    submit_swarm(config, swarm, specs, launcher) -> {run: RunStatus}
    poll      poll(config, swarm, launcher, runs, ...) -> PollSummary              (PollProgress: what changed)
    pull      pull(config, swarm, source, output_dir) -> Pulled
    fit       fit(config, swarm) -> FitSummary                                     (up_to_date, record_fit)
    propose   propose(config, swarm, fit_id) -> ProposalSummary
    verify    verify(config, swarm, launcher, proposal, ...) -> VerifyResult
"""

from olmix_core.stages.fits import (
    FitSummary,
    ProposalSummary,
    fit,
    fit_id_for,
    fit_options,
    propose,
    record_fit,
    up_to_date,
)
from olmix_core.stages.results import NoResults, Pulled, pull, results_source, tables_digest
from olmix_core.stages.runs import (
    NoRunSucceeded,
    PollProgress,
    PollSummary,
    make_launcher,
    poll,
    read_specs,
    submit_runs,
    submit_swarm,
    train,
)
from olmix_core.stages.setup import (
    Prepared,
    check_mixtures,
    emit_eval_script,
    open_swarm,
    prepare,
    store_mixtures,
    store_priors,
    store_run_specs,
    store_verify_spec,
    write_specs,
)
from olmix_core.stages.verification import VERIFY_FILE, VerifyResult, verify

__all__ = [
    "VERIFY_FILE",
    "FitSummary",
    "NoResults",
    "NoRunSucceeded",
    "PollProgress",
    "PollSummary",
    "Prepared",
    "ProposalSummary",
    "Pulled",
    "VerifyResult",
    "check_mixtures",
    "emit_eval_script",
    "fit",
    "fit_id_for",
    "fit_options",
    "make_launcher",
    "open_swarm",
    "poll",
    "prepare",
    "propose",
    "pull",
    "read_specs",
    "results_source",
    "record_fit",
    "store_mixtures",
    "store_priors",
    "store_run_specs",
    "store_verify_spec",
    "submit_runs",
    "submit_swarm",
    "tables_digest",
    "train",
    "up_to_date",
    "verify",
    "write_specs",
]
