// The order page: the hold countdown, and polling while a payment is confirmed.
(function () {
  "use strict";
  var timer = document.querySelector("[data-countdown]");
  if (timer) {
    var deadline = Date.now() + parseInt(timer.getAttribute("data-countdown"), 10) * 1000;
    var tick = function () {
      var left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
      var minutes = Math.floor(left / 60), seconds = left % 60;
      timer.textContent = minutes + ":" + (seconds < 10 ? "0" : "") + seconds;
      timer.setAttribute("aria-label", minutes + " minutes " + seconds + " seconds");
      if (left === 0) {
        clearInterval(handle);
        // The server says what happened: expired, or paid at the last second.
        setTimeout(function () { window.location.reload(); }, 1500);
      }
    };
    var handle = setInterval(tick, 1000);
    tick();
  }
  var confirming = document.getElementById("confirming");
  if (confirming) {
    var statusUrl = confirming.getAttribute("data-status-url");
    var orderUrl = confirming.getAttribute("data-order-url");
    var attempts = 0;
    var poll = function () {
      attempts += 1;
      fetch(statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          if (data.paid || data.status !== "pending") { window.location.replace(orderUrl); }
          else { setTimeout(poll, attempts < 30 ? 1500 : 5000); }
        })
        .catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 1000);
  }
})();
