"""The follow-up paper's experiment (1603.05027): its nets build with its recipe (the fixed 400-step
warm-up included), its numbers are Table 3's with their sources, its table shows ours beside the
paper's number for the data each row ran on, and the puzzle figure draws from two runs."""

import json

import pytest

from resnet_jax import configs, experiments
from resnet_jax.analysis import report
from resnet_jax.cli.report import main as report_main
from resnet_jax.runs import load_results
from resnet_jax.train import schedule as sched
from resnet_jax.train.engine import create_engine

FOLLOWUP = experiments.get("followup")
TABLE = FOLLOWUP.tables[0]
PAPER = FOLLOWUP.paper


@pytest.mark.parametrize("net", [n.name for n in FOLLOWUP.nets])
def test_every_net_builds_with_the_papers_recipe(net):
    config = FOLLOWUP.get_config(net)
    configs.validate(config, num_devices=1)  # builds the model
    assert (config.optim.lr, tuple(config.optim.lr_boundaries)) == (0.1, (0.5, 0.75))
    assert (config.run.steps, config.run.batch_size) == (64_000, 128)
    assert (config.optim.momentum, config.optim.weight_decay, config.model.bn_group_size) == (0.9, 1e-4, 64)
    assert config.model.shortcut == ("B" if "bottleneck" in net else "A")  # appendix: projections
    if net == "resnet1202":  # Table 6's net and recipe: warm up until the training error < 80 %
        assert config.optim.warmup and config.optim.warmup_steps == 0
    else:  # appendix: "0.01 at the beginning 400 iterations" for all CIFAR experiments
        assert not config.optim.warmup and (config.optim.warmup_steps, config.optim.warmup_lr) == (400, 0.01)


def test_fixed_warmup_is_400_steps_at_001_then_the_2015_schedule():
    engine = create_engine(FOLLOWUP.get_config("preact110"), crop_padding=4, num_classes=10)
    lrs = {step: float(engine.schedule(step)) for step in (0, 399, 400, 31_999, 32_000, 48_000)}
    assert lrs == pytest.approx({0: 0.01, 399: 0.01, 400: 0.1, 31_999: 0.1, 32_000: 0.01, 48_000: 0.001})
    short = configs.scaled_steps(FOLLOWUP.get_config("preact110"), 640)  # the schedule's shape kept
    assert short.optim.warmup_steps == 4
    assert float(sched.step_decay(0.1, 100)(0)) == pytest.approx(0.1)  # no warm-up by default


def test_a_run_saved_before_fixed_warmups_has_none():
    saved = configs.flat_items(configs.cifar_config("cifar_resnet110"))  # config.json, flat, as then
    del saved["warmup_steps"]
    assert configs.from_saved(saved).optim.warmup_steps == 0
    with pytest.raises(configs.ConfigError, match="warmup_steps"):
        configs.validate(configs.override(configs.cifar_config(), warmup_steps=-1), num_devices=1)


def test_paper_numbers_are_table_3s_with_sources():
    error10 = {net: PAPER[net]["error_cifar10"].value for net in PAPER}
    assert error10 == {"resnet110": 6.61, "preact110": 6.37, "bottleneck164": 5.93,
                       "preact_bottleneck164": 5.46, "bottleneck1001": 7.61, "preact_bottleneck1001": 4.92,
                       "resnet1202": 7.93}
    error100 = {net: n["error_cifar100"].value for net, n in PAPER.items() if "error_cifar100" in n}
    assert error100 == {"bottleneck164": 25.16, "preact_bottleneck164": 24.33, "bottleneck1001": 27.82,
                        "preact_bottleneck1001": 22.71}
    assert PAPER["preact_bottleneck1001"]["error_batch64_cifar10"].value == 4.62
    assert PAPER["preact110"]["error_cifar10"].source.startswith("Table 3")
    assert PAPER["resnet1202"]["error_cifar10"].source.startswith("2015 paper, Table 6")
    for net, numbers in PAPER.items():
        assert all("Table" in r.source for r in numbers.values()), net
        assert FOLLOWUP.net(net), net


def test_bottleneck_parameter_counts_are_table_4s_without_bns_scale_and_shift():
    """Table 4's 10.2M for ResNet-1001 is its conv and fc weights (with BN's scale and shift, 10.33M);
    the 2015 nets' counts it cites include them (ResNet-1202: 19.4M, Table 6's option A count)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from resnet_jax.models import create_model

    bottlenecks = [net for net in PAPER if "bottleneck" in net]
    assert len(bottlenecks) == 4
    for net in bottlenecks:
        config = FOLLOWUP.get_config(net)
        model = create_model(config.model.name, shortcut=config.model.shortcut, num_classes=10)
        params = jax.eval_shape(lambda m=model: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                                                       train=False))["params"]
        weights = sum(int(np.prod(leaf.shape)) for path, leaf in jax.tree_util.tree_leaves_with_path(params)
                      if path[-1].key == "kernel")
        assert f"{weights / 1e6:.1f}M" == PAPER[net]["params_rounded"].value, net


def _run(root, net, dataset, error, curve=()):
    run = root / net
    run.mkdir(parents=True)
    model = f"cifar_{net}"
    (run / "results.json").write_text(json.dumps({
        "model": model, "params": 1_000, "dataset": dataset, "eval_split": "test", "steps": 20,
        "wall_time": 5.0, "seed": 0, "test_error": error}))
    if curve:
        (run / "config.json").write_text(json.dumps({"model": model, "dataset": dataset, "steps": 20}))
        (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in curve))


@pytest.mark.parametrize("dataset, paper_1001, paper_110", [("cifar10", "4.92", "6.37"),
                                                             ("cifar100", "22.71", "–")])
def test_table_shows_the_papers_number_for_the_data_of_the_row(tmp_path, dataset, paper_1001, paper_110):
    _run(tmp_path, "preact_bottleneck1001", dataset, 0.05)
    _run(tmp_path, "preact110", dataset, 0.07)
    rows = report.rows(load_results(str(tmp_path)), TABLE, FOLLOWUP)
    md = report.markdown(rows, TABLE, FOLLOWUP)
    assert f"| ResNet-110 pre-act | 1,000 | – | 7.00 | {paper_110} | {dataset} (test) |" in md
    assert f"| ResNet-1001 bottleneck pre-act | 1,000 | 10.2M | 5.00 | {paper_1001} |" in md
    assert "not the paper's" not in md  # CIFAR-10 and CIFAR-100 are both the paper's data


def test_digits_rows_have_no_paper_error_and_say_so(tmp_path):
    _run(tmp_path, "bottleneck164", "digits", 0.25)
    md = report.markdown(report.rows(load_results(str(tmp_path)), TABLE, FOLLOWUP), TABLE, FOLLOWUP)
    assert "| ResNet-164 bottleneck | 1,000 | 1.7M | 25.00 | – | digits (test) |" in md
    assert "Ours ran on `digits`, not the paper's CIFAR-10/CIFAR-100, 64k" in md


def test_puzzle_figure_draws_from_the_two_runs(tmp_path, monkeypatch):
    from resnet_jax.analysis import plots

    drawn = []
    draw = plots.draw
    monkeypatch.setattr(plots, "draw", lambda ax, runs, title, which: drawn.append((title, list(runs), which))
                        or draw(ax, runs, title, which))
    curve = [{"step": s, "train_error": e, "test_error": e + 0.05} for s, e in ((10, 0.6), (20, 0.3))]
    for net, error in (("resnet1202", 0.35), ("preact_bottleneck1001", 0.3), ("resnet110", 0.3)):
        _run(tmp_path / "runs", net, "digits", error, curve)
    out = tmp_path / "out"
    report_main(["resnet-jax report", "followup", "--runs", str(tmp_path / "runs"), "--out", str(out)])
    assert (out / "puzzle.png").stat().st_size > 0 and (out / "curves.png").stat().st_size > 0
    puzzle = ["ResNet-1202", "ResNet-1001 bottleneck pre-act", "ResNet-110"]  # the two, then the shallower
    assert ("training error", puzzle, ("train",)) in drawn and ("test error", puzzle, ("test",)) in drawn
    assert "| ResNet-1202 | 1,000 | 19.4M | 35.00 | – |" in (out / "followup.md").read_text()
