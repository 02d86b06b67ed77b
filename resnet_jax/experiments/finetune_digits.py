"""Fine-tuning an ImageNet net on scikit-learn's digits resized to 64x64 (offline), a new 10-class fc:
`--experiment finetune_digits:resnet18,torchvision --config.init_from=resnet18.safetensors`.

The argument names the net and the input convention of the weights it starts from (`torchvision`,
`caffe` for the authors' ResNet-50/101/152, `paper` for a run trained here); `--config.init_from` is
the file or run folder. Small-dataset settings (Sec 4.2's recipe, shorter): batch 32, lr 0.01,
constant, 300 steps.
"""

from resnet_jax import configs
from resnet_jax.configs import cifar_config
from resnet_jax.experiment import Column, Experiment, Table


def get_config(arg: str = "resnet18,torchvision"):
    net, _, convention = arg.partition(",")
    convention = convention or "torchvision"
    config = cifar_config("cifar_resnet20")  # the device-resident recipe, then the ImageNet net
    depth = int(net.removeprefix("resnet"))
    configs.override(config, model=f"imagenet_{net}", shortcut="B", dataset="digits64",
                             input_convention=convention, conv1_bias=convention == "caffe",
                             pool_ceil_mode=convention == "caffe",
                             stride_on_3x3=convention == "torchvision" and depth >= 50,
                             batch_size=32, bn_group_size=0, lr=0.01, lr_boundaries=(), warmup=False,
                             steps=300, log_every=10, eval_every=50, eval_batch_size=360,
                             checkpoint_every=100)
    return config


EXPERIMENT = Experiment(
    "Fine-tuning an ImageNet net on digits64", get_config, nets=(), arg="NET,CONVENTION",
    tables=(Table("finetune_digits", "digits64 test error (%) after fine-tuning", columns=(
        Column("net", "label"), Column("error % (ours)", "test_error", fmt="{:.2f}±"),
        Column("dataset", "data"), Column("steps", "steps", fmt="{:,}"), Column("runs", "runs"))),),
    setting="no paper counterpart")
