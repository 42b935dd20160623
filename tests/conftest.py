import os
from pathlib import Path

import pytest

# CPU runs keep NCHW without timing the layouts (refinenet/cpu_layout.py): the tests' numbers do not
# depend on the machine, and no test writes the user's cache. tests/test_fastpath.py unsets it.
os.environ["REFINENET_CPU_LAYOUT"] = "nchw"

# `../shared` beside the repository (the developers' machines and CI have it).
SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} (the project's shared reference folder) is not present")
    return SHARED


# --- data tests: a module that sets CONVERTED = (dataset, converter, seed) gets these fixtures.


@pytest.fixture(scope="module")
def converted(request, tmp_path_factory) -> tuple[Path, Path]:
    """(raw, out): a stand-in of the module's dataset (4 train, 3 val images, 48x64) in its raw
    layout, and what the module's converter makes of it."""
    from refinenet import data

    name, converter, seed = request.module.CONVERTED
    base = tmp_path_factory.mktemp(name)
    data.write_standin(name, base / "raw", train=4, val=3, size=(48, 64), seed=seed)
    data.prepare(converter, base / "raw", base / "out")
    return base / "raw", base / "out"


@pytest.fixture(scope="module")
def standin(converted) -> Path:
    return converted[0]


@pytest.fixture(scope="module")
def prepared(converted) -> Path:
    return converted[1]


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Pre-flight stamps and other caches of the library go to a temporary folder, not ~/.cache."""
    import os

    old = os.environ.get("REFINENET_CACHE")
    os.environ["REFINENET_CACHE"] = str(tmp_path_factory.mktemp("refinenet-cache"))
    yield
    if old is None:
        os.environ.pop("REFINENET_CACHE", None)
    else:
        os.environ["REFINENET_CACHE"] = old


@pytest.fixture
def calls(monkeypatch):
    """Record every training and evaluation the table runner starts (benchmarks/tables/store.py); they write what the
    real ones would, in no time."""
    import json

    from benchmarks.tables import store
    from refinenet import data
    from refinenet.config import resolve

    log = {"train": [], "evaluate": []}

    def fake_train(cfg, **_):
        log["train"].append(cfg)
        cfg.out.mkdir(parents=True, exist_ok=True)
        (cfg.out / "checkpoint.pt").write_bytes(b"weights")
        (cfg.out / "config.json").write_text(json.dumps({"iterations": resolve(cfg).iterations, "amp": "none",
                                                          "precision": "fp32", "channels_last": False}))
        return cfg.out / "checkpoint.pt"

    def fake_evaluate(cfg):
        log["evaluate"].append(cfg)
        names = data.dataset_info(cfg.dataset).class_names
        return {"miou": 0.25, "pixel_acc": 0.5, "mean_acc": 0.4, "per_class_iou": {n: 0.25 for n in names},
                "class_pixels": [30, 10] + [0] * (len(names) - 2), "fast_path": "nchw+fp32", "precision": "fp32"}

    monkeypatch.setattr(store, "train", fake_train)
    monkeypatch.setattr(store, "evaluate", fake_evaluate)
    return log


@pytest.fixture
def table9_single(tmp_path):
    """(work, session): Table 9's 'single' model under the smoke profile, as the launcher sees it (data generated)."""
    from benchmarks.tables import launch
    from benchmarks.tables.run_options import RunOptions, Session

    opts = RunOptions(profile="smoke", results=tmp_path / "results", cache=tmp_path / "cache", progress=False,
                      rows=("single",))
    session = Session.start(opts)
    [work] = launch.distinct_models([9], session)
    return work, session
