"""A history checker for the chaos run, in the spirit of Jepsen's Knossos/Elle, kept simple.

The workload makes every check decidable without search over orderings: each
record id has one owner (a client session) that changes it strictly one
operation at a time (the next starts after the previous one's outcome is
known), so the operations of an id form one sequence, and a write's value is
its position in that sequence (``v``, stored in the record's metadata). Any
client may read any id. A read returns a state: the ``v`` it saw, or
:data:`ABSENT` (not found: never written, or deleted).

A read is judged against the id's sequence:

- **phantom**: it returned a ``v`` that no write of the id requested before the
  read completed (every level);
- **stale**: it returned a state older than the last operation acknowledged
  before its *horizon*: the read's start for ``strong`` and for
  ``read_your_writes`` reads by the owner's session, the start minus the bound
  for ``bounded`` reads (a bounded search that found nothing is not judged: an
  approximate search may miss). "Older" means explained only by operations
  earlier in the sequence than that acknowledged one; an operation whose
  outcome is unknown (timeout, 5xx) may or may not have happened, so it can
  explain a read either way;
- **lost** (the final STRONG read of every id after recovery): a stale final read
  means an acknowledged write is gone.

An id whose operation stayed unknown even after retrying its request id is
*tainted*: later operations of the id may have been reordered with it by the
client giving up, so it is only checked for phantoms from then on.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import Counter, defaultdict
from collections.abc import Iterable

#: The state of an id that was never written or is deleted.
ABSENT = 0


class Outcome(enum.Enum):
    OK = "ok"  # acknowledged
    FAILED = "failed"  # definitely not applied (a 4xx refusal)
    UNKNOWN = "unknown"  # may or may not have been applied


@dataclasses.dataclass(frozen=True)
class Change:
    """One operation of an id's owner: ``v`` is its position in the id's sequence (from 1);
    ``state`` what the id is after it (``v`` for a write, ABSENT for a delete)."""

    key: str
    v: int
    state: int
    invoked: float
    completed: float
    outcome: Outcome


@dataclasses.dataclass(frozen=True)
class Read:
    """One read of ``key`` at ``level`` that answered; ``horizon`` is the time from which every
    acknowledged change must be visible (None: the level promises nothing)."""

    key: str
    level: str
    invoked: float
    completed: float
    state: int
    horizon: float | None
    final: bool = False
    judge_absent: bool = True


@dataclasses.dataclass(frozen=True)
class Violation:
    kind: str  # "phantom" | "stale" | "lost"
    key: str
    level: str
    detail: str


@dataclasses.dataclass
class Verdict:
    reads: int = 0
    changes: int = 0
    acknowledged: int = 0
    unknown: int = 0
    tainted_keys: int = 0
    violations: list[Violation] = dataclasses.field(default_factory=list)
    by_level: Counter[str] = dataclasses.field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> dict[str, object]:
        kinds = Counter(v.kind for v in self.violations)
        return {"reads": self.reads, "changes": self.changes, "acknowledged": self.acknowledged,
                "unknown": self.unknown, "tainted_keys": self.tainted_keys,
                "reads_by_level": dict(self.by_level), "violations": dict(kinds),
                "examples": [dataclasses.asdict(v) for v in self.violations[:10]]}


def check(changes: Iterable[Change], reads: Iterable[Read]) -> Verdict:
    """Judge every read against the changes of its id (see the module docstring)."""
    verdict = Verdict()
    seq: dict[str, list[Change]] = defaultdict(list)
    for change in changes:
        seq[change.key].append(change)
        verdict.changes += 1
        verdict.acknowledged += change.outcome is Outcome.OK
        verdict.unknown += change.outcome is Outcome.UNKNOWN
    tainted_from: dict[str, int] = {}
    for key, items in seq.items():
        items.sort(key=lambda c: c.v)
        if [c.v for c in items] != list(range(1, len(items) + 1)):
            raise ValueError(f"changes of {key!r} are not numbered 1..n: {[c.v for c in items]}")
        for change in items:
            if change.outcome is Outcome.UNKNOWN:
                tainted_from[key] = change.v
                break
    verdict.tainted_keys = len(tainted_from)
    for read in reads:
        verdict.reads += 1
        verdict.by_level[read.level] += 1
        problem = _judge(read, seq.get(read.key, []), tainted_from.get(read.key))
        if problem is not None:
            kind, detail = problem
            verdict.violations.append(Violation(kind, read.key, read.level, detail))
    return verdict


def _judge(read: Read, items: list[Change], tainted_from: int | None) -> tuple[str, str] | None:
    # Which changes could explain the state read: requested before the read completed, not refused.
    possible = [c for c in items if c.invoked <= read.completed and c.outcome is not Outcome.FAILED]
    if read.state != ABSENT and not any(c.state == read.state for c in possible):
        return "phantom", f"read v={read.state}, never requested before the read completed"
    if read.horizon is None or (read.state == ABSENT and not read.judge_absent):
        return None
    acked = [c for c in possible if c.outcome is Outcome.OK and c.completed <= read.horizon]
    if not acked:
        return None
    last = acked[-1]
    if tainted_from is not None and tainted_from <= last.v:
        return None
    # The read must be explained by `last` or a later change.
    explained = any(c.v >= last.v and c.state == read.state for c in possible)
    if explained:
        return None
    kind = "lost" if read.final else "stale"
    seen = "absent" if read.state == ABSENT else f"v={read.state}"
    want = "absent" if last.state == ABSENT else f"v={last.state}"
    return kind, f"read {seen}; change {want} was acknowledged {read.horizon - last.completed:.3f}s before " \
                 f"the read's horizon"
