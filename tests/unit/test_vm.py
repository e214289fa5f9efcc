"""The command line of a VM guest, as the lab builds it."""

from __future__ import annotations

from pathlib import Path

from qnet_tui.lab.vm import VmFiles, VmNic, VmSpec, qemu_argv


def opts(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_each_nic_is_a_stream_server_the_lab_dials_and_a_device_with_its_mac():
    spec = VmSpec(
        "r1", [VmNic("r1e0", "52:54:00:00:01:01", "virtio-net-pci"), VmNic("r1e1", "52:54:00:00:01:02", "e1000")]
    )
    files = VmFiles(Path("/run/qnet-tui/lab"), "r1")
    argv = qemu_argv(spec, files, "tcg")
    assert opts(argv, "-netdev") == [
        "stream,id=n0,server=on,addr.type=unix,addr.path=/run/qnet-tui/lab/r1.r1e0.nic",
        "stream,id=n1,server=on,addr.type=unix,addr.path=/run/qnet-tui/lab/r1.r1e1.nic",
    ]
    assert opts(argv, "-device") == [
        "virtio-net-pci,netdev=n0,mac=52:54:00:00:01:01,id=nic0",
        "e1000,netdev=n1,mac=52:54:00:00:01:02,id=nic1",
    ]
    assert opts(argv, "-machine") == ["q35,accel=tcg"] and opts(argv, "-cpu") == ["max"]
    assert opts(argv, "-qmp") == ["unix:/run/qnet-tui/lab/r1.qmp,server=on,wait=off"]
    assert "logfile=/run/qnet-tui/lab/r1.console.log" in opts(argv, "-chardev")[0]
    assert "-kernel" not in argv and "-drive" not in argv


def test_kernel_boot_joins_initrd_parts_and_a_disk_boots_through_the_overlay():
    files = VmFiles(Path("/r"), "g")
    one = qemu_argv(VmSpec("g", [], kernel="/k", initrd=["/base.cpio"], append="quiet"), files, "kvm")
    assert opts(one, "-initrd") == ["/base.cpio"] and opts(one, "-append") == ["console=ttyS0 quiet"]
    assert opts(one, "-cpu") == ["host"]
    two = qemu_argv(VmSpec("g", [], kernel="/k", initrd=["/base.cpio", "/g.cpio"]), files, "tcg")
    assert opts(two, "-initrd") == ["/r/g.initrd"]
    disk = qemu_argv(VmSpec("g", [], disk="/images/debian.qcow2"), files, "tcg")
    assert opts(disk, "-drive") == ["file=/r/g.overlay.qcow2,format=qcow2,if=virtio"]
