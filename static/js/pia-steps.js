// Progressive enhancement of a PIA step's table: preview a risk's rating (likelihood × severity, on the
// version's matrix) as the scores change, and mark a row ticked for removal. The server computes and
// stores the rating; the page works the same without this script.
(function () {
  "use strict";
  document.querySelectorAll("form.pia-step-form").forEach(function (form) {
    var bands = (form.dataset.bands || "").split("|").filter(Boolean).map(function (part) {
      var bits = part.split(":");
      return { upper: parseInt(bits[0], 10), key: bits[1], label: bits.slice(2).join(":") };
    });
    form.querySelectorAll("output.risk-rating-output").forEach(function (output) {
      var selects = output.dataset.for.split(" ").map(function (name) { return form.elements[name]; });
      function update() {
        var l = parseInt(selects[0] && selects[0].value, 10);
        var s = parseInt(selects[1] && selects[1].value, 10);
        output.textContent = "";
        if (!(l && s)) { output.textContent = "—"; return; }
        var rating = l * s;
        var band = bands.find(function (b) { return rating <= b.upper; });
        var span = document.createElement("span");
        span.className = "risk-band risk-band-" + (band ? band.key : "x");
        span.textContent = rating + (band ? " " + band.label : "");
        output.appendChild(span);
      }
      selects.forEach(function (select) { if (select) { select.addEventListener("change", update); } });
    });
    form.querySelectorAll("input[data-delete]").forEach(function (box) {
      var card = box.closest("[data-row]");
      function update() {
        if (!card) { return; }
        card.classList.toggle("border-danger", box.checked);
        card.classList.toggle("bg-danger-subtle", box.checked);
      }
      box.addEventListener("change", update);
      update();
    });
  });
})();
