"""A stand-in for `olmix train` in launcher tests: same argv and the same status/result protocol, no torch.

Behaviour comes from the environment the launcher passes down: FAKE_TRAIN_SECONDS (how long to "train"),
FAKE_TRAIN_FAIL (comma-separated run names that exit 3 without a result)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from olmix_core.runspec import RunProgress, read_run_spec
from olmix_core.train.result import mark_running, report_progress, write_result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run-spec", required=True)
    spec = read_run_spec(parser.parse_args().run_spec)
    mark_running(spec)
    started = time.time()
    print(f"fake training {spec.run_name}", flush=True)
    time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0.5")))
    if spec.run_name in os.environ.get("FAKE_TRAIN_FAIL", "").split(","):
        print(f"fake failure in {spec.run_name}", flush=True)
        return 3
    report_progress(spec, RunProgress(step=10, total_steps=10, train_loss=2.5, elapsed_s=round(time.time() - started, 3)))
    weights = spec.weights()
    record = {
        "run": spec.run_name,
        "group_id": spec.group_id,
        "variant": spec.variant,
        "state": "succeeded",
        "metrics": {"eval/lm/target/CE loss": 3.0 - 2.0 * weights.get("wiki", 0.0), "train/CE loss": 2.5},
        "mixture": weights,
        "purpose": spec.purpose,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "fake": {"started": started, "ended": time.time(), "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                 "mkl_threads": os.environ.get("MKL_NUM_THREADS"), "pid": os.getpid()},
    }
    write_result(spec, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
