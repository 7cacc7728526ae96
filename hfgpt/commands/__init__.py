"""Sub-commands of the ``hfgpt`` CLI; see ``hfgpt.cli``."""
