"""Shared test references: independent implementations the tests compare hfgpt with (no test imports another
test module)."""
