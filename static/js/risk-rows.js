// Progressive enhancement of a draft's editing table (templates/riskassess/assessments/rows.html).
// Without this script the same form works: a blank row to fill in, "Remove" boxes and position numbers.
// With it: "Add a row" clones the empty form (TOTAL_FORMS follows), "Remove" marks the row's DELETE box
// and hides it until saved (with Undo), ↑/↓ or dragging a row by its number cell move it and renumber
// every ORDER field, and each row previews its ratings and bands from the version's matrix (the bands
// come from the server in data-bands). The server computes and stores the ratings; this only previews them.
(function () {
  "use strict";
  var form = document.querySelector("form.risk-rows-form");
  if (!form) { return; }
  var table = form.querySelector("table.risk-rows-table");
  var template = document.getElementById("risk-row-template");
  var total = form.querySelector("input[name$='-TOTAL_FORMS']");
  var initialCount = parseInt(form.querySelector("input[name$='-INITIAL_FORMS']").value, 10);
  var status = form.querySelector("[data-status]");
  var bands = JSON.parse(form.dataset.bands || "[]");

  function announce(text) { status.textContent = ""; window.setTimeout(function () { status.textContent = text; }, 50); }
  function rows() { return Array.prototype.slice.call(table.querySelectorAll("tbody[data-row]")); }
  function isRemoved(row) { return row.classList.contains("risk-row-removed"); }
  function rowIndex(row) { return parseInt(row.id.split("-").pop(), 10); }

  // --- Ratings -------------------------------------------------------------------------------------
  function showRating(output, rating) {
    output.textContent = "";
    var span = document.createElement("span");
    if (!rating) {
      span.className = "text-secondary";
      span.textContent = "—";
    } else {
      var band = bands.find(function (b) { return rating <= b.upper; });
      span.className = "risk-band risk-band-" + (band ? band.key : "x");
      span.textContent = rating + (band ? " " + band.label : "");
    }
    output.appendChild(span);
  }
  function updateRatings(row) {
    row.querySelectorAll("output.risk-rating-output").forEach(function (output) {
      var names = output.dataset.for.split(" ");
      var values = names.map(function (name) {
        var select = row.querySelector("select[data-score='" + name + "']");
        return select ? parseInt(select.value, 10) : NaN;
      });
      showRating(output, values[0] && values[1] ? values[0] * values[1] : 0);
    });
  }

  // --- Positions -----------------------------------------------------------------------------------
  function renumber() {
    var position = 0;
    var kept = rows().filter(function (row) { return !isRemoved(row); });
    rows().forEach(function (row) {
      var order = row.querySelector("input[data-order]");
      if (isRemoved(row)) { return; }
      position += 1;
      order.value = position;
      var label = row.querySelector("[data-row-number]");
      label.textContent = (row.hasAttribute("data-new") ? "New row " : "Row ") + position;
      row.querySelector("[data-move-up]").disabled = position === 1;
      row.querySelector("[data-move-down]").disabled = position === kept.length;
    });
  }
  function isBlank(row) {
    return Array.prototype.every.call(row.querySelectorAll("input, textarea, select"), function (field) {
      if (field.type === "hidden" || field.type === "checkbox" || field.hasAttribute("data-order")) { return true; }
      return !field.value;
    });
  }
  function move(row, up) {
    var sibling = up ? row.previousElementSibling : row.nextElementSibling;
    while (sibling && (sibling.tagName !== "TBODY" || isRemoved(sibling))) {
      sibling = up ? sibling.previousElementSibling : sibling.nextElementSibling;
    }
    if (!sibling || sibling.tagName !== "TBODY") { return; }
    table.insertBefore(row, up ? sibling : sibling.nextElementSibling);
    renumber();
    rows().forEach(function (r) { r.classList.remove("risk-row-moved"); });
    row.classList.add("risk-row-moved");
    var button = row.querySelector(up ? "[data-move-up]" : "[data-move-down]");
    if (button.disabled) { button = row.querySelector(up ? "[data-move-down]" : "[data-move-up]"); }
    button.focus();
    announce(row.querySelector("[data-row-number]").textContent + ": moved " + (up ? "up" : "down") + ".");
  }

  // Dragging a row by its number cell (the ↑/↓ buttons do the same from the keyboard).
  var dragged = null;
  function dragStart(event) {
    dragged = event.currentTarget.closest("tbody[data-row]");
    dragged.classList.add("risk-row-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged.id);
  }
  function dragOver(event) {
    var over = event.currentTarget;
    if (!dragged || over === dragged) { return; }
    event.preventDefault();
    var box = over.getBoundingClientRect();
    table.insertBefore(dragged, event.clientY < box.top + box.height / 2 ? over : over.nextElementSibling);
  }
  function dragEnd() {
    if (!dragged) { return; }
    dragged.classList.remove("risk-row-dragging");
    renumber();
    rows().forEach(function (r) { r.classList.remove("risk-row-moved"); });
    dragged.classList.add("risk-row-moved");
    announce(dragged.querySelector("[data-row-number]").textContent + ": moved.");
    dragged = null;
  }

  // --- Removing, with undo until saved ----------------------------------------------------------
  function remove(row, quiet) {
    row.querySelector("input[data-delete]").checked = true;
    row.classList.add("risk-row-removed");
    row.querySelectorAll("tr[data-row-line]").forEach(function (line) { line.hidden = true; });
    var undo = row.querySelector("tr[data-undo]");
    var name = row.querySelector("textarea[name$='-activity_element']").value.trim();
    undo.querySelector("[data-undo-text]").textContent =
      (name ? "\u201c" + name.slice(0, 80) + "\u201d" : "This row") + " will be removed when you save.";
    undo.hidden = false;
    renumber();
    if (quiet) { return; }
    undo.querySelector("[data-undo-button]").focus();
    announce("Row marked for removal. Undo is next to it until you save.");
  }
  function restore(row) {
    row.querySelector("input[data-delete]").checked = false;
    row.classList.remove("risk-row-removed");
    row.querySelectorAll("tr[data-row-line]").forEach(function (line) { line.hidden = false; });
    row.querySelector("tr[data-undo]").hidden = true;
    renumber();
    row.querySelector("[data-remove]").focus();
    announce("Row kept.");
  }

  // --- Adding --------------------------------------------------------------------------------------
  function enhance(row) {
    row.querySelector("[data-move]").hidden = false;
    row.querySelector("[data-remove]").hidden = false;
    row.querySelectorAll("select[data-score]").forEach(function (select) {
      select.addEventListener("change", function () { updateRatings(row); });
    });
    row.querySelector("[data-move-up]").addEventListener("click", function () { move(row, true); });
    row.querySelector("[data-move-down]").addEventListener("click", function () { move(row, false); });
    row.querySelector("[data-remove]").addEventListener("click", function () { remove(row, false); });
    row.querySelector("[data-undo-button]").addEventListener("click", function () { restore(row); });
    var handle = row.querySelector(".risk-cell-order");
    handle.draggable = true;
    handle.addEventListener("dragstart", dragStart);
    handle.addEventListener("dragend", dragEnd);
    row.addEventListener("dragover", dragOver);
    row.addEventListener("drop", function (event) { event.preventDefault(); });
    if (row.querySelector("input[data-delete]").checked) { remove(row, true); }  // as posted, after an error
    updateRatings(row);
  }
  function addRow() {
    var index = parseInt(total.value, 10);
    var holder = document.createElement("table");
    holder.innerHTML = template.innerHTML.replace(/__prefix__/g, String(index));
    var row = holder.querySelector("tbody[data-row]");
    table.appendChild(row);
    total.value = index + 1;
    enhance(row);
    renumber();
    row.querySelector("textarea, input:not([type=hidden]), select").focus();
    announce("Row added at the end.");
    return row;
  }

  // Trailing blank rows from the server are for adding without JavaScript: "Add a row" replaces them.
  var all = rows();
  while (all.length > 1) {
    var last = all[all.length - 1];
    if (rowIndex(last) < initialCount || !isBlank(last) || last.querySelector(".is-invalid")) { break; }
    last.remove();
    all.pop();
    total.value = parseInt(total.value, 10) - 1;
  }
  form.classList.add("js-rows");
  rows().forEach(enhance);
  renumber();
  var add = form.querySelector("[data-add-row]");
  add.hidden = false;
  add.addEventListener("click", addRow);
  if (window.location.hash === "#new-row") {
    var blank = rows().filter(function (row) { return row.hasAttribute("data-new") && isBlank(row); })[0];
    (blank || addRow()).querySelector("textarea").focus();
  }
})();
