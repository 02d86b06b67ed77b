"""Table 6: ResNet-20/32/44/56/110/1202 on CIFAR-10, option A, 64k steps (110/1202 with warm-up).

`--experiment table6:110`; `resnet-jax sweep --experiment table6` trains the six nets and writes the
table (ours beside the paper's) and the runs' curves.
"""

from resnet_jax.configs import cifar_config
from resnet_jax.experiment import Column, Experiment, Figure, Net, Panel, Table, reported

DEPTHS = (20, 32, 44, 56, 110, 1202)
# The paper prints the parameter counts rounded (0.27M ...); these are the exact counts of option A
# they stand for, which the models must reproduce. Multiply-adds per 32x32 image, in millions.
_PARAMS = dict(zip(DEPTHS, (269_722, 464_154, 658_586, 853_018, 1_727_962, 19_421_274)))
_PARAMS_ROUNDED = dict(zip(DEPTHS, ("0.27M", "0.46M", "0.66M", "0.85M", "1.7M", "19.4M")))
_ERROR = dict(zip(DEPTHS, (8.75, 7.51, 7.17, 6.97, 6.43, 7.93)))
_MULT_ADDS_M = dict(zip(DEPTHS, (40.6, 68.9, 97.2, 125.5, 252.9, 2830.0)))


def get_config(depth: str = "20"):
    # "20" or "resnet20" (a sweep's net name); a bad depth fails validation with one line
    return cifar_config(f"cifar_resnet{depth.removeprefix('resnet')}")


EXPERIMENT = Experiment(
    "Table 6: CIFAR-10 test error of ResNet-20..1202", get_config,
    nets=tuple(Net(f"resnet{d}", arg=str(d)) for d in DEPTHS), arg="DEPTH",
    paper={f"resnet{d}": {
        **reported("Table 6", error=_ERROR[d], params_rounded=_PARAMS_ROUNDED[d]),
        **reported(f"Table 6 ({_PARAMS_ROUNDED[d]}), exact count of option A", params=_PARAMS[d]),
        **reported("Sec 4.2 text", mult_adds_m=_MULT_ADDS_M[d]),
        **(reported("Table 6 (best of 5 runs; mean ± std)", error_mean=6.61, error_std=0.16)
           if d == 110 else {})} for d in DEPTHS},
    tables=(Table(
        "table6", "Table 6: CIFAR-10 test error (%)", nets=("resnet*",), columns=(
            Column("net", "label"), Column("params (ours)", "params", fmt="{:,}"),
            Column("params (paper)", "params", paper=True, fmt="{:,}"),
            Column("error % (ours)", "test_error", fmt="{:.2f}±"),
            Column("error % (paper)", "error", paper=True, fmt="{:.2f}"),
            Column("dataset", "data"), Column("steps", "steps", fmt="{:,}"), Column("runs", "runs"),
            Column("wall time", "wall_time", fmt="{:.0f} s")),
        note="Paper: CIFAR-10 test error, 64k iterations; ResNet-110 is the best of 5 runs "
             "(6.61 ± 0.16 mean ± std)."),),
    figures=(Figure("curves", "Table 6's ResNets", (Panel("ResNet", ("resnet*",)),)),),
    setting="CIFAR-10, 64k")
