"""The paper's experiments, one module per table or figure, each a `get_config(ARG)` that returns
the run's config (resnet_jax.configs). Shipped with the package, so an installed `resnet-jax`
names them without a checkout: `resnet-jax train --experiment table6:110` runs
`table6.get_config("110")`; `resnet-jax train --help` lists them. In a checkout, experiments/ is this
folder, and `--config=experiments/table6.py:110` is the same run.

Nothing here is imported by the rest of the package: the command line loads these files through
ml_collections' config_flags, which is also how a user's own experiment file is loaded
(`--config=my_experiment.py:ARG`).
"""
