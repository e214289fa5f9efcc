"""Link impairments, emulated in the worker: netem's model without netem.

The kernel here has no sch_netem, and QEMU sockets are no kernel devices, so
one direction of a link is impaired where the worker sends (or takes in) its
frames. An Impairer decides, for one frame at time `now`, whether it is
dropped and when its copies are due; the worker's Loop sends them from its
timer heap: nothing here sleeps. The spec is model/impairment.py's."""

from __future__ import annotations

import heapq
import random

from qnet_tui.model.impairment import NONE, Impairment, ImpairmentError

__all__ = ["LOSS", "NONE", "QUEUE", "Impairer", "Impairment", "ImpairmentError"]

LOSS = "impair-loss"  # dropped by the loss model (random or Gilbert-Elliott)
QUEUE = "impair-queue"  # dropped because the link's queue held `limit` frames


class Impairer:
    """Decides the fate of each frame of one impaired direction.

    offer() returns a drop reason (LOSS, QUEUE) or the times its copies are
    due (two with a duplicate) and the frame to send (a corrupted copy, or the
    frame itself). The queue holds every frame offered and not yet due, so
    `limit` bounds delayed frames as netem's limit does."""

    def __init__(self, spec: Impairment, seed: int | None = None) -> None:
        self.spec = spec
        self.rng = random.Random(seed)
        self.bad = False  # Gilbert-Elliott state
        self.busy_until = 0.0  # when the rate limiter has sent what it holds
        self.due: list[float] = []  # heap: when each queued frame leaves
        self.lost = self.queue_dropped = 0

    def queued(self, now: float) -> int:
        due = self.due
        while due and due[0] <= now:
            heapq.heappop(due)
        return len(due)

    def offer(self, frame: bytes, now: float, length: int, offset: int = 0) -> str | tuple[list[float], bytes]:
        """The fate of frame (its wire length; offset: where Ethernet starts)."""
        spec, rng = self.spec, self.rng
        if self._lose():
            self.lost += 1
            return LOSS
        if self.queued(now) >= spec.limit:
            self.queue_dropped += 1
            return QUEUE
        at = now
        if spec.rate_kbit:
            # Serialised behind what the limiter holds, then the delay: a queue
            # in front of a wire, as netem's rate does.
            at = max(now, self.busy_until) + length * 8 / (spec.rate_kbit * 1000)
            self.busy_until = at
        if spec.delay_ms and not (spec.reorder_pct and rng.random() * 100 < spec.reorder_pct):
            delay = spec.delay_ms
            if spec.jitter_ms:
                delay = max(0.0, delay + rng.uniform(-spec.jitter_ms, spec.jitter_ms))
            at += delay / 1000
        times = [at]
        if spec.dup_pct and rng.random() * 100 < spec.dup_pct:
            times.append(at)
        if spec.corrupt_pct and rng.random() * 100 < spec.corrupt_pct and len(frame) > offset:
            copy = bytearray(frame)
            copy[rng.randrange(offset, len(frame))] ^= 1 << rng.randrange(8)
            frame = bytes(copy)
        for t in times:
            heapq.heappush(self.due, t)
        return times, frame

    def _lose(self) -> bool:
        spec, rng = self.spec, self.rng
        if spec.gilbert:
            if self.bad:
                self.bad = rng.random() * 100 >= spec.ge_r_pct
            else:
                self.bad = rng.random() * 100 < spec.ge_p_pct
            pct = spec.ge_bad_pct if self.bad else spec.ge_good_pct
            if pct and rng.random() * 100 < pct:
                return True
        return bool(spec.loss_pct) and rng.random() * 100 < spec.loss_pct
