"""The suite's tiny runs: a CIFAR net trained 3 steps on digits (batch 32), logged, evaluated and
checkpointed once at the end, so a test has a whole run folder in seconds."""

from resnet_jax import configs


def tiny_config(model: str = "cifar_resnet8", **changes):
    """`model`'s CIFAR recipe shrunk to 3 steps on digits, with `changes` (flat field names)."""
    return configs.override(configs.cifar_config(model), dataset="digits", steps=3, batch_size=32,
                            bn_group_size=0, log_every=3, eval_every=3, checkpoint_every=3,
                            progress=False, **changes)


def train_tiny(tmp_path_factory, name: str, model: str = "cifar_resnet8", **changes) -> str:
    """The workdir (a new temporary folder `name`) of `tiny_config(model, **changes)` trained."""
    from resnet_jax.train.loop import train_and_evaluate

    workdir = str(tmp_path_factory.mktemp(name))
    train_and_evaluate(tiny_config(model, **changes), workdir)
    return workdir
