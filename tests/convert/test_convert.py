"""`olmix convert hf` on real olmo-core checkpoints of the trainer's tiny model: logits round trip through
transformers, latest step chosen numerically, remote checkpoints, clear errors, idempotency, group conversion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from olmix_core.cli import cli
from olmix_core.convert import (
    ConversionError,
    TokenizerError,
    convert_checkpoint,
    convert_group,
    resolve_checkpoint,
)
from olmix_core.convert.checkpoints import load_model
from olmix_core.errors import ArtifactCorrupt, ArtifactMissing
from olmix_core.runspec import RunState, RunStatus, build_run_specs, write_run_specs
from olmix_core.store import SwarmStore, open_fs
from tests.convert._ckpt import GROUP, MIXTURES, demo_config, make_checkpoint

# HF (transformers Olmo2) vs olmo-core logits on the same tokens, float32 on CPU: the same tolerance olmo-core's
# own validate_conversion uses (rtol = atol = 1e-4).
ATOL = 1e-4


def hf_vs_olmo_core(hf_dir: str, checkpoint: str, tokens: torch.Tensor) -> float:
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    oc = load_model(resolve_checkpoint(checkpoint))
    with torch.no_grad():
        a = hf(input_ids=tokens).logits.float()
        b = oc(input_ids=tokens)[..., : a.shape[-1]].float()
    assert a.shape[-1] == 258  # the true vocabulary, not olmo-core's padded embedding size
    return float((a - b).abs().max())


@pytest.fixture(scope="module")
def converted(ckpt_folder, tmp_path_factory):
    folder, _ = ckpt_folder
    out = tmp_path_factory.mktemp("hf") / "model"
    return convert_checkpoint(str(folder), str(out))


def test_round_trip_logits_match_through_transformers(converted, ckpt_folder):
    folder, states = ckpt_folder
    assert converted.step == 10 and converted.checkpoint == str(folder / "step10")  # latest, chosen as a number
    assert converted.validated and converted.tokenizer == "byte-level" and converted.vocab_size == 258
    cfg = json.loads(Path(converted.output, "config.json").read_text())
    assert cfg["model_type"] == "olmo2" and cfg["vocab_size"] == 258 and cfg["eos_token_id"] == 256 and cfg["pad_token_id"] == 257
    tokens = torch.from_numpy(np.random.default_rng(0).integers(0, 258, size=(2, 96)))
    assert hf_vs_olmo_core(converted.output, converted.checkpoint, tokens) < ATOL
    # and the HF model is step10's, not step9's: its embeddings are step10's first 258 rows
    from safetensors.torch import load_file

    emb = load_file(f"{converted.output}/model.safetensors")["model.embed_tokens.weight"]
    assert torch.equal(emb, states[10]["embeddings.weight"][:258])
    assert not torch.equal(emb, states[9]["embeddings.weight"][:258])


def test_the_byte_level_tokenizer_round_trips_text(converted):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(converted.output)
    ids = tok.encode("héllo, wörld")
    assert ids == list("héllo, wörld".encode())  # one id per byte
    assert tok.decode(ids) == "héllo, wörld" and tok.eos_token_id == 256 and len(tok) == 258


def test_converting_again_is_a_no_op_and_a_foreign_folder_is_refused(converted, ckpt_folder, tmp_path):
    folder, _ = ckpt_folder
    mtime = (open_fs(converted.output)[0]).modified(f"{converted.output}/model.safetensors")
    again = convert_checkpoint(str(folder / "step10"), converted.output)
    assert again.skipped and again.converted == converted.converted
    assert open_fs(converted.output)[0].modified(f"{converted.output}/model.safetensors") == mtime
    other = tmp_path / "occupied"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConversionError, match="--overwrite"):
        convert_checkpoint(str(folder), str(other))
    assert (other / "notes.txt").read_text() == "mine"


def test_missing_and_corrupt_checkpoints_are_clear_errors(ckpt_folder, tmp_path):
    folder, _ = ckpt_folder
    with pytest.raises(ArtifactMissing, match="checkpoint not found"):
        convert_checkpoint(str(tmp_path / "nope"), str(tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactMissing, match="no checkpoint"):
        convert_checkpoint(str(tmp_path / "empty"), str(tmp_path / "out"))
    # an interrupted save: step<N>/ without model_and_optim/.metadata
    half = tmp_path / "half"
    shutil.copytree(folder / "step10", half / "step12")
    (half / "step12" / "model_and_optim" / ".metadata").unlink()
    with pytest.raises(ArtifactMissing, match=r"step12 lack model_and_optim/\.metadata"):
        convert_checkpoint(str(half), str(tmp_path / "out"))
    # ... while an older complete step next to it is used
    shutil.copytree(folder / "step9", half / "step9")
    assert resolve_checkpoint(str(half)).step == 9
    # corrupt weights
    bad = tmp_path / "bad" / "step10"
    shutil.copytree(folder / "step10", bad)
    for shard in (bad / "model_and_optim").glob("*.distcp"):
        shard.write_bytes(b"\0" * 64)
    with pytest.raises(ArtifactCorrupt, match="cannot load the model weights"):
        convert_checkpoint(str(bad), str(tmp_path / "out"))
    # corrupt or missing config.json
    (bad / "config.json").write_text("{not json")
    with pytest.raises(ArtifactCorrupt, match=r"config.json: corrupt JSON"):
        convert_checkpoint(str(bad), str(tmp_path / "out"))
    (bad / "config.json").unlink()
    with pytest.raises(ArtifactMissing, match="config.json: not found"):
        convert_checkpoint(str(bad), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_an_unusable_tokenizer_is_named(ckpt_folder, tmp_path):
    folder, _ = ckpt_folder
    with pytest.raises(TokenizerError, match="could not be loaded"):
        convert_checkpoint(str(folder), str(tmp_path / "out"), tokenizer=str(tmp_path / "no-tokenizer-here"))
    wrong = tmp_path / "wrong-size"
    from olmix_core.convert.tokenizer import write_byte_tokenizer

    write_byte_tokenizer({"vocab_size": 300, "eos_token_id": 256}, wrong)
    with pytest.raises(TokenizerError, match="has 300 tokens but .* vocab_size 258"):
        convert_checkpoint(str(folder), str(tmp_path / "out"), tokenizer=str(wrong))


def test_s3_checkpoint_to_s3_output(ckpt_folder, s3_endpoint):
    folder, _ = ckpt_folder
    fs, _ = open_fs(s3_endpoint)
    fs.put(str(folder) + "/", f"{s3_endpoint}/ckpts/run/".removeprefix("s3://"), recursive=True)
    record = convert_checkpoint(f"{s3_endpoint}/ckpts/run")
    assert record.checkpoint == f"{s3_endpoint}/ckpts/run/step10" and record.output == f"{s3_endpoint}/ckpts/run/step10-hf"
    fs.invalidate_cache()
    names = {p.rsplit("/", 1)[-1] for p in fs.ls(record.output.removeprefix("s3://"))}
    assert {"config.json", "model.safetensors", "tokenizer.json", "olmix-conversion.json"} <= names
    assert convert_checkpoint(f"{s3_endpoint}/ckpts/run").skipped


def _swarm_with_checkpoints(tmp_path, ckpt_folder):
    """Three runs: two succeeded (one with a corrupt checkpoint), one still running."""
    folder, _ = ckpt_folder
    config = demo_config(tmp_path / "data", str(tmp_path / "store"), variants=3)
    swarm = SwarmStore.open(config.storage_root, config.name, GROUP)
    specs = build_run_specs(config, swarm, [MIXTURES[0], MIXTURES[1], MIXTURES[0]])
    write_run_specs(swarm, specs)
    for spec, state in zip(specs, [RunState.succeeded, RunState.succeeded, RunState.running]):
        shutil.copytree(folder, spec.checkpoint_dir)
        swarm.store.write_json(swarm.run_key(spec.run_name, "status.json"), RunStatus(run_name=spec.run_name, state=state).model_dump(mode="json"))
    for shard in (tmp_path / specs[1].checkpoint_dir / "step10" / "model_and_optim").glob("*.distcp"):
        shard.write_bytes(b"garbage")
    return config, swarm, specs


def test_group_conversion_reports_per_run_and_is_idempotent(tmp_path, ckpt_folder):
    config, swarm, specs = _swarm_with_checkpoints(tmp_path, ckpt_folder)
    ok, bad, running = (s.run_name for s in specs)
    report = convert_group(config, GROUP)
    assert report["converted"] == [ok] and report["skipped"] == []
    assert "cannot load the model weights" in report["failed"][bad]
    assert report["not_finished"] == {running: "running"}
    record = swarm.store.read_json(swarm.run_key(ok, "hf.json"))
    assert record["output"] == f"{specs[0].checkpoint_dir}/step10-hf" and record["step"] == 10 and record["run"] == ok
    assert not swarm.store.exists(swarm.run_key(bad, "hf.json"))

    again = convert_group(config, GROUP)
    assert again["converted"] == [] and again["skipped"] == [ok] and bad in again["failed"]

    # a newer checkpoint of a run is converted; the rest is still skipped
    make_checkpoint(Path(specs[0].checkpoint_dir), steps=(11,), seed=7)
    third = convert_group(config, GROUP, only=[ok])
    assert third["converted"] == [ok] and third["outputs"][ok].endswith("step11-hf")


def test_cli_converts_a_checkpoint_and_a_group(tmp_path, ckpt_folder):
    config, swarm, specs = _swarm_with_checkpoints(tmp_path, ckpt_folder)
    folder, _ = ckpt_folder
    runner = CliRunner()
    out = tmp_path / "cli-hf"
    r = runner.invoke(cli, ["convert", "hf", "--checkpoint", str(folder / "step9"), "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert f"step9 -> {out}" in r.output and "logits validated" in r.output
    r = runner.invoke(cli, ["convert", "hf", "--checkpoint", str(folder / "step9"), "--output", str(out)])
    assert r.exit_code == 0 and "already converted" in r.output

    # by group id alone: the swarm is found under --storage-root and its stored config is used
    swarm.store.write_text(swarm.key(SwarmStore.CONFIG), config.to_yaml())
    root = ["--group-id", GROUP, "--storage-root", config.storage_root, "--output-root", str(tmp_path / "hf-out")]
    r = runner.invoke(cli, ["convert", "hf", *root, "--json"])
    assert r.exit_code == 1  # one run failed
    report = json.loads(r.stdout)
    assert report["converted"] == [specs[0].run_name] and specs[1].run_name in report["failed"]
    assert report["outputs"][specs[0].run_name] == str(tmp_path / "hf-out" / specs[0].run_name / "step10-hf")

    r = runner.invoke(cli, ["convert", "hf", "--checkpoint", str(folder), "--group-id", GROUP])
    assert r.exit_code == 1 and "either --checkpoint PATH or --group-id G" in r.output
    r = runner.invoke(cli, ["convert", "hf", "--group-id", "nothex!!"])
    assert r.exit_code == 1 and "--group-id" in r.output


@pytest.mark.slow
def test_a_trained_proxy_converts_and_scores_the_same_through_transformers(trained, tmp_path):
    """The real thing: a proxy trained by `olmix train` on demo data, its HF conversion scoring demo validation
    text exactly as the olmo-core checkpoint does."""
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from olmix_core.offline_eval.lm import read_tokens, split_documents

    config, _, specs = trained
    record = convert_checkpoint(specs[0].checkpoint_dir, str(tmp_path / "hf"))
    assert record.step == 30 and record.validated
    docs = split_documents(read_tokens(config.evaluation.sources["target"], "uint16"), 256, 256)[:8]
    width = min(len(d) for d in docs)
    tokens = torch.from_numpy(np.stack([d[:width] for d in docs]))
    assert hf_vs_olmo_core(record.output, record.checkpoint, tokens) < ATOL
    hf = AutoModelForCausalLM.from_pretrained(record.output).eval()
    with torch.no_grad():
        loss = F.cross_entropy(hf(input_ids=tokens).logits[:, :-1].reshape(-1, 258), tokens[:, 1:].reshape(-1))
    assert float(loss) < np.log(258) - 0.3  # it learned something, and the HF model shows it
