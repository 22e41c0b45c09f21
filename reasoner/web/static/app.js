/* The workbench's only script: draws plotly figures from JSON the server wrote into the page,
   sorts tables by a clicked heading, and closes notices and panels. No decision, explanation or
   search happens here; those come from the server (htmx swaps its HTML in). */
(function () {
  "use strict";

  function drawPlots(root) {
    if (typeof Plotly === "undefined") return;
    root.querySelectorAll(".plot[data-figure]").forEach(function (div) {
      if (div.dataset.drawn) return;
      var figure = JSON.parse(div.dataset.figure);
      div.dataset.drawn = "1";
      Plotly.newPlot(div, figure.data, figure.layout, {displaylogo: false, responsive: true});
    });
  }

  function cellValue(row, index, numeric) {
    var cell = row.cells[index];
    var text = cell ? cell.textContent.trim() : "";
    return numeric ? (parseFloat(text) || 0) : text.toLowerCase();
  }

  function sortBy(th) {
    var table = th.closest("table");
    var body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.dataset.sort === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index, numeric), y = cellValue(b, index, numeric);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    table.querySelectorAll("th[data-sort]").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  function init(root) {
    drawPlots(root);
    root.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
      if (th.dataset.sortable) return;
      th.dataset.sortable = "1";
      th.tabIndex = 0;
      th.title = "sort by " + th.textContent.trim();
      th.addEventListener("click", function () { sortBy(th); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); } });
    });
  }

  document.addEventListener("click", function (event) {
    var dismiss = event.target.closest("[data-dismiss]");
    if (dismiss) dismiss.closest(".flash").remove();
    var close = event.target.closest("[data-close-panel]");
    if (close) {
      var panel = close.closest("#reasoning");
      var empty = document.createElement("section");
      empty.id = "reasoning";
      empty.className = "panel empty";
      empty.innerHTML = "<p>Choose <b>why</b> or <b>why not covered</b> on a payer to see its reasoning here.</p>";
      panel.replaceWith(empty);
      var state = document.getElementById("panel-state");
      if (state) state.value = "";
    }
  });

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.detail.elt); });
  document.addEventListener("htmx:beforeRequest", function () {
    var flash = document.getElementById("flash");
    if (flash) flash.innerHTML = "";
  });
})();
