"""The built-in pair strategies, one module each (each defines `STRATEGY`); see train/strategy.py."""
