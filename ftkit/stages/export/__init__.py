"""The export stage: merge, GGUF with llama.cpp, the adapter alone, the Modelfile."""
