// The runs list, live in place: while a run on the page is pending or active,
// #runs-live polls the same rows (htmx, every few seconds; the server answers
// 286 and htmx stops once none is). Each returned row's cells are copied into
// the row shown for the same run, all but the action checkbox, so what a person
// ticked (and Django's "n of m selected") stays as it is.
"use strict";
document.addEventListener("htmx:afterRequest", function (event) {
  const poller = event.detail.elt;
  if (!poller || poller.id !== "runs-live" || !event.detail.successful) {
    return;
  }
  const table = document.getElementById("result_list");
  if (!table) {
    return;
  }
  const key = function (row) {
    const link = row.querySelector(".field-number_link a");
    return link ? link.getAttribute("href") : null;
  };
  const shown = new Map();
  table.querySelectorAll("tbody tr").forEach(function (row) {
    shown.set(key(row), row);
  });
  const fresh = document.createElement("template");
  fresh.innerHTML = event.detail.xhr.responseText;
  fresh.content.querySelectorAll("tbody tr").forEach(function (row) {
    const target = shown.get(key(row));
    if (!target || target.cells.length !== row.cells.length) {
      return;
    }
    Array.from(row.cells).forEach(function (cell, index) {
      const old = target.cells[index];
      if (old.classList.contains("action-checkbox")) {
        return;
      }
      if (old.innerHTML !== cell.innerHTML) {
        old.innerHTML = cell.innerHTML;
      }
    });
  });
  if (event.detail.xhr.status === 286) {
    poller.remove();
  }
});
