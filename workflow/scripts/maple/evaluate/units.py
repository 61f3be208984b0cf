"""The units of an evaluation job: one simple_evaluate call each, a language or a range of it, into its own score
file (maple.evaluate.job runs them; maple.evaluate.request_cache keys its saved requests on them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """What one simple_evaluate call of a job scores: one language, whole or the examples [start, stop) of it (stop
    None: to the end of the split, or to the task's limit), into one score file (and one samples file)."""

    lang: str
    score_file: str
    samples_file: str | None = None
    start: int | None = None
    stop: int | None = None

    @property
    def label(self) -> str:
        return self.lang if self.start is None else f"{self.lang}.{self.start}-{self.stop if self.stop else 'end'}"

    @property
    def examples(self) -> tuple | None:
        """(start, stop) of a range, None for a whole language: run_lm_eval's `examples`."""
        return None if self.start is None else (self.start, self.stop)


def job_units(score_files: dict, samples_files: dict | None = None, ranges: list[dict] | None = None) -> list[Unit]:
    """The simple_evaluate calls of one variant's evaluation: each language of score_files, then each range."""
    units = [
        Unit(lang, str(path), str(samples_files[lang]) if samples_files else None) for lang, path in score_files.items()
    ]
    return units + [
        Unit(r["lang"], str(r["score"]), str(r["samples"]) if r.get("samples") else None, r["start"], r.get("stop"))
        for r in ranges or []
    ]
