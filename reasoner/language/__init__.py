"""Text to IR: the grammar's syntax tree, the vocabulary, checking and lowering to the IR, loading a folder."""
