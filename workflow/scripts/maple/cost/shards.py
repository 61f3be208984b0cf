"""Evaluation shards: a task's languages, and for a large language ranges of its examples, split into jobs whose
estimate fits evaluation.max_job_hours (docs/cost-and-sharding.md, "Shards").

Languages are filled into shards in the config's order, a new shard starting where the next language would not
fit, so that adding a language at the end of a task changes its last shard only. A language that alone does not
fit is split into equal ranges of its examples, each a shard of its own (its score is the merge of the ranges'
per-example values: maple.evaluate.merge). A task that fits in one job is one shard holding every language: the
evaluation job as it always was."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One language of a shard, whole (start and stop None) or the examples [start, stop) of it."""

    lang: str
    start: int | None = None
    stop: int | None = None

    @property
    def whole(self) -> bool:
        return self.start is None

    @property
    def label(self) -> str:
        return self.lang if self.whole else f"{self.lang}.{self.start}-{self.stop}"


@dataclass(frozen=True)
class Shard:
    task: str
    index: int  # 1-based; 0 when the task is one shard
    parts: tuple[Part, ...]

    @property
    def name(self) -> str:
        """The job's name within its task: the task alias for a task of one shard, else <task>.s<index>."""
        return self.task if self.index == 0 else f"{self.task}.s{self.index}"

    @property
    def languages(self) -> list[str]:
        return [p.lang for p in self.parts if p.whole]

    @property
    def ranges(self) -> list[Part]:
        return [p for p in self.parts if not p.whole]


def plan_task_shards(
    task: str,
    examples: dict[str, int],
    seconds_per_example: dict[str, float],
    max_seconds: float,
    overhead_seconds: float,
    min_examples: int = 1,
    max_languages: int | None = None,
    ranges_allowed: bool = True,
) -> list[Shard]:
    """The shards of one task. examples / seconds_per_example: per language, in the config's order (the slowest
    variant's figures); a job costs overhead_seconds plus its examples' seconds and must stay within max_seconds.
    min_examples: the smallest range a language is split into; max_languages: at most this many languages per
    shard (None: no cap); ranges_allowed: False where a task cannot be split by examples (few-shot from the
    scored split), so that a language too large for one job stays one shard."""
    budget = max(max_seconds - overhead_seconds, 1e-9)
    groups: list[list[Part]] = []
    current: list[Part] = []
    used = 0.0
    for lang, n in examples.items():
        cost = n * seconds_per_example[lang]
        pieces = math.ceil(cost / budget) if cost > budget else 1
        pieces = min(pieces, max(n // max(min_examples, 1), 1)) if ranges_allowed else 1
        if pieces > 1:
            if current:
                groups.append(current)
                current, used = [], 0.0
            bounds = [round(i * n / pieces) for i in range(pieces + 1)]
            groups.extend([[Part(lang, lo, hi)] for lo, hi in zip(bounds, bounds[1:])])
            continue
        full = max_languages is not None and len(current) >= max_languages
        if current and (used + cost > budget or full):
            groups.append(current)
            current, used = [], 0.0
        current.append(Part(lang))
        used += cost
    if current:
        groups.append(current)
    if len(groups) == 1:
        return [Shard(task, 0, tuple(groups[0]))]
    return [Shard(task, i, tuple(parts)) for i, parts in enumerate(groups, start=1)]


def split_languages(shards: list[Shard]) -> dict[str, list[Part]]:
    """Language -> its ranges, for the languages split by examples (their scores are merged)."""
    split: dict[str, list[Part]] = {}
    for shard in shards:
        for part in shard.ranges:
            split.setdefault(part.lang, []).append(part)
    return split
