"""The explainer article's small ResNet and its recipe on CIFAR-10: not the paper's experiment.

One of the three documents this project was specified from is an explainer article on ResNets. Its
net and recipe are built from the paper's parts and run with `--experiment explainer` (`resnet-jax
sweep --experiment explainer`); its numbers are the article's claims, never the paper's, and its
table says so.

What the article states, kept as stated: a stem conv -> BN -> ReLU -> max pool; a two-layer residual
unit of 64 channels (conv 3x3 -> BN -> ReLU -> conv 3x3 -> BN -> add -> ReLU); a bottleneck-style
unit whose outer 1x1 convs have 256 channels and inner 3x3 conv 64; global average pooling, fc,
softmax; He initialisation, BN epsilon 1e-5; SGD with momentum 0.9, lr 0.1 dropped to 0.01, weight
decay 5e-4, batch 128, 150 epochs of CIFAR-10; random crop, scaling, rotation and horizontal flip.

Where it is open, the reading closest to the paper (each a named choice, the model's in
models/explainer.py):
- Stem: 3x3 conv, stride 1, 64 filters (the paper's CIFAR first layer, Sec 4.2, at the article's
  width), then the paper's ImageNet max pool, 3x3 stride 2 (Table 1): both units run at 16x16.
- Units: neither downsamples. The bottleneck is ResNet-50's conv2_1 (Table 1, Fig 5): 1x1 64 ->
  3x3 64 -> 1x1 256, BN after each conv, one addition after the last BN and before the final ReLU
  (as in the basic unit); its 64 -> 256 shortcut is a projection, 1x1 conv + BN (option B, Sec 3.3,
  the paper's choice for increasing dimensions). 153,418 parameters with a 10-way fc.
- The lr drop: once, /10 at half of training (lr_boundaries (0.5,)), where the paper's CIFAR recipe
  drops first (32k of 64k iterations); the article has no second drop.
- 150 epochs as steps: round(150 * 50,000 / 128) = 58,594 iterations.
- Scaling and rotation (data/augment.py, on the device before the crop): zoom factor uniform in
  [0.9, 1.1), angle uniform in [-15, 15) degrees, bilinear about the image centre, zeros (the mean
  pixel) outside. The paper has no rotation and scales only ImageNet images (shorter side uniform in
  [256, 480], Sec 3.4); a uniform factor is its form, the ranges are the common CIFAR ones. Config
  fields `zoom_range` and `rotation_degrees` change them.
- The crop and flip are the paper's (pad 4, random 32x32 crop, flip with probability 1/2, Sec 4.2),
  BN statistics over 64 images of the 128 (the paper's two GPUs), the paper's Caffe momentum form.
"""

from resnet_jax.configs import cifar_config, override
from resnet_jax.experiment import Column, Experiment, Figure, Net, Panel, Table, reported

NET = "resnet7"
MODEL = "explainer_resnet7"
EPOCHS, CIFAR_TRAIN_IMAGES, BATCH = 150, 50_000, 128
STEPS = round(EPOCHS * CIFAR_TRAIN_IMAGES / BATCH)
ZOOM_RANGE, ROTATION_DEGREES = (0.9, 1.1), 15.0


def get_config(net: str = NET):
    if net not in (NET, MODEL):
        raise ValueError(f"the explainer experiment trains one net, {NET}; got {net!r}")
    return override(cifar_config(MODEL), shortcut="B", batch_size=BATCH, lr=0.1, lr_boundaries=(0.5,),
                    lr_decay=0.1, momentum=0.9, weight_decay=5e-4, steps=STEPS, zoom_range=ZOOM_RANGE,
                    rotation_degrees=ROTATION_DEGREES)


NOT_THE_PAPER = "the explainer article's, not the paper's"
EXPERIMENT = Experiment(
    "The explainer article's small ResNet and recipe on CIFAR-10 (not the paper's)", get_config,
    nets=(Net(NET),),
    paper={NET: reported("the explainer article (not He et al. 2016)", recipe=NOT_THE_PAPER)},
    tables=(Table("explainer", "The explainer article's net: CIFAR-10 test error (%)", columns=(
        Column("net", "label"), Column("params", "params", fmt="{:,}"),
        Column("error % (ours)", "test_error", fmt="{:.2f}±"), Column("recipe", "recipe", paper=True),
        Column("dataset", "data"), Column("steps", "steps", fmt="{:,}"), Column("runs", "runs"),
        Column("wall time", "wall_time", fmt="{:.0f} s")),
        note="Net and recipe are the explainer article's (experiments/explainer.py names each choice "
             "where it is open); the paper reports nothing for them, and the article's claims are "
             "not the paper's."),),
    figures=(Figure("curves", "The explainer's net", (Panel("explainer ResNet-7", (NET,)),)),),
    setting="CIFAR-10, 150 epochs (the article's)")
