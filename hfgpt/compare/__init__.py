"""The positional-encoding workbench: train one model per strategy on the same budget, compare how they extrapolate.

    options (`arguments`) -> for each strategy: `train()` into `<output_dir>/<strategy>/` (skipped when already
    complete; `runs`) -> held-out text scored at every evaluation length with both protocols (`runs`, through
    `hfgpt.evaluation`) -> results.csv, extrapolation.png, training_curves.png, attention.png, report.md
    (`report`); `workbench.compare()` runs it all.

Every strategy gets the same `TrainArguments` but `position_encoding`: the same corpus, held-out split,
tokenizer (trained on the same training split with the same seed), model size, seed, data order and number
of optimizer steps, so the only difference between the runs is where positions enter the model. The
held-out text they are scored on is the split their runs held out (`hfgpt.training.pretraining.split_corpus`).

Resumable: a strategy whose model directory is complete (`hfgpt.training.outputs.finished_run`) is not
retrained, an interrupted one continues from its checkpoint, and `settings.json` refuses a rerun with other
training settings in the same directory (its models would not be comparable).

Evaluation protocols, over the same held-out tokens at every length:

* `non-overlapping`: windows of `length` tokens side by side (the ALiBi paper's main protocol);
* `sliding`: windows start every `sliding_stride` tokens (default: half the *training* length, the same for
  every evaluation length), and each scores only the tokens no earlier window scored, so every scored token
  past the first window sees at least `length - stride + 1` tokens of context.
"""

from hfgpt.compare.arguments import COMPARE_DEFAULTS, CompareOptions, Comparison
from hfgpt.compare.workbench import CompareResult, compare

__all__ = ["COMPARE_DEFAULTS", "CompareOptions", "CompareResult", "Comparison", "compare"]
