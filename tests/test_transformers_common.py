"""transformers' own common model tests (ModelTesterMixin, GenerationTesterMixin, ConfigTester) on hfgpt.

Every model in transformers passes these mixins; running them here holds hfgpt to the same contract as
`GPT2LMHeadModel` (tuple outputs, loading with other shapes, static cache and full-graph compile, switching
the attention implementation, output capturing...). The mixins are transformers' test code, which is not
installed with the package, so it is found at test time, never copied into this repository:

1. `HFGPT_TRANSFORMERS_SOURCE`: a transformers checkout (or unpacked sdist) of the installed version;
2. a git mirror of transformers (`HFGPT_TRANSFORMERS_MIRROR`, default `/work/.mirror/huggingface+transformers`),
   whose tag `v<installed version>` is unpacked into a cache folder;
3. the sdist that `pip download --no-deps --no-binary :all: transformers==<installed version>` fetches, cached
   under `~/.cache/hfgpt`. The sdist ships `tests/test_modeling_common.py` and
   `tests/test_configuration_common.py` but not `tests/generation/` or `tests/exporters/`: the generation
   tests are then skipped, saying so.

Without any of these (offline, no checkout) the module is skipped with the reason.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tarfile
import types
import unittest
from pathlib import Path
from unittest import mock

import pytest
import transformers

VERSION = transformers.__version__
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hfgpt" / f"transformers-{VERSION}"
PACKAGE = (
    "transformers_common_tests"  # transformers' tests/, imported under a name that cannot clash with ours
)


def _from_mirror() -> Path | None:
    mirror = Path(os.environ.get("HFGPT_TRANSFORMERS_MIRROR", "/work/.mirror/huggingface+transformers"))
    git_dir = next(
        (p for p in (mirror / "repo" / ".git", mirror / "repo", mirror) if (p / "HEAD").exists()), None
    )
    if git_dir is None:
        return None
    target = CACHE / "mirror"
    if not (target / "tests" / "test_modeling_common.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", f"--git-dir={git_dir}", "archive", f"v{VERSION}", "tests"],
            capture_output=True,
            check=False,
        )
        if archive.returncode:
            return None
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def _from_sdist() -> Path | None:
    target = CACHE / "sdist"
    unpacked = target / f"transformers-{VERSION}"
    if not (unpacked / "tests" / "test_modeling_common.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q"]
        done = subprocess.run(
            [*command, "-d", str(target), f"transformers=={VERSION}"], capture_output=True, timeout=180
        )
        archives = sorted(target.glob(f"transformers-{VERSION}.tar.gz"))
        if done.returncode or not archives:
            return None
        with tarfile.open(archives[0]) as archive:
            archive.extractall(target, filter="data")
    return unpacked


def transformers_source() -> tuple[Path | None, str]:
    """The root of a transformers source tree of the installed version, and where it came from."""
    if "HFGPT_TRANSFORMERS_SOURCE" in os.environ:
        return Path(os.environ["HFGPT_TRANSFORMERS_SOURCE"]), "HFGPT_TRANSFORMERS_SOURCE"
    for finder, origin in ((_from_mirror, "git mirror"), (_from_sdist, "PyPI sdist")):
        try:
            root = finder()
        except (OSError, subprocess.SubprocessError, tarfile.TarError):
            root = None
        if root is not None:
            return root, origin
    return None, ""


def _stub(name: str, **attributes) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module


def import_common_tests(root: Path) -> tuple[types.ModuleType, types.ModuleType, bool]:
    """Import `test_modeling_common` and `test_configuration_common` from `root/tests`, standing in empty
    mixins for the parts a sdist lacks. Returns the two modules and whether the generation tests are real."""
    init = (
        root / "tests" / "__init__.py"
    )  # in a checkout, missing from the sdist; `direct_transformers_import`
    if not init.exists():  # in test_configuration_common executes it
        init.touch()
    package = types.ModuleType(PACKAGE)
    package.__path__ = [str(root / "tests")]
    sys.modules[PACKAGE] = package
    has_generation = (root / "tests" / "generation" / "test_utils.py").exists()
    if not has_generation:
        _stub(f"{PACKAGE}.generation", __path__=[])
        _stub(f"{PACKAGE}.generation.test_utils", GenerationTesterMixin=type("GenerationTesterMixin", (), {}))
    if not (root / "tests" / "exporters" / "test_export.py").exists():
        _stub(f"{PACKAGE}.exporters", __path__=[])
        _stub(f"{PACKAGE}.exporters.test_export", ExportTesterMixin=type("ExportTesterMixin", (), {}))
    if not (root / "tests" / "utils" / "test_configuration_utils.py").exists():
        _stub(f"{PACKAGE}.utils", __path__=[])
        _stub(f"{PACKAGE}.utils.test_configuration_utils", config_common_kwargs={})
    modeling = importlib.import_module(f"{PACKAGE}.test_modeling_common")
    configuration = importlib.import_module(f"{PACKAGE}.test_configuration_common")
    return modeling, configuration, has_generation


SOURCE, ORIGIN = transformers_source()
if SOURCE is None or not (SOURCE / "tests" / "test_modeling_common.py").exists():
    pytest.skip(
        f"no transformers {VERSION} source tree with tests/ (set HFGPT_TRANSFORMERS_SOURCE to a checkout, or let "
        "`pip download transformers` reach PyPI)",
        allow_module_level=True,
    )
pytest.importorskip(
    "parameterized", reason="transformers' test mixins need `parameterized` (pip install -e .[dev])"
)

import torch  # noqa: E402

from hfgpt import HFGPTConfig, HFGPTForCausalLM, HFGPTForSequenceClassification, HFGPTModel  # noqa: E402

common, config_common, HAS_GENERATION = import_common_tests(SOURCE)
GenerationTesterMixin = sys.modules[f"{PACKAGE}.generation.test_utils"].GenerationTesterMixin
ids_tensor, random_attention_mask = common.ids_tensor, common.random_attention_mask


class HFGPTModelTester:
    """Builds small configs and inputs for the mixins, as transformers' `GPT2ModelTester` does for GPT-2."""

    def __init__(self, parent, position_encoding: str = "learned", batch_size: int = 14, seq_length: int = 7):
        self.parent = parent
        self.position_encoding = position_encoding
        self.batch_size, self.seq_length = batch_size, seq_length
        self.is_training = True
        self.use_labels = True
        self.vocab_size = 99
        self.hidden_size = 32
        self.num_hidden_layers = 2
        self.num_attention_heads = 4
        self.max_position_embeddings = 512
        self.num_labels = 3
        self.base_model_class = HFGPTModel
        self.bos_token_id = self.eos_token_id = self.pad_token_id = self.vocab_size - 1

    def get_config(self) -> HFGPTConfig:
        return HFGPTConfig(
            vocab_size=self.vocab_size,
            emb_dim=self.hidden_size,
            n_layers=self.num_hidden_layers,
            n_heads=self.num_attention_heads,
            context_length=self.max_position_embeddings,
            drop_rate=0.0,
            position_encoding=self.position_encoding,
            num_labels=self.num_labels,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
        )

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size - 1)  # no pad inside
        attention_mask = random_attention_mask([self.batch_size, self.seq_length])
        labels = ids_tensor([self.batch_size], self.num_labels) if self.use_labels else None
        return self.get_config(), input_ids, attention_mask, labels

    def prepare_config_and_inputs_for_common(self):
        config, input_ids, attention_mask, _ = self.prepare_config_and_inputs()
        return config, {"input_ids": input_ids, "attention_mask": attention_mask}

    def create_and_check_model(self, config, input_ids, attention_mask, labels):
        model = HFGPTModel(config).eval()
        out = model(input_ids, attention_mask=attention_mask)
        self.parent.assertEqual(
            out.last_hidden_state.shape, (self.batch_size, self.seq_length, self.hidden_size)
        )
        self.parent.assertEqual(out.cache.get_seq_length(), self.seq_length)

    def create_and_check_lm_head_model(self, config, input_ids, attention_mask, labels):
        model = HFGPTForCausalLM(config).eval()
        out = model(input_ids, attention_mask=attention_mask, labels=input_ids)
        self.parent.assertEqual(out.logits.shape, (self.batch_size, self.seq_length, self.vocab_size))
        self.parent.assertEqual(out.loss.shape, ())

    def create_and_check_sequence_classification(self, config, input_ids, attention_mask, labels):
        model = HFGPTForSequenceClassification(config).eval()
        out = model(input_ids, attention_mask=attention_mask, labels=labels)
        self.parent.assertEqual(out.logits.shape, (self.batch_size, self.num_labels))


class HFGPTCommonTests(common.ModelTesterMixin, GenerationTesterMixin):
    """transformers' common tests for the three hfgpt model classes; subclasses pick the positional strategy.

    The mixins tell a base model from a causal LM or a classifier by looking its class name up in
    transformers' built-in Auto mappings; hfgpt registers through `AutoModel.register` instead, so its names
    are added to those mappings while the tests run (otherwise, e.g., the mismatched-shapes tests would skip
    every class without saying so).
    """

    all_model_classes = (HFGPTModel, HFGPTForCausalLM, HFGPTForSequenceClassification)
    all_generative_model_classes = (HFGPTForCausalLM,)
    position_encoding = "learned"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.mappings = [
            mock.patch.dict(getattr(common, names), {"hfgpt": model_class.__name__})
            for names, model_class in (
                ("MODEL_MAPPING_NAMES", HFGPTModel),
                ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", HFGPTForCausalLM),
                ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", HFGPTForSequenceClassification),
            )
        ]
        for mapping in cls.mappings:
            mapping.start()

    @classmethod
    def tearDownClass(cls):
        for mapping in cls.mappings:
            mapping.stop()
        super().tearDownClass()

    def setUp(self):
        self.model_tester = HFGPTModelTester(self, position_encoding=self.position_encoding)
        self.config_tester = config_common.ConfigTester(self, config_class=HFGPTConfig, emb_dim=36)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model(self):
        self.model_tester.create_and_check_model(*self.model_tester.prepare_config_and_inputs())

    def test_lm_head_model(self):
        self.model_tester.create_and_check_lm_head_model(*self.model_tester.prepare_config_and_inputs())

    def test_sequence_classification_model(self):
        self.model_tester.create_and_check_sequence_classification(
            *self.model_tester.prepare_config_and_inputs()
        )

    def test_generation_mixin_is_real(self):
        if not HAS_GENERATION:
            self.skipTest(
                f"transformers' tests/generation/test_utils.py is not in the {ORIGIN} source ({SOURCE}): "
                "GenerationTesterMixin did not run; set HFGPT_TRANSFORMERS_SOURCE to a full checkout"
            )


class LearnedPositionsTest(HFGPTCommonTests, unittest.TestCase):
    position_encoding = "learned"


class RotaryPositionsTest(HFGPTCommonTests, unittest.TestCase):
    position_encoding = "rope"


def test_mixins_come_from_the_installed_version():
    assert ORIGIN and (SOURCE / "tests" / "test_modeling_common.py").exists()
    assert torch.__version__  # the mixins run on torch: imported above
