"""The embedded tiny models, one per family (random weights, real tokenizers), for the demo and the tests."""
