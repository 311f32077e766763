import json
import os

import pandas as pd
import pytest
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.errors import ConfigError, DataError
from olmix_core.results import parse_metrics_option, pull_results
from tests.results._swarm import GROUP, LEAVES, make_swarm, run, spec_weights, true_metrics, write_result, write_status


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_endpoint") + "/store"


def _tables(report):
    return pd.read_csv(report.ratios_path), pd.read_csv(report.metrics_path)


def test_local_pull_tables_and_report(root, tmp_path):
    config, swarm, mixtures = make_swarm(root)
    for i in (0, 1, 3):
        write_result(swarm, run(i), mixtures[i])
    write_status(swarm, run(2), "failed")
    write_status(swarm, run(4), "running")
    out = tmp_path / "out"
    report = pull_results(config, swarm, "local", output_dir=str(out))

    assert report.expected == [run(i) for i in range(6)]
    assert report.found == report.included == [run(0), run(1), run(3)]
    assert report.failed == [run(2)] and report.running == [run(4)] and report.missing == [run(5)]
    assert report.new_runs == report.included
    assert report.metrics == ["eval/lm/code/CE loss", "eval/lm/wiki/CE loss"]  # CE losses of the evals by default

    ratios, metrics = _tables(report)
    assert list(ratios.columns) == ["run", "name", *LEAVES]
    assert list(metrics.columns) == ["run", "name", "eval/lm/code/CE loss", "eval/lm/wiki/CE loss"]
    assert (ratios["run"] == ratios["name"]).all() and list(ratios["run"]) == list(metrics["run"])
    assert ratios[LEAVES].sum(axis=1).round(12).eq(1.0).all()
    row3 = ratios.set_index("run").loc[run(3)]
    assert row3["web:sports"] == 0.0  # a zero leaf (not in the spec) is still a column
    for leaf, w in spec_weights(mixtures[3]).items():
        assert row3[leaf] == pytest.approx(w, abs=1e-12)
    m = metrics.set_index("run").loc[run(3)]
    assert m["eval/lm/wiki/CE loss"] == pytest.approx(true_metrics(spec_weights(mixtures[3]))["eval/lm/wiki/CE loss"])

    # the same files are in the store, with the report
    assert swarm.store.read_text(swarm.results_key("ratios.csv")) == (out / "ratios.csv").read_text()
    assert swarm.store.read_text(swarm.results_key("metrics.csv")) == (out / "metrics.csv").read_text()
    stored = swarm.store.read_json(swarm.results_key("pull_report.json"))
    assert stored["found"] == report.found and json.loads((out / "pull_report.json").read_text())["missing"] == [run(5)]


def test_weights_follow_run_names_not_positions(tmp_path):
    """Only runs 5 and 2 have results (written in that order): each row gets its own run's mixture."""
    config, swarm, mixtures = make_swarm(str(tmp_path / "store"))
    write_result(swarm, run(5), mixtures[5])
    write_result(swarm, run(2), mixtures[2])
    report = pull_results(config, swarm, "local", output_dir=str(tmp_path / "o"))
    ratios = pd.read_csv(report.ratios_path).set_index("run")
    assert list(ratios.index) == [run(2), run(5)]
    for i in (2, 5):
        assert ratios.loc[run(i), LEAVES].tolist() == pytest.approx([spec_weights(mixtures[i])[leaf] for leaf in LEAVES])


def test_weights_from_mixtures_json_when_no_spec(tmp_path):
    config, swarm, mixtures = make_swarm(str(tmp_path / "store"), specs=False)
    swarm.store.write_json(swarm.run_key(run(4), "result.json"), {"run": run(4), "state": "succeeded", "metrics": {"eval/lm/wiki/CE loss": 2.0}})
    report = pull_results(config, swarm, "local")
    assert report.included == [run(4)] and report.expected == [run(i) for i in range(6)]
    ratios = pd.read_csv(swarm.store.url(swarm.results_key("ratios.csv"))).set_index("run")
    assert ratios.loc[run(4), LEAVES].tolist() == pytest.approx([mixtures[4][leaf][0] for leaf in LEAVES])
    assert report.ratios_path == swarm.store.url(swarm.results_key("ratios.csv"))


def test_incremental_pull_reads_only_changes(root, tmp_path):
    config, swarm, mixtures = make_swarm(root)
    write_result(swarm, run(0), mixtures[0])
    write_status(swarm, run(1), "running")
    out = str(tmp_path / "out")
    first = pull_results(config, swarm, "local", output_dir=out)
    assert first.files_read == 6 + 2 + 1  # 6 specs, 2 statuses, 1 result
    assert os.path.isfile(os.path.join(out, "pull_state.json")) and swarm.store.exists(swarm.results_key("pull_state.json"))

    again = pull_results(config, swarm, "local", output_dir=out)
    assert again.files_read == 0 and again.new_runs == [] and again.included == [run(0)]

    write_result(swarm, run(1), mixtures[1])  # run 1 finished: new status + new result
    third = pull_results(config, swarm, "local", output_dir=out)
    assert third.files_read == 2 and third.new_runs == [run(1)] and third.included == [run(0), run(1)]

    # a changed result counts as new again; the store's own state serves a pull without an output dir
    write_result(swarm, run(0), mixtures[0], {**true_metrics(spec_weights(mixtures[0])), "eval/lm/wiki/CE loss": 9.0})
    fourth = pull_results(config, swarm, "local")
    assert fourth.new_runs == [run(0)]
    assert 1 <= fourth.files_read <= 2  # the result; the rewritten status too unless its ETag (content hash) is unchanged


def test_partial_metrics_and_bad_values(tmp_path):
    config, swarm, mixtures = make_swarm(str(tmp_path / "store"))
    write_result(swarm, run(0), mixtures[0])
    write_result(swarm, run(1), mixtures[1], {"eval/lm/wiki/CE loss": 2.0})  # partially logged
    write_result(swarm, run(2), mixtures[2], {"eval/lm/wiki/CE loss": float("nan"), "eval/lm/code/CE loss": 1.0})
    report = pull_results(config, swarm, "local", metrics=["eval/lm/wiki/CE loss", "eval/lm/code/CE loss", "eval/lm/nope/CE loss"])
    assert report.included == [run(0)]
    assert report.missing_metrics == {run(1): ["eval/lm/code/CE loss"], run(2): ["eval/lm/wiki/CE loss"]}
    assert report.dropped_metrics == ["eval/lm/nope/CE loss"]
    assert any("not a finite number" in w for w in report.warnings)
    metrics = pd.read_csv(report.metrics_path)
    assert list(metrics.columns) == ["run", "name", "eval/lm/wiki/CE loss", "eval/lm/code/CE loss"]
    assert not metrics.isna().any().any()


def test_unusable_weights_are_excluded_with_reason(tmp_path):
    config, swarm, mixtures = make_swarm(str(tmp_path / "store"), specs=False)
    swarm.store.write_json(swarm.key("mixtures.json"), [{"wiki": [0.5, 1.0], "books": [0.5, 1.0]}, {"wiki": [0.3, 1.0], "code": [0.3, 1.0]}])
    for i in (0, 1):
        swarm.store.write_json(swarm.run_key(run(i), "result.json"), {"run": run(i), "state": "succeeded", "metrics": {"eval/x/CE loss": 1.0}})
    with pytest.raises(DataError) as e:  # no usable run at all: an error, not empty tables
        pull_results(config, swarm, "local")
    assert "books" in str(e.value) and "sum to 0.6000" in str(e.value)
    swarm.store.write_json(swarm.run_key(run(1), "result.json"),
                           {"run": run(1), "state": "succeeded", "metrics": {"eval/x/CE loss": 1.0}, "mixture": {"wiki": 1.0}})
    report = pull_results(config, swarm, "local")  # one usable run: the other is reported
    assert report.included == [run(1)] and "books" in report.excluded[run(0)]


def test_other_purpose_runs_and_unknown_source(tmp_path):
    config, swarm, mixtures = make_swarm(str(tmp_path / "store"), n=2)
    from olmix_core.runspec import build_run_specs, write_run_specs

    verify = build_run_specs(config, swarm, [mixtures[0]], purpose="verify", first_variant=9)
    write_run_specs(swarm, verify)
    write_result(swarm, verify[0].run_name, mixtures[0])
    write_result(swarm, run(1), mixtures[1])
    report = pull_results(config, swarm, "local")
    assert report.expected == [run(0), run(1)] and report.included == [run(1)] and report.unexpected == []
    with pytest.raises(ConfigError, match="source 'nope'"):
        pull_results(config, swarm, "nope")


def test_parse_metrics_option(tmp_path):
    f = tmp_path / "m.txt"
    f.write_text("# comment\neval/a (BPB v2)\n\neval/b\n")
    assert parse_metrics_option([str(f), "eval/c,eval/a (BPB v2)"]) == ["eval/a (BPB v2)", "eval/b", "eval/c"]
    assert parse_metrics_option([]) is None and parse_metrics_option(None) is None


def test_cli_results_pull(tmp_path):
    import yaml

    config, swarm, mixtures = make_swarm(str(tmp_path / "store"))
    for i in range(3):
        write_result(swarm, run(i), mixtures[i])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["results", "pull", "--config", str(cfg), "--group-id", GROUP, "--from", "local", "--metrics", "eval/lm/wiki/CE loss", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "6 expected, 3 found, 3 in the tables (3 new), 3 missing" in res.output
    assert list(pd.read_csv(out / "metrics.csv").columns) == ["run", "name", "eval/lm/wiki/CE loss"]
    res = CliRunner().invoke(cli, ["results", "pull", "--config", str(cfg), "--group-id", "XYZ", "-o", str(out)])
    assert res.exit_code == 1 and "--group-id" in res.output
    res = CliRunner().invoke(cli, ["results", "pull", "--config", str(cfg), "--group-id", GROUP, "--csv", str(cfg)])
    assert res.exit_code == 1 and "--from dashboard" in res.output


def test_pull_of_a_group_that_does_not_exist_writes_nothing(tmp_path):
    import yaml

    config, swarm, mixtures = make_swarm(str(tmp_path / "store"))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["results", "pull", "--config", str(cfg), "--group-id", "deadbeef", "--from", "local", "-o", str(out)])
    assert res.exit_code == 1 and "no swarm test-swarm/deadbeef" in res.output and "Traceback" not in res.output
    assert not out.exists() and sorted(os.listdir(tmp_path / "store" / "test-swarm")) == [GROUP]


def test_config_matching_none_of_the_runs_keeps_the_stored_tables(tmp_path):
    import yaml

    config, swarm, mixtures = make_swarm(str(tmp_path / "store"))
    for i in range(3):
        write_result(swarm, run(i), mixtures[i])
    good = pull_results(config, swarm, "local")
    assert len(good.included) == 3
    stored = {n: swarm.store.read_text(swarm.results_key(n)) for n in ("ratios.csv", "metrics.csv", "pull_report.json")}
    other = config.model_dump(mode="json", exclude_none=True)
    other["sources"] = [{"name": "books", "paths": ["/data/books/*.bin"]}, {"name": "news", "paths": ["/data/news/*.bin"]}]
    other["priors"] = {"token_counts": {"books": 1_000_000, "news": 1_000_000}}
    cfg = tmp_path / "other.yaml"
    cfg.write_text(yaml.safe_dump(other))
    out = tmp_path / "o"
    res = CliRunner().invoke(cli, ["results", "pull", "--config", str(cfg), "--group-id", GROUP, "--from", "local", "-o", str(out)])
    assert res.exit_code == 1 and "none of the 3 runs with results can be used" in res.output and "leaves not in the config" in res.output
    assert not out.exists()
    assert {n: swarm.store.read_text(swarm.results_key(n)) for n in stored} == stored
