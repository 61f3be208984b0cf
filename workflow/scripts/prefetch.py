"""Snakemake checkpoint prefetch (a localrule, after preflight, before any GPU job; config hub.prefetch): every hub
model and dataset of the study at its pinned commit into the HF cache (HF_HOME), so that the GPU jobs can run with
the hub offline."""

import json

from maple.hub.api import hub_api, hub_token
from maple.hub.cache import hf_cache_dir
from maple.hub.prefetch import prefetch
from maple.runtime.atomic import write_json
from maple.runtime.jobs import logged_to

if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        print(f"[maple] HF cache: {hf_cache_dir()}", flush=True)
        fetched = prefetch(snakemake.params.pins, hub_api(), hub_token())  # noqa: F821
        write_json(snakemake.output[0], {"hf_cache": hf_cache_dir(), "snapshots": fetched})  # noqa: F821
        print(json.dumps({"prefetched": len(fetched)}))
