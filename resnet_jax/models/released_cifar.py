"""The published PyTorch CIFAR ResNets' tensor names, and ours (Sec 4.2's 6n+2-layer nets).

Two families hold the paper's CIFAR nets trained to about its errors:
- akamaster/pytorch_resnet_cifar10 (resnet.py): ResNet-20/32/44/56/110/1202 with option A
  shortcuts (Sec 4.2's choice): `conv1`, `bn1`, `layer{1-3}.{i}.conv{1,2}`/`bn{1,2}`, `linear`.
  Its shortcut pads the subsampled identity with planes/4 zero channels on *both* sides
  (`F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4))`), so the identity sits in the
  middle channels; the paper does not say where the zeros go, and ours append them. The same
  weights are the same function only with the model's `zero_pad` option saying where.
- chenyaofo/pytorch-cifar-models (pytorch_cifar_models/resnet.py): cifar10/cifar100
  ResNet-20/32/44/56, torchvision's BasicBlock, whose first blocks of stages 2 and 3 project the
  shortcut with a 1x1 conv (stride 2) + BN, `layer{2,3}.0.downsample.{0,1}` (option B); fc `fc`.

Both store convs [out, in, kh, kw] and the fc [classes, features] (released.py converts them);
BN counters (`num_batches_tracked`) are not part of the function.
"""

from __future__ import annotations

import re

import numpy as np

from resnet_jax.models.variants import parse_model_name
from resnet_jax.models.released import (Path, ReleasedModelError, from_torch_names, to_torch_names,
                                        torch_resnet_names)

AKAMASTER, CHENYAOFO = "akamaster", "chenyaofo"
FAMILIES = (AKAMASTER, CHENYAOFO)
SHORTCUT = {AKAMASTER: "A", CHENYAOFO: "B"}
FC_NAME = {AKAMASTER: "linear", CHENYAOFO: "fc"}
DATA_PARALLEL = "module."  # the prefix of every key saved from a torch.nn.DataParallel model

# How each family's training normalized its input, torchvision's ToTensor + Normalize: RGB in
# [0, 1] minus a mean colour, divided by a std, per channel.
NORMALIZATION = {
    # akamaster trainer.py `normalize` (ImageNet's constants), for every net it trains
    AKAMASTER: {None: ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))},
    # chenyaofo's training code (chenyaofo/image-classification-codebase) conf/cifar10.conf and
    # conf/cifar100.conf; the released models' training logs print the same
    CHENYAOFO: {10: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
                100: ((0.5070, 0.4865, 0.4409), (0.2673, 0.2564, 0.2761))},
}

# Published test errors (%) on the whole test set (10,000 images), by family, classes, depth.
PUBLISHED = {
    # akamaster README, "Test err(this impl.)"
    (AKAMASTER, 10): {20: 8.27, 32: 7.37, 44: 6.90, 56: 6.61, 110: 6.32, 1202: 6.18},
    # chenyaofo README "Model Zoo" tables, Top-1 Acc.(%) (92.60, 93.53, 94.01, 94.37 on CIFAR-10;
    # 68.83, 70.16, 71.63, 72.63 on CIFAR-100) as errors
    (CHENYAOFO, 10): {20: 7.40, 32: 6.47, 44: 5.99, 56: 5.63},
    (CHENYAOFO, 100): {20: 31.17, 32: 29.84, 44: 28.37, 56: 27.37},
}
PUBLISHED_SOURCE = {AKAMASTER: "akamaster/pytorch_resnet_cifar10 README",
                    CHENYAOFO: "chenyaofo/pytorch-cifar-models README"}


def normalization(family: str, num_classes: int) -> tuple[tuple, tuple]:
    """(mean, std) per channel the family's net of `num_classes` was trained with;
    ReleasedModelError where its code names none."""
    table = NORMALIZATION[family]
    found = table.get(num_classes, table.get(None))
    if found is None:
        raise ReleasedModelError(f"{family}'s nets are CIFAR-10 or CIFAR-100 ones; this one has "
                                 f"{num_classes} classes, and no known input normalization")
    return found


def published(family: str, num_classes: int, depth: int) -> tuple[str, float] | None:
    """(source, test error %) its publisher gives for the net, or None."""
    error = PUBLISHED.get((family, num_classes), {}).get(depth)
    return None if error is None else (PUBLISHED_SOURCE[family], error)


def names(depth: int, family: str) -> list[tuple[str, Path, str]]:
    """(file key, our path, kind) of every tensor of the family's ResNet-`depth`, in the order its
    module's state_dict() has them (conv1, bn1, the blocks in order, the fc)."""
    n = parse_model_name(f"cifar_resnet{depth}").stage_sizes[0]  # ValueError unless 6n+2
    return torch_resnet_names((n, n, n), stages=("stage1", "stage2", "stage3"), convs=2,
                              projected=(2, 3) if family == CHENYAOFO else (), fc=FC_NAME[family])


def strip_data_parallel(state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """(state with DataParallel's `module.` prefix taken off every key, the prefix) or (state, "")
    where the keys do not all carry it."""
    if state and all(k.startswith(DATA_PARALLEL) for k in state):
        return {k.removeprefix(DATA_PARALLEL): v for k, v in state.items()}, DATA_PARALLEL
    return state, ""


def is_cifar(state: dict[str, np.ndarray]) -> bool:
    """Whether a (prefix-free) state dict is a CIFAR ResNet's: a 3x3 conv1 with 16 filters and no
    fourth stage (torchvision's ImageNet nets: a 7x7 conv1 with 64, layer4)."""
    conv1 = state.get("conv1.weight")
    return (conv1 is not None and tuple(conv1.shape) == (16, 3, 3, 3)
            and not any(k.startswith("layer4.") for k in state))


def family_of(state: dict[str, np.ndarray]) -> str:
    """AKAMASTER (an fc named `linear`) or CHENYAOFO (`fc`); ReleasedModelError for neither."""
    if "linear.weight" in state:
        return AKAMASTER
    if "fc.weight" in state:
        return CHENYAOFO
    raise ReleasedModelError("holds a CIFAR net with neither akamaster's fc (linear.weight) nor "
                             "chenyaofo's (fc.weight)")


def depth_of(state: dict[str, np.ndarray]) -> int:
    """6n+2 for n blocks in the first stage (`layer1.0` ... `layer1.{n-1}`)."""
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"layer1\.(\d+)\.", k))}
    if not blocks:
        raise ReleasedModelError("holds no layer1 blocks: not a CIFAR ResNet")
    return 6 * len(blocks) + 2


def from_torch(state: dict[str, np.ndarray], depth: int, family: str,
               shapes: dict[Path, tuple[int, ...]]) -> dict:
    """A (prefix-free) state dict of the family's ResNet-`depth` -> our variables (per block);
    ReleasedModelError naming the first tensor that is missing or misshaped, in network order."""
    return from_torch_names(state, names(depth, family), shapes, f"ResNet-{depth}")


def to_torch(variables: dict, depth: int, family: str, counters: dict[str, int] | None) -> dict:
    """Our variables -> the family's state dict, keys in its order (no DataParallel prefix);
    `counters` as released.to_torch_names."""
    return to_torch_names(variables, names(depth, family), f"{family}'s ResNet-{depth}", counters)
