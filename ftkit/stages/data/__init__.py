"""The data stage: raw records read, validated, deduplicated and split; the sample data."""
