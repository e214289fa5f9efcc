"""The impairment spec's text form and the Impairer's decisions, with a seeded RNG."""

from __future__ import annotations

import pytest

from qnet_tui.lab.impair import LOSS, NONE, QUEUE, Impairer, Impairment, ImpairmentError

FRAME = bytes(range(256)) * 4 + bytes(476)  # 1500 bytes


def test_parse_reads_every_key() -> None:
    spec = Impairment.parse(
        "delay=50ms jitter=5ms loss=1% ge=1%,30%,90%,2% dup=0.5% corrupt=0.1% reorder=25% rate=10mbit limit=200"
    )
    assert spec == Impairment(
        delay_ms=50,
        jitter_ms=5,
        loss_pct=1,
        ge_p_pct=1,
        ge_r_pct=30,
        ge_bad_pct=90,
        ge_good_pct=2,
        dup_pct=0.5,
        corrupt_pct=0.1,
        reorder_pct=25,
        rate_kbit=10_000,
        limit=200,
    )


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("delay=1.5s", "delay_ms", 1500),
        ("delay=500us", "delay_ms", 0.5),
        ("delay=20", "delay_ms", 20),
        ("rate=512kbit", "rate_kbit", 512),
        ("rate=1gbit", "rate_kbit", 1e6),
        ("rate=1mbps", "rate_kbit", 8000),
        ("loss=3", "loss_pct", 3),
    ],
)
def test_parse_units(text: str, field: str, value: float) -> None:
    assert getattr(Impairment.parse(text), field) == pytest.approx(value)


def test_a_spec_is_whole_and_none_resets_everything() -> None:
    # mininet #881: "loss 0" was left out of the command, so the old loss stayed.
    assert Impairment.parse("none") == NONE
    assert not Impairment.parse("none").active
    assert Impairment.parse("loss=0%") == NONE
    assert Impairment.parse("delay=10ms").loss_pct == 0


@pytest.mark.parametrize(
    "text",
    [
        "delay=50ms jitter=5ms loss=1% rate=10mbit limit=1000",
        "loss=0.25% ge=1%,30%,100%,0% dup=2% corrupt=0.1%",
        "delay=10ms reorder=25% limit=7",
        "rate=1.5kbit",
        "none",
    ],
)
def test_format_round_trips(text: str) -> None:
    spec = Impairment.parse(text)
    assert Impairment.parse(spec.format()) == spec


def test_format_says_a_rate_in_its_largest_whole_unit() -> None:
    assert Impairment.parse("rate=10mbit").format() == "rate=10mbit"
    assert Impairment.parse("rate=2gbit").format() == "rate=2gbit"
    assert Impairment.parse("rate=1500kbit").format() == "rate=1500kbit"


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("delay=fast", "delay=fast"),
        ("loss=120%", "loss=120%"),
        ("loss=-1%", "loss=-1%"),
        ("speed=1", "'speed'"),
        ("delay", "'delay'"),
        ("loss=1% loss=2%", "twice"),
        ("none loss=1%", "'none' stands alone"),
        ("jitter=5ms", "jitter needs a delay"),
        ("reorder=5%", "reorder needs a delay"),
        ("limit=0", "limit=0"),
        ("rate=10furlongs", "rate=10furlongs"),
        ("ge=1%", "ge=1%"),
        ("ge=1%,0%", "never end"),
    ],
)
def test_bad_text_names_the_field(text: str, names: str) -> None:
    with pytest.raises(ImpairmentError, match=names if names.startswith("'") else None) as err:
        Impairment.parse(text)
    assert names in str(err.value)


def test_random_loss_is_ten_percent_within_one_over_ten_thousand_frames() -> None:
    imp = Impairer(Impairment(loss_pct=10), seed=14)
    lost = sum(imp.offer(FRAME, i * 1e-3, len(FRAME)) == LOSS for i in range(10_000))
    assert 900 <= lost <= 1100
    assert imp.lost == lost


def test_gilbert_elliott_loses_in_bursts() -> None:
    # p=1%, r=25%: mean burst 4 frames, bad 1/26 of the time; all lost while bad.
    imp = Impairer(Impairment.parse("ge=1%,25%"), seed=3)
    fates = [imp.offer(FRAME, i * 1e-3, len(FRAME)) == LOSS for i in range(20_000)]
    bursts = [n for n in _runs(fates) if n]
    assert 0.025 < sum(fates) / len(fates) < 0.055
    assert 3 < sum(bursts) / len(bursts) < 5.5
    # Random loss at the same rate almost never loses 4 in a row.
    rnd = Impairer(Impairment(loss_pct=sum(fates) / len(fates) * 100), seed=3)
    rnd_bursts = [n for n in _runs([rnd.offer(FRAME, 0, 1) == LOSS for _ in range(20_000)]) if n]
    assert sum(rnd_bursts) / len(rnd_bursts) < 1.2


def _runs(fates: list[bool]) -> list[int]:
    runs, n = [], 0
    for lost in fates:
        if lost:
            n += 1
        elif n:
            runs.append(n)
            n = 0
    return runs


def test_delay_and_jitter() -> None:
    imp = Impairer(Impairment(delay_ms=50, jitter_ms=5), seed=1)
    times = [imp.offer(FRAME, 10.0, 1500)[0][0] for _ in range(1000)]
    assert all(10.045 <= t <= 10.055 for t in times)
    assert max(times) - min(times) > 0.009  # the jitter spreads them
    assert Impairer(Impairment(delay_ms=50)).offer(FRAME, 10.0, 1500)[0] == [pytest.approx(10.05)]


def test_rate_serialises_frames_back_to_back() -> None:
    # 1500 bytes at 12 Mbit/s take 1 ms on the wire.
    imp = Impairer(Impairment(rate_kbit=12_000))
    times = [imp.offer(FRAME, 5.0, 1500)[0][0] for _ in range(10)]
    assert times == pytest.approx([5.0 + (i + 1) * 1e-3 for i in range(10)])
    # An idle link sends a frame at once (after its own wire time), not after the last one.
    assert imp.offer(FRAME, 9.0, 1500)[0] == [pytest.approx(9.001)]


def test_queue_limit_drops_past_limit_and_frees_as_frames_leave() -> None:
    imp = Impairer(Impairment(rate_kbit=12_000, limit=5))
    fates = [imp.offer(FRAME, 0.0, 1500) for _ in range(8)]
    assert [f == QUEUE for f in fates] == [False] * 5 + [True] * 3
    assert imp.queue_dropped == 3
    # 2.5 ms later two of the five have left: two places free, not more.
    later = [imp.offer(FRAME, 0.0025, 1500) for _ in range(3)]
    assert [f == QUEUE for f in later] == [False, False, True]


def test_delayed_frames_count_against_the_limit() -> None:
    imp = Impairer(Impairment(delay_ms=100, limit=3))
    assert [imp.offer(FRAME, 0.0, 60) == QUEUE for _ in range(4)] == [False, False, False, True]
    assert imp.offer(FRAME, 0.2, 60) != QUEUE


def test_reorder_sends_some_frames_ahead_of_the_delayed_ones() -> None:
    imp = Impairer(Impairment(delay_ms=10, reorder_pct=25), seed=7)
    times = [imp.offer(FRAME, i * 1e-4, 60)[0][0] for i in range(4000)]
    ahead = sum(t < 5e-3 + i * 1e-4 for i, t in enumerate(times))
    assert 0.22 < ahead / len(times) < 0.28
    order = sorted(range(len(times)), key=times.__getitem__)
    assert order != list(range(len(times)))


def test_duplicate_and_corrupt() -> None:
    imp = Impairer(Impairment(dup_pct=100, corrupt_pct=100), seed=2)
    times, frame = imp.offer(FRAME, 1.0, 1500, offset=10)
    assert times == [1.0, 1.0]
    diff = [i for i in range(len(FRAME)) if frame[i] != FRAME[i]]
    assert len(diff) == 1 and diff[0] >= 10
    assert bin(frame[diff[0]] ^ FRAME[diff[0]]).count("1") == 1
    plain = Impairer(Impairment(delay_ms=1), seed=2).offer(FRAME, 1.0, 1500)
    assert plain[1] is FRAME and len(plain[0]) == 1
