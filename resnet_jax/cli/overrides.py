"""`--config.FIELD=VALUE` for the commands that build configs themselves (`sweep`, `imagenet`):
split from their own flags, the value read as a Python literal (else a string), checked against the
config's fields. `resnet-jax train` reads the same flags through ml_collections."""

from __future__ import annotations

import ast
import difflib

from resnet_jax.experiment import flat

PREFIX = "--config."


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(argv without the --config.FIELD=VALUE flags, those flags)."""
    ours = [a for a in argv if a.startswith(PREFIX)]
    return [a for a in argv if not a.startswith(PREFIX)], ours


def parse(flag: str) -> tuple[str, object]:
    """("lr", 0.05) of "--config.lr=0.05"; true/false are booleans, a non-literal is a string."""
    field, sep, raw = flag.removeprefix(PREFIX).partition("=")
    if not sep:
        raise ValueError(f"{flag}: expected {PREFIX}FIELD=VALUE")
    if raw.lower() in ("true", "false"):
        return field, raw.lower() == "true"
    try:
        return field, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return field, raw


def apply(config, flags: list[str]):
    """`config` with the flags' fields set (configs.override, by flat names); ValueError in one line
    for an unknown field (with the closest) or a value of the wrong type."""
    from resnet_jax import configs  # noqa: PLC0415 (flax: only once flags are checked)

    fields = flat(config.to_dict())
    for flag in flags:
        field, value = parse(flag)
        if field not in fields:
            close = difflib.get_close_matches(field, list(fields), n=1)
            raise ValueError(f"unknown config field {field!r}"
                             + (f"; did you mean {close[0]!r}?" if close else ""))
        if isinstance(fields[field], float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        try:
            config = configs.override(config, **{field: value})
        except (TypeError, ValueError) as e:
            raise ValueError(f"{flag}: not a valid {type(fields[field]).__name__} "
                             f"(default {fields[field]!r}): {e}") from None
    return config
