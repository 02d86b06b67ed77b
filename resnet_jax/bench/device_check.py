"""`resnet-jax bench --device-check`: what a lent accelerator should answer, in one command that fits
one call on it (scripts/device_check.sh; docs/speed.md, "On a GPU or TPU").

Parts, in order of value; each runs in processes of its own (`resnet-jax train`, the table 6 script,
`resnet-jax bench --parts ...`), so a failure or a runaway compile is recorded and the rest go on:
  a train      the README's route on the device: `resnet-jax train` on digits, stopped by SIGTERM once it
               has logged (exit 0, checkpoint saved), then scripts/table6_cifar.sh resuming it to the
               end (exit 0, "resumed at step K", results.json, table6.md)
  b reference  ours vs the flax-examples step, ResNet-20/56/110, batch 128, float32 and bfloat16
  c forms      the scanned-block forms of ResNet-110 and 1202 (remat none/block, scanned convs
               xla/im2col) and the unrolled 110, compiled as the loop's chunk: compile s, step ms,
               device peak memory, and whether the "auto" defaults pick the fastest form
  d e2e        the real loop for 2,000 steps and the projected time of the paper's 64k (ResNet-20, 110)
  e seeds      5 seeds in one program per seeds_mode vs one model (ResNet-20)
  f r50        ImageNet ResNet-50 images/s at batch 256, bfloat16

Budget: each part may use the time left times its share of the shares still to come, so time a part
leaves unused passes on. A part whose allowance is under MIN_PART_S seconds is not started
("skipped-budget"); one that runs out is stopped with its process group ("partial-budget": the
records it had written stay). After every part the report is rewritten (device_check.json, .md),
so a call cut short still returns what was measured. This process never initialises JAX: each
child has the device to itself.

One module because the parts and the child processes they start under one budget are one
sequence read top to bottom; the report of them (pure functions of its dict) is device_report's.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

from resnet_jax import runs
from resnet_jax.bench.device_report import write_report
from resnet_jax.bench.summary import read_records

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MIN_PART_S = 10.0  # less cannot even import JAX and compile one program
STOP_GRACE_S = 15  # a stopped child's time to save a checkpoint before SIGKILL


@dataclasses.dataclass(frozen=True)
class Part:
    key: str
    name: str
    title: str
    share: float


PARTS = (Part("a", "train", "README training route: train, SIGTERM, resume (digits)", 0.22),
         Part("b", "reference", "ours vs flax-examples step, ResNet-20/56/110, batch 128", 0.22),
         Part("c", "forms", "scanned-block forms, ResNet-110/1202: compile, step, memory", 0.22),
         Part("d", "e2e", "projected 64k-step run, ResNet-20/110", 0.14),
         Part("e", "seeds", "5 seeds per seeds_mode vs one model, ResNet-20", 0.10),
         Part("f", "r50", "ImageNet ResNet-50 images/s, batch 256, bfloat16", 0.10))
STATUSES = ("ran", "partial-budget", "skipped-budget", "failed")

_TIMING = ["--steps", "100", "--repeats", "3", "--steps_per_call", "50"]
_TINY = ["--image_size", "8", "--batch_size", "16", "--steps", "2", "--repeats", "1"]
# `resnet-jax bench` argument lists per part: the accelerator's sizes, and --quick's (CPU, minutes)
BENCH = {
    "reference": [["--parts", "step,reference", "--models", "cifar_resnet20,cifar_resnet56,cifar_resnet110",
                   "--dtypes", "float32,bfloat16", "--batch_size", "128", *_TIMING]],
    # by value: the accelerator's auto form (scan+xla) against remat and unrolled first, im2col last
    "forms": [["--parts", "compile", "--compile_models", models, "--dtypes", "float32",
               "--compile_forms", forms, "--compile_programs", "chunk", "--compile_timed", "chunk",
               "--compile_chunk", "50", "--steps", "100", "--repeats", "3", "--unrolled_max_depth", "110"]
              for models, forms in (("cifar_resnet110", "scan+xla,scan+remat+xla,unrolled"),
                                    ("cifar_resnet1202", "scan+xla,scan+remat+xla"),
                                    ("cifar_resnet110,cifar_resnet1202", "scan+im2col,scan+remat+im2col"))],
    "e2e": [["--parts", "e2e", "--models", "cifar_resnet20,cifar_resnet110", "--dtypes", "float32",
             "--e2e_steps", "2000", "--e2e_eval_every", "1000", "--e2e_dataset", "synthetic"]],
    "seeds": [["--parts", "step,seeds", "--models", "cifar_resnet20", "--dtypes", "float32", "--seeds", "5",
               "--seeds_modes", "loop,vmap,vmap+im2col,devices", *_TIMING]],
    "r50": [["--parts", "step", "--models", "imagenet_resnet50", "--dtypes", "bfloat16",
             "--batch_size", "256", *_TIMING]],
}
QUICK_BENCH = {
    "reference": [["--parts", "step,reference", "--models", "cifar_resnet8", "--dtypes", "float32", *_TINY]],
    "forms": [["--parts", "compile", "--compile_models", "cifar_resnet8", "--dtypes", "float32",
               "--compile_forms", "scan+remat+im2col,unrolled", "--compile_programs", "chunk",
               "--compile_timed", "chunk", "--compile_chunk", "2", "--unrolled_max_depth", "8", *_TINY]],
    "e2e": [["--parts", "e2e", "--models", "cifar_resnet8", "--dtypes", "float32", "--e2e_steps", "8",
             "--e2e_eval_every", "4", "--e2e_dataset", "digits"]],
    "seeds": [["--parts", "step,seeds", "--models", "cifar_resnet8", "--dtypes", "float32", "--seeds", "2",
               "--seeds_modes", "loop,vmap", *_TINY]],
    "r50": [["--parts", "step", "--models", "imagenet_resnet18", "--dtypes", "float32", "--image_size", "32",
             "--batch_size", "4", "--steps", "2", "--repeats", "1"]],
}
TRAIN = {"depth": "20", "steps": 400}  # --steps >= 200: a checkpoint every 100 steps (configs.scaled_steps)
QUICK_TRAIN = {"depth": "8", "steps": 40}


# ---- child processes -----------------------------------------------------------------------------
def child_env() -> dict:
    """This environment, with this checkout importable and the children's output unbuffered (a
    stopped child's last lines are in the log)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": "ignore",
            "PYTHONPATH": ROOT + (os.pathsep + path if path else ""),
            # scripts/common.sh's rj: this interpreter, first on PATH, without uv
            "RESNET_JAX_NO_UV": "1",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop the process group we started for `proc` (compile probes are its children)."""
    for s, wait in ((sig, STOP_GRACE_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, s)
            proc.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def call(cmd: list[str], deadline: float, log, stop_when=None) -> tuple[int | None, str]:
    """Run `cmd` in a process group of its own until `deadline` (time.time()): (exit status, or None
    if stopped there; its output), the output appended to `log` too. `stop_when()`, polled while it
    runs, sends it one SIGTERM once true."""
    with tempfile.TemporaryFile("w+") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT,
                                start_new_session=True)
        while stop_when and proc.poll() is None and time.time() < deadline:
            if stop_when():
                proc.send_signal(signal.SIGTERM)
                break
            time.sleep(0.2)
        try:
            rc = proc.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            _stop(proc)
            rc = None
        f.seek(0)
        text = f.read()
    log.write(f"$ {' '.join(cmd)}\n{text}\n[exit {rc}]\n")
    log.flush()
    return rc, text


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1][:300]


# ---- parts -----------------------------------------------------------------------------------------
def train_part(sizes: dict, deadline: float, scratch: str, log) -> dict:
    """Part a: the run `scripts/table6_cifar.sh --dataset digits` starts, stopped by SIGTERM after its
    first log record, then the script itself, which resumes it and writes the table."""
    depth, steps = sizes["depth"], sizes["steps"]
    out = os.path.join(scratch, "table6")
    workdir = os.path.join(out, "runs", f"resnet{depth}")
    # exactly train_net's command in scripts/common.sh, so that the script resumes this run
    cmd = [sys.executable, "-m", "resnet_jax.cli", "train", f"--experiment=table6:{depth}",
           f"--workdir={workdir}", "--config.dataset=digits", "--config.seed=0", f"--steps={steps}"]
    result: dict = {"depth": int(depth), "steps": steps, "dataset": "digits"}
    t = time.perf_counter()
    # SIGTERM after its first log record: the preemption path (save a checkpoint, exit 0)
    rc, text = call(cmd, deadline, log, stop_when=lambda: bool(runs.read_metrics(workdir)))
    result.update(first_exit=rc, first_s=round(time.perf_counter() - t, 1))
    if rc != 0:
        return {"status": "partial-budget" if rc is None else "failed", "result": result,
                "error": None if rc is None else f"train exit {rc}: {_last_line(text)}"}
    stopped = re.search(r"preempted: checkpoint saved at step (\d+)", text)
    result["preempted_at"] = int(stopped.group(1)) if stopped else None  # None: it finished first
    script = os.path.join(ROOT, "scripts", "table6_cifar.sh")
    resume = (["bash", script, "--dataset", "digits", "--steps", str(steps), "--depths", depth,
               "--out", out] if os.path.exists(script) else cmd)  # an installed package: the CLI
    t = time.perf_counter()
    rc, text = call(resume, deadline, log)
    result.update(resume_cmd="scripts/table6_cifar.sh" if resume is not cmd else "resnet-jax train",
                  resume_exit=rc, resume_s=round(time.perf_counter() - t, 1))
    if rc != 0:
        return {"status": "partial-budget" if rc is None else "failed", "result": result,
                "error": None if rc is None else f"resume exit {rc}: {_last_line(text)}"}
    checkpoints = runs.checkpoint_dir(workdir)
    result["checkpoints"] = sorted(int(d) for d in os.listdir(checkpoints) if d.isdigit())
    results = runs.read_results(workdir) or {}
    result.update(test_error=results.get("test_error"), images_per_sec=results.get("images_per_sec"),
                  table6_md=os.path.exists(os.path.join(out, "table6.md")))
    problems = []
    if result["preempted_at"] is not None:
        result["resumed"] = f"resumed at step {result['preempted_at']}" in text
        problems += [] if result["resumed"] else ["the rerun did not resume from the saved checkpoint"]
    problems += [] if steps in result["checkpoints"] else [f"no checkpoint at step {steps}"]
    problems += [] if result["table6_md"] or resume is cmd else ["the script wrote no table6.md"]
    problems += [] if results else ["no results.json"]
    return {"status": "failed" if problems else "ran", "result": result,
            "error": "; ".join(problems) or None}


def _label(args: list[str]) -> str:
    """The models an argument list measures, to name what was not run."""
    flag = "--compile_models" if "--compile_models" in args else "--models"
    return args[args.index(flag) + 1]


def bench_part(arg_lists: list[list[str]], deadline: float, scratch: str, log) -> dict:
    """`resnet-jax bench` once per argument list, one after the other, until the deadline."""
    records: list[dict] = []
    for i, args in enumerate(arg_lists):
        if time.time() >= deadline:
            return {"status": "partial-budget", "records": records,
                    "skipped": [_label(a) for a in arg_lists[i:]]}
        path = os.path.join(scratch, f"bench{i}.jsonl")
        cmd = [sys.executable, "-m", "resnet_jax.cli", "bench", *args, "--out", path]
        rc, text = call(cmd, deadline, log)
        records += read_records(path, stopped=True)  # what a stopped run had written too
        if rc is None:
            return {"status": "partial-budget", "records": records,
                    "skipped": [_label(a) for a in arg_lists[i + 1:]]}
        if rc != 0:
            return {"status": "failed", "records": records, "error": f"exit {rc}: {_last_line(text)}"}
    return {"status": "ran", "records": records}


def run(*, budget_s: float, out_dir: str, quick: bool, parts: tuple[str, ...], say=print) -> dict:
    """Every part of `parts` (names or keys) in order within `budget_s`; the report written to
    `out_dir` after each. Returns the report."""
    start = time.time()
    bench, train = (QUICK_BENCH, QUICK_TRAIN) if quick else (BENCH, TRAIN)
    chosen = [p for p in PARTS if p.key in parts or p.name in parts]
    report = {"budget_s": budget_s, "quick": quick, "elapsed_s": 0.0,
              "parts": [{**dataclasses.asdict(p), "status": "skipped-budget"} for p in chosen]}
    with open(os.path.join(out_dir, "device_check.log"), "w") as log, \
            tempfile.TemporaryDirectory(prefix="resnet_jax_device_check_") as scratch:
        for i, (part, entry) in enumerate(zip(chosen, report["parts"])):
            left = budget_s - (time.time() - start)
            allowance = left * part.share / sum(p.share for p in chosen[i:])
            if allowance < MIN_PART_S:
                entry["error"] = f"{allowance:.0f} s left for it"
                say(f"device check: {part.key} {part.name}: skipped ({allowance:.0f} s left for it)")
                continue
            say(f"device check: {part.key} {part.name}: up to {allowance:.0f} s")
            t = time.time()
            folder = os.path.join(scratch, part.name)
            os.makedirs(folder)
            try:
                if part.name == "train":
                    entry.update(train_part(train, t + allowance, folder, log))
                else:
                    entry.update(bench_part(bench[part.name], t + allowance, folder, log))
            except Exception as e:  # noqa: BLE001 (recorded: the other parts still run)
                entry.update(status="failed", error=f"{type(e).__name__}: {e}")
            entry["seconds"] = round(time.time() - t, 1)
            report["elapsed_s"] = round(time.time() - start, 1)
            say(f"device check: {part.key} {part.name}: {entry['status']} in {entry['seconds']:.0f} s"
                + (f" ({entry['error']})" if entry.get("error") else ""))
            write_report(report, out_dir)
    report["elapsed_s"] = round(time.time() - start, 1)
    write_report(report, out_dir)
    return report
