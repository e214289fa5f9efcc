"""The small-frame benchmark's pure helpers: trafgen's frame and summary, /proc counters."""

from __future__ import annotations

import re

import pytest

from benchmarks.framegen import (
    FRAME_LEN,
    parse_pid_stat,
    parse_proc_stat,
    parse_trafgen,
    sending_seconds,
    trafgen_config,
)

# trafgen 0.6.8's closing summary after SIGINT, as it prints it inside a namespace (sysctl warnings first).
SUMMARY = (
    "Cannot set system socket memory in /proc/sys/net/core/rmem_default: Permission denied\n"
    "\n\n     2455296 packets outgoing\n\n   147317760 bytes outgoing\n\n"
    "           3 sec, 987902 usec on CPU0 (2455296 packets)\n"
)


def test_trafgen_summary_gives_frames_and_the_seconds_sent() -> None:
    assert parse_trafgen(SUMMARY) == (2455296, pytest.approx(3.987902))


def test_trafgen_summary_takes_the_longest_cpu() -> None:
    two = SUMMARY + "           4 sec, 5 usec on CPU1 (100 packets)\n"
    assert parse_trafgen(two)[1] == pytest.approx(4.000005)


def test_no_summary_is_an_error_naming_the_output() -> None:
    with pytest.raises(ValueError, match="Permission denied"):
        parse_trafgen("Cannot set system socket memory: Permission denied\n")


def test_trafgen_frame_is_60_bytes_broadcast_of_the_local_ethertype() -> None:
    cfg = trafgen_config("52:54:00:77:00:01")
    outside_calls = re.sub(r"\w+\([^)]*\)", "", cfg)
    size = len(re.findall(r"0x[0-9a-f]{2}", outside_calls))
    size += sum(int(n) for n in re.findall(r"drnd\((\d+)\)", cfg))
    size += sum(int(n) for n in re.findall(r"fill\(0x00, (\d+)\)", cfg))
    assert size == FRAME_LEN == 60
    octets = re.findall(r"0x([0-9a-f]{2})", cfg)
    assert octets[:6] == ["ff"] * 6
    assert octets[6:12] == ["52", "54", "00", "77", "00", "01"]
    assert octets[12:14] == ["88", "b5"]  # not IPv4: br_netfilter would drop a bad IPv4 header


def test_trafgen_udp_frame_is_60_bytes_of_valid_ipv4() -> None:
    cfg = trafgen_config("52:54:00:77:00:01", udp=("10.77.0.1", "10.77.0.2"))
    octets = re.findall(r"0x([0-9a-f]{2})", re.sub(r"\w+\([^)]*\)", "", cfg))
    size = len(octets) + 2 + 4 + sum(int(n) for n in re.findall(r"fill\(0x00, (\d+)\)", cfg))  # csumip, drnd(4)
    assert size == FRAME_LEN
    assert octets[12:16] == ["08", "00", "45", "00"] and int(octets[14 + 3], 16) == 46  # IPv4 total length
    assert "csumip(14, 33)" in cfg  # the checksum over the 20-byte header, in its place
    assert octets[14 + 10 : 14 + 18] == ["0a", "4d", "00", "01", "0a", "4d", "00", "02"]


def test_proc_stat_busy_leaves_out_idle_iowait_and_steal() -> None:
    text = "cpu  100 5 30 9000 40 2 7 900 0 0\ncpu0 50 2 15 4500 20 1 3 450 0 0\n"
    times = parse_proc_stat(text)
    assert times.softirq == 7
    assert times.busy == 100 + 5 + 30 + 2 + 7


def test_proc_stat_without_a_cpu_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="cpu"):
        parse_proc_stat("intr 1 2 3\n")


def test_pid_stat_survives_a_command_with_spaces_and_parentheses() -> None:
    # pid (comm) state ppid ... utime is field 14 and stime 15 of proc(5).
    rest = " ".join(["S", "4242"] + ["0"] * 9 + ["120", "30"] + ["0"] * 20)
    assert parse_pid_stat(f"4321 (qnet (worker) x) {rest}") == (4242, 150)


def test_sending_time_falls_back_to_the_wall_clock_without_a_summary() -> None:
    # trafgen now and then ends on SIGINT without its summary; the run still counts, over the wall time.
    assert sending_seconds("Running! Hang up with ^C!\n\n", 4.25) == 4.25
    assert sending_seconds(SUMMARY, 4.25) == pytest.approx(3.987902)
