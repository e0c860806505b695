"""The evaluation stage: base vs fine-tuned on the test split, human sheets, general ability."""
