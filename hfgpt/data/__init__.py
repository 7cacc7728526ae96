"""Data: corpus sources -> `datasets` objects -> sliding-window training samples; fine-tuning datasets.

* `sources`: files, folders, globs, saved datasets and texts -> a `datasets` object with a text column.
* `stream`: the token stream (documents joined by EOS in a memory-mapped file) every window is a view of.
* `windows`: `window()`, the sliding-window samples (`input_ids`, `shift_labels`) built with `datasets.map`.
* `loader`: the book's `create_dataloader()` of `(input, target)` batches.
* `finetuning`: Alpaca-style instruction data and labelled CSVs for classification.
"""

from hfgpt._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TokenStream": "hfgpt.data.stream",
        "build_stream": "hfgpt.data.stream",
        "window": "hfgpt.data.windows",
        "WindowPairs": "hfgpt.data.loader",
        "create_dataloader": "hfgpt.data.loader",
        "load_corpus": "hfgpt.data.sources",
        "Split": "hfgpt.data.split",
    },
)
