"""The result notebooks: in sync with their generator, and they run against the committed results."""

import shutil

import nbformat
import pytest

from benchmarks.notebooks import NOTEBOOKS, REPO, execute, notebook_paths


def test_committed_notebooks_match_their_generator():
    for path, generated in notebook_paths().items():
        assert path.is_file(), f"{path} missing: run python -m benchmarks.notebooks --write"
        committed = nbformat.read(path, as_version=4)
        assert [c.source for c in committed.cells] == [c.source for c in generated.cells], path.name


@pytest.mark.parametrize("name", sorted(p.name for p in notebook_paths()))
def test_notebook_executes_against_the_committed_results(name, tmp_path):
    pytest.importorskip("nbclient")
    stem = name.removesuffix(".ipynb")
    if stem != "overview" and not (REPO / "results" / f"{stem}.csv").is_file():
        pytest.skip(f"results/{stem}.csv not produced yet (nox -s reproduce-{stem})")
    # run a copy inside a notebooks/ folder beside a link to results/, as if opened in the repository
    work = tmp_path / "notebooks"
    work.mkdir()
    (tmp_path / "results").symlink_to(REPO / "results")
    copy = work / name
    shutil.copy(NOTEBOOKS / name, copy)
    execute(copy, timeout=120)
    book = nbformat.read(copy, as_version=4)
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
