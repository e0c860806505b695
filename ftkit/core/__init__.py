"""What every stage shares, below all of them: the command-line contract, files, the chat formats and the one prompt renderer, loading models and generating with them."""
