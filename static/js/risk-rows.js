// Progressive enhancement of a hazard row's form: show the rating (L × S) and its band as the scores
// change. The server computes and stores the rating; this only previews it.
(function () {
  "use strict";
  function bandsOf(form) {
    return (form.dataset.bands || "").split("|").filter(Boolean).map(function (part) {
      var bits = part.split(":");
      return { upper: parseInt(bits[0], 10), key: bits[1], label: bits.slice(2).join(":") };
    });
  }
  function show(output, rating, bands) {
    output.textContent = "";
    if (!rating) { return; }
    var band = bands.find(function (b) { return rating <= b.upper; });
    var span = document.createElement("span");
    span.className = "risk-band risk-band-" + (band ? band.key : "x");
    span.textContent = rating + (band ? " " + band.label : "");
    output.appendChild(span);
  }
  document.querySelectorAll("form.risk-hazard-form").forEach(function (form) {
    var bands = bandsOf(form);
    form.querySelectorAll("output.risk-rating-output").forEach(function (output) {
      var names = output.dataset.for.split(" ");
      var selects = names.map(function (name) { return form.elements[name]; });
      function update() {
        var l = parseInt(selects[0] && selects[0].value, 10);
        var s = parseInt(selects[1] && selects[1].value, 10);
        show(output, l && s ? l * s : 0, bands);
      }
      selects.forEach(function (select) { if (select) { select.addEventListener("change", update); } });
      update();
    });
  });
})();
