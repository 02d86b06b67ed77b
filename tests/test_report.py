"""An experiment's report from its runs (no training): tables in the declared columns, ours beside
the paper's; figures that name their data and schedule; `report table6` as before."""

import json

import pytest

from resnet_jax import experiments
from resnet_jax.analysis import report
from resnet_jax.cli.report import main as report_main
from resnet_jax.experiment import Column, Experiment, Table, reported
from resnet_jax.runs import load_results

TABLE6 = experiments.get("table6")


def write(tmp_path, name, metrics=(), **fields):
    run = tmp_path / name
    run.mkdir(parents=True)
    base = {"model": "cifar_resnet110", "params": 1_727_962, "dataset": "cifar10",
            "eval_split": "test", "steps": 64_000, "wall_time": 100.0, "seed": 0}
    (run / "results.json").write_text(json.dumps({**base, **fields}))
    if metrics:
        (run / "config.json").write_text(json.dumps({"dataset": "digits", "steps": 300, **fields}))
        (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))


def table6_rows(tmp_path):
    return report.rows(load_results(str(tmp_path)), TABLE6.tables[0], TABLE6)


def test_seeds_are_averaged_and_shared_clocks_not_double_counted(tmp_path):
    together = [0, 1, 2]
    for s, err in zip(together, (0.064, 0.066, 0.068)):
        write(tmp_path, f"r110/seed{s}", seed=s, test_error=err, trained_with_seeds=together)
    write(tmp_path, "r20", model="cifar_resnet20", params=269_722, test_error=0.0875, wall_time=30.0)
    write(tmp_path, "p20", model="cifar_plain20", params=269_722, test_error=0.1, wall_time=30.0)
    rows = {r["net"]: r for r in table6_rows(tmp_path)}
    assert list(rows) == ["resnet20", "resnet110"]  # plain nets are not in Table 6; by depth
    r110 = rows["resnet110"]
    assert r110["runs"] == 3 and r110["test_error"] == pytest.approx(6.6)
    assert r110["test_error_std"] == pytest.approx(0.2)
    assert r110["wall_time"] == 100.0  # one run of 3 seeds, not 300 s
    assert r110["params"] == r110["paper"]["params"] and r110["paper"]["error"] == 6.43
    assert r110["paper_sources"]["error"] == "Table 6"
    md = report.markdown(list(rows.values()), TABLE6.tables[0], TABLE6)
    assert "| ResNet-110 | 1,727,962 | 1,727,962 | 6.60 ± 0.20 | 6.43 |" in md
    assert "not the paper's" not in md  # ran on CIFAR-10: nothing to warn about


def test_separate_runs_add_their_times(tmp_path):
    for s in (0, 1):
        write(tmp_path, f"r110_seed{s}", seed=s, test_error=0.065)
    (row,) = table6_rows(tmp_path)
    assert row["wall_time"] == 200.0


def test_a_new_table_is_a_declaration(tmp_path):
    """Any columns, any nets: a table over a net list of its own, with the paper's numbers."""
    write(tmp_path, "plain20", model="cifar_plain20", params=269_722, test_error=0.1, dataset="digits")
    write(tmp_path, "resnet20", model="cifar_resnet20", params=269_722, test_error=0.05,
          dataset="digits")
    experiment = Experiment("plain vs res", get_config=None, nets=(), setting="CIFAR-10, 64k",
                            paper={"plain20": reported("Fig 6", error=9.9)},
                            tables=(Table("mine", "Mine", nets=("plain*",), columns=(
                                Column("net", "label"), Column("ours", "test_error", fmt="{:.1f}"),
                                Column("paper", "error", paper=True, fmt="{:.1f}"))),))
    rows = report.rows(load_results(str(tmp_path)), experiment.tables[0], experiment)
    md = report.markdown(rows, experiment.tables[0], experiment)
    assert "| plain-20 | 10.0 | 9.9 |" in md and "ResNet-20" not in md
    assert "Ours ran on `digits`, not the paper's CIFAR-10, 64k" in md


def test_report_table6_writes_table_and_a_figure_naming_its_setting(tmp_path, capsys):
    curve = [{"step": s, "train_error": e, "test_error": e + 0.01} for s, e in ((10, 0.5), (20, 0.2))]
    write(tmp_path / "runs", "resnet8", model="cifar_resnet8", params=78_042, test_error=0.2,
          dataset="digits", steps=20, metrics=curve)
    out = tmp_path / "out"
    report_main(["resnet-jax report", "table6", "--runs", str(tmp_path / "runs"), "--out", str(out)])
    (row,) = json.loads((out / "table6.json").read_text())
    assert row["net"] == "resnet8" and row["paper"] == {}  # not a depth of the paper's: no numbers
    assert "| ResNet-8 | 78,042 | – | 20.00 | – |" in (out / "table6.md").read_text()
    assert (out / "curves.png").stat().st_size > 0


def test_figure_title_names_data_schedule_and_paper_setting(tmp_path):
    from resnet_jax.analysis import plots

    curve = [{"step": 10, "train_error": 0.3, "test_error": 0.3}]
    write(tmp_path, "plain20", model="cifar_plain20", test_error=0.3, metrics=curve, dataset="digits",
          steps=300)
    title = plots.face_title("Fig 6", [str(tmp_path / "plain20")], "CIFAR-10, 64k")
    assert title == "Fig 6 — digits, 300 steps (paper: CIFAR-10, 64k)"


def test_unknown_experiment_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        report_main(["resnet-jax report", "--experiment", "tabel6", "--runs", str(tmp_path), "--out",
                     str(tmp_path / "o")])
    assert exit_.value.code == 2
    assert "no experiment 'tabel6'; did you mean 'table6'?" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_nothing_to_report_is_exit_2_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        report_main(["resnet-jax report", "--experiment", "fig1", "--runs", str(tmp_path), "--out",
                     str(tmp_path / "o")])
    assert exit_.value.code == 2 and not (tmp_path / "o").exists()
