"""The model is pure: importing it pulls in neither Textual nor netlink."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import qnet_tui.lab
import qnet_tui.model

MODEL_MODULES = [f"qnet_tui.model.{m.name}" for m in pkgutil.iter_modules(qnet_tui.model.__path__)]
LAB_MODULES = [f"qnet_tui.lab.{m.name}" for m in pkgutil.iter_modules(qnet_tui.lab.__path__)]


@pytest.mark.parametrize("module", ["qnet_tui.cli", *MODEL_MODULES])
def test_headless_module_imports_no_ui_or_netlink(module):
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'pyroute2', 'scapy'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} imports {out}"


@pytest.mark.parametrize("module", ["qnet_tui.protocol", *LAB_MODULES])
def test_worker_imports_no_textual(module):
    code = f"import sys, {module}\nprint(','.join(sorted(m for m in sys.modules if m.startswith('textual'))))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"{module} imports {out}"
