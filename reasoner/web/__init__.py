"""The analyst workbench in the browser (`reasoner serve`), and the static disagreement report.

A layer at the edge, like `cli.py`: it calls the same library the command line calls and adds
no reasoning of its own. `app.create_app(loaded)` builds the ASGI app; `command.serve` is the
command; `report.diff_report_html` writes the Disagreements page as one self-contained file.
Modules: `forms` (form values <-> patients), `layout` (the form from the vocabulary),
`reasoning`, `matrix_view`, `policies_view`, `disagreements` (what each page shows, as data),
`member`, `explore`, `search` (the routes), `templating` (Jinja2, autoescaped).
"""
