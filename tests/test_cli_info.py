"""The informational commands: `resnet-jax --version` and `resnet-jax summary`'s table."""

from __future__ import annotations

import collections
import subprocess
import sys
from importlib import metadata

import pytest

from resnet_jax import cli
from resnet_jax.cli import summary

Row = collections.namedtuple("Row", "name input_shape params mult_adds")


@pytest.mark.parametrize("argv", [["--version"], ["train", "--version"], ["summary", "--version"]])
def test_version_names_the_package_and_the_libraries_that_decide_the_digits(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["resnet-jax", *argv])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"resnet-jax {metadata.version('resnet-jax')} (jax {metadata.version('jax')}, "
                          f"jaxlib {metadata.version('jaxlib')}, ")
    assert f"numpy {metadata.version('numpy')}" in out and out.count("\n") == 1


def test_version_answers_without_importing_jax():
    code = ("import sys\nfrom resnet_jax import cli\ntry:\n    cli.main(['resnet-jax', '--version'])\n"
            "except SystemExit:\n    pass\nprint('jax' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[-1] == "False", result.stderr[-2000:]


def _column_ends(header: str) -> list[int]:
    return [header.index(label) + len(label) for label in ("input", "params", "mult-adds")]


def test_summary_columns_line_up_under_their_headings():
    rows = [Row("cifar_resnet20", (32, 32, 3), 269_722, 40.6e6),
            Row("imagenet_resnet152", (224, 224, 3), 60_192_808, 11_282.4e6),
            Row("cifar_preact_bottleneck_resnet1001", (32, 32, 3), 10_328_602, 2_380.5e6)]  # a long name
    header, rule, *lines = summary.format_table(rows).splitlines()
    assert header.startswith("model ") and set(rule) == {"-"} and len(rule) == len(header)
    assert len(lines) == 3 and {len(line) for line in lines} == {len(header)}
    for line, row in zip(lines, rows):
        assert line.startswith(row.name + " ")
        for end, cell in zip(_column_ends(header), line[len(row.name):].split()):
            assert line[end - len(cell):end] == cell  # right-aligned under its heading
    assert lines[1].split()[2:] == ["60,192,808", "11,282.4M"]


def test_summary_command_prints_the_aligned_table(capsys):
    cli.main(["resnet-jax", "summary", "cifar_resnet20"])
    header, _, line = capsys.readouterr().out.splitlines()
    assert len(line) == len(header)
    params = _column_ends(header)[1]
    assert line[params - len("269,722"):params] == "269,722"  # ResNet-20's count (Table 6: 0.27M)
