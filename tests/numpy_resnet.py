"""A float64 numpy forward pass of the CIFAR nets in inference mode, written from the papers' text
(He et al. 2016 Sec 3.3/4.2; 1603.05027 Fig. 4(e) and appendix), not from resnet_jax's modules: it
reads weights by their per-block names (models/layout.py) and decides the net's structure itself.

- Post-activation units (Sec 3.3): conv-BN-ReLU ... conv-BN, addition, ReLU.
- Pre-activation units (1603.05027): BN-ReLU-conv ..., addition, nothing after; the stem is conv1
  alone, the net ends with BN-ReLU; the first unit of each stage feeds its BN-ReLU to the shortcut
  too (the appendix: the first unit after conv1, and "projection shortcuts are also with
  pre-activation").
- Shortcuts: identity; option A subsamples and adds zero channels after the identity ones, or
  planes//4 on each side (akamaster's `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4))`);
  option B a strided 1x1 projection where the shape changes, with BN in post-activation units.
"""

from __future__ import annotations

import numpy as np


def conv(x: np.ndarray, kernel: np.ndarray, stride: int = 1, pad: int = 0) -> np.ndarray:
    """NHWC cross-correlation with an HWIO kernel, zero padding `pad` on each side."""
    kernel = np.asarray(kernel, np.float64)
    kh, kw = kernel.shape[:2]
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    ho, wo = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], ho, wo, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            window = x[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]
            out += np.einsum("nhwc,co->nhwo", window, kernel[i, j])
    return out


def bn(x: np.ndarray, params: dict, stats: dict, eps: float = 1e-5) -> np.ndarray:
    f = lambda a: np.asarray(a, np.float64)  # noqa: E731
    return (x - f(stats["mean"])) / np.sqrt(f(stats["var"]) + eps) * f(params["scale"]) + f(params["bias"])


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def shortcut(x, params, stats, *, stride, out_channels, option, zero_pad, with_bn):
    if option == "B" and (stride != 1 or x.shape[-1] != out_channels):
        y = conv(x, params["shortcut"]["proj_conv"]["kernel"], stride)
        return bn(y, params["shortcut"]["proj_bn"], stats["shortcut"]["proj_bn"]) if with_bn else y
    x = x[:, ::stride, ::stride]
    if x.shape[-1] == out_channels:
        return x
    n, h, w, _ = x.shape
    if zero_pad == "both":  # akamaster: planes//4 zero channels on each side of the identity ones
        side = np.zeros((n, h, w, out_channels // 4))
        return np.concatenate([side, x, side], axis=-1)
    return np.concatenate([x, np.zeros((n, h, w, out_channels - x.shape[-1]))], axis=-1)


def unit(x, p, s, *, block, stride, first, option, zero_pad, keep=lambda v: v):
    """One residual unit; `first`: the first unit of its stage. `keep` is given each 3x3 conv's
    response (Fig 7; see `forward`)."""
    bottleneck = block.endswith("bottleneck")
    out = p["conv3" if bottleneck else "conv2"]["kernel"].shape[-1]
    # (padding, stride) of each conv (1x1 or 3x3 as the kernel says): the stride on the first (v1)
    convs = [(0, stride), (1, 1), (0, 1)] if bottleneck else [(1, stride), (1, 1)]
    sc = dict(stride=stride, out_channels=out, option=option, zero_pad=zero_pad)
    if block.startswith("preact"):
        y, after_3x3 = x, False
        for i, (pad, st) in enumerate(convs, start=1):
            y = bn(y, p[f"bn{i}"], s[f"bn{i}"])
            if after_3x3:  # a 3x3 conv's output through the BN right after it
                keep(y)
            y = relu(y)
            if i == 1 and first:
                x = y  # the shared pre-activation
            y = conv(y, p[f"conv{i}"]["kernel"], st, pad)
            after_3x3 = pad == 1
        if after_3x3:  # a 3x3 conv feeding the addition: its raw output, the residual function's
            keep(y)
        return y + shortcut(x, p, s, **sc, with_bn=False)
    y = x
    for i, (pad, st) in enumerate(convs, start=1):
        y = bn(conv(y, p[f"conv{i}"]["kernel"], st, pad), p[f"bn{i}"], s[f"bn{i}"])
        if pad == 1:  # a 3x3 conv's BN output, before the ReLU or addition
            keep(y)
        if i < len(convs):
            y = relu(y)
    return relu(y + shortcut(x, p, s, **sc, with_bn=True))


def forward(variables: dict, images: np.ndarray, *, block: str, stage_sizes, option: str,
            zero_pad: str = "after", std=None, responses: list | None = None) -> np.ndarray:
    """Logits of a CIFAR net of `block` units for NHWC `images` (already minus the mean).
    `responses` receives each 3x3 conv's response in network order (Fig 7, Sec 4.2: after BN,
    before ReLU/addition; in pre-activation units, which have no BN after the conv that feeds the
    addition, that conv's raw output; the stem conv's response in a pre-activation net is the first
    unit's BN of it)."""
    keep = responses.append if responses is not None else (lambda v: None)
    p, s = variables["params"], variables["batch_stats"]
    x = np.asarray(images, np.float64)
    if std is not None:
        x = x / np.asarray(std, np.float64)
    x = conv(x, p["conv1"]["kernel"], 1, 1)
    preact = block.startswith("preact")
    if not preact:
        x = bn(x, p["bn1"], s["bn1"])
        keep(x)
        x = relu(x)
    else:
        keep(bn(x, p["stage1_block1"]["bn1"], s["stage1_block1"]["bn1"]))
    for stage, count in enumerate(stage_sizes):
        for b in range(count):
            name = f"stage{stage + 1}_block{b + 1}"
            x = unit(x, p[name], s[name], block=block, stride=2 if stage and not b else 1, first=not b,
                     option=option, zero_pad=zero_pad, keep=keep)
    if preact:
        x = relu(bn(x, p["final_bn"], s["final_bn"]))
    return x.mean(axis=(1, 2)) @ np.asarray(p["fc"]["kernel"], np.float64) + np.asarray(p["fc"]["bias"])
