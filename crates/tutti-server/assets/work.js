// The task page: keys 1-9 (and the arrows of a pairwise job) answer, the
// lease timer counts down, a graded job's slider says what it means, and the
// next task is leased ahead so that it shows the moment the worker answers.
// Without this script every form still works as a plain post.
(function () {
  var generation = 0; // bumped whenever a new task is shown
  var ahead = null; // { html, id }: the task leased ahead, once fetched
  var inFlight = 0; // answers still being posted in the background
  var waiters = [];
  // Set once the page posts a form the plain way: nothing more is fetched
  // ahead or posted from this page.
  var posting = false;
  // Set when that post is an answer or a skip: the server then holds any
  // task leased ahead and the next page shows it, so it must not be given
  // back on the way out.
  var leaving = false;
  var counted = null; // the highest count of today's answers the server gave

  function answerForm() { return document.getElementById("answer-form"); }

  function notice(text, bad) {
    var main = document.querySelector("main");
    if (!main) return;
    var p = document.createElement("p");
    p.className = "card notice" + (bad ? " error" : "");
    p.setAttribute("role", bad ? "alert" : "status");
    p.textContent = text;
    main.insertBefore(p, main.firstChild);
  }

  function showCount() {
    var c = document.getElementById("answered-today");
    if (!c) return;
    // Each count was true when made, and counts only grow: show the latest.
    var shown = Number(c.textContent);
    if (counted === null || shown > counted) counted = shown;
    c.textContent = String(counted);
  }

  function timer(gen) {
    var lease = document.querySelector(".lease");
    var out = document.getElementById("time-left");
    if (!lease || !out) return;
    var deadline = Number(lease.getAttribute("data-deadline"));
    function tick() {
      if (gen !== generation) return;
      var left = Math.round((deadline - Date.now()) / 1000);
      if (left <= 0) { out.textContent = "expired (your answer still counts if the task needs it)"; lease.classList.add("late"); return; }
      var m = Math.floor(left / 60), s = left % 60;
      out.textContent = m + ":" + (s < 10 ? "0" : "") + s;
      setTimeout(tick, 1000);
    }
    tick();
  }

  function slider() {
    var g = document.getElementById("grade");
    if (!g) return;
    var out = document.getElementById("grade-value");
    var words = document.getElementById("grade-words");
    var idle = words.textContent;
    var scale = Number(g.max);
    function show() {
      var v = Number(g.value);
      out.textContent = v > 0 ? "+" + v : String(v);
      words.textContent = v < 0 ? "left is better (" + -v + " of " + scale + ")"
        : v > 0 ? "right is better (" + v + " of " + scale + ")" : idle;
    }
    g.addEventListener("input", show);
    show();
  }

  function prefetch(gen) {
    ahead = null;
    var f = answerForm();
    if (!f || !window.fetch || posting) return;
    var url = "/work/" + f.getAttribute("data-job") + "/ahead?after=" + f.getAttribute("data-assignment");
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.status === 200 ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var box = document.createElement("div");
        box.innerHTML = html;
        var next = box.querySelector("#answer-form");
        if (!next) return;
        var got = { html: html, id: next.getAttribute("data-assignment"), job: next.getAttribute("data-job") };
        // Leaving for the next task: the next page shows this lease.
        if (leaving) return;
        // A lease fetched after the page moved on or while quitting is
        // given back at once.
        if (posting || gen !== generation) { giveBack(got); return; }
        ahead = got;
        var keep = document.querySelector('#other-form input[name="ahead"]');
        if (keep) keep.value = ahead.id;
      })
      .catch(function () {});
  }

  // Shows the task now in main; the next one is fetched ahead unless an
  // answer is still on its way (its lease would come back as held).
  function init(later) {
    if (!later) posting = leaving = false;
    generation++;
    showCount();
    timer(generation);
    slider();
    if (!later) prefetch(generation);
    var typed = document.getElementById("free-text");
    if (typed) typed.focus();
  }

  function settle() {
    inFlight--;
    if (inFlight === 0) { var w = waiters; waiters = []; w.forEach(function (f) { f(); }); }
  }

  // Posts a form in the background; keepalive lets it finish even if the
  // page is left, and the idempotency key makes a retry harmless.
  function send(url, body, tries) {
    return fetch(url, { method: "POST", body: body, credentials: "same-origin", keepalive: true, headers: { "x-tutti-fetch": "1" } })
      .then(function (r) {
        return r.json().then(function (j) { return { ok: r.ok, body: j }; }, function () { return { ok: r.ok, body: {} }; });
      }, function (e) {
        if (tries <= 0) throw e;
        return new Promise(function (res) { setTimeout(res, 1000); }).then(function () { return send(url, body, tries - 1); });
      });
  }

  function giveBack(lease) {
    var f = document.getElementById("other-form");
    if (!lease || !f || !navigator.sendBeacon) return;
    var d = new URLSearchParams(new FormData(f));
    d.set("action", "release");
    d.set("ahead", "");
    navigator.sendBeacon("/work/" + lease.job + "/assignments/" + lease.id, d);
  }

  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f.id !== "answer-form" && f.id !== "other-form") return;
    // A plain post is on its way: a second press would post the same form
    // again (or twice at once, after the answers before it).
    if (posting) { e.preventDefault(); return; }
    var data = new FormData(f, e.submitter);
    var action = data.get("action");
    if (!ahead || action === "release") {
      // A plain post; answers still on their way go first. An answer or a
      // skip comes back to this job's next task, which is the one held.
      posting = true;
      if (action !== "release") leaving = true;
      if (inFlight > 0) {
        e.preventDefault();
        if (e.submitter && e.submitter.name) {
          var carry = document.createElement("input");
          carry.type = "hidden"; carry.name = e.submitter.name; carry.value = e.submitter.value;
          f.appendChild(carry);
        }
        waiters.push(function () { f.submit(); });
      }
      return;
    }
    e.preventDefault();
    var next = ahead;
    ahead = null;
    document.querySelector("main").innerHTML = next.html;
    window.scrollTo(0, 0);
    init(true);
    var gen = generation;
    inFlight++;
    // (f.action would be the form's input named "action".)
    send(f.getAttribute("action"), new URLSearchParams(data), 2).then(function (res) {
      if (!res.ok) {
        var why = res.body && res.body.error && res.body.error.message;
        notice("Your answer to the previous task was not saved: " + (why || "the server refused it") + ".", true);
        return;
      }
      if (typeof res.body.answered_today === "number") {
        counted = Math.max(counted || 0, res.body.answered_today);
        showCount();
      }
      var g = res.body.gold;
      if (g) notice(g.correct ? "That was a control question, and you answered it right."
        : "That was a control question; its answer is " + g.expected + ".");
      if (res.body.stopped) location.reload();
    }, function () {
      notice("Your answer to the previous task could not be sent: the connection is down. Reload the page to answer it again.", true);
    }).then(settle, settle).then(function () { if (gen === generation && inFlight === 0) prefetch(gen); });
  });

  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    var t = e.target;
    if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "range"))) return;
    var grade = document.getElementById("grade");
    if (grade) {
      if (e.key === "Enter" && !(t && t.tagName === "BUTTON")) { e.preventDefault(); answerForm().requestSubmit(); return; }
      if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && t !== grade) {
        e.preventDefault();
        grade.value = String(Number(grade.value) + (e.key === "ArrowLeft" ? -1 : 1));
        grade.dispatchEvent(new Event("input"));
      }
      return;
    }
    var b = document.querySelector('.answers button[data-key="' + e.key + '"]')
      || document.querySelector('.answers button[data-arrow="' + e.key + '"]');
    if (b) { e.preventDefault(); b.click(); }
  });

  // Leaving the page gives the task fetched ahead back to the pool, unless
  // the page is leaving for the next task, which the server shows from the
  // leases held.
  window.addEventListener("pagehide", function () { if (!leaving) giveBack(ahead); ahead = null; });
  window.addEventListener("pageshow", function (e) { if (e.persisted) init(false); });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { init(false); });
  else init(false);
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
