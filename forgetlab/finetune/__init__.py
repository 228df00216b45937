"""One fine-tuning run: the recipe that runs it and the modules it is built from.

Read in this order:
- `recipe`: `execute_run(config)` (the CLI, the sweep and the tests call it): `FineTuningRecipe`'s
  `setup()` builds each part from its config section, `train()` fits and ends the tracking run;
  `RunResult` is what it reports;
- `runtime`: the process the run executes in (rank, device, precision, quiet libraries);
- `model` (a base, LoRA via PEFT, P), with `gguf_base` (GGUF files as bases) and `hub` (is the
  Hugging Face hub reachable); `adapter` (saving the trained adapter, the merged model);
- `data`: local, hub and embedded data; tokenising, packing, caching;
- `training`: the LightningModule (loss, optimizer, learning-rate schedule) and the seeded batches;
  `mitigations`: replay rows, KL-to-base and L2-to-base penalties;
- `callbacks`: the order of the run's Lightning callbacks, which their correctness depends on;
  the callbacks themselves: `throughput`, `curves` (L_ft and forgetting, defined in `forgetting`,
  at the steps `evaluation_schedule` says), `progress` (the bar), `checkpoints` (resume).

Nothing is imported here, so one module costs only its own imports (a sweep's resume check reads
`checkpoints` alone).
"""
