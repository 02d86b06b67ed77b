"""Table 5: error rates (%) of ensembles, and ours beside them.

The paper's ILSVRC'15 entry combines "six models of different depth ... (only with two 152-layer
ones at the time of submitting)" (Sec 4.1, Comparisons with State-of-the-art Methods); the table's
top-5 errors are on the ImageNet *test* set, "reported by the test server", which no longer takes
submissions. Ours are therefore on the validation split (or on whatever dataset the members ran),
comparable with the single-model validation numbers of Tables 3 and 4, not with this table's.

The members are Table 4's nets (`--experiment table5:resnet152` is `table4:resnet152`), trained,
or imported released models (`resnet-jax import`); the ensemble is tested by `resnet-jax eval
--workdir A --workdir B ... --mode multi_scale --table OUT.md` (the members' softmax averaged per
view; analysis/ensemble.py), which writes this table with the ensemble's and its members' rows.
"""

from resnet_jax.experiment import Column, Experiment, Table, reported
from resnet_jax.experiments import table4

SOURCE = "Table 5 (top-5 error, ImageNet test set, reported by the test server)"
# The rows of the paper's Table 5, as printed (VGG [41], GoogLeNet [44], PReLU-net [13],
# BN-inception [16] are the paper's references).
NUMBERS = {"VGG (ILSVRC'14)": 7.32, "GoogLeNet (ILSVRC'14)": 6.66, "VGG (v5)": 6.8, "PReLU-net": 4.94,
           "BN-inception": 4.82, "ResNet (ILSVRC'15)": 3.57}


def get_config(net: str = "resnet152"):
    return table4.get_config(net)  # one member: a net of Table 4 (the ensemble's kind of net)


EXPERIMENT = Experiment(
    "Table 5: error rates (%) of ensembles (paper: ImageNet test; ours: validation)", get_config,
    nets=(), arg="NET", paper={method: reported(SOURCE, top5=value) for method, value in NUMBERS.items()},
    tables=(Table(
        "table5", "Table 5: error rates (%) of ensembles", nets=(), columns=(
            Column("method", "label"), Column("top-5 err.", "test_top5_error", fmt="{:.2f}"),
            Column("top-1 err.", "test_error", fmt="{:.2f}"), Column("tested on", "data")),
        note="The paper's rows are top-5 errors on the ImageNet test set, reported by the test server "
             "(Table 5); that server no longer takes submissions, so ours are on the validation split "
             "(or the members' dataset): compare them with the single-model validation errors of "
             "Tables 3 and 4, not with these test-set numbers."),),
    setting="ImageNet, 60e4")
