"""Re-test a saved run (`resnet-jax eval`): the single-view CIFAR test of its newest checkpoint, or
an ImageNet run's (trained, or an imported released model's) with the paper's protocols."""

from __future__ import annotations

import jax

from resnet_jax import configs
from resnet_jax.analysis import paper_imagenet
from resnet_jax.analysis.load import Run, RunError, load_run, read_config, restore_state
from resnet_jax.data import DatasetError
from resnet_jax.models import parse_model_name

IMAGENET_MODES = ("center", "ten_crop", "multi_scale")


def resolve_mode(dataset_name: str, mode: str | None) -> str:
    """The test a run of `dataset_name` gets: `mode`, or if none is given the paper's (Sec 3.4's
    centre crop for ImageNet, Sec 4.2's single original view otherwise); RunError (one line) for
    a mode that dataset is not tested with."""
    imagenet = dataset_name in configs.HOST_FED
    mode = mode or ("center" if imagenet else "single")
    if imagenet and mode not in IMAGENET_MODES:
        raise RunError(f"unknown ImageNet test {mode!r}: expected one of {', '.join(IMAGENET_MODES)}")
    if not imagenet and mode != "single":
        raise RunError(f"{dataset_name} runs are tested on the single original view, not {mode!r}")
    return mode


def single_view(run: Run) -> dict[str, float]:
    """The paper's CIFAR test: one pass over the original images (the training loop's evaluate)."""
    metrics = jax.device_get(run.engine.evaluate(run.state, run.data))
    return {k: float(v) for k, v in metrics.items()}


def evaluate_run(workdir: str, mode: str | None = None, data_dir: str | None = None,
                 max_images: int = 0, paper=None, *, dataset_loader=None) -> dict:
    """A run's test error: CIFAR-style single view, or for ImageNet runs one of IMAGENET_MODES
    (default centre crop) with top-5 and the published numbers of that net and protocol (`paper`:
    the paper's tables, as paper_imagenet.published takes them; `dataset_loader`: load_run's)."""
    config = read_config(workdir)
    if config.data.name in configs.HOST_FED:
        return evaluate_imagenet(workdir, config, mode, data_dir, max_images, paper)
    mode = resolve_mode(config.data.name, mode)
    run = load_run(workdir, data_dir, dataset_loader=dataset_loader)
    result = {"workdir": workdir, "model": run.config.model.name, "dataset": run.dataset.name,
              "eval_split": run.dataset.eval_split, "mode": mode, "step": run.step,
              "num_images": len(run.dataset.eval_images), "source": run.dataset.source,
              **single_view(run)}
    if (record := _record(workdir)) is not None:  # an imported net: its publisher's number beside
        result.update(imported_from=run.config.run.imported_from, published=record.get("published"))
    return result


def _record(workdir: str) -> dict | None:
    from resnet_jax.train import released, run_weights  # noqa: PLC0415 (as evaluate_imagenet)

    try:
        return run_weights.read_record(workdir)
    except released.WeightsError as e:
        raise RunError(str(e)) from None


def open_imagenet_run(workdir: str, config, data_dir: str | None, max_images: int = 0) -> dict:
    """What Sec 3.4's tests of an ImageNet run need: its net restored, with the input mean it
    expects (an imported model's, else the training mean), the validation source, and the view
    options of `imagenet_eval.evaluate` (its views made by its recorded `image_backend`; "auto", an
    imported model's: this machine's). {"engine", "state", "source", "num_classes", "views"}."""
    from resnet_jax.data import imagenet  # noqa: PLC0415 (grain only for ImageNet)
    from resnet_jax.train import released, run_weights  # noqa: PLC0415
    from resnet_jax.train.engine import create_engine, replicate_from_host  # noqa: PLC0415

    if data_dir is not None:
        config.data.data_dir = data_dir
    try:
        config.data.image_backend = configs.resolve_image_backend(config)
    except configs.ConfigError as e:
        raise RunError(f"{workdir}: {e}") from None
    try:
        _, _, num_classes = run_weights.read_run_shapes(workdir)
        engine = create_engine(config, 0, num_classes)
        state = restore_state(workdir, engine, (config.data.image_size,) * 2 + (3,))
        mean = run_weights.run_input_mean(config, workdir)
        source = imagenet.open_split(config.data.eval_split, config.data.data_dir)
    except (released.WeightsError, DatasetError) as e:
        raise RunError(str(e)) from None
    if max_images:
        source = imagenet.Head(source, max_images)
        devices = jax.device_count()  # (a whole batch of padding would cost as much as images)
        config.run.eval_batch_size = min(config.run.eval_batch_size, -(-len(source) // devices) * devices)
    views = {"model": engine.model, "variables": {"params": state.params, "batch_stats": state.batch_stats},
             "source": source, "pixel_mean": replicate_from_host(mean, engine.mesh), "mesh": engine.mesh,
             "batch_size": config.run.eval_batch_size, "crop_size": config.data.image_size,
             "resize": config.data.eval_resize, "scales": tuple(config.data.test_scales),
             "num_workers": config.data.num_workers, "backend": config.data.image_backend}
    return {"engine": engine, "state": state, "source": source, "num_classes": num_classes, "views": views}


def evaluate_imagenet(workdir: str, config, mode: str | None, data_dir: str | None,
                      max_images: int = 0, paper=None) -> dict:
    """Sec 3.4's tests of an ImageNet run (`open_imagenet_run`): centre 224 crop (the default),
    10-crop, or fully-convolutional multi-scale."""
    from resnet_jax.train import imagenet_eval  # noqa: PLC0415 (grain only for ImageNet)

    mode = resolve_mode(config.data.name, mode)
    run = open_imagenet_run(workdir, config, data_dir, max_images)
    metrics = imagenet_eval.evaluate(mode, **run["views"])
    depth = parse_model_name(config.model.name).depth
    found = paper_imagenet.published(config.model.input_convention, depth, mode, paper)
    return {"workdir": workdir, "model": config.model.name, "dataset": "imagenet",
            "eval_split": config.data.eval_split, "mode": mode,
            "step": int(jax.device_get(run["state"].step)),
            "num_images": metrics["test_images"], "input_convention": config.model.input_convention,
            "imported_from": config.run.imported_from, "image_backend": config.data.image_backend, **metrics,
            "published": None if found is None else {"source": found[0], "top1": found[1][0],
                                                     "top5": found[1][1]}}
