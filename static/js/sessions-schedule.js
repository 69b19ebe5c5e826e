// The schedule form: highlight the gate of the platform chosen, so the host sees at once whether it may go
// ahead. Without JavaScript the page lists every platform's gate and the server checks it on submit.
(function () {
  "use strict";
  var select = document.getElementById("id_platform");
  if (!select) { return; }
  function highlight() {
    var cards = document.querySelectorAll(".platform-gate");
    for (var i = 0; i < cards.length; i += 1) {
      var chosen = cards[i].getAttribute("data-platform") === select.value;
      cards[i].classList.toggle("shadow", chosen);
      cards[i].classList.toggle("opacity-50", !chosen && select.value !== "");
    }
  }
  select.addEventListener("change", highlight);
  highlight();
})();
