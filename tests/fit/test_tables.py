"""Reading swarm tables and priors: both layouts, matching by name, and every bad input named precisely."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from olmix_core.errors import DataError
from olmix_core.fit.tables import load_mixture, load_priors, load_tables

from .conftest import DOMAINS, METRICS


def test_olmix_layout_joins_on_run_and_keeps_names(swarm_files, swarm):
    r, m, _ = swarm_files
    t = load_tables(r, m)
    X, Y = swarm
    assert t.domains == DOMAINS and t.metrics == METRICS
    assert t.id_column == "run" and t.names is not None and len(t.ids) == len(X)
    np.testing.assert_allclose(t.X, X / X.sum(1, keepdims=True), atol=1e-12)
    np.testing.assert_allclose(t.Y, Y)
    np.testing.assert_allclose(t.X.sum(1), 1.0, atol=1e-12)


def test_regmix_layout(regmix_files, swarm):
    r, m = regmix_files
    t = load_tables(r, m)
    assert t.id_column == "index"
    assert t.domains == [f"train_{d}" for d in DOMAINS]
    assert t.metrics == [f"metric/{k}" for k in METRICS]
    np.testing.assert_allclose(t.Y, swarm[1])


def test_metrics_matched_by_id_not_by_row_order(swarm_files):
    r, m, _ = swarm_files
    df = pd.read_csv(m)
    shuffled = df.sample(frac=1.0, random_state=0)[["run", "name", "acc:qa", "loss/web", "loss/code"]]
    shuffled.to_csv(m, index=False)
    t = load_tables(r, m)
    ref = df.set_index("run").loc[t.ids]
    np.testing.assert_allclose(t.Y[:, t.metrics.index("loss/web")], ref["loss/web"].to_numpy())


def test_run_id_column_and_optional_index(tmp_path):
    (tmp_path / "r.csv").write_text("run_id,name,index,a,b\nx,x,0,0.5,0.5\ny,y,1,0.2,0.8\nz,z,2,1,0\n")
    (tmp_path / "m.csv").write_text("run_id,name,index,loss\nz,z,2,3.0\nx,x,0,1.0\ny,y,1,2.0\n")
    t = load_tables(tmp_path / "r.csv", tmp_path / "m.csv")
    assert t.id_column == "run_id" and t.domains == ["a", "b"]
    assert t.Y[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_runs_in_one_table_only_are_reported_and_dropped(tmp_path):
    (tmp_path / "r.csv").write_text("index,a,b\n1,0.5,0.5\n2,0.2,0.8\n3,1,0\n4,0,1\n")
    (tmp_path / "m.csv").write_text("index,loss\n1,1.0\n2,2.0\n3,3.0\n9,4.0\n")
    t = load_tables(tmp_path / "r.csv", tmp_path / "m.csv")
    assert t.ids == ["1", "2", "3"]
    assert t.dropped == {str(tmp_path / "r.csv"): ["4"], str(tmp_path / "m.csv"): ["9"]}
    assert any("'4'" in w and "dropped" in w for w in t.warnings)


def _write(tmp_path, ratios: str, metrics: str = "index,loss\n1,1.0\n2,2.0\n3,3.0\n"):
    (tmp_path / "r.csv").write_text(ratios)
    (tmp_path / "m.csv").write_text(metrics)
    return tmp_path / "r.csv", tmp_path / "m.csv"


@pytest.mark.parametrize(
    "ratios, metrics, expected",
    [
        ("index,a,b\n1,0.5,0.5\n2,0.3,0.3\n3,1,0\n", None, ["r.csv", "line 3", "'2'", "sum to 0.6"]),
        ("index,a,b\n1,0.5,0.5\n2,nan,0.3\n3,1,0\n", None, ["r.csv", "line 3", "column 'a'", "NaN/inf"]),
        ("index,a,b\n1,0.5,0.5\n2,0.5,inf\n3,1,0\n", None, ["line 3", "column 'b'", "NaN/inf"]),
        ("index,a,b\n1,0.5,0.5\n2,0.5,x\n3,1,0\n", None, ["line 3", "column 'b'", "not a number"]),
        ("index,a,b\n1,0.5,0.5\n2,0.5,\n3,1,0\n", None, ["line 3", "column 'b'"]),
        ("index,a,b\n1,0.5,0.5\n2,-0.1,1.1\n3,1,0\n", None, ["line 3", "column 'a'", "negative"]),
        ("index,a,b\n1,0.5,0.5\n1,0.2,0.8\n3,1,0\n", None, ["duplicate index '1'", "lines 2 and 3"]),
        ("a,b\n0.5,0.5\n", None, ["r.csv", "no id column"]),
        (
            "index,a,b\n1,0.5,0.5\n2,0.2,0.8\n3,1,0\n",
            "index,loss\n1,1.0\n2,1.0\n3,1.0\n",
            ["m.csv", "'loss'", "constant"],
        ),
        (
            "index,a,b\n1,0.5,0.5\n2,0.2,0.8\n3,1,0\n",
            "index,loss\n1,1.0\n2,nan\n3,1.0\n",
            ["m.csv", "line 3", "'loss'"],
        ),
        ("index,a,b\n1,0.5,0.5\n2,0.2,0.8\n3,1,0\n", "index,loss\n7,1.0\n8,2.0\n", ["no run ids in common"]),
        ("index,a,loss\n1,0.5,0.5\n2,0.2,0.8\n3,1,0\n", None, ["'loss'", "also appear"]),
    ],
)
def test_bad_tables_name_file_row_and_column(tmp_path, ratios, metrics, expected):
    r, m = _write(tmp_path, ratios, metrics or "index,loss\n1,1.0\n2,2.0\n3,3.0\n")
    with pytest.raises(DataError) as e:
        load_tables(r, m)
    for part in expected:
        assert part in str(e.value), (part, str(e.value))


def test_missing_file_and_unknown_metric(tmp_path, swarm_files):
    r, m, _ = swarm_files
    with pytest.raises(DataError, match="nope.csv: file not found"):
        load_tables(tmp_path / "nope.csv", m)
    with pytest.raises(DataError, match=r"no metric column\(s\) \['loss/nope'\]"):
        load_tables(r, m, metrics=["loss/nope"])
    assert load_tables(r, m, metrics=["loss/code"]).metrics == ["loss/code"]


def test_priors_json_and_yaml_matched_by_name(tmp_path):
    doms = ["b", "a:x", "c"]
    (tmp_path / "p.yaml").write_text(
        "priors:\n  relative_sizes: {a:x: 2, b: 1, c: 1, extra: 5}\n  token_counts: {c: 10, b: 20, a:x: 30}\n"
    )
    p, warnings = load_priors(tmp_path / "p.yaml", doms)
    assert list(p.relative_sizes) == doms
    assert p.relative_sizes == {"b": 0.25, "a:x": 0.5, "c": 0.25}
    assert p.token_counts == {"b": 20, "a:x": 30, "c": 10}
    assert "extra" in warnings[0]
    (tmp_path / "p.json").write_text(json.dumps({"relative_sizes": {"a:x": 1, "b": 1}}))
    with pytest.raises(DataError, match=r"p.json: relative_sizes has no entry for domain\(s\) \['c'\]"):
        load_priors(tmp_path / "p.json", doms)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="bad.json: cannot parse priors"):
        load_priors(tmp_path / "bad.json", doms)
    with pytest.raises(DataError, match=r"relative_sizes\['b'\] = 'x' is not a number"):
        load_priors({"relative_sizes": {"b": "x"}}, doms)


def test_reference_mixture_formats(tmp_path):
    doms = ["a", "b:1", "c"]
    assert load_mixture({"a": 0.5, "b:1": 0.5}, doms) == {"a": 0.5, "b:1": 0.5, "c": 0.0}
    assert load_mixture({"a": [0.25, 1.0], "c": [0.75, 2.0]}, doms) == {"a": 0.25, "b:1": 0.0, "c": 0.75}
    with pytest.raises(DataError, match="'zz' is not a domain"):
        load_mixture({"zz": 1.0}, doms)
    with pytest.raises(DataError, match="sum to 0.5"):
        load_mixture({"a": 0.5}, doms)


def test_leading_unnamed_index_column_is_metadata_in_both_files(tmp_path):
    """Ai2's published layout: `,run,name,index,...` (a pandas index written without a name)."""
    (tmp_path / "r.csv").write_text(",run,name,index,a,b\n0,x,nx,0,0.5,0.5\n1,y,ny,1,0.2,0.8\n2,z,nz,2,1,0\n")
    (tmp_path / "m.csv").write_text(",run,name,index,loss\n0,z,nz,2,3.0\n1,x,nx,0,1.0\n2,y,ny,1,2.0\n")
    t = load_tables(tmp_path / "r.csv", tmp_path / "m.csv")
    assert t.domains == ["a", "b"] and t.metrics == ["loss"] and t.id_column == "run"
    assert t.ids == ["x", "y", "z"] and t.names == ["nx", "ny", "nz"] and t.Y[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_duplicate_column_names_are_named_not_renamed(tmp_path):
    r, m = _write(tmp_path, "index,a,b,a\n1,0.2,0.6,0.2\n2,0.5,0.3,0.2\n3,0.4,0.4,0.2\n",
                  "index,loss,loss,acc\n1,1,1,1\n2,2,2,2\n3,3,3,4\n")
    with pytest.raises(DataError, match=r"r\.csv: duplicate column name\(s\) \['a'\]"):
        load_tables(r, m)
    _write(tmp_path, "index,a,b\n1,0.5,0.5\n2,0.2,0.8\n3,1,0\n", "index,loss,loss,acc\n1,1,1,1\n2,2,2,2\n3,3,3,4\n")
    with pytest.raises(DataError, match=r"m\.csv: duplicate column name\(s\) \['loss'\]"):
        load_tables(r, m)


def test_ids_that_do_not_join_are_counted_before_too_few_runs(tmp_path):
    from olmix_core.fit import run_fit

    rows = "\n".join(f"{i},{0.5},{0.5}" for i in range(10))
    r, m = _write(tmp_path, f"run,a,b\n{rows}\n", "run,loss\n" + "\n".join(f"{i:02d},{i}" for i in range(10)) + "\n")
    with pytest.raises(DataError) as e:  # 0..9 vs 00..09
        load_tables(r, m)
    assert "10 of 10 row(s) of" in str(e.value) and "found no partner" in str(e.value) and "'00'" in str(e.value)
    # only 9, 10, 11 join: the count of rows without a partner comes before the regressor's "too few runs"
    ratios = "run,a,b\n" + "\n".join(f"{i},{i / 12},{1 - i / 12}" for i in range(12)) + "\n"
    metrics = "run,loss\n" + "\n".join(f"{i if i >= 9 else f'{i:02d}'},{i}" for i in range(12)) + "\n"
    r, m = _write(tmp_path, ratios, metrics)
    with pytest.raises(DataError) as e:
        run_fit(r, m, tmp_path / "o", {"regression": {"type": "log_linear", "n_jobs": 1}, "plots": False})
    msg = str(e.value)
    assert msg.index("9 of 12 row(s)") < msg.index("needs at least"), msg
    assert not (tmp_path / "o").exists()
