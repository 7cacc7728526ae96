"""Training: pretraining (`hfgpt train`) and fine-tuning recipes on transformers' Trainer.

* `arguments`: `TrainArguments`, every `hfgpt train` option defined once; `trainer_arguments()`.
* `pretraining`: `train()`, corpus to published model.
* `finetuning`: continued pretraining, classification and instruction tuning.
* `lora`: LoRA adapters through peft (`lora_config`, `load_lora`, `merge_lora`).
* `outputs`: the run lifecycle (`RunDirectory`: staging, recovering, publishing, resuming, history).
"""

from hfgpt._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "TrainArguments": "hfgpt.training.arguments",
        "trainer_arguments": "hfgpt.training.arguments",
        "TrainResult": "hfgpt.training.pretraining",
        "train": "hfgpt.training.pretraining",
        "FinetuneResult": "hfgpt.training.finetuning",
        "continue_pretraining": "hfgpt.training.finetuning",
        "finetune_classifier": "hfgpt.training.finetuning",
        "finetune_instructions": "hfgpt.training.finetuning",
        "RunDirectory": "hfgpt.training.outputs",
        "load_lora": "hfgpt.training.lora",
        "lora_config": "hfgpt.training.lora",
        "merge_lora": "hfgpt.training.lora",
    },
)
