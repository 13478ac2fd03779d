// Live SLA countdown and overview auto-refresh; plain JavaScript, no build step.
(function () {
  "use strict";
  function label(seconds) {
    var past = seconds < 0, s = Math.abs(Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var text = h + "h " + String(m).padStart(2, "0") + "m " + String(sec).padStart(2, "0") + "s";
    return past ? "breached " + text + " ago" : text;
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("td[data-due]").forEach(function (cell) {
      var seconds = (Date.parse(cell.getAttribute("data-due")) - now) / 1000;
      cell.querySelector(".countdown").textContent = label(seconds);
      cell.classList.toggle("breached", seconds < 0);
    });
  }
  tick();
  setInterval(tick, 1000);
  // After an action the page says what it did; keyboard and screen-reader users land on that message.
  var flash = document.getElementById("flash");
  if (flash) { flash.focus(); }
  var refresh = document.querySelector("[data-autorefresh]");
  if (refresh) {
    setTimeout(function () { window.location.reload(); }, 1000 * Number(refresh.getAttribute("data-autorefresh")));
  }
})();
