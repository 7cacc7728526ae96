"""The book's sliding windows as plain Python lists: the reference for `window()` and its parts."""

from __future__ import annotations


def reference_windows(docs, max_length, stride, separator=None, within_documents=False):
    """(input, target) lists: documents joined by `separator` (empty ones skipped), or windowed one by one."""
    pieces = [list(doc) for doc in docs if len(doc)] if within_documents else [[]]
    if not within_documents:
        for doc in docs:
            if not len(doc):
                continue
            if pieces[0] and separator is not None:
                pieces[0].append(separator)
            pieces[0].extend(doc)
    pairs = []
    for tokens in pieces:
        for start in range(0, len(tokens) - max_length, stride):
            pairs.append((tokens[start : start + max_length], tokens[start + 1 : start + max_length + 1]))
    return pairs
