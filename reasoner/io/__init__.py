"""Data at the edges: patient files, batch files of patients, safe output files."""
