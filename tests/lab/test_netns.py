"""Namespaces are made in the worker's own process: nothing that makes one
may outlive a killed worker, or it could make a namespace after the
watchdog (or the next run) cleaned up, and no state file would name it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

from qnet_tui.lab import netns

MAKE = """\
import os, sys
from qnet_tui.lab import netns
def no_helpers(*args, **kwargs):
    raise AssertionError("a helper process was started to make the namespace")
os.fork = no_helpers
import multiprocessing
multiprocessing.Process.start = no_helpers
netns.create(sys.argv[1])
"""


def test_a_namespace_is_made_without_a_helper_process():
    name = f"qnet-t{uuid.uuid4().hex[:8]}"
    try:
        made = subprocess.run([sys.executable, "-c", MAKE, name], capture_output=True, text=True, timeout=30)
        assert made.returncode == 0, made.stderr
        assert name in netns.existing()
        with netns.inside(name):  # a namespace of its own, with only lo in it
            inner = os.readlink("/proc/thread-self/ns/net")
        assert inner != os.readlink("/proc/thread-self/ns/net")
    finally:
        if name in netns.existing():
            netns.remove(name)
