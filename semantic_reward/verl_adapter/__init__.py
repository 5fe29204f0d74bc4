"""The thin adapter to verl: a reward manager, an async compute_score, the plugin hook.

Importing this package imports verl; the rest of ``semantic_reward`` does not.
"""
