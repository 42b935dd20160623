"""The result notebooks: in sync with their generator, they open, and they run against the committed
results (and against results in the agreed schema, several seeds and a dirty tree)."""

import shutil

import nbformat
import pytest
from results_fixtures import synthetic, write

from benchmarks.report.notebooks import NOTEBOOKS, REPO, execute, notebook_paths


def test_committed_notebooks_match_their_generator():
    for path, generated in notebook_paths().items():
        assert path.is_file(), f"{path} missing: run python -m benchmarks.report.notebooks --write"
        committed = nbformat.read(path, as_version=4)
        nbformat.validate(committed)
        assert [c.source for c in committed.cells] == [c.source for c in generated.cells], path.name


def test_regenerating_a_notebook_gives_the_same_file():
    first, second = notebook_paths(), notebook_paths()
    for path in first:
        assert nbformat.writes(first[path]) == nbformat.writes(second[path]), path.name
        nbformat.validate(first[path])


def test_every_notebook_links_the_protocol_differences():
    for path, book in notebook_paths().items():
        assert "(../docs/protocol.md)" in book.cells[0].source, path.name


def _run(name: str, base, results) -> nbformat.NotebookNode:
    """Run a copy of notebooks/`name` inside base/notebooks, beside links to results/ and the code,
    as if opened in the repository; return it executed."""
    pytest.importorskip("nbclient")
    work = base / "notebooks"
    work.mkdir(parents=True)
    (base / "results").symlink_to(results)
    for folder in ("benchmarks", "refinenet"):
        (base / folder).symlink_to(REPO / folder)
    copy = work / name
    shutil.copy(NOTEBOOKS / name, copy)
    execute(copy, timeout=120)
    return nbformat.read(copy, as_version=4)


def _errors(book) -> list:
    return [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def _text(book) -> str:
    parts = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            parts += [out.get("text", ""), data.get("text/markdown", ""), data.get("text/plain", "")]
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(p.name for p in notebook_paths()))
def test_notebook_executes_against_the_committed_results(name, tmp_path):
    stem = name.removesuffix(".ipynb")
    if stem != "overview" and not (REPO / "results" / f"{stem}.csv").is_file():
        pytest.skip(f"results/{stem}.csv not produced yet (nox -s reproduce-{stem})")
    book = _run(name, tmp_path, REPO / "results")
    assert not _errors(book)
    text = _text(book)
    assert "profile=" in text or stem == "overview"
    if stem == "overview":
        assert "What the paper claims, and what was measured" in text


def test_table_notebook_derives_its_text_from_new_schema_results(tmp_path):
    results = tmp_path / "data"
    frame = synthetic(2, lambda row, metric, seed: 40.0 + seed, seeds=(0, 1, 2), chance=2.5, dirty=True)
    write(frame, results, 2)
    shutil.copy(REPO / "results" / "table2.png", results / "table2.png")
    text = _text(_run("table2.ipynb", tmp_path / "run", results))
    assert "learned: mean IoU 41.0 vs chance 2.5" in text
    assert "41.0 ± 1.0 (3 seeds)" in text
    assert "FROM A DIRTY TREE" in text
