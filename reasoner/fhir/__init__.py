"""FHIR at the edge: resources generated from, or read into, the library's own terms."""
