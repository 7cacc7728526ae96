"""hfgpt.data: sliding windows with the classic GPTDatasetV1 semantics, checked against plain-Python references.

References are written here independently of hfgpt.data: the book's loader (tiktoken + a Python loop of
`torch.tensor` windows) and loop-based window lists for random token streams.
"""

from __future__ import annotations

from pathlib import Path

import dill
import pytest
import tiktoken
import tiktoken.load
import torch
from datasets import Dataset, DatasetDict, IterableDataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfgpt import GPT2BPETokenizer, HFGPTConfig, HFGPTForCausalLM
from hfgpt.data import create_dataloader, load_corpus, window
from hfgpt.data import stream as stream_module
from hfgpt.data.sources import default_corpus_path
from hfgpt.errors import DataError
from tests.helpers.windows import reference_windows

VERDICT = default_corpus_path()
EOS = 50256


# --- independent references -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_tokenizer() -> GPT2BPETokenizer:
    return GPT2BPETokenizer()


class ReferenceDataset(torch.utils.data.Dataset):
    """The book's GPTDatasetV1, written from its description: a Python loop of torch.tensor windows."""

    def __init__(self, text: str, encoding: tiktoken.Encoding, max_length: int, stride: int):
        token_ids = encoding.encode(text, allowed_special={"<|endoftext|>"})
        self.inputs, self.targets = [], []
        for start in range(0, len(token_ids) - max_length, stride):
            self.inputs.append(torch.tensor(token_ids[start : start + max_length]))
            self.targets.append(torch.tensor(token_ids[start + 1 : start + max_length + 1]))

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int):
        return self.inputs[index], self.targets[index]


def reference_loader(text, encoding, batch_size=4, max_length=256, stride=128, shuffle=True, drop_last=True):
    dataset = ReferenceDataset(text, encoding, max_length, stride)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last)


def as_pairs(windows) -> list[tuple[list[int], list[int]]]:
    pairs = []
    for row in windows:
        assert set(row) == {"input_ids", "shift_labels"}  # the book's input and target, nothing else
        assert row["input_ids"].dtype == row["shift_labels"].dtype == torch.long  # widened as rows are read
        pairs.append((row["input_ids"].tolist(), row["shift_labels"].tolist()))
    return pairs


# --- the book's anchor and the classic loader -------------------------------------------------------------
def test_verdict_first_batch_matches_the_book(gpt2_tokenizer):
    loader = create_dataloader(VERDICT.read_text(), batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(loader))
    assert inputs.dtype == targets.dtype == torch.long
    assert inputs.shape == targets.shape == (8, 4)
    assert inputs[:2].tolist() == [[40, 367, 2885, 1464], [1807, 3619, 402, 271]]
    assert targets[0].tolist() == [367, 2885, 1464, 1807]
    # targets are the inputs shifted by one token: with stride == max_length, row i's target ends where
    # row i + 1's input begins.
    assert torch.equal(targets[:, :-1], inputs[:, 1:])
    assert torch.equal(targets[:-1, -1], inputs[1:, 0])


@pytest.mark.parametrize(
    ("batch_size", "max_length", "stride", "drop_last", "num_workers"),
    [(8, 4, 4, False, 0), (4, 256, 128, True, 0), (3, 32, 7, True, 2), (5, 16, 40, False, 0)],
)
def test_create_dataloader_matches_reference_unshuffled(
    tiktoken_gpt2, batch_size, max_length, stride, drop_last, num_workers
):
    text = VERDICT.read_text()
    options = dict(batch_size=batch_size, max_length=max_length, stride=stride, drop_last=drop_last)
    ours = list(create_dataloader(text, shuffle=False, num_workers=num_workers, **options))
    reference = list(reference_loader(text, tiktoken_gpt2, shuffle=False, **options))
    assert len(ours) == len(reference) > 0
    for (inputs, targets), (ref_inputs, ref_targets) in zip(ours, reference):
        assert inputs.dtype == targets.dtype == torch.long
        assert torch.equal(inputs, ref_inputs)
        assert torch.equal(targets, ref_targets)


def test_create_dataloader_matches_reference_shuffled(tiktoken_gpt2):
    text = VERDICT.read_text()
    torch.manual_seed(123)
    ours = list(create_dataloader(text, batch_size=4, max_length=64, stride=32, shuffle=True))
    torch.manual_seed(123)
    reference = list(reference_loader(text, tiktoken_gpt2, batch_size=4, max_length=64, stride=32))
    assert len(ours) == len(reference) > 1
    for (inputs, targets), (ref_inputs, ref_targets) in zip(ours, reference):
        assert torch.equal(inputs, ref_inputs)
        assert torch.equal(targets, ref_targets)
    unshuffled = next(iter(reference_loader(text, tiktoken_gpt2, 4, 64, 32, shuffle=False)))
    assert not torch.equal(ours[0][0], unshuffled[0])  # the shuffle really happened


def test_endoftext_in_text_is_the_special_token(tiktoken_gpt2):
    text = VERDICT.read_text()[:3000]
    joined = text + "<|endoftext|>" + text[::-1]
    ours = list(create_dataloader(joined, batch_size=2, max_length=16, stride=16, shuffle=False))
    reference = list(reference_loader(joined, tiktoken_gpt2, 2, 16, 16, shuffle=False))
    assert any((inputs == EOS).any() for inputs, _ in ours)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(ours, reference))


# --- sources ----------------------------------------------------------------------------------------------
def test_sources_agree_with_the_joined_reference(tmp_path, tiktoken_gpt2, gpt2_tokenizer):
    """A list of texts, paths to files, a folder, a glob and datasets objects all window the same EOS-joined
    stream."""
    text = VERDICT.read_text()
    docs = [text[:7000], text[7000:14000], text[14000:]]
    for i, doc in enumerate(docs):
        (tmp_path / "corpus").mkdir(exist_ok=True)
        (tmp_path / "corpus" / f"part{i}.txt").write_text(doc)
    expected = reference_windows(
        [tiktoken_gpt2.encode(doc) for doc in docs], max_length=32, stride=20, separator=EOS
    )
    files = [tmp_path / "corpus" / f"part{i}.txt" for i in range(3)]
    cache = str(tmp_path / "cache")
    sources = {
        "texts": docs,
        "paths": files,
        "folder": load_corpus(tmp_path / "corpus", cache_dir=cache),
        "glob": load_corpus(str(tmp_path / "corpus" / "part*.txt"), cache_dir=cache),
        "dataset": Dataset.from_dict({"text": docs}),
    }
    for name, source in sources.items():
        windows = window(source, gpt2_tokenizer, max_length=32, stride=20)
        assert isinstance(windows, Dataset), name
        assert as_pairs(windows) == expected, name

    # files are cached on disk (stream and windows next to the Arrow cache): other window sizes, strides and
    # num_proc must not pick up a cached result made for different arguments
    corpus = load_corpus(files, cache_dir=cache)
    for max_length, stride, within, num_proc in [(32, 20, True, None), (16, 5, False, 2), (32, 20, False, 2)]:
        windows = window(
            corpus, gpt2_tokenizer, max_length, stride, within_documents=within, num_proc=num_proc
        )
        tokens = [tiktoken_gpt2.encode(doc) for doc in docs]
        assert as_pairs(windows) == reference_windows(tokens, max_length, stride, EOS, within)

    streamed = window(Dataset.from_dict({"text": docs}).to_iterable_dataset(), gpt2_tokenizer, 32, 20)
    assert isinstance(streamed, IterableDataset)
    assert as_pairs(streamed) == expected


def test_single_string_and_text_column(gpt2_tokenizer, tiktoken_gpt2):
    text = VERDICT.read_text()[:5000]
    expected = reference_windows([tiktoken_gpt2.encode(text)], max_length=10, stride=3)
    assert as_pairs(window(text, gpt2_tokenizer, max_length=10, stride=3)) == expected
    renamed = Dataset.from_dict({"body": [text], "other": [1]})
    assert as_pairs(window(renamed, gpt2_tokenizer, 10, 3, text_column="body")) == expected


def test_code_full_of_glob_characters_is_text(gpt2_tokenizer, tiktoken_gpt2):
    # Regression: texts with "*", "?" and "[" were globbed as paths (and deep patterns hit RecursionError).
    code = ["x = a[0] / b[1] ** 2  # why?\n" * 1100, "print(*args)\n" * 50]
    expected = reference_windows([tiktoken_gpt2.encode(t) for t in code], 64, 64, separator=EOS)
    assert as_pairs(window(code, gpt2_tokenizer, max_length=64, stride=64)) == expected


def test_dataset_dict_windows_every_split(gpt2_tokenizer, tiktoken_gpt2):
    text = VERDICT.read_text()
    splits = DatasetDict(
        {
            "train": Dataset.from_dict({"text": [text[:15000]]}),
            "validation": Dataset.from_dict({"text": [text[15000:]]}),
        }
    )
    windows = window(splits, gpt2_tokenizer, max_length=16, stride=16)
    assert isinstance(windows, DatasetDict) and set(windows) == {"train", "validation"}
    for split, part in (("train", text[:15000]), ("validation", text[15000:])):
        assert as_pairs(windows[split]) == reference_windows([tiktoken_gpt2.encode(part)], 16, 16)


def test_num_proc_gives_the_same_windows(gpt2_tokenizer, tiktoken_gpt2):
    text = VERDICT.read_text()
    docs = [text[i : i + 2000] for i in range(0, len(text), 2000)]
    expected = reference_windows([tiktoken_gpt2.encode(d) for d in docs], 24, 10, separator=EOS)
    windows = window(docs, gpt2_tokenizer, max_length=24, stride=10, num_proc=2, batch_size=50)
    assert as_pairs(windows) == expected


@pytest.mark.parametrize("num_proc", [2, 3])
def test_num_proc_shards_hold_equal_text_and_the_windows_keep_the_documents_order(gpt2_tokenizer, num_proc):
    # small documents first, then large ones: datasets' contiguous shards alone would be 10x apart
    text = VERDICT.read_text()
    docs = [text[:50]] * 40 + [text[: 500 + 37 * i] for i in range(20)]
    source = Dataset.from_dict({"text": docs}).shuffle(seed=1)  # an indices mapping, too
    order = stream_module._balanced_order(source, "text", num_proc)
    assert sorted(order.tolist()) == list(range(len(docs)))
    div, mod = divmod(len(docs), num_proc)
    sizes = [len(row.encode()) for row in source["text"]]
    shares, first = [], 0
    for rank in range(num_proc):  # the shards datasets' map cuts: equal row counts, contiguous
        rows = order[first : first + div + (rank < mod)]
        first += len(rows)
        assert list(rows) == sorted(rows)  # each shard keeps the documents' order
        shares.append(sum(sizes[i] for i in rows))
    assert max(shares) < 1.15 * min(shares)

    expected = window(source, gpt2_tokenizer, max_length=24, stride=10)
    windows = window(source, gpt2_tokenizer, max_length=24, stride=10, num_proc=num_proc)
    assert as_pairs(windows) == as_pairs(expected)


def test_the_tokenizing_function_reaches_workers_through_the_standard_pickler(gpt2_tokenizer):
    # datasets sends map's function to num_proc workers with dill, whose pure-Python pickler takes over a
    # second for GPT-2's tokenizer; the function hands dill the tokenizer already pickled (bytes).
    encoder = stream_module._Encoder(gpt2_tokenizer, "text")
    restored = dill.loads(dill.dumps(encoder))
    batch = {"text": ["Hello, world!", "I had always thought Jack Gisburn"]}
    assert [ids.tolist() for ids in restored(batch)["input_ids"]] == [
        ids.tolist() for ids in encoder(batch)["input_ids"]
    ]
    reduced = encoder.__reduce__()
    assert reduced[0] is stream_module._unpickle_encoder and isinstance(reduced[1][0], bytes)

    # a tokenizer the standard pickler refuses is left to dill
    gpt2_tokenizer.hook = lambda text: text
    try:
        unpicklable = stream_module._Encoder(gpt2_tokenizer, "text")
        assert unpicklable.__reduce__()[0] is stream_module._Encoder
        assert dill.loads(dill.dumps(unpicklable))(batch)["input_ids"][0].tolist() == [15496, 11, 995, 0]
    finally:
        del gpt2_tokenizer.hook


def test_pretokenized_input_ids_need_no_tokenizer():
    docs = [[1, 2, 3, 4, 5], [6, 7, 8]]
    windows = window(Dataset.from_dict({"input_ids": docs}), max_length=3, stride=2, separator_id=0)
    # stream 1 2 3 4 5 0 6 7 8 (9 tokens): starts 0, 2, 4 (4 + 3 < 9), not 6 (6 + 3 = 9)
    assert as_pairs(windows) == [
        ([1, 2, 3], [2, 3, 4]),
        ([3, 4, 5], [4, 5, 0]),
        ([5, 0, 6], [0, 6, 7]),
    ]
    inside = window(Dataset.from_dict({"input_ids": docs}), max_length=3, stride=2, within_documents=True)
    # per document: 1..5 has one window (start 2 would need a 6th token); 6 7 8 is too short for any
    assert as_pairs(inside) == [([1, 2, 3], [2, 3, 4])]


# --- semantics: random token streams against the plain-loop reference ------------------------------------
documents = st.lists(st.lists(st.integers(0, 999), max_size=40), min_size=1, max_size=6)
lengths = st.integers(1, 20)
strides = st.integers(1, 25)


def _expected_or_none(docs, max_length, stride, separator, within_documents):
    expected = reference_windows(docs, max_length, stride, separator, within_documents)
    return expected or None  # no window at all: window() must raise instead of returning an empty dataset


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=documents,
    max_length=lengths,
    stride=strides,
    within=st.booleans(),
    sep=st.sampled_from([None, 1000]),
)
def test_window_matches_reference(docs, max_length, stride, within, sep):
    source = Dataset.from_dict({"input_ids": docs})
    expected = _expected_or_none(docs, max_length, stride, sep, within)
    if expected is None:
        with pytest.raises(ValueError, match="too short"):
            window(source, max_length=max_length, stride=stride, separator_id=sep, within_documents=within)
        return
    windows = window(source, max_length=max_length, stride=stride, separator_id=sep, within_documents=within)
    assert as_pairs(windows) == expected


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=documents,
    max_length=lengths,
    stride=strides,
    within=st.booleans(),
    sep=st.sampled_from([None, 1000]),
    batch_size=st.integers(1, 4),
)
def test_streaming_matches_reference(docs, max_length, stride, within, sep, batch_size):
    source = Dataset.from_dict({"input_ids": docs}).to_iterable_dataset()
    windows = window(
        source,
        max_length=max_length,
        stride=stride,
        separator_id=sep,
        within_documents=within,
        batch_size=batch_size,
    )
    assert isinstance(windows, IterableDataset)
    expected = reference_windows(docs, max_length, stride, sep, within)
    assert as_pairs(windows) == expected
    assert as_pairs(windows) == expected  # a second pass (epoch) gives the same windows


# --- the loss convention ----------------------------------------------------------------------------------
def test_shift_labels_loss_is_the_books_loss_over_all_positions():
    # stream 5 6 7 8 9 with max_length=3, stride=2: one window (start 2 would need token 5, which is missing)
    windows = window(Dataset.from_dict({"input_ids": [[5, 6, 7, 8, 9]]}), max_length=3, stride=2)
    batch = windows[:]
    assert batch["input_ids"].tolist() == [[5, 6, 7]]
    assert batch["shift_labels"].tolist() == [[6, 7, 8]]  # the book's target: all 3 positions predict

    torch.manual_seed(0)
    config = HFGPTConfig.from_preset("tiny", vocab_size=16, drop_rate=0.0)
    model = HFGPTForCausalLM(config).eval()
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits  # (1, 3, 16)
        book_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), torch.tensor([6, 7, 8]))
        ours = model(**batch).loss  # what Trainer passes: both columns
        labels_only = model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss
    torch.testing.assert_close(ours, book_loss)
    # transformers' aligned labels drop the last position: only 6 and 7 are predicted, from positions 0 and 1
    torch.testing.assert_close(
        labels_only, torch.nn.functional.cross_entropy(logits[0, :2], torch.tensor([6, 7]))
    )
    assert not torch.isclose(labels_only, book_loss)


def test_ids_are_stored_narrow_and_read_as_long():
    windows = window(Dataset.from_dict({"input_ids": [[5, 6, 7, 8, 9]]}), max_length=3, stride=2)
    assert windows.with_format(None)[0]["input_ids"] == [
        5,
        6,
        7,
    ]  # stored as uint16, plain ints when unformatted
    assert windows.features["input_ids"].feature.dtype == "uint16"
    assert windows[0]["input_ids"].dtype == torch.long


def test_windows_of_an_in_memory_corpus_live_in_a_file(gpt2_tokenizer):
    # The windows are 6x the stream's bytes: even for texts passed in memory they are written to a
    # (temporary) Arrow file and memory-mapped, not held in the process's memory.
    windows = window(VERDICT.read_text(encoding="utf-8"), gpt2_tokenizer, max_length=32, stride=16)
    assert windows.cache_files and Path(windows.cache_files[0]["filename"]).stat().st_size > 0


@pytest.mark.parametrize(("top_id", "dtype"), [(65_535, "uint16"), (65_536, "int32"), (2**31 - 1, "int32")])
def test_window_columns_use_the_smallest_type_that_holds_every_id(top_id, dtype):
    docs = [[0, 1, 2, top_id, 3], [top_id - 1, 4]]
    windows = window(Dataset.from_dict({"input_ids": docs}), max_length=2, stride=1)
    assert [windows.features[name].feature.dtype for name in windows.column_names] == [dtype] * 2
    assert as_pairs(windows) == reference_windows(docs, 2, 1)  # no id wrapped around


def test_gpt2_windows_are_uint16_in_every_split(gpt2_tokenizer):
    # The type follows the tokenizer's vocabulary (50,257 ids), not the ids a split happens to contain.
    splits = window(
        DatasetDict(
            {
                "train": Dataset.from_dict({"text": ["a b c d e f"]}),
                "validation": Dataset.from_dict({"text": ["x y z w v u"]}),
            }
        ),
        gpt2_tokenizer,
        max_length=3,
        stride=1,
    )
    assert {str(part.features["input_ids"].feature.dtype) for part in splits.values()} == {"uint16"}


def test_streamed_ids_must_fit_the_column_type(gpt2_tokenizer):
    docs = [[1, 2, 70_000, 3, 4]]
    # Without a tokenizer the largest id is unknown in advance: int32 columns, the ids kept exactly.
    streamed = window(Dataset.from_dict({"input_ids": docs}).to_iterable_dataset(), max_length=2, stride=1)
    assert streamed.features["input_ids"].feature.dtype == "int32"
    assert as_pairs(streamed) == reference_windows(docs, 2, 1)
    # With GPT-2's tokenizer the columns are uint16, so an id beyond its vocabulary is an error, not a wrap.
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 65535\], found 70000"):
        list(window(Dataset.from_dict({"input_ids": docs}).to_iterable_dataset(), gpt2_tokenizer, 2, 1))


@pytest.mark.parametrize("bad", [2**31, -1])
def test_token_ids_outside_int32_are_refused(bad):
    huge = Dataset.from_dict({"input_ids": [[1, 2, 3, bad]]})
    with pytest.raises(ValueError, match=rf"token ids must lie in \[0, 2147483647\], found {bad}"):
        window(huge, max_length=2, stride=1)


def test_streaming_regressions():
    """Found by the property test: a stride past the buffer's end, and a second epoch reusing stale state."""
    docs = [[1, 2, 3], list(range(4, 30))]
    source = Dataset.from_dict({"input_ids": docs}).to_iterable_dataset()
    windows = window(source, max_length=1, stride=10, batch_size=1)
    # stream 1..29: starts 0, 10, 20 — the second start lies past the end of the first document
    assert as_pairs(windows) == [([1], [2]), ([11], [12]), ([21], [22])]
    assert as_pairs(windows) == [([1], [2]), ([11], [12]), ([21], [22])]
    assert windows.column_names == ["input_ids", "shift_labels"]


# --- errors -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("max_length", "stride", "message"),
    [
        (4, 0, "stride=0"),
        (4, -3, "stride=-3"),
        (0, 4, "max_length=0"),
        (-1, 4, "max_length=-1"),
        (4.0, 4, "max_length=4.0"),
        ("4", 4, "max_length='4'"),
        (True, 4, "max_length=True"),
        (4, 2.5, "stride=2.5"),
    ],
)
def test_bad_window_arguments_name_the_value(gpt2_tokenizer, max_length, stride, message):
    with pytest.raises(ValueError, match="must be a positive integer") as error:
        window(VERDICT.read_text(), gpt2_tokenizer, max_length=max_length, stride=stride)
    assert message in str(error.value)
    with pytest.raises(ValueError, match="must be a positive integer"):
        create_dataloader(VERDICT.read_text(), max_length=max_length, stride=stride)


def test_exactly_max_length_plus_one_tokens_make_one_window_and_fewer_raise(gpt2_tokenizer, tiktoken_gpt2):
    text = "Hello world, this is it"  # GPT-2: Hello / world / , / this / is / it = 6 tokens
    assert tiktoken_gpt2.encode(text) == [15496, 995, 11, 428, 318, 340]
    assert as_pairs(window(text, gpt2_tokenizer, max_length=5, stride=1)) == [
        ([15496, 995, 11, 428, 318], [995, 11, 428, 318, 340])
    ]
    with pytest.raises(ValueError, match="too short") as error:
        window(text, gpt2_tokenizer, max_length=6, stride=1)
    assert "6 tokens" in str(error.value) and "max_length=6" in str(error.value) and "7" in str(error.value)
    with pytest.raises(ValueError, match="too short"):
        create_dataloader(text, max_length=256)  # the classic defaults on a tiny text: no empty loader
    with pytest.raises(ValueError, match="longest document has 3 tokens"):
        window(Dataset.from_dict({"input_ids": [[1, 2], [3, 4, 5]]}), max_length=3, within_documents=True)


def test_missing_text_column_or_tokenizer(gpt2_tokenizer):
    with pytest.raises(ValueError, match="no 'text' column") as error:
        window(Dataset.from_dict({"content": ["some text"]}), gpt2_tokenizer, 2, 1)
    assert "content" in str(error.value) and "text_column=" in str(error.value)
    with pytest.raises(ValueError, match="pass a tokenizer"):
        window(VERDICT.read_text(), max_length=4, stride=4)
    for bad in (123, [], [b"bytes"]):
        with pytest.raises(DataError, match="cannot window"):
            window(bad, gpt2_tokenizer)


def test_strings_are_texts_whatever_they_look_like(tmp_path, monkeypatch, gpt2_tokenizer, tiktoken_gpt2):
    # Strings that name files, globs and URLs are windowed as the text they are, even when such files exist.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.txt").write_text(VERDICT.read_text())
    (tmp_path / "a.py").write_text("print(1)\n" * 500)
    texts = ["https://example.com/some/page.html", "data/x.txt", "*.py", "[abc]"] * 10
    expected = reference_windows([tiktoken_gpt2.encode(t) for t in texts], 8, 8, separator=EOS)
    assert as_pairs(window(texts, gpt2_tokenizer, max_length=8, stride=8)) == expected
    # too short a text that looks like a path: the error says how to pass a file
    with pytest.raises(DataError, match="pathlib.Path"):
        window("data/x.txt", gpt2_tokenizer, max_length=8, stride=8)


def test_paths_go_through_the_sources_module(tmp_path, gpt2_tokenizer):
    missing = tmp_path / "no_such_corpus.txt"
    with pytest.raises(FileNotFoundError, match="no_such_corpus.txt"):
        window(missing, gpt2_tokenizer, max_length=2, stride=1)
    with pytest.raises(FileNotFoundError, match="no files match"):
        load_corpus(str(tmp_path / "*.txt"))
    with pytest.raises(FileNotFoundError, match="no \\*.txt file in the folder"):
        load_corpus(tmp_path)  # a folder without .txt files
    (tmp_path / "real.txt").write_text(VERDICT.read_text())
    with pytest.raises(DataError, match="cannot window"):
        window([tmp_path / "real.txt", "just some words"], gpt2_tokenizer, 4, 4)  # a path next to a text
    assert len(window([tmp_path / "real.txt"], gpt2_tokenizer, 4, 4)) > 100


def test_binary_and_non_utf8_files_are_rejected(tmp_path, gpt2_tokenizer):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"GPT\x00\x01\x02" * 100)
    with pytest.raises(ValueError, match="looks binary") as error:
        window(binary, gpt2_tokenizer, 4, 4)
    assert str(binary) in str(error.value)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Café crème, déjà vu. ".encode("latin-1") * 50)
    with pytest.raises(ValueError, match="not UTF-8") as error:
        window([latin1], gpt2_tokenizer, 4, 4)
    assert str(latin1) in str(error.value) and "offset 3" in str(error.value)


# --- Trainer ----------------------------------------------------------------------------------------------
def test_trainer_trains_on_windows_with_the_books_loss(tmp_path, gpt2_tokenizer):
    from transformers import Trainer, TrainingArguments, default_data_collator

    windows = window(VERDICT.read_text()[:4000], gpt2_tokenizer, max_length=16, stride=16).select(range(4))
    torch.manual_seed(0)
    config = HFGPTConfig.from_preset("tiny", vocab_size=gpt2_tokenizer.vocab_size, drop_rate=0.0)
    model = HFGPTForCausalLM(config)
    batch = windows[:]
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"]).logits
    book_loss = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), batch["shift_labels"].flatten()
    ).item()

    # learning_rate=0 keeps the weights, and one batch holds all 4 windows: every step's loss is the book's loss
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=4,
        learning_rate=0.0,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=windows, data_collator=default_data_collator)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3
    for loss in losses:
        assert loss == pytest.approx(book_loss, abs=1e-3)

    # the streaming path feeds Trainer the same way (an IterableDataset of the same 4 windows, repeated)
    source = Dataset.from_dict({"input_ids": [batch["input_ids"].flatten().tolist()]}).to_iterable_dataset()
    streamed = window(source, max_length=16, stride=16)
    assert as_pairs(streamed) == as_pairs(windows)[:3]  # 64 tokens hold 3 windows: the 4th needs a 65th
    args.output_dir = str(tmp_path / "streamed")
    trainer = Trainer(model=model, args=args, train_dataset=streamed, data_collator=default_data_collator)
    trainer.train()
    streamed_losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(streamed_losses) == 3
    first_three = torch.nn.functional.cross_entropy(
        logits[:3].flatten(0, 1), batch["shift_labels"][:3].flatten()
    ).item()
    for loss in streamed_losses:  # each epoch of the stream is one batch of the 3 windows
        assert loss == pytest.approx(first_three, abs=1e-3)
