"""TensorBoard event files: one writer per job, each in a file of its own in the variant's folder (a folder that many
jobs, on many nodes, write at once: every event file has one writer). Any error of the writer is a warning."""

from __future__ import annotations

import numbers
from pathlib import Path

from maple.track.settings import warn


def hparam_value(value):
    """What TensorBoard's HParams dashboard takes (a number, string or bool); lists and None as text."""
    if isinstance(value, bool | str) or isinstance(value, numbers.Number):
        return value
    return str(value)


class EventLog:
    """A SummaryWriter that never raises: the first error is a warning and the log writes nothing after it.
    purge_step: a resumed finetune's first step; TensorBoard then drops what an earlier (killed) writer logged at that
    step and after, so the curve continues from the checkpoint without a duplicate stretch."""

    def __init__(self, folder: Path | None, purge_step: int | None = None):
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            Path(folder).mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step, flush_secs=30)
        except Exception as error:  # noqa: BLE001 (any failure of a tracker is a warning)
            warn(f"no TensorBoard events in {folder}: {type(error).__name__}: {error}")

    def _guarded(self, action) -> None:
        if self.writer is None:
            return
        try:
            action(self.writer)
        except Exception as error:  # noqa: BLE001
            warn(f"TensorBoard events stop here: {type(error).__name__}: {error}")
            self.writer = None

    def scalars(self, values: dict, step: int, flush: bool = True) -> None:
        def write(writer):
            for tag, value in values.items():
                if isinstance(value, numbers.Number) and not isinstance(value, bool):
                    writer.add_scalar(tag, float(value), step)
            if flush:
                writer.flush()

        self._guarded(write)

    def hparams(self, params: dict, metrics: list[str]) -> None:
        """The run's parameters for the HParams dashboard, its columns the metrics named (logged as scalars)."""
        from torch.utils.tensorboard.summary import hparams

        def write(writer):
            exp, ssi, sei = hparams({k: hparam_value(v) for k, v in params.items()}, dict.fromkeys(metrics, 0.0))
            for summary in (exp, ssi, sei):
                writer.file_writer.add_summary(summary)
            writer.flush()

        self._guarded(write)

    def text(self, tag: str, text: str, step: int = 0) -> None:
        self._guarded(lambda writer: writer.add_text(tag, text, step))

    def close(self) -> None:
        self._guarded(lambda writer: writer.close())
        self.writer = None
