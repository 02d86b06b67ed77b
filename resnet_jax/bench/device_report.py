"""The device check's report (bench/device_check.py): device_check.json and device_check.md from the
report's dict, rewritten after every part; and the verdict on the "auto" block form, part c's
question: does the form the defaults resolve to run fastest on this backend?
"""

from __future__ import annotations

import json
import os

from resnet_jax import runs
from resnet_jax.bench import compile as compile_bench
from resnet_jax.bench.summary import summary_markdown


# ---- which block form wins -------------------------------------------------------------------------
def _is_auto(form: str, auto: dict) -> bool:
    fields = compile_bench.form_config(form)
    return len(fields) == len(auto) and all(auto[k] == v for k, v in fields.items())


def forms_verdicts(records: list[dict]) -> list[dict]:
    """Per model and dtype of part c: the form the "auto" defaults resolve to on that backend
    (the records' `auto`), the fastest form measured, and whether they are the same."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r["kind"] == "compile" and "step_ms" in r:
            groups.setdefault((r["model"], r["dtype"]), []).append(r)
    out = []
    for (model, dtype), rs in groups.items():
        best = min(rs, key=lambda r: r["step_ms"])
        auto = next((r for r in rs if _is_auto(r["form"], r["auto"])), None)
        out.append({"model": model, "dtype": dtype, "auto": rs[0]["auto"],
                    "auto_form": auto and auto["form"], "auto_step_ms": auto and auto["step_ms"],
                    "best_form": best["form"], "best_step_ms": best["step_ms"],
                    "auto_wins": None if auto is None else auto["step_ms"] <= best["step_ms"]})
    return out


def _gb(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def forms_markdown(records: list[dict]) -> list[str]:
    rows = [r for r in records if r["kind"] == "compile"]
    if not rows:
        return []
    lines = ["", "| model | dtype | form | remat | scanned convs | compile s (chunk) | step ms | "
             "device peak GB | host peak GB |", "|---|---|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        fields = compile_bench.form_config(r["form"])
        convs = fields.get("scan_conv_impl", "auto") if fields["scan_blocks"] else "-"
        if "error" in r:
            lines.append(f"| {r['model']} | {r['dtype']} | {r['form']} | {fields['remat']} | {convs} | "
                         f"failed: {r['error'][:60]} | | | |")
            continue
        lines.append(f"| {r['model']} | {r['dtype']} | {r['form']} | {fields['remat']} | {convs} | "
                     f"{r['compile_s']:.1f} ({r['steps_per_call']}) | {r.get('step_ms', '')} | "
                     f"{_gb(r.get('device_peak_gb'))} | {_gb(r.get('run_peak_gb', r['peak_gb']))} |")
    for v in forms_verdicts(records):
        auto = f"auto = scan_conv_impl {v['auto']['scan_conv_impl']}, remat {v['auto']['remat']}"
        if v["auto_wins"] is None:
            verdict = f"{auto}: not among the forms measured; fastest {v['best_form']}"
        elif v["auto_wins"]:
            verdict = f"{auto} ({v['auto_form']}) is the fastest form: the default stands"
        else:
            verdict = (f"{auto} ({v['auto_form']}, {v['auto_step_ms']} ms) LOSES to {v['best_form']} "
                       f"({v['best_step_ms']} ms): change the default on this backend")
        lines.append(f"\n- {v['model']} {v['dtype']}: {verdict}")
    return lines


# ---- the report ------------------------------------------------------------------------------------
def report_markdown(report: dict) -> str:
    env = next((r for p in report["parts"] for r in p.get("records", [])), None)
    device = (f"{env['device']} x{env['num_devices']} ({env['backend']}), jax {env['jax']}" if env
              else "not known (no part measured)")
    lines = ["# Device check" + (" (quick: tiny sizes, not measurements)" if report["quick"] else ""), "",
             f"device: {device}; budget {report['budget_s']:.0f} s, used {report['elapsed_s']:.0f} s", "",
             "| part | what | status | seconds | note |", "|---|---|---|---:|---|"]
    for p in report["parts"]:
        note = p.get("error") or ("; ".join(f"not run: {s}" for s in p.get("skipped", [])))
        lines.append(f"| {p['key']} {p['name']} | {p['title']} | {p['status']} | {p.get('seconds', 0):.0f} | "
                     f"{note or ''} |")
    train = next((p.get("result") for p in report["parts"] if p["name"] == "train"), None)
    if train:
        lines += ["", f"**a.** `resnet-jax train --experiment=table6:{train['depth']} "
                  f"--config.dataset=digits --steps={train['steps']}`: "
                  + (f"stopped at the budget after {train['first_s']} s" if train["first_exit"] is None
                     else f"exit {train['first_exit']} after {train['first_s']} s, "
                     + (f"preempted (SIGTERM) at step {train['preempted_at']}" if train.get("preempted_at")
                        else "finished before the SIGTERM"))]
        if "resume_exit" in train:
            lines[-1] += (f"; {train['resume_cmd']}: exit {train['resume_exit']} after {train['resume_s']} s"
                          + (f", resumed: {train['resumed']}" if "resumed" in train else ""))
        if "checkpoints" in train:
            error = train["test_error"]
            error = "?" if error is None else f"{100 * error:.2f}%"
            lines[-1] += (f"; checkpoints {train['checkpoints']}, test error {error}, "
                          f"table6.md: {train['table6_md']}")
    for p in report["parts"]:
        if p.get("records"):
            lines += ["", f"## {p['key']} {p['name']}: {p['title']}"]
            lines += (forms_markdown(p["records"]) if p["name"] == "forms"
                      else ["", summary_markdown(p["records"]).rstrip()])
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: str) -> None:
    runs.write_text(os.path.join(out_dir, "device_check.json"), json.dumps(report, indent=1) + "\n")
    runs.write_text(os.path.join(out_dir, "device_check.md"), report_markdown(report))
