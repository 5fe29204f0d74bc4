"""CPU-only machinery for verl: a ``cpu`` platform and an ``hf`` (transformers) rollout.

Apart from the reward glue (``semantic_reward.verl_adapter``) and loaded through its
own ``verl.plugins`` entry point (``semantic_reward_cpu``), so a GPU user can leave
it out (``VERL_USE_EXTERNAL_PLUGINS=semantic_reward``). It is inert unless selected:
``VERL_PLATFORM=cpu`` turns the CPU patches on, ``rollout.name=hf`` imports the
rollout. Importing this package imports nothing from verl.
"""
