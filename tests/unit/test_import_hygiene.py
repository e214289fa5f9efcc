"""The layers keep to themselves: the model pulls in neither Textual nor
netlink, the worker no Textual, the UI no netlink and no worker code, and the
UI's lab client is headless. Each import runs in a fresh interpreter (this one
has everything loaded already); pyproject.toml states the same contracts for
lint-imports, which reads the import statements instead."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import qnet_tui.lab
import qnet_tui.model
import qnet_tui.ui

MODEL_MODULES = [f"qnet_tui.model.{m.name}" for m in pkgutil.iter_modules(qnet_tui.model.__path__)]
LAB_MODULES = [f"qnet_tui.lab.{m.name}" for m in pkgutil.iter_modules(qnet_tui.lab.__path__)]
UI_MODULES = [f"qnet_tui.ui.{m.name}" for m in pkgutil.iter_modules(qnet_tui.ui.__path__)]


def loaded_after_import(module: str, *packages: str) -> str:
    """Those of packages that importing module loads (any module in them), comma-separated."""
    code = (
        f"import sys, {module}\n"
        f"print(','.join(p for p in {packages!r} if any(m == p or m.startswith(p + '.') for m in sys.modules)))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("module", ["qnet_tui.cli", "qnet_tui.dissect", "qnet_tui.ui.convframes", *MODEL_MODULES])
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


@pytest.mark.parametrize("module", UI_MODULES)
def test_ui_imports_no_netlink_nor_worker(module):
    out = loaded_after_import(module, "pyroute2", "qnet_tui.lab")
    assert out == "", f"{module} imports {out}"


def test_lab_client_is_headless():
    """The UI's side of the control socket is plain Python: no widget code, so it
    can be driven (and tested) without an app."""
    out = loaded_after_import("qnet_tui.ui.labclient", "textual", "rich", "pyroute2", "qnet_tui.lab")
    assert out == "", f"qnet_tui.ui.labclient imports {out}"
