"""Sessions: `nox -s tests`, `nox -s lint`, `nox -s dev` (see README.md).

pip (not uv) installs everything, so the locally served torch / torchvision wheels are used.
Virtualenvs are reused between runs; `nox -s tests -- -k metrics` passes arguments to pytest.
"""

import nox

nox.options.reuse_venv = "yes"
nox.options.sessions = ["tests", "lint"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (CPU, a few minutes)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "refinenet", "tests", "benchmarks", "noxfile.py")


@nox.session(venv_backend="none")
def dev(session: nox.Session) -> None:
    """Create `.venv` with refinenet (editable) and the dev tools, for using the library directly."""
    session.run("python3", "-m", "venv", ".venv")
    session.run(".venv/bin/python", "-m", "pip", "install", "-e", ".[dev]")
    session.log("Activate with: source .venv/bin/activate   (then: refinenet info)")
