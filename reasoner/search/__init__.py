"""Patients generated from the vocabulary, and the search for disagreements between payers."""
