"""The textbook attention progression (chapter 3 of "Build a Large Language Model (From Scratch)"), for
learning: see `hfgpt.textbook.attention` and docs/attention.md."""
