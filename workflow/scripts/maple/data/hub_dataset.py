"""The `hub` backend: an existing multilingual instruction dataset (Bactrian-X, MultiAlpaca, Aya ...), sampled.

The dataset is read through `datasets`, one subset (config) per language or one table with a language column,
and n_per_language rows are sampled per language in an order shuffled from the seed and the language, skipping
rows the shared filters (maple.data.filters) reject. Same spec and seed: same records.

Keys: the dataset's config block, listed with their types and defaults in workflow/schemas/config.schema.yaml
(datasets, backend hub), read once into maple.data.settings.HubSettings.

Records: {"id": "hub-<lang>-<nnnnn>", "instruction", "input", "output", "lang", "source"}.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

from maple.data.filters import SpecError, language_code, language_seed
from maple.data.settings import HubSettings
from maple.hub.access import (
    LOCAL_DATA_SUFFIXES,
    HubAccessError,
    is_commit,
    is_saved_dataset,
    load_dataset,
    offline_mode,
)
from maple.hub.task_sources import DEFAULT_CONFIG, data_file_builder, hub_file_url
from maple.runtime.records import check_record

BACKEND = "hub"
log = logging.getLogger(__name__)

FIELDS = ("instruction", "input", "output")
CHUNK = 256


def load_subset(
    source: str, subset: str | None, split: str, revision: str | None, trust_remote_code: bool, data_files=None
):
    """One split of one subset of the dataset, as a datasets.Dataset."""
    import datasets

    kind = "dataset" if subset is None else f"dataset subset {subset!r} of"
    local = Path(os.path.expanduser(source))
    if data_files and not local.exists():
        path = data_files.format(subset=subset or DEFAULT_CONFIG, split=split)
        url = hub_file_url(source, revision, path)
        if offline_mode() and is_commit(revision):
            # The hub offline (prefetch): the file in the pinned commit's snapshot in the HF cache.
            from maple.hub.cache import snapshot_dir

            url = str(Path(snapshot_dir(source, revision)) / path)
        return load_dataset(data_file_builder(path), None, split, data_files={split: url}, kind=f"{kind} {url}")
    if local.is_dir() and subset is not None and not is_saved_dataset(local):
        entry = local / subset
        if entry.exists():
            return load_dataset(str(entry), None, split, kind=f"dataset subset {subset!r} at")
        for suffix in LOCAL_DATA_SUFFIXES:
            if (local / f"{subset}{suffix}").is_file():
                return load_dataset(str(local / f"{subset}{suffix}"), None, None, kind=f"dataset subset {subset!r} at")
        available = sorted(p.name for p in local.iterdir() if not p.name.startswith("."))
        raise HubAccessError(
            f"cannot load dataset {source!r}: it has no subset {subset!r} (no {entry} or "
            f"{entry}.jsonl ...; entries: {available[:20]}); check subset_template and code_key"
        )
    if local.is_dir() and is_saved_dataset(local):
        data = datasets.load_from_disk(str(local))
        if isinstance(data, datasets.DatasetDict):
            key = subset if subset is not None and subset in data else split
            if key not in data:
                raise HubAccessError(
                    f"cannot load dataset {source!r}: the saved DatasetDict has no "
                    f"{'subset or split' if subset else 'split'} {subset or split!r} "
                    f"(keys: {sorted(data)})"
                )
            data = data[key]
            if isinstance(data, datasets.DatasetDict):
                data = data[split]
        return data
    if local.is_file():
        return load_dataset(str(local), None, None, kind=kind)
    data = load_dataset(source, subset, split, revision=revision, trust_remote_code=trust_remote_code, kind=kind)
    return data


def build(spec: dict, languages: dict[str, dict], seed: int) -> list[dict]:
    settings = HubSettings.from_spec(spec)
    n, source_name, split = settings.n_per_language, settings.dataset, settings.split
    template, code_key, lang_column = settings.subset_template, settings.code_key, settings.lang_column
    explicit = settings.columns
    columns = {**{f: f for f in FIELDS}, **explicit}
    source = settings.records_source
    record_filter = settings.record_filter(languages)

    cache: dict = {}
    records: list[dict] = []
    for lang in sorted(languages):
        code = language_code(languages, lang, code_key, BACKEND) if code_key else lang
        try:
            subset = template.format(code=code, lang=lang) if template is not None else None
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(
                f"{BACKEND} backend: subset_template {template!r}: placeholders allowed are {{code}} "
                f"and {{lang}} ({exc})"
            ) from None
        if subset not in cache:
            cache[subset] = load_subset(
                source_name, subset, split, settings.revision, settings.trust_remote_code, settings.data_files
            )
        data = cache[subset]
        names = set(data.column_names)
        for field in FIELDS:
            column = columns[field]
            if column is not None and column not in names and (field != "input" or field in explicit):
                raise SpecError(
                    f"{BACKEND} backend: dataset {source_name!r} ({subset or split}) has no column "
                    f"{column!r} for {field} (columns: {sorted(names)}); map it with columns.{field}"
                )
        if lang_column is not None:
            if lang_column not in names:
                raise SpecError(
                    f"{BACKEND} backend: lang_column: dataset {source_name!r} has no column "
                    f"{lang_column!r} (columns: {sorted(names)})"
                )
            order = [i for i, value in enumerate(data[lang_column]) if value == code]
        else:
            order = list(range(len(data)))
        random.Random(language_seed(seed, lang, "sample")).shuffle(order)

        kept: list[dict] = []
        for start in range(0, len(order), CHUNK):
            for row in data.select(order[start : start + CHUNK]).to_list():
                record = {"id": "", "lang": lang, "source": source}
                for field in FIELDS:
                    column = columns[field]
                    value = row.get(column) if column is not None else None
                    record[field] = "" if value is None else str(value).strip()
                if record_filter.accept(record):
                    record["id"] = f"{BACKEND}-{lang}-{len(kept):05d}"
                    kept.append(check_record(record))
                    if len(kept) == n:
                        break
            if len(kept) == n:
                break
        if not kept:
            raise RuntimeError(
                f"hub backend: dataset {source_name!r} gave no usable {lang} record (subset {subset!r}, "
                f"{len(order)} rows, filtered out: {record_filter.summary(lang)})"
            )
        if len(kept) < n:
            log.warning(
                "hub backend: %s: %d of %d records (%d rows, filtered out: %s)",
                lang,
                len(kept),
                n,
                len(order),
                record_filter.summary(lang),
            )
        records.extend(kept)
    return records
