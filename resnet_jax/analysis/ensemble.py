"""Ensembles of saved runs (Sec 4.1 and Table 5: "We combine six models of different depth to form
an ensemble"), tested with Sec 3.4's protocols: `resnet-jax eval --workdir A --workdir B ...`.

Each member is tested as `resnet-jax eval` tests it alone, on its own inputs: its own input mean
and convention (a Caffe import's BGR 0-255 minus its mean image beside a torchvision import's
per-channel-normalised RGB; a CIFAR run's per-pixel mean beside an imported run's), its own image
backend. The ensemble's score of an image is the members' softmax averaged, for every view, and
then the views combined by the test mode's rule: the plain mean over the 10 crops, over the flips
and then (each scale the same weight) over the scales of the multi-scale test, the one view of
CIFAR's. Both averages are uniform means, so the member-mean of each view followed by the view rule
is the view rule's per-image score of each member averaged over the members: the ensemble is
computed that way, from each member's per-image scores (`imagenet_eval.image_scores`), so that
members never have to share views or a batch. Top-1/top-5 errors are taken on those scores as
for one net.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from resnet_jax import configs, runs
from resnet_jax.analysis.evaluate import open_imagenet_run, resolve_mode
from resnet_jax.analysis.load import RunError, load_run, read_config
from resnet_jax.analysis.report import table_lines
from resnet_jax.data.augment import normalize


@dataclasses.dataclass(frozen=True)
class Member:
    """A loaded run: what it is tested on (`data`: dataset, split, classes) and its scores."""

    info: dict
    data: tuple
    scores: Callable[[], tuple[np.ndarray, np.ndarray]]  # () -> (labels (N,), scores (N, classes))


@functools.partial(jax.jit, static_argnums=0)
def _softmax(model, variables, images: jax.Array, pixel_mean: jax.Array) -> jax.Array:
    """(B, H, W, 3) uint8 -> (B, classes) softmax of the single-view test (Engine.evaluate's input)."""
    logits = model.apply(variables, normalize(images, pixel_mean, model.dtype))
    return jax.nn.softmax(logits.astype(jnp.float32))


def _single_view_member(workdir: str, data_dir: str | None) -> Member:
    run = load_run(workdir, data_dir)
    eb, n = run.config.run.eval_batch_size, len(run.dataset.eval_images)

    def scores():
        rows = [_softmax(run.engine.model, run.variables, run.data.eval_images[i:i + eb], run.data.pixel_mean)
                for i in range(0, run.data.eval_images.shape[0], eb)]  # (whole, padded batches)
        return run.dataset.eval_labels.astype(np.int32), np.concatenate(jax.device_get(rows))[:n]

    info = {"workdir": workdir, "model": run.config.model.name, "step": run.step,
            "input_convention": run.config.model.input_convention}
    return Member(info, (run.dataset.name, run.dataset.eval_split, run.dataset.num_classes), scores)


def _imagenet_member(workdir: str, config, mode: str, data_dir: str | None, max_images: int) -> Member:
    from resnet_jax.train import imagenet_eval  # noqa: PLC0415 (grain only for ImageNet)

    run = open_imagenet_run(workdir, config, data_dir, max_images)
    info = {"workdir": workdir, "model": config.model.name, "step": int(jax.device_get(run["state"].step)),
            "input_convention": config.model.input_convention, "imported_from": config.run.imported_from,
            "image_backend": config.data.image_backend}
    return Member(info, ("imagenet", config.data.eval_split, run["num_classes"]),
                  lambda: imagenet_eval.image_scores(mode, **run["views"]))


def errors(labels: np.ndarray, scores: np.ndarray) -> dict:
    """Top-1 and top-5 error and the loss -log(score of the label) of per-image scores, as
    imagenet_eval.error_sums counts them (ties to the lower class)."""
    top5 = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    hit = top5 == labels[:, None]
    nll = -np.log(np.take_along_axis(scores, labels[:, None], 1)[:, 0].astype(np.float64) + 1e-12)
    return {"test_error": float(np.mean(~hit[:, 0])), "test_top5_error": float(np.mean(~hit.any(1))),
            "test_loss": float(np.mean(nll))}


def evaluate_ensemble(workdirs: list[str], mode: str | None = None, data_dir: str | None = None,
                      max_images: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """The members' and the ensemble's errors, and the per-image scores {"labels", "members"
    (M, N, classes), "ensemble" (N, classes)}. RunError (one line) if a run cannot be tested or the
    members are not tested on the same dataset, split, classes and images."""
    saved = [read_config(w) for w in workdirs]
    kinds = {c.data.name in configs.HOST_FED for c in saved}
    if len(kinds) > 1:
        raise RunError("the ensemble mixes ImageNet and CIFAR-style runs: members must share one dataset")
    imagenet = kinds == {True}
    mode = resolve_mode(saved[0].data.name, mode)
    members = []
    for workdir, config in zip(workdirs, saved):
        member = (_imagenet_member(workdir, config, mode, data_dir, max_images) if imagenet
                  else _single_view_member(workdir, data_dir))
        if members and member.data != members[0].data:
            raise RunError(f"{workdir} is tested on {_describe(member.data)}, {workdirs[0]} on "
                           f"{_describe(members[0].data)}: an ensemble's members must agree")
        members.append(member)
    labels, rows = None, []
    for member in members:
        found, scores = member.scores()
        if labels is not None and not np.array_equal(found, labels):
            raise RunError(f"{member.info['workdir']} is tested on other images (labels) than "
                           f"{workdirs[0]}: an ensemble's members must agree")
        labels = found
        rows.append(scores.astype(np.float32))
    stacked = np.stack(rows)
    ensemble = stacked.mean(0)
    dataset, split, num_classes = members[0].data
    result = {"dataset": dataset, "eval_split": split, "mode": mode, "num_images": len(labels),
              "num_classes": num_classes,
              "members": [{**m.info, **errors(labels, s)} for m, s in zip(members, stacked)],
              "ensemble": errors(labels, ensemble)}
    return result, {"labels": labels, "members": stacked, "ensemble": ensemble}


def _describe(data: tuple) -> str:
    return f"{data[0]} ({data[1]}, {data[2]} classes)"


def lines(result: dict) -> list[str]:
    """What `resnet-jax eval` prints for an ensemble: each member, then the ensemble (if several)."""
    def numbers(r):
        return (f"top-1 error {100 * r['test_error']:.2f}%, top-5 {100 * r['test_top5_error']:.2f}%, "
                f"loss {r['test_loss']:.4f}")

    views = f"{result['mode']} view" + ("s" if result["mode"] != "single" else "")
    out = [f"member {i + 1}: {m['model']} ({m['workdir']}, input {m['input_convention']}) at step "
           f"{m['step']}: {numbers(m)}" for i, m in enumerate(result["members"])]
    if len(result["members"]) == 1:  # (one run, its scores saved)
        return out
    out.append(f"ensemble of {len(result['members'])} on {result['dataset']} ({result['eval_split']}, "
               f"{result['num_images']} images, {views}, softmax averaged): {numbers(result['ensemble'])}")
    return out


def write_scores(path: str, scores: dict[str, np.ndarray], workdirs: list[str]) -> None:
    """The per-image scores as .npz (labels, members, ensemble, workdirs; no pickled objects),
    whole or not at all (RunIOError)."""
    buffer = io.BytesIO()
    np.savez(buffer, **scores, workdirs=np.asarray(workdirs, dtype=str))
    runs.write_bytes(path, buffer.getvalue())


def table_markdown(result: dict, experiment) -> str:
    """The experiment's table (Table 5: resnet_jax/experiments/table5.py): the paper's rows with
    their source, then this ensemble's and its members' (errors in %)."""
    table = experiment.tables[0]
    data = f"{result['dataset']} ({result['eval_split']}, {result['num_images']} images, {result['mode']})"
    rows = [{"label": method, "test_top5_error": numbers["top5"].value, "paper": True,
             "data": f"paper {numbers['top5'].source}"} for method, numbers in experiment.paper.items()]
    names = ", ".join(m["model"] for m in result["members"])
    rows.append({"label": f"ours: ensemble of {len(result['members'])} ({names})", "data": data,
                 **{k: 100 * v for k, v in result["ensemble"].items()}})
    rows += [{"label": f"ours: member {m['model']} ({m['workdir']})", "data": data,
              **{k: 100 * m[k] for k in result["ensemble"]}} for m in result["members"]]
    def cell(row, column):  # the paper's numbers as printed (6.8, not 6.80)
        value = row.get(column.key)
        return "–" if value is None else ("{}" if row.get("paper") else column.fmt).format(value)

    cells = [[cell(r, c) for c in table.columns] for r in rows]
    return "\n".join(table_lines(table, cells)) + "\n\n" + table.note + "\n"
