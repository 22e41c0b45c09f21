"""Decisions and what they rest on: per-payer decisions, why / why-not, verified repairs, the criteria matrix."""
