"""`--config.FIELD=VALUE` for the commands that build configs themselves (`sweep`, `imagenet`):
split from their own flags, each checked against the config's fields and its value read as the
field's type reads it. `resnet-jax train` reads the same flags through ml_collections."""

from __future__ import annotations

PREFIX = "--config."


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv without the --config.FIELD=VALUE flags, those flags)."""
    ours = [a for a in argv if a.startswith(PREFIX)]
    return [a for a in argv if not a.startswith(PREFIX)], ours


def apply(config, flags: list[str], *, steps: int | None = None):
    """`config` with the flags' fields set (a field by its flat name or SECTION.FIELD, the value as
    the schema's type reads it: config_schema.parse_value), then shortened to `steps` if given with
    the intervals the flags set kept, as `resnet-jax train --steps` keeps those typed; ValueError in
    one line for an unknown field (with the closest) or a value the field cannot take."""
    from resnet_jax import configs  # noqa: PLC0415
    from resnet_jax.config_schema import lookup, parse_value, unknown_field  # noqa: PLC0415

    typed = []
    for flag in flags:
        name, sep, raw = flag.removeprefix(PREFIX).partition("=")
        if not sep:
            raise ValueError(f"{flag}: expected {PREFIX}FIELD=VALUE")
        if (field := lookup(name)) is None:
            raise unknown_field(name)
        try:
            config = configs.override(config, **{field: parse_value(field, raw)})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{flag}: {e}") from None
        typed.append(field)
    return configs.scaled_steps(config, steps, keep=tuple(typed)) if steps else config
