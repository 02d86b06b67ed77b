"""Table 6 report from results.json files (no training)."""

import json

import pytest

from resnet_jax.analysis.report import table6_markdown, table6_rows
from resnet_jax.runs import load_results


def write(tmp_path, name, **fields):
    run = tmp_path / name
    run.mkdir(parents=True)
    base = {"model": "cifar_resnet110", "params": 1_727_962, "dataset": "cifar10",
            "eval_split": "test", "steps": 64_000, "wall_time": 100.0, "seed": 0}
    (run / "results.json").write_text(json.dumps({**base, **fields}))


def test_seeds_are_averaged_and_shared_clocks_not_double_counted(tmp_path):
    together = [0, 1, 2]
    for s, err in zip(together, (0.064, 0.066, 0.068)):
        write(tmp_path, f"r110/seed{s}", seed=s, test_error=err, trained_with_seeds=together)
    write(tmp_path, "r20", model="cifar_resnet20", params=269_722, test_error=0.0875, wall_time=30.0)
    write(tmp_path, "p20", model="cifar_plain20", params=269_722, test_error=0.1, wall_time=30.0)
    rows = {r["depth"]: r for r in table6_rows(load_results(str(tmp_path)))}
    assert sorted(rows) == [20, 110]  # plain nets are not in Table 6
    r110 = rows[110]
    assert r110["runs"] == 3 and r110["test_error"] == pytest.approx(6.6)
    assert r110["test_error_std"] == pytest.approx(0.2)
    assert r110["wall_time"] == 100.0  # one run of 3 seeds, not 300 s
    assert r110["params"] == r110["params_paper"] and r110["error_paper"] == 6.43
    md = table6_markdown(list(rows.values()))
    assert "| ResNet-110 | 1,727,962 | 1,727,962 | 6.60 ± 0.20 | 6.43 |" in md


def test_separate_runs_add_their_times(tmp_path):
    for s in (0, 1):
        write(tmp_path, f"r110_seed{s}", seed=s, test_error=0.065)
    (row,) = table6_rows(load_results(str(tmp_path)))
    assert row["wall_time"] == 200.0
