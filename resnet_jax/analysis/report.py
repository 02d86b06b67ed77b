"""An experiment's tables from finished runs (`resnet-jax report`): one row per net, ours beside
the paper's numbers, in the columns the experiment declares (resnet_jax.experiment.Table). Runs of
one net trained with several seeds are averaged (mean ± std, as the paper reports for ResNet-110)."""

from __future__ import annotations

import statistics

from resnet_jax.experiment import Experiment, Table, label, select


def net_name(model: str) -> str:
    """The net a run trained, as experiments name it: cifar_resnet110 -> resnet110."""
    return model.partition("_")[2]


def _wall_time(runs: list[dict]) -> float:
    """Total training time: seeds trained together in one run (`--seeds N`) share one clock."""
    groups: dict[tuple, float] = {}
    for r in runs:
        key = tuple(r.get("trained_with_seeds") or [r.get("seed"), r["workdir"]])
        groups[key] = max(groups.get(key, 0.0), r["wall_time"])
    return sum(groups.values())


def rows(results: list[dict], table: Table, experiment: Experiment) -> list[dict]:
    """One row per net of `table` that has finished runs: ours (errors in %), and the paper's
    numbers with their sources."""
    by_net: dict[str, list[dict]] = {}
    for r in results:
        by_net.setdefault(net_name(r["model"]), []).append(r)
    found = []
    for net in select(table.nets, by_net):
        runs = by_net[net]
        errors = [100 * r["test_error"] for r in runs]
        paper = experiment.paper.get(net, {})
        found.append({
            "net": net, "label": label(net), "params": runs[0].get("params"),
            "test_error": statistics.mean(errors),
            "test_error_std": statistics.stdev(errors) if len(errors) > 1 else None,
            "runs": len(runs), "dataset": runs[0]["dataset"], "eval_split": runs[0]["eval_split"],
            "data": f"{runs[0]['dataset']} ({runs[0]['eval_split']})", "steps": runs[0]["steps"],
            "wall_time": _wall_time(runs), "images_per_sec": runs[0].get("images_per_sec"),
            "backend": runs[0].get("backend"),
            "paper": experiment.paper_values(net),
            "paper_sources": {key: r.source for key, r in paper.items()},
        })
    return found


def _cell(row: dict, column) -> str:
    key = column.key.format(dataset=row["dataset"]) if column.paper else column.key
    value = (row["paper"] if column.paper else row).get(key)
    if value is None:
        return "–"
    fmt = column.fmt.removesuffix("±")
    text = fmt.format(value)
    if column.fmt.endswith("±") and not column.paper and row.get(f"{column.key}_std") is not None:
        text += " ± " + fmt.format(row[f"{column.key}_std"])
    return text


def table_lines(table: Table, cells: list[list[str]]) -> list[str]:
    """The markdown lines of `table` with these rows of cells: its title, the header, the alignment
    rule (the label and data columns left, numbers right) and one line per row."""
    return [f"## {table.title}", "", "| " + " | ".join(c.title for c in table.columns) + " |",
            "|" + "|".join("---" if c.key in ("label", "data") else "---:" for c in table.columns) + "|",
            *("| " + " | ".join(row) + " |" for row in cells)]


def markdown(rows: list[dict], table: Table, experiment: Experiment) -> str:
    """The table as markdown, with its note and what our runs were beside the paper's setting."""
    lines = table_lines(table, [[_cell(r, c) for c in table.columns] for r in rows])
    notes = [table.note] if table.note else []
    datasets = sorted({r["dataset"] for r in rows})
    # "CIFAR-10, 64k" -> {cifar10}; "CIFAR-10/CIFAR-100, 64k" -> {cifar10, cifar100}
    paper_data = {d.strip().replace("-", "").lower() for d in experiment.setting.partition(",")[0].split("/")}
    if rows and experiment.setting and not set(datasets) <= paper_data:
        notes.append(f"Ours ran on `{', '.join(datasets)}`, not the paper's {experiment.setting}: compare "
                     "the error columns only on the paper's data and schedule.")
    return "\n".join(lines) + "\n" + ("\n" + " ".join(notes) + "\n" if notes else "")
