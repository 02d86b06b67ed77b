"""notebooks/inspect_params.ipynb runs headlessly, every cell, on a tiny digits checkpoint."""

import json
import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).parents[1] / "notebooks" / "inspect_params.ipynb"


def test_committed_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_notebook_executes_every_cell(tiny_digits_run, tmp_path, monkeypatch):
    # The kernel inherits this process's environment; jupyter_client runs the "python3" kernel
    # spec (ipykernel's, installed in the venv) with this interpreter, so no registration needed.
    monkeypatch.setenv("RESNET_JAX_WORKDIR", tiny_digits_run)
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

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


if __name__ == "__main__":
    pytest.main([__file__, "-q"])
