"""Snakemake rule convert_gguf: a GGUF checkpoint dequantised into a save_pretrained directory (maple.train.gguf)."""

import json

from maple.hub.model_files import require_model_files
from maple.runtime.jobs import logged_to, use_threads
from maple.train.gguf import convert_gguf

if __name__ == "__main__":
    with logged_to(snakemake.log[0]):  # noqa: F821
        use_threads(snakemake.threads)  # noqa: F821
        provenance = convert_gguf(
            snakemake.input.gguf,  # noqa: F821
            snakemake.output[0],  # noqa: F821
            snakemake.params.gguf,  # noqa: F821
        )
        require_model_files(f"models.{snakemake.wildcards.model}", snakemake.output[0])  # noqa: F821
        print(json.dumps(provenance))
