"use strict";
(function () {
  // Sorting and filtering for every table.sortable; the data are the server-rendered rows, never injected.
  function cellKey(cell) {
    if (!cell) return "";
    var v = cell.getAttribute("data-sort");
    return v !== null ? v : cell.textContent.trim().toLowerCase();
  }
  function compare(a, b) {
    var x = Number(a), y = Number(b);
    if (a !== "" && b !== "" && !isNaN(x) && !isNaN(y)) return x - y;
    return a < b ? -1 : a > b ? 1 : 0;
  }
  function sortTable(table, index, th) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (row, i) { row._order = i; });
    rows.sort(function (r1, r2) {
      var d = compare(cellKey(r1.cells[index]), cellKey(r2.cells[index]));
      return (ascending ? d : -d) || r1._order - r2._order;
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (row) { frag.appendChild(row); });
    body.appendChild(frag);
  }
  function applyFilters(id) {
    var table = document.getElementById(id);
    if (!table) return;
    var box = document.querySelector('input.filter[data-table="' + id + '"]');
    var select = document.querySelector('select.status-filter[data-table="' + id + '"]');
    var text = box ? box.value.trim().toLowerCase() : "";
    var status = select ? select.value : "";
    var shown = 0, rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      if (row._text === undefined) row._text = row.textContent.toLowerCase();
      var visible = (!text || row._text.indexOf(text) !== -1) &&
        (!status || row.getAttribute("data-status") === status);
      row.classList.toggle("hidden", !visible);
      if (visible) shown++;
    }
    var label = document.querySelector('.shown[data-table="' + id + '"]');
    var noun = rows.length === 1 ? " row" : " rows";
    if (label) label.textContent = shown === rows.length ? rows.length + noun : shown + " of " + rows.length + noun;
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.tabIndex = 0;
      th.setAttribute("role", "columnheader");
      th.addEventListener("click", function () { sortTable(table, index, th); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortTable(table, index, th); }
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter, select.status-filter"), function (el) {
    el.addEventListener("input", function () { applyFilters(el.getAttribute("data-table")); });
    el.addEventListener("change", function () { applyFilters(el.getAttribute("data-table")); });
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
