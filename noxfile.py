"""Sessions (see README.md):

    nox -s tests                      the test suite (CPU, minutes)
    nox -s reproduce-table2           Table 2 on stand-in data; `-- --profile paper --data-root /data --device cuda`
    nox -s reproduce-all              every table
    nox -s reproduce-released         the released checkpoints' summary: `-- --weights DIR --data-root DIR`
    nox -s plots                      re-render results/table<N>.md / .png and claims.csv / .md from the CSVs
    nox -s notebooks                  execute every notebook in notebooks/ in place
    nox -s lab                        open the result notebooks in JupyterLab (`-- --port 8890` passes through)
    nox -s bench                      efficiency benchmark -> results/efficiency.*
    nox -s bench-convert              converting a full-size authors' model: time, peak memory -> results/conversion.*
    nox -s lint                       ruff
    nox -s cluster-tests              the SLURM launcher against a single-node SLURM it starts (root, Debian)
    nox -s dev                        .venv with refinenet and the dev tools

pip (not uv) installs everything, so the locally served torch / torchvision wheels are used. All
sessions but `lint` share one virtualenv, `.nox/suite`, installed once (again when pyproject.toml
changes): torch is large, and every session needs the same packages.
"""

import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_venv = "yes"

SUITE = Path(".nox/suite")
TABLES = range(1, 10)


def suite_python(session: nox.Session) -> str:
    """The shared virtualenv's python, created and (re)installed when needed."""
    python = SUITE / "bin" / "python"
    stamp = SUITE / ".installed"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(SUITE), external=True)
    if not stamp.exists() or stamp.stat().st_mtime < Path("pyproject.toml").stat().st_mtime:
        session.run(str(python), "-m", "pip", "install", "-e", ".[test]", external=True)
        stamp.touch()
    return str(python)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """The test suite (CPU). Arguments go to pytest: `nox -s tests -- -k metrics`."""
    session.run(suite_python(session), "-m", "pytest", *session.posargs, external=True)


for _n in TABLES:

    @nox.session(name=f"reproduce-table{_n}", venv_backend="none")
    def _reproduce(session: nox.Session, number: int = _n) -> None:
        """Reproduce one table of the paper (default: stand-in data); arguments pass through."""
        session.run(suite_python(session), "-m", "benchmarks.reproduce", str(number), *session.posargs,
                    external=True)


@nox.session(name="reproduce-all", venv_backend="none")
def reproduce_all(session: nox.Session) -> None:
    """Every table, one after the other; arguments pass through."""
    session.run(suite_python(session), "-m", "benchmarks.reproduce", "all", *session.posargs, external=True)


@nox.session(name="reproduce-released", venv_backend="none")
def reproduce_released(session: nox.Session) -> None:
    """The authors' released checkpoints on their datasets' splits beside the published figures
    (results/released.{csv,md}); give `-- --weights DIR --data-root DIR`."""
    session.run(suite_python(session), "-m", "benchmarks.reproduce", "released", "--profile", "released",
                *session.posargs, external=True)


@nox.session(venv_backend="none")
def plots(session: nox.Session) -> None:
    """Re-render every results/table<N>.md and .png, and results/claims.csv / .md, from the CSVs (no training)."""
    session.run(suite_python(session), "-m", "benchmarks.report", *session.posargs, external=True)


@nox.session(venv_backend="none")
def notebooks(session: nox.Session) -> None:
    """Execute every notebook in notebooks/ in place (they read results/)."""
    session.run(suite_python(session), "-m", "benchmarks.report.notebooks", "--execute", *session.posargs,
                external=True)


@nox.session(venv_backend="none")
def lab(session: nox.Session) -> None:
    """JupyterLab on notebooks/ from the shared virtualenv (adds the dev extra, which has jupyter, once).
    Arguments go to `jupyter lab`: `nox -s lab -- --port 8890 --no-browser`."""
    python = suite_python(session)
    jupyter = SUITE / "bin" / "jupyter"
    if not (SUITE / "bin" / "jupyter-lab").exists():
        session.run(python, "-m", "pip", "install", "-e", ".[dev]", external=True)
    session.run(str(jupyter), "lab", "notebooks/", *session.posargs, external=True)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Cost of RefineNet vs dilated ResNets, fast paths, memory-lean training (CPU about 20 min).
    Writes results/efficiency.{csv,png,md}; `nox -s bench -- --quick --out /tmp/bench` is a smoke test."""
    session.run(suite_python(session), "-m", "benchmarks.efficiency", *session.posargs, external=True)


@nox.session(name="bench-convert", venv_backend="none")
def bench_convert(session: nox.Session) -> None:
    """Convert a full-size RefineNet-152 file in the authors' format: seconds and peak memory against the targets
    (< 60 s, < 3x the file's size) -> results/conversion.{csv,md}; `-- --repeats 3 --out DIR` pass through."""
    session.run(suite_python(session), "-m", "benchmarks.efficiency.conversion", *session.posargs, external=True)


SLURM_PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")


@nox.session(name="cluster-tests", venv_backend="none")
def cluster_tests(session: nox.Session) -> None:
    """tests/test_cluster.py against a real SLURM: installs Debian's slurm-wlm, slurmdbd, munge and mariadb-server
    (apt, as root), starts a single-node cluster on 127.0.0.1 (tests/cluster/slurm_up.sh), runs the tests and
    stops every daemon it started. Where the packages cannot be installed or the cluster cannot start, the
    session is skipped saying why; a failing test fails it. Arguments go to pytest."""
    import os
    import shutil
    import subprocess
    import tempfile

    python = suite_python(session)
    missing = [tool for tool in ("slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd") if not shutil.which(tool)]
    if missing:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            session.skip(f"SLURM is not installed ({', '.join(missing)} missing) and apt-get as root is not available")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "update", "-qq"],
                     ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *SLURM_PACKAGES]):
            done = subprocess.run(step, env=env, capture_output=True, text=True)
            if done.returncode:
                session.skip(f"`{' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-500:]}")
    state = Path(tempfile.mkdtemp(prefix="refinenet-slurm-"))
    up = subprocess.run(["bash", "tests/cluster/slurm_up.sh", str(state)], capture_output=True, text=True)
    try:
        if up.returncode:
            session.skip(f"the test cluster did not start: {(up.stderr or up.stdout).strip()[-800:]}")
        session.log(up.stdout.strip())
        session.run(python, "-m", "pytest", "tests/test_cluster.py", "-v", "-rs", *session.posargs, external=True,
                    env={"SLURM_CONF": str(state / "slurm.conf"), "REFINENET_SLURM_TESTS": "1"})
    finally:
        subprocess.run(["bash", "tests/cluster/slurm_down.sh", str(state)], check=False)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "refinenet", "tests", "benchmarks", "noxfile.py")


@nox.session(venv_backend="none")
def dev(session: nox.Session) -> None:
    """Create `.venv` with refinenet (editable) and the dev tools, for using the library directly."""
    session.run(sys.executable, "-m", "venv", ".venv", external=True)
    session.run(".venv/bin/python", "-m", "pip", "install", "-e", ".[dev]", external=True)
    session.log("Activate with: source .venv/bin/activate   (then: refinenet info)")
