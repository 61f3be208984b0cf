"""A stand-in for lm-eval's vLLM model (lm_eval.models.vllm_causallms), for tests on a machine without vLLM or a GPU:
installed at the one import of it (maple.evaluate.vllm_engine.vllm_classes) through sys.modules, so that everything
around it runs for real (the job's loop, simple_evaluate, the score files). Like lm-eval's VLLM it keeps the LoRA
request in `lora_request` (set from lora_local_path at construction) and passes it with every request; its answers
are a function of that request's adapter path, so a request scored under the wrong adapter shows in the scores."""

from __future__ import annotations

import sys
import types
import zlib
from collections import namedtuple
from pathlib import Path

from lm_eval.api.model import LM

LoRARequest = namedtuple("LoRARequest", "lora_name lora_int_id lora_path")


class FakeVLLM(LM):
    built: list[dict] = []  # the keyword arguments of every engine built
    calls: list = []  # the LoRA request of every call (None: the base), in order

    def __init__(self, **args):
        super().__init__()
        FakeVLLM.built.append(args)
        self.batch_size = int(args.get("batch_size", 1)) if str(args.get("batch_size")).isdigit() else "auto"
        self.tokenizer = None
        path = args.get("lora_local_path")
        self.lora_request = LoRARequest("finetuned", 1, path) if path else None

    def _adapter(self) -> str:
        FakeVLLM.calls.append(self.lora_request)
        return Path(self.lora_request.lora_path).name if self.lora_request else "base"

    def generate_until(self, requests, disable_tqdm: bool = False):
        adapter = self._adapter()
        return [f"{adapter} {zlib.crc32(r.args[0].encode()) % 7}" for r in requests]

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        adapter = self._adapter()
        return [(-float(zlib.crc32(f"{adapter}|{c}|{x}".encode()) % 97), False) for c, x in (r.args for r in requests)]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def install(monkeypatch) -> type[FakeVLLM]:
    """FakeVLLM in place of lm-eval's vLLM model module, for this test; returns the class (its records emptied)."""
    module = types.ModuleType("lm_eval.models.vllm_causallms")
    module.VLLM, module.LoRARequest = FakeVLLM, LoRARequest
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", module)
    FakeVLLM.built, FakeVLLM.calls = [], []
    return FakeVLLM
