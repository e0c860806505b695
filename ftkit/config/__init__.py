"""Configuration, resolved once: `defaults` (the one place each default is written), `schema` (a stage's typed
options: command line and YAML from one dataclass), `settings` (the Makefile's settings: where each value comes
from, recorded settings, stamps)."""
