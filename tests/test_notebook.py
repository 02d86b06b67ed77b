"""notebooks/inspect_params.ipynb runs headlessly, every cell, on a tiny digits checkpoint found
where `scripts/fig7_responses.sh --dataset digits` writes ResNet-20, from the folder jupyter runs
it in; `RESNET_JAX_WORKDIR` names another run."""

import json
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).parents[1] / "notebooks" / "inspect_params.ipynb"
DEFAULT_RUN = pathlib.Path("out", "fig7_digits", "runs", "resnet20")  # the fig7 script's, on digits


def _where_cell() -> str:
    """The source of the cell that picks the run folder (it sets WORKDIR)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    [cell] = [c for c in nb.cells if c.cell_type == "code" and "WORKDIR =" in c.source]
    return cell.source


def _where(cwd: pathlib.Path, monkeypatch) -> dict:
    monkeypatch.chdir(cwd)
    scope: dict = {}
    exec(_where_cell(), scope)  # noqa: S102 (this repository's notebook cell)
    return scope


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes_every_cell(tiny_digits_run, tmp_path, monkeypatch):
    # A checkout's layout: the run where the fig7 script writes it, the kernel in notebooks/ (where
    # jupyter and `jupyter execute` start it). The kernel inherits this process's environment;
    # jupyter_client runs the "python3" kernel spec (ipykernel's, installed in the venv) with this
    # interpreter, so no registration needed.
    monkeypatch.delenv("RESNET_JAX_WORKDIR", raising=False)
    (tmp_path / DEFAULT_RUN).parent.mkdir(parents=True)
    (tmp_path / DEFAULT_RUN).symlink_to(tiny_digits_run)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    results = json.loads((pathlib.Path(tiny_digits_run) / "results.json").read_text())
    assert f"cifar_resnet8 on digits, step {results['steps']}" in text
    total = [line for line in text.splitlines() if line.startswith("total")]
    assert total and total[0].split()[-1] == f"{results['params']:,}"
    assert "stage3_block1/bn2" in text  # the last of the 7 Fig 7 layers
    images = [o for c in code for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # filter norms and Fig 7


def test_the_run_is_the_environments_else_the_fig7_scripts_found_upwards(tmp_path, monkeypatch):
    (tmp_path / DEFAULT_RUN).mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.delenv("RESNET_JAX_WORKDIR", raising=False)
    for cwd in (tmp_path, tmp_path / "notebooks"):  # the checkout, or jupyter's notebooks/
        assert _where(cwd, monkeypatch)["WORKDIR"] == str(tmp_path / DEFAULT_RUN)
    monkeypatch.setenv("RESNET_JAX_WORKDIR", "elsewhere/run")
    assert _where(tmp_path / "notebooks", monkeypatch)["WORKDIR"] == "elsewhere/run"


def test_without_the_run_the_notebook_says_how_to_make_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RESNET_JAX_WORKDIR", raising=False)
    how = "scripts/fig7_responses.sh --dataset digits.*RESNET_JAX_WORKDIR"
    with pytest.raises(FileNotFoundError, match=how):
        _where(tmp_path, monkeypatch)


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
