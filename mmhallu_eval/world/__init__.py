"""Offline builders for tests and the embedded default: tiny VLMs and generated benchmark fixtures."""
