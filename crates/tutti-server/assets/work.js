// Keys 1-9 answer with the matching button; the lease timer counts down.
document.addEventListener("keydown", function (e) {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.target && (e.target.tagName === "INPUT" || e.target.tagName === "TEXTAREA")) return;
  var b = document.querySelector('.answers button[data-key="' + e.key + '"]');
  if (b) { e.preventDefault(); b.click(); }
});
(function () {
  var lease = document.querySelector(".lease");
  var out = document.getElementById("time-left");
  if (!lease || !out) return;
  var deadline = Number(lease.getAttribute("data-deadline"));
  function tick() {
    var left = Math.round((deadline - Date.now()) / 1000);
    if (left <= 0) { out.textContent = "expired (your answer still counts if the task needs it)"; lease.classList.add("late"); return; }
    var m = Math.floor(left / 60), s = left % 60;
    out.textContent = m + ":" + (s < 10 ? "0" : "") + s;
    setTimeout(tick, 1000);
  }
  tick();
})();
// A live run page refreshes its graph and steps until the run ends.
(function () {
  var live = document.getElementById("run-live");
  if (!live || live.hasAttribute("data-final")) return;
  function poll() {
    fetch(location.pathname + "?part=live", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var cur = document.getElementById("run-live");
        var box = document.createElement("div");
        box.innerHTML = html;
        var next = box.firstElementChild;
        if (cur && next) cur.replaceWith(next);
        if (next && !next.hasAttribute("data-final")) setTimeout(poll, 2000);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 2000);
})();
