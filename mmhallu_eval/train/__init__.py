"""Closing the loop: preference pairs from annotations and from a model's failures, DPO with TRL, the loop."""
