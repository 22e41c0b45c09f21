"""The disagreements page as one self-contained HTML file: `reasoner diff --report FILE.html`.

It is the Disagreements page's own results template, rendered without a server: CSS, the page's
script and plotly.js are inlined (the file opens offline, from a mail or a share), links to other
pages are left out, and each witness downloads as a patient file from a `data:` address.
"""
from __future__ import annotations

from reasoner.search import diff
from reasoner.web.disagreements import Job, Options, results_context
from reasoner.web.templating import Urls, environment, plotly_js


def _script(js: str) -> str:
    """Script text safe inside <script>: a closing tag in it cannot end the element early."""
    return js.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def diff_report_html(result: diff.Result, themes: list[diff.Theme] | None = None, vocab=None,
                     plotly: bool = True) -> str:
    """The static report of a disagreement search.

    `themes` defaults to `diff.themes(result)`. With `vocab`, witnesses are written with their
    records nested, as `--save-witnesses` writes them; without it, flat (`medications.nsaid.outcome`),
    which patient files accept too. `plotly=False` leaves plotly.js out (a 4.8 MB saving; the
    heatmaps are then the tables beside them)."""
    job = Job("report", Options(tuple(result.payers), result.service, result.indication, result.lines,
                                result.examples, result.seed, result.exhaustive), result=result, finished=0.0)
    context = results_context(job, vocab or _FlatVocab())
    if themes is not None:
        context["themes"] = themes
    scripts = _script(plotly_js().decode("utf-8")) if plotly else ""
    return environment().get_template("report.html").render(urls=Urls(live=False), plotly_inline=scripts, **context)


class _FlatVocab:
    """Stands in for a vocabulary when none is given: no records, so witnesses stay flat."""

    records: dict = {}
    concepts: dict = {}
