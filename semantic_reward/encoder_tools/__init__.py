"""Building, training and auditing the reward encoder.

The paper's reward rests on an encoder that measures Tibetan meaning: a CINO/XLM-R
model trained contrastively on Chinese-Tibetan pairs. ``train`` makes one from any
transformers encoder; ``audit`` says whether an encoder can be trusted as a reward
before GPU days are spent on RL. (A small offline encoder for demos is in scripts/tiny_models.py.)
"""
