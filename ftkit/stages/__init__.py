"""The pipeline's stages. No stage imports another: what two share lives below them, in ftkit.core or ftkit.verify."""
