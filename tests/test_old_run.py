"""A run folder written by the previous release (tests/data/old_run_v0_1, made by commit 5e24159)
still resumes, evaluates and reports with the current code."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from resnet_jax import configs, runs
from resnet_jax.cli import evaluate, report
from resnet_jax.configs import ConfigError, cifar_config
from resnet_jax.train.loop import train_and_evaluate

OLD = pathlib.Path(__file__).parent / "data" / "old_run_v0_1"
# One image of the 360 in the digits test split: the current code evaluates with a different XLA
# program than the one that wrote results.json, so a prediction on the decision boundary may flip.
ONE_IMAGE = 1 / 360 + 1e-9


@pytest.fixture
def old_runs(tmp_path):
    """A writable copy: resuming writes into the folder."""
    shutil.copytree(OLD, tmp_path / "runs", ignore=shutil.ignore_patterns("README.md"))
    return tmp_path / "runs"


def _flags_of_the_old_run(**overrides):
    """What `resnet-jax train --config=experiments/table6.py:8 $F` means today (README.md's F)."""
    config = cifar_config("cifar_resnet8")
    configs.override(config, **{"dataset": "digits", "batch_size": 32, "bn_group_size": 0, "steps": 6,
                                "log_every": 2, "eval_every": 3, "checkpoint_every": 3, "keep_checkpoints": 1,
                                "eval_batch_size": 500, "progress": False, **overrides})
    return config


def test_the_checked_in_folders_are_the_old_format_and_small():
    config = json.loads((OLD / "resnet8" / "config.json").read_text())
    assert "momentum_form" not in config  # written before the field existed
    size = sum(f.stat().st_size for f in OLD.rglob("*") if f.is_file())
    assert size < 2.5e6


def test_old_run_resumes_with_more_steps(old_runs):
    """The old run trained with optax's momentum (the only form then); today's configs default to
    the paper's (Caffe's) form, so resuming needs `momentum_form="optax"`, and without it the
    resume stops with one line naming the field, before writing anything."""
    workdir = str(old_runs / "resnet8")
    before = (old_runs / "resnet8" / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError) as error:
        train_and_evaluate(_flags_of_the_old_run(steps=10), workdir)
    assert "momentum_form='optax'" in str(error.value) and "\n" not in str(error.value)
    assert (old_runs / "resnet8" / "metrics.jsonl").read_bytes() == before

    results = train_and_evaluate(_flags_of_the_old_run(steps=10, momentum_form="optax"), workdir)
    assert results["steps"] == 10
    records = runs.read_metrics(workdir)
    assert [r["step"] for r in records] == [2, 3, 4, 6, 8, 9, 10]
    assert (old_runs / "resnet8" / "metrics.jsonl").read_bytes().startswith(before)
    assert json.loads((old_runs / "resnet8" / "results.json").read_text())["steps"] == 10


def test_old_multi_seed_run_resumes(old_runs):
    workdir = str(old_runs / "resnet8_seeds")
    results = train_and_evaluate(_flags_of_the_old_run(steps=8, num_seeds=2, momentum_form="optax"),
                                 workdir)
    assert results["seeds"] == [0, 1] and results["steps"] == 8
    for s in (0, 1):
        assert [r["step"] for r in runs.read_metrics(str(old_runs / "resnet8_seeds" / f"seed{s}"))
                ] == [2, 3, 4, 6, 8]


@pytest.mark.parametrize("folder", ["resnet8", "resnet8_seeds/seed1"])
def test_old_run_evaluates_to_its_recorded_test_error(folder, old_runs, tmp_path):
    """`resnet-jax eval` on the single run and on one seed of the multi-seed run (whose stacked
    checkpoint lives one folder up)."""
    workdir = old_runs / folder
    evaluate.main(["resnet-jax eval", "--workdir", str(workdir), "--json", str(tmp_path / "e.json")])
    got = json.loads((tmp_path / "e.json").read_text())
    recorded = json.loads((workdir / "results.json").read_text())
    assert (got["model"], got["step"], got["num_images"]) == ("cifar_resnet8", 6, 360)
    assert got["test_error"] == pytest.approx(recorded["test_error"], abs=ONE_IMAGE)


def test_old_runs_report(old_runs, tmp_path):
    """`resnet-jax report table6` over the old runs: ResNet-8, three runs (one alone, two trained
    together whose shared clock counts once); the plot's curves read their metrics."""
    report.main(["resnet-jax report", "table6", "--runs", str(old_runs), "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "table6.json").read_text())
    assert [(r["net"], r["runs"], r["params"]) for r in rows] == [("resnet8", 3, 75290)]
    single = json.loads((OLD / "resnet8" / "results.json").read_text())
    seeds = json.loads((OLD / "resnet8_seeds" / "seeds.json").read_text())
    assert rows[0]["wall_time"] == pytest.approx(single["wall_time"] + seeds["wall_time"])
    assert "| ResNet-8 | 75,290 |" in (tmp_path / "table6.md").read_text()
    train, test = runs.curves(str(old_runs / "resnet8"))
    assert [s for s, _ in train] == [2, 3, 4, 6] and [s for s, _ in test] == [3, 6]


# ---- the last release with a flat config.json (tests/data/old_run_v0_2, made by commit cb4eea3) ----

FLAT = pathlib.Path(__file__).parent / "data" / "old_run_v0_2"


@pytest.fixture
def flat_run(tmp_path):
    shutil.copytree(FLAT, tmp_path / "runs", ignore=shutil.ignore_patterns("README.md"))
    return tmp_path / "runs" / "resnet8"


def test_the_flat_folder_is_the_flat_format_and_small():
    saved = json.loads((FLAT / "resnet8" / "config.json").read_text())
    assert saved["model"] == "cifar_resnet8" and saved["remat"] == "auto"  # flat, "auto" unresolved
    assert sum(f.stat().st_size for f in FLAT.rglob("*") if f.is_file()) < 2.5e6


def test_flat_run_resumes_and_then_records_the_nested_config(flat_run):
    """The same flags as the run was made with (the README's F, more steps) resume it; config.json
    is then written in the nested form, "auto" resolved; a changed setting is refused in one line."""
    before = (flat_run / "metrics.jsonl").read_bytes()
    with pytest.raises(ConfigError) as error:
        train_and_evaluate(_flags_of_the_old_run(steps=8, keep_checkpoints=2, lr=0.05), str(flat_run))
    assert "lr 0.1 -> 0.05" in str(error.value) and "another --workdir" in str(error.value)
    assert (flat_run / "metrics.jsonl").read_bytes() == before
    results = train_and_evaluate(_flags_of_the_old_run(steps=8, keep_checkpoints=2), str(flat_run))
    assert results["steps"] == 8
    assert [r["step"] for r in runs.read_metrics(str(flat_run))] == [2, 3, 4, 6, 8]
    saved = json.loads((flat_run / "config.json").read_text())
    assert saved["model"]["name"] == "cifar_resnet8" and saved["model"]["remat"] in ("block", "none")
    assert configs.from_saved(saved).optim.momentum_form == "caffe"


def test_flat_run_evaluates_to_its_recorded_test_error(flat_run, tmp_path):
    evaluate.main(["resnet-jax eval", "--workdir", str(flat_run), "--json", str(tmp_path / "e.json")])
    got = json.loads((tmp_path / "e.json").read_text())
    recorded = json.loads((flat_run / "results.json").read_text())
    assert (got["model"], got["step"], got["num_images"]) == ("cifar_resnet8", 6, 360)
    assert got["test_error"] == pytest.approx(recorded["test_error"], abs=ONE_IMAGE)


def test_flat_run_reports(flat_run, tmp_path):
    report.main(["resnet-jax report", "table6", "--runs", str(flat_run.parent), "--out", str(tmp_path)])
    rows = json.loads((tmp_path / "table6.json").read_text())
    assert [(r["net"], r["runs"], r["params"], r["steps"]) for r in rows] == [("resnet8", 1, 75290, 6)]
    assert "| ResNet-8 | 75,290 |" in (tmp_path / "table6.md").read_text()
    train, test = runs.curves(str(flat_run))
    assert [s for s, _ in train] == [2, 3, 4, 6] and [s for s, _ in test] == [3, 6]
