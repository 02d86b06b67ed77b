"""`resnet-jax sweep` and the scripts over it: relative paths are the caller's, a kept run must
match the request, signals reach the trainer, a missing environment is one line."""

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from resnet_jax.cli import overrides, sweep
from resnet_jax.configs import cifar_config, scaled_steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "table6_cifar.sh")


def _env(**extra):
    # The test's Python first, so the scripts' fallback (no uv) finds the dependencies too.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]
    return dict(os.environ, PATH=path, JAX_PLATFORMS="cpu", **extra)


@pytest.mark.slow
def test_table6_script_from_another_directory_writes_where_the_caller_stands(tmp_path):
    caller = tmp_path / "elsewhere"
    caller.mkdir()
    args = ["bash", SCRIPT, "--dataset", "digits", "--depths", "8", "--steps", "20", "--out", "out/t6"]
    done = subprocess.run(args, cwd=caller, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = caller / "out" / "t6"
    assert (out / "runs" / "resnet8" / "results.json").is_file()
    (row,) = json.loads((out / "table6.json").read_text())
    assert row["net"] == "resnet8" and row["dataset"] == "digits" and row["steps"] == 20
    assert (out / "curves.png").is_file()
    assert not os.path.exists(os.path.join(REPO, "out", "t6"))  # nothing in the checkout

    # The same --out asked for another schedule: refused in one line, the kept run untouched.
    results = (out / "runs" / "resnet8" / "results.json").read_text()
    again = subprocess.run(args[:-4] + ["--steps", "30", "--out", "out/t6"], cwd=caller, env=_env(),
                           capture_output=True, text=True, timeout=300)
    lines = again.stderr.strip().splitlines()
    assert again.returncode == 2 and len(lines) == 1, again.stderr
    assert "holds a run of another config (steps: 20 there, 30 asked)" in lines[0]
    assert (out / "runs" / "resnet8" / "results.json").read_text() == results


@pytest.mark.parametrize("mistake, says", [
    (["--stpes", "5"], "unknown option --stpes"),
    (["--depths", "21"], "resnet21: unknown model 'cifar_resnet21'"),
    (["--dataset", "cifar11"], "unknown dataset 'cifar11'")])
def test_script_mistakes_are_one_line_before_anything_trains(tmp_path, mistake, says):
    """A mistyped option, a depth that is not 6n+2, an unknown dataset: one line, exit 2, from
    another directory, before any net is started (the sweep checks every net's config first)."""
    done = subprocess.run(["bash", SCRIPT, "--dataset", "digits", "--steps", "10", *mistake, "--out", "o"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and says in lines[0], done.stderr
    assert done.stdout == "" and not (tmp_path / "o").exists()  # no "== net -> ..." started


def test_script_without_uv_or_dependencies_says_what_to_install(tmp_path):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in ("uv", "python3"):  # present, but neither runs anything
        (bin_ / tool).write_text("#!/bin/sh\nexit 1\n")
        (bin_ / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_}:/usr/bin:/bin")
    env.pop("RESNET_JAX_NO_UV", None)
    done = subprocess.run(["bash", SCRIPT, "--dataset", "digits", "--depths", "8"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "install uv" in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_run_of_another_config_is_named_field_by_field(tmp_path):
    asked = scaled_steps(cifar_config("cifar_resnet8"), 600)
    saved = scaled_steps(cifar_config("cifar_resnet8"), 300).to_dict()
    saved["run"]["progress"] = not saved["run"]["progress"]  # how it logged is not what it computed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert sweep.mismatch(asked, str(tmp_path)) == "steps: 300 there, 600 asked"
    (tmp_path / "config.json").write_text(json.dumps({**asked.to_dict(), "progress": False}))
    assert sweep.mismatch(asked, str(tmp_path)) is None
    kept = asked.to_dict()  # every field a resume may change, and the backend "auto" resolved to
    kept["model"].update(remat="block", scan_blocks=False)
    kept["run"].update(eval_every=7, seeds_mode="vmap")
    kept["data"].update(image_backend="pil", data_dir="/elsewhere")
    (tmp_path / "config.json").write_text(json.dumps(kept))
    assert sweep.mismatch(asked, str(tmp_path)) is None
    nested = {"optim": {"lr": 0.05}, "run": {"steps": 600}}  # a config.json written in sections
    (tmp_path / "config.json").write_text(json.dumps(nested))
    assert sweep.mismatch(asked, str(tmp_path)) == "lr: 0.05 there, 0.1 asked"


def test_config_flags_are_typed_and_checked():
    config = overrides.apply(cifar_config(), ["--config.lr=1", "--config.progress=false",
                                              "--config.lr_boundaries=(0.3,0.6)", "--config.dtype=bfloat16"])
    assert (config.optim.lr, config.run.progress, tuple(config.optim.lr_boundaries), config.model.dtype) == (
        1.0, False, (0.3, 0.6), "bfloat16")
    with pytest.raises(ValueError, match="did you mean 'weight_decay'"):
        overrides.apply(cifar_config(), ["--config.weight_decy=0"])


def test_a_signal_is_passed_on_and_the_sweep_stops_with_the_childs_code(tmp_path):
    marker = tmp_path / "got_term"
    child = (f"import pathlib, signal, sys, time\n"
             f"signal.signal(signal.SIGTERM, lambda *_: (pathlib.Path({str(marker)!r}).write_text('x'), "
             f"sys.exit(7)))\n"
             f"pathlib.Path({str(tmp_path / 'ready')!r}).write_text('x')\ntime.sleep(30)\n")

    def stop_when_ready():
        while not (tmp_path / "ready").exists():
            threading.Event().wait(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_when_ready, daemon=True).start()
    with pytest.raises(SystemExit) as exit_:
        sweep.run_child([sys.executable, "-c", child])
    assert exit_.value.code == 7 and marker.exists()
    assert signal.getsignal(signal.SIGTERM) == before  # the handlers are restored


def test_imagenet_takes_dataset_and_config_fields(capsys):
    from resnet_jax import experiments
    from resnet_jax.cli import imagenet
    from resnet_jax.configs import ConfigError

    args, nets = imagenet.parse(["resnet-jax imagenet", "--table", "2", "--nets", "resnet18",
                                 "--dataset", "imagenet2012", "--config.batch_size=128",
                                 "--config.dtype=bfloat16"])
    assert nets == ("resnet18",) and args.dataset == "imagenet2012"
    config = imagenet.net_config(experiments.get("table2"), "resnet18", schedule="plateau",
                                 dataset=args.dataset, config_flags=args.config)
    assert (config.run.batch_size, config.model.dtype, config.data.name, config.model.shortcut) == (
        128, "bfloat16", "imagenet2012", "A")
    with pytest.raises(ConfigError, match="unknown config field 'batch_sze'; did you mean 'batch_size'"):
        imagenet.net_config(experiments.get("table2"), "resnet18", schedule="plateau",
                            config_flags=["--config.batch_sze=3"])
    # --steps shortens the schedule and the intervals, except one the user typed (as train does)
    config = imagenet.net_config(experiments.get("table2"), "resnet18", schedule="plateau", steps=1000,
                                 config_flags=["--config.eval_every=50"])
    full = experiments.get("table2").get_config("resnet18:plateau")
    assert (config.run.steps, config.run.eval_every) == (1000, 50)
    assert config.run.log_every == min(max(10, round(full.run.log_every * 1000 / full.run.steps)), 1000)
