// pt web: live updates and confirmations. The pages work without this file: forms post and
// ask for confirmation on a page of their own; a reload shows what changed.
(function () {
  "use strict";
  var body = document.body;
  var base = body.getAttribute("data-base") || "";

  // Confirm a control, then post it from here (the page stays; the event stream shows what
  // it changed). Without fetch, the form posts itself as confirmed.
  function note(msg, href) {
    var n = document.getElementById("stream-state");
    if (!n) return;
    n.textContent = msg + " ";
    if (href) { var a = document.createElement("a"); a.href = href; a.textContent = "open"; n.appendChild(a); }
    n.className = "banner";
  }
  document.addEventListener("submit", function (e) {
    var f = e.target;
    var q = f.getAttribute("data-confirm");
    if (!q) return;
    if (!window.confirm(q)) { e.preventDefault(); return; }
    if (!window.fetch) {
      var c = document.createElement("input");
      c.type = "hidden"; c.name = "confirmed"; c.value = "yes";
      f.appendChild(c);
      return;
    }
    e.preventDefault();
    fetch(f.action, { method: "POST", credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json().then(function (v) { return [r.ok, v]; }); })
      .then(function (rv) {
        var v = rv[1];
        if (!rv[0]) { note("Refused: " + (v.error || "error")); return; }
        if (v.run !== undefined && v.cancelling === undefined) note("Run #" + v.run + " started.", base + "/runs/" + v.run);
        else if (v.cancelling) note("Cancelling run #" + v.run + ".");
        else if (v.paused !== undefined) note(v.job + (v.paused ? " paused." : " unpaused."));
        refresh();
      }, function () { note("The request failed."); });
  });

  // Replace <main> with a fresh copy of this page (after events, debounced).
  var pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      fetch(location.href, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (t) {
        if (!t) return;
        var doc = new DOMParser().parseFromString(t, "text/html");
        var fresh = doc.getElementById("live");
        var cur = document.getElementById("live");
        if (!fresh || !cur) return;
        var log = document.getElementById("log");
        var freshLog = doc.getElementById("log");
        if (log && freshLog && log.getAttribute("data-src") === freshLog.getAttribute("data-src")) {
          // Keep the log that is being followed; take the new status.
          log.setAttribute("data-status", freshLog.getAttribute("data-status"));
          freshLog.parentNode.replaceChild(log, freshLog);
        }
        cur.parentNode.replaceChild(fresh, cur);
        follow();
      });
    }, 150);
  }

  function text(tag, s) { var e = document.createElement(tag); e.textContent = s; return e; }

  function eventItem(ev) {
    var li = document.createElement("li");
    li.setAttribute("data-run", String(ev.run));
    li.setAttribute("data-kind", ev.kind);
    li.appendChild(text("time", ev.at));
    li.appendChild(document.createTextNode(" "));
    var a = text("a", "#" + ev.run);
    a.href = base + "/runs/" + ev.run;
    li.appendChild(a);
    li.appendChild(document.createTextNode(" " + ev.job + (ev.task ? " " + ev.task : "") + " "));
    li.appendChild(text("b", ev.kind));
    li.appendChild(document.createTextNode(" " + ev.detail));
    return li;
  }

  // The event stream: one per tab, only while a daemon runs.
  if (body.getAttribute("data-live") === "1" && window.EventSource) {
    var es = new EventSource(base + "/api/events");
    var state = document.getElementById("stream-state");
    es.onmessage = function (m) {
      var ev; try { ev = JSON.parse(m.data); } catch (_) { return; }
      var list = document.getElementById("events");
      if (list) { list.insertBefore(eventItem(ev), list.firstChild); return; }
      refresh();
    };
    es.addEventListener("reset", refresh);
    es.addEventListener("daemon", function () {
      es.close();
      if (state) { state.textContent = "The daemon stopped: reload when it runs again."; state.className = "banner"; }
    });
  }

  // Follow a running attempt's log: fetch what was appended, only while it runs.
  var timer = null;
  function follow() {
    var log = document.getElementById("log");
    if (!log || timer) return;
    if (log.getAttribute("data-status") !== "running") return;
    timer = setTimeout(function () {
      timer = null;
      var off = log.getAttribute("data-offset") || "0";
      fetch(log.getAttribute("data-src") + "?offset=" + off, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) return null;
        var end = r.headers.get("X-Log-End");
        var st = r.headers.get("X-Attempt-Status");
        return r.text().then(function (t) {
          if (t) log.appendChild(document.createTextNode(t));
          if (end) log.setAttribute("data-offset", end);
          if (st) log.setAttribute("data-status", st);
          log.scrollTop = log.scrollHeight;
        });
      }).then(follow, follow);
    }, 1000);
  }
  follow();
})();
