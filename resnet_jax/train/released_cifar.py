"""Trained CIFAR ResNets published as PyTorch files, as this project's nets and back.

akamaster's (legacy `.th`, option A with zeros on both sides of the identity, a DataParallel
checkpoint in a `{"best_prec1", "state_dict"}` wrapper) and chenyaofo's (zip `.pt`, option B, a bare
state dict with BN counters) become the model options that make our net the same function
(models/released_cifar.py): the shortcut, `zero_pad`, the torchvision input convention with the
family's per-channel std (`input_std`) and mean colour (the input mean, data as for every run), the
class count and dataset. What only the file needs to be written again the same way (its form, its
wrapper and DataParallel prefix, its BN counters, provenance and the published error) is the
`record`, kept beside the run (train/run_weights.py) and read by `export` and `eval`.
"""

from __future__ import annotations

import numpy as np

from resnet_jax.data.torch_files import LEGACY, REBUILD_V2, ZIP, TorchFile
from resnet_jax import configs
from resnet_jax.models import parse_model_name, released, released_cifar
from resnet_jax.models.released import BN_COUNTER, ReleasedModelError

DATASETS = {10: "cifar10", 100: "cifar100"}
FORMS = {released_cifar.AKAMASTER: LEGACY, released_cifar.CHENYAOFO: ZIP}  # as each publishes


def model_fields(family: str, depth: int, num_classes: int) -> dict:
    """The config fields of the family's ResNet-`depth` with `num_classes` classes."""
    if num_classes not in DATASETS:
        raise ReleasedModelError(f"holds a net of {num_classes} classes: CIFAR-10 (10) or CIFAR-100 "
                                 "(100) expected")
    _, std = released_cifar.normalization(family, num_classes)
    option = released_cifar.SHORTCUT[family]
    return {"model": f"cifar_resnet{depth}", "shortcut": option,
            "zero_pad": "both" if option == "A" else "after", "input_convention": "torchvision",
            "input_std": tuple(std), "dataset": DATASETS[num_classes]}


def net_shapes(fields: dict, num_classes: int, *, image_size: int) -> dict:
    """{path: shape} of the net a released file's config `fields` describe (its family's recipe,
    the fields set), traced on `image_size` images; for train/released.py's ImageNet files too
    (here because that module imports this one)."""
    config = configs.override(configs.recipe(fields["model"]), **fields)
    return released.variable_shapes(configs.build_model(configs.resolve(config, "cpu"), num_classes),
                                    image_size)


def from_torch_file(file: TorchFile, model: str | None, provenance: dict) -> tuple[dict, dict, np.ndarray,
                                                                                    int, dict]:
    """(config fields, variables per block, input mean 1x1x3, classes, record) of a CIFAR ResNet
    file; `model` (e.g. cifar_resnet56), if given, is the net it must hold. ReleasedModelError
    naming the first tensor at fault."""
    state, prefix = released_cifar.strip_data_parallel(file.state)
    family = released_cifar.family_of(state)
    if model is None:
        depth = released_cifar.depth_of(state)
    else:
        spec = parse_model_name(model)
        if spec.variant != "cifar_resnet":
            raise ReleasedModelError(f"this file holds a CIFAR ResNet, not {model}")
        depth = spec.depth
    fc = state[f"{released_cifar.FC_NAME[family]}.weight"]
    num_classes = int(fc.shape[0]) if fc.ndim == 2 else 0
    fields = model_fields(family, depth, num_classes)
    variables = released_cifar.from_torch(state, depth, family,
                                         net_shapes(fields, num_classes, image_size=32))
    mean, _ = released_cifar.normalization(family, num_classes)
    counters = {k.removesuffix("." + BN_COUNTER): int(v) for k, v in state.items()
                if k.endswith("." + BN_COUNTER)}
    found = released_cifar.published(family, num_classes, depth)
    record = {**provenance, "family": family, "form": file.form, "rebuild": file.rebuild,
              "prefix": prefix, "wrapper": None if file.wrapper is None else [list(e) for e in file.wrapper],
              "bn_counters": counters if counters else None,
              "published": None if found is None else {"source": found[0], "test_error": found[1] / 100}}
    return fields, variables, np.asarray(mean, np.float32).reshape(1, 1, 3), num_classes, record


def family_of_run(config, mean: np.ndarray | None) -> str:
    """The family whose files hold a CIFAR run's net as the same function; ReleasedModelError
    naming the first option no family's code has."""
    spec = parse_model_name(config.model.name)
    if spec.variant != "cifar_resnet":
        raise ReleasedModelError(f"{config.model.name} is not a CIFAR ResNet of basic blocks "
                                 "(6n+2 layers)")
    family = {"A": released_cifar.AKAMASTER, "B": released_cifar.CHENYAOFO}.get(config.model.shortcut)
    if family is None:
        raise ReleasedModelError(f"shortcut option {config.model.shortcut}: the published CIFAR ResNets "
                                 "use A or B")
    num_classes = 100 if config.data.name == "cifar100" else 10
    expected = model_fields(family, spec.depth, num_classes)
    expected_mean, _ = released_cifar.normalization(family, num_classes)
    problems = [why for bad, why in (
        (config.model.zero_pad != expected["zero_pad"],
         f"zero_pad={config.model.zero_pad} ({family}'s option A puts the zeros {expected['zero_pad']})"),
        (config.model.input_convention != "torchvision"
         or tuple(config.model.input_std) != expected["input_std"],
         f"its input convention ({family}'s nets divide by the std {expected['input_std']})"),
        (mean is None or mean.size != 3 or not np.allclose(mean.ravel(), expected_mean, rtol=0, atol=1e-7),
         f"its input mean ({family}'s nets subtract {expected_mean})")) if bad]
    if problems:
        raise ReleasedModelError(f"{family}'s code cannot run this net as it is: {problems[0]}")
    return family


def to_torch_file(config, variables: dict, mean: np.ndarray | None, record: dict | None) -> TorchFile:
    """A CIFAR run's variables as its family's file: the imported file's form, wrapper,
    DataParallel prefix and BN counters where `record` (the import's) has them, else the family's
    form, a bare state dict and no counters. ReleasedModelError if no family's code runs the net."""
    family = family_of_run(config, mean)
    record = record or {}
    depth = parse_model_name(config.model.name).depth
    state = released_cifar.to_torch(variables, depth, family, record.get("bn_counters"))
    prefix = record.get("prefix", "")
    wrapper = record.get("wrapper")
    return TorchFile({prefix + k: v for k, v in state.items()}, record.get("form", FORMS[family]),
                     record.get("rebuild", REBUILD_V2),
                     None if wrapper is None else tuple((k, v) for k, v in wrapper))
