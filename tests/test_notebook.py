"""Executes examples/quickstart.ipynb with nbclient and checks what its cells printed and drew.

The kernel is this interpreter (a temporary kernelspec found first through JUPYTER_PATH), so the
test needs no registered kernel and runs the same from a fresh `make test` virtualenv.
"""

import json
import math
import pathlib
import re
import sys

import nbclient
import nbformat
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO_ROOT / "examples" / "quickstart.ipynb"


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def executed(notebook, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebook")
    spec = tmp / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "Python 3 (tests)", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(tmp / "jupyter"))
        patch.setenv("PYTHONPATH", str(REPO_ROOT))
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
        nb = nbformat.from_dict(json.loads(json.dumps(notebook)))  # a copy: the file stays clean
        client = nbclient.NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp)}}
        )
        client.execute()
    return nb


def _text(cell) -> str:
    return "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for output in cell.get("outputs", [])
    )


def test_committed_notebook_is_small_and_has_no_outputs(notebook):
    assert notebook.nbformat == 4
    nbformat.validate(notebook)
    assert NOTEBOOK.stat().st_size < 30_000
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    sources = "\n".join(cell.source for cell in notebook.cells)
    for name in ("RDCTrainer", "freeze_encoder=True", "evaluation.evaluate", ".fit("):
        assert name in sources, name


def test_notebook_runs_without_errors(executed):
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", output


def test_a_cell_prints_the_evaluated_metrics(executed):
    texts = [_text(cell) for cell in executed.cells if cell.cell_type == "code"]
    table = next(text for text in texts if re.search(r"^model +mse +psnr +ce_nats", text, re.M))
    rows = [line.split() for line in table.splitlines() if line.startswith(("E2E", "head"))]
    assert len(rows) == 3, table  # the E2E model and two universal heads
    for row in rows:
        mse, psnr, ce, accuracy, rate = map(float, row[-5:])
        assert 0 < mse < 0.2 and ce > 0 and 0 <= accuracy <= 1, table
        assert psnr == pytest.approx(10 * math.log10(1 / mse), abs=3.0), table  # mean of per-image
        assert rate == pytest.approx(4.75, abs=0.01)
    assert any(re.search(r"encoder unchanged by the heads: True", text) for text in texts)


def test_the_tradeoff_and_reconstructions_are_drawn(executed):
    images = [
        output
        for cell in executed.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(images) == 2
