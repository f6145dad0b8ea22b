"""Which offset of a partition may be committed, given acks that arrive out of order."""

from __future__ import annotations

from collections import deque


class PartitionAcks:
    """The delivered-but-unacked offsets of one partition, for one assignment of it.

    Offsets are delivered in increasing order; acks come in any order. The committable
    position is the offset after the longest acked prefix of the deliveries: committing it
    never skips a record that is not durable yet (a gap in the offsets, from compaction or
    transaction markers, is no obstacle: only delivered offsets count).
    """

    __slots__ = ("_acked", "_pending", "committable", "committed")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._acked: set[int] = set()
        self.committable: int | None = None
        """The offset to commit (the next record to read), None before the first ack."""
        self.committed: int | None = None
        """The last offset committed successfully for this assignment."""

    def delivered(self, offset: int) -> None:
        """Record that the record at `offset` was handed to the host."""
        self._pending.append(offset)

    def acked(self, offset: int) -> bool:
        """Record the host's ack of `offset`; True when the committable position moved."""
        if offset in self._acked or not self._pending or offset < self._pending[0]:
            return False
        self._acked.add(offset)
        moved = False
        while self._pending and self._pending[0] in self._acked:
            done = self._pending.popleft()
            self._acked.discard(done)
            self.committable = done + 1
            moved = True
        return moved

    @property
    def dirty(self) -> bool:
        """True when `committable` is ahead of `committed`."""
        return self.committable is not None and self.committable != self.committed

    @property
    def unacked(self) -> int:
        """How many delivered records still wait for their ack."""
        return len(self._pending) - len(self._acked)
