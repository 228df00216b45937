"""forgetlab: measure, track, query and fit forgetting when LoRA fine-tuning language models."""

__version__ = "0.1.0"
