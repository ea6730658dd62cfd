"""Project-level promises: entry points work and the app package stays light."""

import subprocess
import sys


def test_endofm_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "core_model", "--help"], capture_output=True, text=True, check=True
    )
    assert "phantom" in out.stdout and "predict" in out.stdout


def test_endoreview_version():
    out = subprocess.run(
        [sys.executable, "-m", "endoreview", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("EndoReview ")


def test_importing_app_does_not_import_torch():
    code = "import sys, endoreview, endoreview.paths; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
