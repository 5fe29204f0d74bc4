"""Dataset columns the reward reads, shared with the data tools that write them."""

SOURCE_KEY = "source"
"""``extra_info[SOURCE_KEY]``: the source text, needed by the source-grounded and hybrid modes."""

LANGUAGE_KEY = "target_language"
"""``extra_info[LANGUAGE_KEY]``: optional per-row target language (overrides the configured one)."""
