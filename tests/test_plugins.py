"""The plugin system: entry-point discovery, lookups, duplicates, broken and misspelled plugins, the CLI listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pluggy
import pytest

import hfgpt
from hfgpt import plugins


@pytest.fixture
def fresh_plugins():
    """Reload plugins from scratch around a test, so entry points added by the test are (then no longer) seen."""
    plugins.reset_for_tests()
    yield plugins
    plugins.reset_for_tests()


def make_distribution(root: Path, dist: str, module: str, source: str, entry_name: str | None = None) -> None:
    """Write an installed distribution the way pip does: a module plus a ``.dist-info`` with entry_points.txt."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[hfgpt]\n{entry_name or module} = {module}\n")


GOOD_PLUGIN = """
    import torch
    from hfgpt import hookimpl

    class Identity(torch.nn.Module):
        pass

    class TestTokenizer:
        @classmethod
        def from_corpus(cls, corpus=None):
            raise NotImplementedError

    @hookimpl
    def register_position_encodings(register):
        register("test-identity", Identity)

    @hookimpl
    def register_tokenizers(register):
        register("test-tok", TestTokenizer)
"""


def test_builtins_register_through_the_same_door(fresh_plugins):
    names = {name for name, _ in fresh_plugins.load_plugins().list_name_plugin()}
    assert set(plugins.DEFAULT_PLUGINS) <= names
    assert "learned" in plugins.strategies("position_encoding")
    assert (
        plugins.strategies("position_encoding")["learned"].plugin
        == "hfgpt.default_plugins.position_encodings"
    )


def test_entry_point_discovery(fresh_plugins, tmp_path, monkeypatch):
    make_distribution(tmp_path, "hfgpt-testplug", "hfgpt_testplug", GOOD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = plugins.get_position_encoding("test-identity")
    assert cls.__module__ == "hfgpt_testplug"
    assert plugins.get_tokenizer_class("test-tok").__name__ == "TestTokenizer"
    (entry,) = [e for e in plugins.list_plugins() if e["name"] == "hfgpt_testplug"]
    assert entry["distribution"] == "hfgpt-testplug"
    assert entry["version"] == "1.2.3"
    assert entry["status"] == "ok"
    assert entry["registered"] == {"position_encoding": ["test-identity"], "tokenizer": ["test-tok"]}


def test_autoload_can_be_disabled(fresh_plugins, tmp_path, monkeypatch):
    make_distribution(tmp_path, "hfgpt-testplug", "hfgpt_testplug", GOOD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HFGPT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "test-identity" not in plugins.strategies("position_encoding")
    assert "learned" in plugins.strategies("position_encoding")


def test_unknown_name_lists_installed(fresh_plugins):
    with pytest.raises(plugins.UnknownStrategyError) as info:
        plugins.get_position_encoding("no-such-encoding")
    message = str(info.value)
    assert "'no-such-encoding'" in message
    for name in plugins.strategies("position_encoding"):
        assert name in message
    assert "plugin" in message
    assert isinstance(info.value, ValueError)


def test_duplicate_name_names_both_plugins(fresh_plugins):
    class First:
        @hfgpt.hookimpl
        def register_position_encodings(self, register):
            register("twice", object)

    class Second:
        @hfgpt.hookimpl
        def register_position_encodings(self, register):
            register("twice", int)

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(First(), name="first-plugin")
    fresh_plugins.pm.register(Second(), name="second-plugin")
    with pytest.raises(plugins.DuplicateStrategyError, match="first-plugin.*second-plugin"):
        plugins.get_position_encoding("twice")


def test_duplicate_of_a_builtin_is_an_error(fresh_plugins):
    class Shadow:
        @hfgpt.hookimpl
        def register_position_encodings(self, register):
            register("learned", object)

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(Shadow(), name="shadow")
    with pytest.raises(
        plugins.DuplicateStrategyError, match="hfgpt.default_plugins.position_encodings.*shadow"
    ):
        plugins.strategies("position_encoding")


BROKEN_PLUGIN = """
    raise ImportError("needs the package 'frobnicate', which is not installed")
"""

MISSPELLED_PLUGIN = """
    from hfgpt import hookimpl

    @hookimpl
    def register_position_encoding(register):  # missing the final 's'
        register("never", object)
"""


def test_broken_plugin_is_skipped_with_a_warning(fresh_plugins, tmp_path, monkeypatch):
    make_distribution(tmp_path, "hfgpt-broken", "hfgpt_broken", BROKEN_PLUGIN)
    make_distribution(tmp_path, "hfgpt-testplug", "hfgpt_testplug", GOOD_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="hfgpt_broken.*hfgpt-broken.*frobnicate"):
        registered = plugins.strategies("position_encoding")
    assert "test-identity" in registered and "learned" in registered  # the others still work
    (entry,) = [e for e in plugins.list_plugins() if e["name"] == "hfgpt_broken"]
    assert entry["status"] == "failed"
    assert "ImportError" in entry["error"] and "frobnicate" in entry["error"]


def test_misspelled_hook_fails_loudly(fresh_plugins, tmp_path, monkeypatch):
    make_distribution(tmp_path, "hfgpt-typo", "hfgpt_typo", MISSPELLED_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match="hfgpt_typo.*register_position_encoding"):
        plugins.load_plugins()
    (entry,) = [e for e in plugins.list_plugins() if e["name"] == "hfgpt_typo"]
    assert entry["status"] == "failed" and "PluginValidationError" in entry["error"]


def test_misspelled_hook_registered_in_process_raises(fresh_plugins):
    class Typo:
        @hfgpt.hookimpl
        def register_tokenizer(self, register):
            pass

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(Typo(), name="typo")
    with pytest.raises(pluggy.PluginValidationError, match="register_tokenizer"):
        plugins.strategies("tokenizer")


def test_hook_that_raises_is_reported_not_fatal(fresh_plugins):
    class Raises:
        @hfgpt.hookimpl
        def register_tokenizers(self, register):
            register("half", object)
            raise RuntimeError("boom")

    fresh_plugins.load_plugins()
    fresh_plugins.pm.register(Raises(), name="raises")
    with pytest.warns(RuntimeWarning, match="raises.*boom"):
        registered = plugins.strategies("tokenizer")
    assert "half" not in registered


def run_cli(*args: str, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "hfgpt", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_import_hfgpt_survives_a_broken_plugin_and_cli_reports_it(tmp_path):
    make_distribution(tmp_path, "hfgpt-broken", "hfgpt_broken", BROKEN_PLUGIN)
    make_distribution(tmp_path, "hfgpt-testplug", "hfgpt_testplug", GOOD_PLUGIN)
    result = run_cli("plugins", "--json", pythonpath=tmp_path)
    assert result.returncode == 0, result.stderr
    listing = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert listing["hfgpt_broken"]["status"] == "failed"
    assert "frobnicate" in listing["hfgpt_broken"]["error"]
    assert listing["hfgpt_testplug"]["distribution"] == "hfgpt-testplug"
    assert listing["hfgpt_testplug"]["registered"]["tokenizer"] == ["test-tok"]
    builtin = listing["hfgpt.default_plugins.position_encodings"]
    assert builtin["builtin"] is True and "learned" in builtin["registered"]["position_encoding"]

    text = run_cli("plugins", pythonpath=tmp_path)
    assert text.returncode == 0
    assert "hfgpt_broken  (hfgpt-broken 1.2.3)  [failed]" in text.stdout
    assert "error: ImportError" in text.stdout


def test_unknown_strategy_error_in_config(fresh_plugins):
    with pytest.raises(ValueError, match="unknown position-encoding strategy 'nope'.*Installed: .*learned"):
        hfgpt.HFGPTConfig(position_encoding="nope")


def test_no_warning_when_all_plugins_load(fresh_plugins):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plugins.list_plugins()


def test_cli_reports_a_conflicting_plugin_pair_in_one_line(tmp_path):
    make_distribution(tmp_path, "hfgpt-one", "hfgpt_one", GOOD_PLUGIN)
    make_distribution(tmp_path, "hfgpt-two", "hfgpt_two", GOOD_PLUGIN)
    result = run_cli("plugins", pythonpath=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "'test-identity' is registered by both plugin" in line
    assert "'hfgpt_one'" in line and "'hfgpt_two'" in line
    assert "uninstall one of the two plugins" in line and "Traceback" not in result.stderr


def test_assert_registered_checks_distribution_name_kind_and_class():
    from hfgpt.position_encoding import RotaryPositionEncoding
    from hfgpt.testing import assert_registered

    assert_registered("position_encoding", "rope", "hfgpt", RotaryPositionEncoding)  # the built-ins
    wrong = [
        (("position_encoding", "rope", "no-such-dist", RotaryPositionEncoding), "lists no plugin"),
        (("tokenizer", "rope", "hfgpt", RotaryPositionEncoding), "not tokenizer 'rope'"),
        (("position_encoding", "rope", "hfgpt", dict), "not <class 'dict'>"),
    ]
    for args, message in wrong:
        with pytest.raises(AssertionError, match=message):
            assert_registered(*args)
