"""The accelerator probe: the decision on made-up inputs, then once for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qnet_tui.lab import accel

INTEL = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse tsc msr vmx sse2 hypervisor\n\n"
AMD = "processor\t: 0\nflags\t\t: fpu svm lm\n"
SOFT = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr sse2 hypervisor\n"


def never_boot() -> str | None:
    raise AssertionError("no test boot may be made here")


def test_cpu_flags_of_the_first_processor():
    text = INTEL + "processor\t: 1\nflags\t\t: fpu svm\n"
    assert accel.cpu_flags(text) == {"fpu", "vme", "de", "pse", "tsc", "msr", "vmx", "sse2", "hypervisor"}
    assert accel.cpu_flags("") == frozenset()
    assert accel.cpu_flags("model name\t: flags: vmx\n") == frozenset()  # "flags" must be the key


def test_no_usable_device_is_tcg_whatever_the_flags():
    got = accel.decide(accel.cpu_flags(INTEL), "no /dev/kvm (no KVM module loaded)", never_boot)
    assert got == accel.Accel("tcg", "no /dev/kvm (no KVM module loaded)")
    assert got.args == ["-accel", "tcg"]


def test_a_software_kvm_is_tcg_without_a_test_boot():
    got = accel.decide(accel.cpu_flags(SOFT), None, never_boot)
    assert got.name == "tcg"
    assert "no vmx or svm" in got.reason and "software KVM" in got.reason
    assert str(got).startswith("TCG: ")


@pytest.mark.parametrize("cpuinfo, flag", [(INTEL, "vmx"), (AMD, "svm")])
def test_flags_and_a_good_test_boot_are_kvm(cpuinfo, flag):
    got = accel.decide(accel.cpu_flags(cpuinfo), None, lambda: None)
    assert got.name == "kvm"
    assert flag in got.reason and "test boot worked" in got.reason


def test_a_failed_test_boot_is_tcg_with_what_failed():
    got = accel.decide(accel.cpu_flags(INTEL), None, lambda: "KVM internal error. Suberror: 1 emulation failure")
    assert got == accel.Accel("tcg", "a KVM test boot failed: KVM internal error. Suberror: 1 emulation failure")


def test_flags_without_a_test_boot_say_so():
    got = accel.decide(accel.cpu_flags(INTEL), None, None)
    assert got.name == "kvm" and "no test boot" in got.reason


def test_device_problem(tmp_path: Path):
    assert (
        accel.device_problem(str(tmp_path / "kvm"))
        == f"no {tmp_path / 'kvm'} (no KVM module loaded, or no hardware virtualization)"
    )
    plain = tmp_path / "plain"
    plain.write_text("")
    assert accel.device_problem(str(plain)) is None
    assert accel.device_problem(str(tmp_path)) == f"{tmp_path}: is a directory"


def test_probe_on_this_machine_and_its_cache():
    flags = accel.cpu_flags(Path("/proc/cpuinfo").read_text())
    if flags & {"vmx", "svm"}:
        pytest.skip("this machine has hardware virtualization: the probe may well choose KVM")
    accel.probe.cache_clear()
    got = accel.probe()
    assert got.name == "tcg"
    if os.path.exists("/dev/kvm") and accel.device_problem() is None:
        assert "no vmx or svm" in got.reason
    assert accel.probe() is got  # cached: probed once per process
