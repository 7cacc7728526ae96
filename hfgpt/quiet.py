"""`--no-progress`: no progress bars or informational logging from hfgpt, transformers, datasets or the Hub.

transformers, datasets and huggingface_hub each keep their own switch for progress bars (datasets' "Generating
train split", transformers' "Writing model shards", the Hub's downloads) and their own loggers; `quiet()`
turns them all off for the duration and restores them after, so a command run with `--no-progress` prints its
own lines only, and a failure prints one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet(enabled: bool = True) -> Iterator[None]:
    """Silence progress bars and info/warning logs of the HF libraries while the block runs (if `enabled`)."""
    if not enabled:
        yield
        return
    import datasets.utils as datasets_utils
    import datasets.utils.logging as datasets_logging
    import transformers.utils.logging as transformers_logging

    bars = (transformers_logging.is_progress_bar_enabled(), not datasets_utils.are_progress_bars_disabled())
    levels = (transformers_logging.get_verbosity(), datasets_logging.get_verbosity())
    transformers_logging.disable_progress_bar()  # also the Hub's
    datasets_utils.disable_progress_bars()
    transformers_logging.set_verbosity_error()
    datasets_logging.set_verbosity_error()
    try:
        yield
    finally:
        if bars[0]:
            transformers_logging.enable_progress_bar()
        if bars[1]:
            datasets_utils.enable_progress_bars()
        transformers_logging.set_verbosity(levels[0])
        datasets_logging.set_verbosity(levels[1])


__all__ = ["quiet"]
