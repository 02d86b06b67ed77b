"""The docs' commands run as typed: one form for a checkout (`python3 -m uv run resnet-jax ...`,
`scripts/*.sh`), one for the installed tool (`resnet-jax ...`, prose only), and docs/data.md's digits
command trains on digits without a word about tensorflow-datasets."""

from __future__ import annotations

import pathlib
import re
import shlex
import subprocess
import sys

import pytest

DOCS = pathlib.Path(__file__).parents[1] / "docs"
CHECKOUT_FORM = "python3 -m uv run "


def _code_lines(doc: pathlib.Path) -> list[str]:
    """The lines of a doc's ```bash blocks (commands; other blocks show output or files),
    continuation lines joined."""
    lines, inside, bash = [], False, False
    for line in doc.read_text().splitlines():
        if line.lstrip().startswith("```"):
            inside, bash = not inside, line.strip() == "```bash"
        elif inside and bash:
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + line.strip()
            else:
                lines.append(line.strip())
    return lines


@pytest.mark.parametrize("doc", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_doc_says_which_form_its_commands_take_and_keeps_to_it(doc):
    text = doc.read_text()
    assert "python3 -m uv run resnet-jax" in text[:1500] and "install" in text[:1500]  # said at the top
    for line in _code_lines(doc):
        command = re.sub(r"^(\w+=\S+\s+)+", "", line)  # after VAR=value prefixes
        if doc.name != "install.md":  # the one doc that installs the tool and then calls it
            assert not command.startswith("resnet-jax "), line  # the tool's form: not in a checkout
        assert not re.search(r"(?<![\w-])uv (run|sync)", command.replace("python3 -m uv", "")), line


def test_the_digits_command_of_the_data_doc_trains_on_digits_quietly(tmp_path):
    [line] = [c for c in _code_lines(DOCS / "data.md") if "digits" in c and " train " in c]
    assert line.startswith(CHECKOUT_FORM + "resnet-jax train ")
    argv, typed = [], iter(shlex.split(line[len(CHECKOUT_FORM + "resnet-jax "):]))
    for arg in typed:  # the same command, shortened: 2 steps into a folder of this test's
        if arg in ("--steps", "--workdir"):
            next(typed)
        elif not arg.startswith(("--steps=", "--workdir=")):
            argv.append(arg)
    argv += ["--steps=2", f"--workdir={tmp_path / 'run'}", "--config.batch_size=32",
             "--config.bn_group_size=0"]
    result = subprocess.run([sys.executable, "-m", "resnet_jax.cli", *argv], cwd=tmp_path,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cifar_resnet20 on digits" in result.stderr
    warnings = [w for w in result.stderr.splitlines() if w.startswith(("W", "E")) or "Warning" in w]
    assert not warnings, warnings  # e.g. tfds' "Variant folder ... has no dataset_info.json"
