"""Downstream probes: what forgetting does to knowledge, reasoning and safety (docs/probes.md).

A small rise in a loss can hide a large change in behaviour. The probes measure behaviour during
a run, against the run's own base (the same network with the LoRA adapters disabled):

- `multiple_choice`: accuracy on ARC-format questions and agreement with the base's answers;
- `refusal`: refusal rate on AdvBench-format requests and the share of the base's refusals lost;
- `samples`: base and fine-tuned answers to a few prompts, side by side, at the end.

`callback.load_probes` builds them from the `probes` config section (checking every input before
the run exists) and `callback.ProbeCallback` runs them inside Lightning. `fixtures` writes the
small probe files forgetlab ships (`data/`) and the ones `forgetlab probes fixtures` writes.
This package imports nothing heavy on its own; import the submodules.
"""
