"""Where a number comes from: the code (version, clean or not), torch, the device and the precision.

`read_provenance` runs once when a command starts; every result row and every store entry carries what it
read. Committed results come from a clean commit only: `check_results_folder` refuses to write the
repository's own results/ from a tree with uncommitted changes unless --allow-dirty, and then every row
says dirty=true and its code version ends in `-dirty` (other folders, e.g. a test's, may be written
from a dirty tree; their rows say so too).
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from refinenet.utils import resolve_device

REPO = Path(__file__).resolve().parents[1]
# What the runs themselves write: changes there are outputs, not code, so they leave the tree clean (else
# writing results/table1.csv would make the next table's run dirty).
OWN_OUTPUTS = ("results/", ".cache/")


class DirtyTreeError(ValueError):
    """The repository's results/ would get numbers from uncommitted code."""


@dataclass(frozen=True)
class Provenance:
    code_version: str  # `git describe --always`, with `-dirty` appended when the tree has uncommitted changes
    dirty: bool
    diff_sha256: str | None  # SHA-256 of the uncommitted changes (diff and untracked files) when dirty
    torch: str
    device: str  # e.g. "cpu (AMD EPYC 7B13 64-Core Processor, 2 threads)"

    def stamp(self) -> dict:
        return asdict(self)


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True, timeout=30)
    return out.stdout.decode(errors="replace")


def git_state(repo: Path = REPO) -> tuple[str, bool, str | None]:
    """(describe, dirty, hash of the uncommitted changes) of the checkout, changes under OWN_OUTPUTS left
    out; the package version and clean outside git."""
    try:
        version = _git(repo, "describe", "--always").strip()
        status = _git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    except (OSError, subprocess.SubprocessError):
        from refinenet import __version__

        return __version__, False, None
    changes = [line for line in status if not line[3:].startswith(OWN_OUTPUTS)]
    if not changes:
        return version, False, None
    excluded = [f":(exclude){path}" for path in OWN_OUTPUTS]
    digest = hashlib.sha256(_git(repo, "diff", "HEAD", "--binary", "--", ".", *excluded).encode())
    for line in changes:
        if line.startswith("?? "):  # untracked: its name and content
            path = repo / line[3:]
            digest.update(line.encode() + (path.read_bytes() if path.is_file() else b""))
    return f"{version}-dirty", True, digest.hexdigest()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    """The device as the efficiency benchmarks' rows name it: the GPU's name, or the CPU's and its threads.
    Here, where both the benchmark (efficiency/benchmark.py) and the speed comparison (efficiency/speed.py)
    import it without importing each other."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def device_name(device: str) -> str:
    """The device as table rows name it: `device_description` after the device's own name (cpu, cuda:0)."""
    dev = resolve_device(device)
    if not (dev.type == "cuda" and torch.cuda.is_available()):
        dev = torch.device("cpu")
    return f"{dev} ({device_description(dev)})"


def read_provenance(device: str, repo: Path = REPO) -> Provenance:
    version, dirty, diff = git_state(repo)
    return Provenance(version, dirty, diff, torch.__version__, device_name(device))


def precision(trained: str | None, evaluated: str | None) -> str:
    """What ran, e.g. "fp32" or "train bf16, eval fp32", from the precision training recorded (config.json;
    None for a released checkpoint) and the evaluation's (metrics), as refinenet.fastpath.precision_name
    writes them (CUDA fp32 says whether TF32 was allowed)."""
    if not trained or trained == evaluated:
        return evaluated or trained or ""
    if not evaluated:
        return trained
    return f"train {trained}, eval {evaluated}"


def writes_repository_results(results: Path, repo: Path = REPO) -> bool:
    return Path(results).resolve() == (repo / "results").resolve()


def check_results_folder(results: Path, provenance: Provenance, allow_dirty: bool, repo: Path = REPO,
                         elsewhere: str = "--results DIR") -> None:
    """Refuse to put numbers from uncommitted code into the repository's results/ (unless allowed); `elsewhere`
    is the writing command's option for another folder."""
    if provenance.dirty and not allow_dirty and writes_repository_results(results, repo):
        raise DirtyTreeError(
            f"the working tree has uncommitted changes (code {provenance.code_version}), and {repo / 'results'} "
            f"only takes numbers from a clean commit. Commit or stash the changes, write elsewhere with {elsewhere}, "
            "or pass --allow-dirty (every row is then stamped dirty)."
        )


def results_code_version(results: Path, allow_dirty: bool, repo: Path = REPO) -> str:
    """The code version for rows written into `results` by a script outside the table runner (`nox -s bench`):
    as the runner reads it (its own outputs left out) and under the same guard on the repository's results/."""
    version, dirty, diff = git_state(repo)
    check_results_folder(results, Provenance(version, dirty, diff, torch.__version__, ""), allow_dirty, repo,
                         elsewhere="--out DIR")
    return version


def add_allow_dirty_option(parser) -> None:
    """`--allow-dirty` of the benchmark commands that write results/ themselves (efficiency, speed, conversion)."""
    parser.add_argument("--allow-dirty", action="store_true",
                        help="write the repository's results/ from a tree with uncommitted code (the version says "
                        "-dirty)")


def code_version_or_exit(results: Path, allow_dirty: bool) -> str:
    """`results_code_version` for a benchmark command: a refusal ends it with one `error:` line."""
    try:
        return results_code_version(results, allow_dirty)
    except DirtyTreeError as err:
        raise SystemExit(f"error: {err}") from None
