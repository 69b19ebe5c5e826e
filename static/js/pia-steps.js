// Progressive enhancement of a PIA step's table: preview a risk's rating (likelihood × severity, on the
// version's matrix) as the scores change, mark a row ticked for removal, and move rows up or down with
// buttons (renumbering the position fields the server orders by). The server computes and stores the rating;
// the page works the same without this script (the position numbers are typed instead).
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
    var list = form.querySelector("[data-rows]");
    if (!list) { return; }
    function renumber() {
      list.querySelectorAll("[data-row] input[data-order]").forEach(function (input, index) {
        input.value = index + 1;
      });
    }
    list.querySelectorAll("[data-row]").forEach(function (card) {
      var tools = card.querySelector(".pia-row-tools");
      if (!tools || !card.querySelector("input[data-order]")) { return; }
      [["up", "\u2191 Move up"], ["down", "\u2193 Move down"]].forEach(function (pair) {
        var button = document.createElement("button");
        button.type = "button";
        button.className = "btn btn-sm btn-outline-dark";
        button.textContent = pair[1];
        button.addEventListener("click", function () {
          var other = pair[0] === "up" ? card.previousElementSibling : card.nextElementSibling;
          if (!other || !other.matches("[data-row]")) { return; }
          if (pair[0] === "up") { list.insertBefore(card, other); } else { list.insertBefore(other, card); }
          renumber();
          button.focus();
        });
        tools.appendChild(button);
      });
    });
  });
})();
