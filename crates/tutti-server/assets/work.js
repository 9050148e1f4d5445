// The task page: keys 1-9 (and the arrows of a pairwise job) answer, the
// lease timer counts down, a graded job's slider says what it means, and the
// next task is leased ahead so that it shows the moment the worker answers.
// Without this script every form still works as a plain post.
(function () {
  var generation = 0; // bumped whenever a new task is shown
  var ahead = null; // { html, id, job, at }: the task leased ahead, once fetched
  var inFlight = 0; // answers still being posted in the background
  var waiters = [];
  // Set once the page posts a form the plain way: nothing more is fetched
  // ahead or posted from this page.
  var posting = false;
  // Set when that post is an answer or a skip: the server then holds any
  // task leased ahead and the next page shows it, so it must not be given
  // back on the way out.
  var leaving = false;
  // Set when the session ended: nothing more is posted in the background.
  var signedOut = false;
  var answeredGen = -1; // the task shown when an answer was last given
  var counted = null; // the highest count of today's answers the server gave

  function answerForm() { return document.getElementById("answer-form"); }

  function notice(text, bad, link) {
    var main = document.querySelector("main");
    if (!main) return;
    var p = document.createElement("p");
    p.className = "card notice" + (bad ? " error" : "");
    p.setAttribute("role", bad ? "alert" : "status");
    p.textContent = text;
    if (link) {
      var a = document.createElement("a");
      a.href = link.href;
      a.textContent = link.text;
      p.appendChild(document.createTextNode(" "));
      p.appendChild(a);
    }
    main.insertBefore(p, main.firstChild);
    return p;
  }

  function showCount() {
    var c = document.getElementById("answered-today");
    if (!c) return;
    // Each count was true when made, and counts only grow: show the latest.
    var shown = Number(c.textContent);
    if (counted === null || shown > counted) counted = shown;
    c.textContent = String(counted);
  }

  // The lease's clock; a task leased ahead starts its clock when shown,
  // as the server does on hearing so.
  function timer(gen, restart) {
    var lease = document.querySelector(".lease");
    var out = document.getElementById("time-left");
    if (!lease || !out) return;
    if (restart && lease.hasAttribute("data-seconds")) {
      lease.setAttribute("data-deadline", String(Date.now() + 1000 * Number(lease.getAttribute("data-seconds"))));
    }
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
    if (!f || !window.fetch || posting || signedOut) return;
    var url = "/work/" + f.getAttribute("data-job") + "/ahead?after=" + f.getAttribute("data-assignment");
    fetch(url, { credentials: "same-origin", redirect: "manual", headers: { "x-tutti-fetch": "1" } })
      .then(function (r) { return r.status === 200 ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var box = document.createElement("div");
        box.innerHTML = html;
        var next = box.querySelector("#answer-form");
        if (!next) return;
        var got = { html: html, id: next.getAttribute("data-assignment"), job: next.getAttribute("data-job"), at: Date.now() };
        var lease = box.querySelector(".lease");
        got.seconds = lease ? Number(lease.getAttribute("data-seconds")) : 0;
        var own = box.querySelector('#other-form input[name="csrf"]');
        got.csrf = own ? own.value : null;
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
    timer(generation, later);
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
  // page is left, and the idempotency key makes a retry harmless. Only a
  // JSON answer saying ok counts as saved: a redirect (to the sign-in page)
  // or any other page means the answer did not reach the store.
  function send(url, body, tries) {
    return fetch(url, { method: "POST", body: body, credentials: "same-origin", keepalive: true, redirect: "manual", headers: { "x-tutti-fetch": "1" } })
      .then(function (r) {
        if (r.status === 401 || r.type === "opaqueredirect") return { ok: false, signedOut: true, body: {} };
        return r.json().then(function (j) { return { ok: r.ok && !!j && j.ok === true, body: j || {} }; },
          function () { return { ok: false, body: {} }; });
      }, function (e) {
        if (tries <= 0) throw e;
        return new Promise(function (res) { setTimeout(res, 1000); }).then(function () { return send(url, body, tries - 1); });
      });
  }

  function giveBack(lease) {
    var f = document.getElementById("other-form");
    if (!lease || !f || !navigator.sendBeacon || signedOut) return;
    var d = new URLSearchParams(new FormData(f));
    d.set("action", "release");
    d.set("ahead", "");
    // The form's CSRF value belongs to the task shown; the lease given
    // back carries its own.
    if (lease.csrf) d.set("csrf", lease.csrf);
    navigator.sendBeacon("/work/" + lease.job + "/assignments/" + lease.id, d);
  }

  // An answer that was not saved brings its task back on screen, with the
  // task that replaced it kept as the next one.
  function putBack(sent, gen, text, link) {
    var main = document.querySelector("main");
    if (!main || sent.restored) return;
    sent.restored = true;
    var replaced = gen === generation ? sent.next : null;
    main.innerHTML = sent.html;
    window.scrollTo(0, 0);
    init(true);
    ahead = signedOut ? null : replaced;
    answeredGen = -1;
    notice(text, true, link);
  }

  // After an answer is saved: a way to take it back while it is the last.
  function offerUndo(sent) {
    var old = document.getElementById("undo-form");
    if (old) old.parentNode.removeChild(old);
    var main = document.querySelector("main");
    if (!main) return;
    var f = document.createElement("form");
    f.method = "post";
    f.action = sent.url;
    f.id = "undo-form";
    f.className = "secondary";
    [["csrf", sent.csrf], ["action", "undo"]].forEach(function (kv) {
      var i = document.createElement("input");
      i.type = "hidden"; i.name = kv[0]; i.value = kv[1];
      f.appendChild(i);
    });
    var b = document.createElement("button");
    b.className = "link";
    b.innerHTML = "Undo your last answer <kbd>Z</kbd>";
    f.appendChild(b);
    var stats = main.querySelector(".my-stats");
    main.insertBefore(f, stats || null);
  }

  document.addEventListener("submit", function (e) {
    var f = e.target;
    if (f.id !== "answer-form" && f.id !== "other-form" && f.id !== "undo-form") return;
    // A plain post is on its way: a second press would post the same form
    // again (or twice at once, after the answers before it).
    if (posting) { e.preventDefault(); return; }
    var data = new FormData(f, e.submitter);
    var action = data.get("action");
    var answers = action === "submit" || action === "skip";
    // One answer per task shown: a second press before the next task is
    // on screen answers nothing.
    if (answers) {
      if (answeredGen === generation) { e.preventDefault(); return; }
      answeredGen = generation;
    }
    if (!ahead || !answers || signedOut) {
      // A plain post; answers still on their way go first. An answer, a
      // skip or an undo comes back to this job's tasks, which the server
      // holds.
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
    var main = document.querySelector("main");
    var next = ahead;
    ahead = null;
    var csrfInput = f.querySelector('input[name="csrf"]');
    var sent = { html: main.innerHTML, next: next, url: f.getAttribute("action"), csrf: csrfInput ? csrfInput.value : "" };
    // The server starts the clock of the task shown next.
    data.set("shown", next.id);
    main.innerHTML = next.html;
    window.scrollTo(0, 0);
    init(true);
    var gen = generation;
    inFlight++;
    // (f.action would be the form's input named "action".)
    send(sent.url, new URLSearchParams(data), 2).then(function (res) {
      if (res.signedOut) {
        signedOut = true;
        var parts = sent.url.split("/"); // "", "work", job, "assignments", id
        putBack(sent, gen, "You were signed out, so your answer to this task was NOT saved.",
          { href: "/login?next=" + encodeURIComponent("/work/" + parts[2] + "?task=" + parts[4]), text: "Sign in again to answer it." });
        return;
      }
      if (!res.ok) {
        var why = res.body && res.body.error && res.body.error.message;
        notice("Your answer to the previous task was not saved: " + (why || "the server refused it") + ".", true);
        return;
      }
      if (typeof res.body.answered_today === "number") {
        counted = Math.max(counted || 0, res.body.answered_today);
        showCount();
      }
      if (action === "submit" && gen === generation) offerUndo(sent);
      var g = res.body.gold;
      if (g) notice(g.correct ? "That was a control question, and you answered it right."
        : "That was a control question; its answer is " + g.expected + ".");
      if (res.body.stopped) location.reload();
    }, function () {
      putBack(sent, gen, "Your answer to this task could not be sent: the connection is down, so it was NOT saved. Answer it again once you are back online.");
    }).then(settle, settle).then(function () { if (gen === generation && inFlight === 0 && !ahead) prefetch(gen); });
  });

  document.addEventListener("keydown", function (e) {
    // A held key repeats: only the press itself answers.
    if (e.repeat || e.altKey || e.ctrlKey || e.metaKey) return;
    var t = e.target;
    if (t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && t.type !== "range"))) return;
    var f = answerForm();
    if (!f) return;
    if (e.key === "z" || e.key === "Z") {
      var u = document.getElementById("undo-form");
      if (u) { e.preventDefault(); u.requestSubmit(); }
      return;
    }
    var grade = document.getElementById("grade");
    if (grade) {
      if (e.key === "Enter" && !(t && t.tagName === "BUTTON")) { e.preventDefault(); f.requestSubmit(); return; }
      if ((e.key === "ArrowLeft" || e.key === "ArrowRight") && t !== grade) {
        e.preventDefault();
        grade.value = String(Number(grade.value) + (e.key === "ArrowLeft" ? -1 : 1));
        grade.dispatchEvent(new Event("input"));
      }
      return;
    }
    // Only the page's own answer form answers to keys.
    var b = f.querySelector('button[data-key="' + e.key + '"]')
      || f.querySelector('button[data-arrow="' + e.key + '"]');
    if (b) { e.preventDefault(); f.requestSubmit(b); }
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
