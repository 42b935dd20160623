"""The `refinenet` command line."""

import subprocess
import sys

import pytest

from refinenet import __version__
from refinenet.cli import main


def test_info_reports_version_torch_device_and_optional_parts(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"refinenet {__version__}" in out and "torch " in out and "device:" in out
    assert "pydensecrf.densecrf" in out


def test_python_dash_m_refinenet_runs_the_same_command():
    result = subprocess.run([sys.executable, "-m", "refinenet", "info"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("refinenet ")


def test_unknown_subcommand_exits_with_usage():
    with pytest.raises(SystemExit) as err:
        main(["frobnicate"])
    assert err.value.code == 2
