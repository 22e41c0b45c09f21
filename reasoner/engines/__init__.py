"""The IR compiled and run: Datalog on pyDatalog (the reference), SQL on DuckDB (the fast path), SMT on z3."""
