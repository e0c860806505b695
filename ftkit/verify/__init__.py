"""Checks that read a stage's output and prove it: llama-server, and every chat path a deployment can take."""
