// The seat map: choose seats with mouse, touch or keyboard; keep the
// availability live; say clearly when a chosen seat is taken meanwhile.
(function () {
  "use strict";
  var svg = document.getElementById("seatmap");
  // While seats are held, the map only shows them (hold_countdown.js runs the timer).
  if (!svg || svg.getAttribute("data-mode") === "held") return;
  var maxSeats = parseInt(svg.getAttribute("data-max"), 10) || 20;
  var input = document.getElementById("seats-input");
  var list = document.getElementById("selection-list");
  var empty = document.getElementById("selection-empty");
  var total = document.getElementById("selection-total");
  var button = document.getElementById("seats-continue");
  var announce = document.getElementById("seat-announce");
  var seats = Array.prototype.slice.call(svg.querySelectorAll(".seat"));
  var byId = {};
  seats.forEach(function (el) { byId[el.getAttribute("data-id")] = el; });
  var selected = (input.value ? input.value.split(",") : []).filter(function (id) { return byId[id]; });
  var disabled = svg.getAttribute("data-on-sale") !== "1";

  function money(cents, currency) {
    return currency + " " + Math.floor(cents / 100) + "." + ("0" + (cents % 100)).slice(-2);
  }

  function say(text) {
    announce.textContent = text;
    announce.hidden = !text;
  }

  function render() {
    list.innerHTML = "";
    var sum = 0, currency = "";
    selected.forEach(function (id) {
      var el = byId[id];
      var li = document.createElement("li");
      li.setAttribute("data-id", id);
      li.textContent = el.getAttribute("data-label") + " · " +
        money(parseInt(el.getAttribute("data-price"), 10), el.getAttribute("data-currency"));
      list.appendChild(li);
      sum += parseInt(el.getAttribute("data-price"), 10);
      currency = el.getAttribute("data-currency");
    });
    seats.forEach(function (el) {
      el.setAttribute("aria-checked", selected.indexOf(el.getAttribute("data-id")) >= 0 ? "true" : "false");
    });
    empty.hidden = selected.length > 0;
    total.textContent = selected.length ? selected.length + (selected.length === 1 ? " seat, " : " seats, ") +
      money(sum, currency) + " before fees" : "";
    input.value = selected.join(",");
    button.disabled = disabled || selected.length === 0;
  }

  function toggle(el) {
    var id = el.getAttribute("data-id");
    if (el.getAttribute("data-status") !== "free" || el.getAttribute("aria-disabled") === "true") return;
    var at = selected.indexOf(id);
    if (at >= 0) {
      selected.splice(at, 1);
    } else if (selected.length >= maxSeats) {
      say("You can choose up to " + maxSeats + " seats in one order.");
      return;
    } else {
      selected.push(id);
    }
    el.classList.remove("taken-now");
    render();
  }

  // Arrow keys: left/right along the row, up/down to the nearest seat of the next row.
  function neighbour(el, key) {
    var x = parseFloat(el.getAttribute("data-x")), y = parseFloat(el.getAttribute("data-y"));
    var best = null, bestScore = Infinity;
    seats.forEach(function (other) {
      if (other === el || other.getAttribute("tabindex") !== "0") return;
      var ox = parseFloat(other.getAttribute("data-x")), oy = parseFloat(other.getAttribute("data-y"));
      var dx = ox - x, dy = oy - y, score;
      if (key === "ArrowRight" && Math.abs(dy) < 1 && dx > 0) score = dx;
      else if (key === "ArrowLeft" && Math.abs(dy) < 1 && dx < 0) score = -dx;
      else if (key === "ArrowDown" && dy > 1) score = dy * 10 + Math.abs(dx);
      else if (key === "ArrowUp" && dy < -1) score = -dy * 10 + Math.abs(dx);
      else return;
      if (score < bestScore) { bestScore = score; best = other; }
    });
    return best;
  }

  svg.addEventListener("click", function (e) {
    var el = e.target.closest ? e.target.closest(".seat") : null;
    if (el) toggle(el);
  });
  svg.addEventListener("keydown", function (e) {
    var el = e.target.closest ? e.target.closest(".seat") : null;
    if (!el) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      toggle(el);
    } else if (/^Arrow/.test(e.key)) {
      var next = neighbour(el, e.key);
      if (next) { e.preventDefault(); next.focus(); }
    }
  });

  // Live availability: the server's cached map, polled while the page is open.
  var statusUrl = svg.getAttribute("data-status-url");
  function refresh() {
    if (document.hidden) return;
    fetch(statusUrl, { headers: { Accept: "application/json" }, cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) return;
        var lost = [];
        Object.keys(data.seats).forEach(function (id) {
          var el = byId[id];
          if (!el) return;
          var status = data.seats[id];
          if (el.getAttribute("data-status") === status) return;
          el.setAttribute("data-status", status);
          var free = status === "free" && !disabled;
          el.setAttribute("tabindex", free ? "0" : "-1");
          if (free) el.removeAttribute("aria-disabled"); else el.setAttribute("aria-disabled", "true");
          var at = selected.indexOf(id);
          if (at >= 0 && status !== "free") {
            selected.splice(at, 1);
            el.classList.add("taken-now");
            lost.push(el.getAttribute("data-label"));
          }
        });
        if (lost.length) {
          say("Sorry, " + (lost.length === 1 ? "seat " + lost[0] + " was" : "seats " + lost.join(", ") + " were") +
            " just taken by someone else. We kept the rest of your selection.");
        }
        render();
      })
      .catch(function () { /* the next poll tries again */ });
  }
  setInterval(refresh, 8000);
  document.addEventListener("visibilitychange", refresh);
  render();
})();
