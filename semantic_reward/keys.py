"""Dataset columns the reward reads, shared with the data tools that write them."""

SOURCE_KEY = "source"
"""``extra_info[SOURCE_KEY]``: the source text, needed by the source-grounded and hybrid modes."""

LANGUAGE_KEY = "target_language"
"""``extra_info[LANGUAGE_KEY]``: optional per-row target language (overrides the configured one)."""

DECOY_REFERENCE_KEY = "decoy_reference"
"""``extra_info[DECOY_REFERENCE_KEY]``: another row's reference; the reward scores the output against it too, as a
diagnostic of reference specificity that never enters the reward (``semantic_reward.diagnostics``)."""

DECOY_SOURCE_KEY = "decoy_source"
"""``extra_info[DECOY_SOURCE_KEY]``: that row's source, the decoy of the source-grounded and hybrid modes."""
