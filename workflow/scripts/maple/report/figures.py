"""The figures of a study, without importing matplotlib: the Snakefile decides its targets from this at parse time."""

from __future__ import annotations

# Every figure the plot rule can draw, in report order (maple.report.score_plots or maple.report.run_plots has a function of each
# name).
FIGURES = [
    "score_vs_rank",
    "score_vs_bits",
    "delta_heatmap",
    "english_retention",
    "data_comparison",
    "loss_curves",
    "cost_vs_gain",
    "reference_comparison",
]


def figures_for_study(
    datasets: list[str], task_languages: dict[str, list[str]], has_reference: bool, english: str = "en"
) -> list[str]:
    """The figures a study's grid supports: the data comparison needs two datasets, English retention a task with
    English and another language, the reference comparison a reference file; the others are always drawn."""
    supported = {
        "english_retention": any(
            english in langs and len(set(langs) - {english}) > 0 for langs in task_languages.values()
        ),
        "data_comparison": len(datasets) >= 2,
        "reference_comparison": has_reference,
    }
    return [f for f in FIGURES if supported.get(f, True)]
