"""The follow-up paper, "Identity Mappings in Deep Residual Networks" (He et al., ECCV 2016, arXiv
1603.05027): original vs pre-activation units at depth 110, 164 and 1001 on CIFAR-10 and CIFAR-100
(its Table 3), the ResNet-1001 training curves (its Fig 1 right, with ResNet-164 of its Fig 6
right), and Table 6's puzzle answered: ResNet-1202 (original units, 2015 recipe) against
pre-activation ResNet-1001, training and test error.

`--experiment followup:preact_bottleneck1001`; `resnet-jax sweep --experiment followup` trains the
nets on CIFAR-10, `--dataset cifar100` on CIFAR-100 (the table shows the paper's number for the
data each row ran on), `--dataset digits --steps N` offline.

The recipe (appendix): Sec 4.2 of the 2015 paper (batch 128 on 2 GPUs, SGD 0.9, wd 1e-4, lr 0.1
/10 at 32k and 48k, 64k iterations, translation and flipping), with "for all CIFAR experiments ...
a smaller learning rate of 0.01 at the beginning 400 iterations" (`warmup_steps`) instead of the
2015 rule of warming up until the training error is below 80 %; the bottleneck nets with projection
shortcuts where the size changes (their variant's default, option B), ResNet-110 with option A as
in 2015. ResNet-1202 keeps Table 6's recipe, warm-up rule included: it is the 2015 net.
"""

from resnet_jax.configs import cifar_config, override
from resnet_jax.experiment import TEST, TRAIN, Column, Experiment, Figure, Panel, Table, nets, reported
from resnet_jax.experiments import table6

WARMUP_STEPS, WARMUP_LR = 400, 0.01  # appendix: "0.01 at the beginning 400 iterations"
ORIGINAL = ("resnet110", "bottleneck164", "bottleneck1001")
PREACT = ("preact110", "preact_bottleneck164", "preact_bottleneck1001")
# The puzzle's two nets first, then the shallower ones of their units (ResNet-110, -164; any depth).
PUZZLE = ("resnet1202", "preact_bottleneck1001", "resnet*", "preact_bottleneck*")
NETS = (*(net for pair in zip(ORIGINAL, PREACT) for net in pair), "resnet1202")  # the table's order

# Table 3 ("Classification error (%) on the CIFAR-10/100 test set using the original Residual Units
# and our pre-activation Residual Units"): the median of 5 runs (Sec 3.1). It has no CIFAR-100
# ResNet-110; its "ResNet-110 (1layer skip)" row is a net this package does not build.
_T3 = "Table 3 (median of 5 runs, Sec 3.1)"
_CIFAR10 = dict(zip(ORIGINAL + PREACT, (6.61, 5.93, 7.61, 6.37, 5.46, 4.92)))
_CIFAR100 = {"bottleneck164": 25.16, "bottleneck1001": 27.82, "preact_bottleneck164": 24.33,
             "preact_bottleneck1001": 22.71}
# Table 4 prints the parameter counts rounded, for the 2015 nets (as cited: with BN's scale and
# shift, 19.4M) and its own (conv and fc weights only: ResNet-1001 10.18M, 10.33M with BN's).
_PARAMS = {"resnet110": "1.7M", "resnet1202": "19.4M", "bottleneck164": "1.7M", "bottleneck1001": "10.2M",
           "preact_bottleneck164": "1.7M", "preact_bottleneck1001": "10.2M"}


def _paper(net: str) -> dict:
    numbers = {**reported(_T3, error_cifar10=_CIFAR10.get(net), error_cifar100=_CIFAR100.get(net)),
               **reported("Table 4 (parameters, rounded)", params_rounded=_PARAMS.get(net))}
    if net == "preact_bottleneck1001":
        numbers |= reported("Table 4 (median of 5 runs; mean ± std)", error_mean_cifar10=4.89,
                            error_std_cifar10=0.14, error_mean_cifar100=22.68, error_std_cifar100=0.22)
        numbers |= reported("Table 4 † and the authors' README (batch 64; mean ± std 4.69 ± 0.20)",
                            error_batch64_cifar10=4.62)
    if net == "resnet1202":  # the 2015 net, as Table 6 reports it (and Table 4 cites it)
        numbers |= reported("2015 paper, Table 6 (cited in Table 4)", error_cifar10=7.93)
    return {key: r for key, r in numbers.items() if r.value is not None}


def get_config(net: str = "preact_bottleneck164"):
    """The follow-up's recipe for `net` (any CIFAR net; resnet1202: Table 6's)."""
    if net == "resnet1202":
        return table6.get_config("1202")
    from resnet_jax.models import parse_model_name  # noqa: PLC0415 (flax only when a run is set up, not for --help)

    config = cifar_config(f"cifar_{net}")
    try:
        shortcut = parse_model_name(f"cifar_{net}").shortcut
    except ValueError:
        return config  # an unknown net fails validation in one line
    return override(config, shortcut=shortcut, warmup=False, warmup_steps=WARMUP_STEPS, warmup_lr=WARMUP_LR)


_COLUMNS = (
    Column("net", "label"), Column("params (ours)", "params", fmt="{:,}"),
    Column("params (paper)", "params_rounded", paper=True),
    Column("error % (ours)", "test_error", fmt="{:.2f}±"),
    Column("error % (paper, same data)", "error_{dataset}", paper=True, fmt="{:.2f}"),
    Column("dataset", "data"), Column("steps", "steps", fmt="{:,}"), Column("runs", "runs"),
    Column("wall time", "wall_time", fmt="{:.0f} s"))

EXPERIMENT = Experiment(
    "Identity Mappings (1603.05027): original vs pre-activation ResNets on CIFAR-10/100", get_config,
    nets=nets(*NETS), paper={net: _paper(net) for net in NETS},
    tables=(Table(
        "followup", "Table 3 of 1603.05027: test error (%), original vs pre-activation units",
        nets=(*NETS, "resnet*", "preact*", "bottleneck*"), columns=_COLUMNS,  # other depths after
        note="Paper: median of 5 runs, 64k iterations, batch 128; the paper's column is its number "
             "for the data the row ran on (CIFAR-100: ResNet-164/1001 only). Pre-activation "
             "ResNet-1001 reached 4.62 % on CIFAR-10 with batch 64 (Table 4 †). ResNet-1202 is "
             "the 2015 paper's (Table 6), trained with its recipe. The paper's counts of its own nets "
             "leave out BN's scale and shift (ResNet-1001: 10.18M weights, 10.33M with them)."),),
    figures=(
        # One panel per unit, any depth (the paper's are 164 and 1001), so that a sweep of other
        # depths (digits) draws too.
        Figure("curves", "Fig 1 (right) and Fig 6 (right) of 1603.05027: bottleneck ResNets by unit",
               (Panel("original units", ("bottleneck1001", "bottleneck*")),
                Panel("pre-activation units", ("preact_bottleneck1001", "preact_bottleneck*")))),
        Figure("puzzle", "Table 6's puzzle: ResNet-1202 (original) vs ResNet-1001 (pre-activation)",
               (Panel("training error", PUZZLE, curves=(TRAIN,)),
                Panel("test error", PUZZLE, curves=(TEST,))))),
    setting="CIFAR-10/CIFAR-100, 64k")
