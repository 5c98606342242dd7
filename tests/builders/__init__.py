"""Test-only builders: tiny LoRA files and single-file checkpoints made from tiny models."""
