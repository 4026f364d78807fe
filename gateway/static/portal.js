/* The pages' own JavaScript (no library, no build step): countdowns driven by the server's
   clock, and the live parts over the stream (/v1/stream, subprotocol ige.v1.json) with a
   ticket taken through the session: the pool's new rounds, and a round's masked book kept from
   a snapshot and quotes exactly as auction/livebook.py keeps it (ranking key: apr, then
   annual_rate, then seq; a quote whose rank or book_size disagrees, or a gap in seq, means a
   resync). Numbers arrive as decimal strings and are formatted as strings with the locale's
   symbols and patterns that Babel gave the page: never through a binary float. */
(function () {
  "use strict";
  var body = document.body;
  var D = body.dataset;
  var msgsEl = document.getElementById("msgs");
  var M = msgsEl ? msgsEl.dataset : {};
  var offset = Number(D.serverNow || Date.now()) - Date.now(); // server clock - this clock

  function serverNow() { return Date.now() + offset; }
  function setServerTime(iso) {
    var t = Date.parse(iso);
    if (!isNaN(t)) { offset = t - Date.now(); }
  }

  // -- formatting (exact, from decimal strings) ---------------------------------------
  function grouped(digits) {
    var out = "";
    while (digits.length > 3) {
      out = D.fmtGroup + digits.slice(-3) + out;
      digits = digits.slice(0, -3);
    }
    return digits + out;
  }
  function decimal(text, minFrac, maxFrac) {
    var s = String(text);
    var neg = s.charAt(0) === "-";
    if (neg) { s = s.slice(1); }
    var parts = s.split(".");
    var frac = (parts[1] || "").slice(0, maxFrac);
    while (frac.length > minFrac && frac.charAt(frac.length - 1) === "0") { frac = frac.slice(0, -1); }
    while (frac.length < minFrac) { frac += "0"; }
    return (neg ? "-" : "") + grouped(parts[0] || "0") + (frac ? D.fmtDecimal + frac : "");
  }
  function money(text, currency) {
    var pattern = D["fmtCur" + String(currency).toLowerCase()] || ("{n} " + currency);
    return pattern.replace("{n}", decimal(text, 2, 2));
  }
  function pct(text) { return (D.fmtPct || "{n}%").replace("{n}", decimal(text, 2, 4)); }

  // -- countdowns ---------------------------------------------------------------------
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var els = document.querySelectorAll("[data-closes]");
    for (var i = 0; i < els.length; i++) {
      var left = Number(els[i].dataset.closes) - serverNow();
      var text;
      if (left <= 0) {
        text = M.closing;
      } else {
        var s = Math.floor(left / 1000);
        var d = Math.floor(s / 86400); s -= d * 86400;
        var h = Math.floor(s / 3600); s -= h * 3600;
        var m = Math.floor(s / 60); s -= m * 60;
        text = (d ? d + " " + M.days + " " : "") + two(h) + ":" + two(m) + ":" + two(s);
      }
      if (els[i].textContent !== text) { els[i].textContent = text; }
    }
  }
  tick();
  window.setInterval(tick, 1000);

  // -- the book, as auction/livebook.py keeps it --------------------------------------
  function scaled(text) { // a decimal string as an exact integer of millionths
    var s = String(text), neg = s.charAt(0) === "-";
    if (neg) { s = s.slice(1); }
    var parts = s.split(".");
    var frac = ((parts[1] || "") + "000000").slice(0, 6);
    var v = BigInt(parts[0] || "0") * 1000000n + BigInt(frac);
    return neg ? -v : v;
  }
  function keyOf(e) { return [scaled(e.apr), scaled(e.annual_rate), BigInt(e.seq)]; }
  function cmp(a, b) {
    for (var i = 0; i < 3; i++) {
      if (a[i] < b[i]) { return -1; }
      if (a[i] > b[i]) { return 1; }
    }
    return 0;
  }
  function Book() { this.seq = null; this.byRef = {}; this.order = []; }
  Book.prototype.load = function (snap) {
    var self = this;
    this.byRef = {};
    this.order = [];
    snap.offers.forEach(function (e) { self.byRef[e.ref] = e; self.order.push(e.ref); });
    this.order.sort(function (a, b) { return cmp(keyOf(self.byRef[a]), keyOf(self.byRef[b])); });
    this.seq = Number(snap.seq);
  };
  Book.prototype.place = function (key) { // first index whose key is not below ``key``
    var lo = 0, hi = this.order.length;
    while (lo < hi) {
      var mid = (lo + hi) >> 1;
      if (cmp(keyOf(this.byRef[this.order[mid]]), key) < 0) { lo = mid + 1; } else { hi = mid; }
    }
    return lo;
  };
  Book.prototype.quote = function (msg) { // false: out of step, resync
    if (this.seq === null || Number(msg.seq) !== this.seq + 1) { return false; }
    var e = msg.offer;
    var old = this.byRef[e.ref];
    if (old) { this.order.splice(this.order.indexOf(e.ref), 1); }
    var at = this.place(keyOf(e));
    this.order.splice(at, 0, e.ref);
    this.byRef[e.ref] = e;
    this.seq = Number(msg.seq);
    return e.rank === at + 1 && msg.book_size === this.order.length;
  };
  Book.prototype.offers = function () {
    var self = this;
    return this.order.map(function (ref, i) {
      var e = Object.assign({}, self.byRef[ref]);
      e.rank = i + 1;
      return e;
    });
  };

  // -- rendering the book -------------------------------------------------------------
  var lastRanks = null; // ref -> rank as last shown
  var headers = Array.prototype.map.call(document.querySelectorAll("#book thead th"),
                                         function (th) { return th.textContent.trim(); });
  function cell(tr, text, cls, tag) {
    var td = document.createElement(tag || "td");
    if (cls) { td.className = cls; }
    td.dataset.label = headers[tr.children.length] || ""; // the column, on narrow screens
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function renderBook(book, announce) {
    var tbody = document.getElementById("book-rows");
    if (!tbody) { return; }
    var currency = D.currency;
    var rows = document.createDocumentFragment();
    var ranks = {};
    var changed = false;
    book.offers().forEach(function (e) {
      ranks[e.ref] = e.rank;
      var tr = document.createElement("tr");
      tr.dataset.ref = e.ref;
      var classes = e.mine ? ["mine"] : [];
      var before = lastRanks === null ? e.rank : lastRanks[e.ref];
      var mark = "";
      if (lastRanks !== null && before === undefined) { classes.push("new"); mark = " ★"; changed = true; }
      else if (before > e.rank) { classes.push("up"); mark = " ▲"; changed = true; }
      else if (before < e.rank) { classes.push("down"); mark = " ▼"; changed = true; }
      tr.className = classes.join(" ");
      var rank = cell(tr, String(e.rank), "num rank");
      if (mark) {
        var span = document.createElement("span");
        span.className = "move";
        span.textContent = mark;
        span.title = classes.indexOf("new") >= 0 ? M.new : (classes.indexOf("up") >= 0 ? M.up : M.down);
        span.setAttribute("aria-label", span.title);
        rank.appendChild(span);
      }
      var label = cell(tr, e.label, null, "th");
      label.scope = "row";
      if (e.mine) {
        var you = document.createElement("span");
        you.className = "you";
        you.textContent = " (" + M.you + ")";
        label.appendChild(you);
      }
      cell(tr, pct(e.apr), "num");
      cell(tr, pct(e.annual_rate), "num");
      cell(tr, money(e.amount, currency), "num");
      cell(tr, e.tenor_months + " / " + e.grace_months, "num");
      cell(tr, String(e.repayment_every_months), "num");
      cell(tr, money(e.upfront_fee, currency), "num");
      cell(tr, e.assumes_export_commitment ? M.yes : M.no);
      cell(tr, String(e.version), "num");
      rows.appendChild(tr);
    });
    tbody.replaceChildren(rows);
    lastRanks = ranks;
    document.getElementById("book-wrap").hidden = false;
    var locked = document.getElementById("book-locked");
    if (locked) { locked.hidden = true; }
    if (announce && changed) {
      document.getElementById("book-news").textContent = M.bookChanged;
    }
    window.setTimeout(function () { // the marks of a change fade after a few seconds
      var marked = tbody.querySelectorAll("tr.up, tr.down, tr.new");
      for (var i = 0; i < marked.length; i++) { marked[i].classList.add("settled"); }
    }, 4000);
  }

  // -- the stream ---------------------------------------------------------------------
  var topic = D.stream;
  if (!topic) { return; }
  var csrfMeta = document.querySelector('meta[name="csrf"]');
  var csrf = csrfMeta ? csrfMeta.content : "";
  var book = topic.indexOf("round:") === 0 ? new Book() : null;
  var ws = null;
  var attempts = 0;
  var closing = false;

  function connLost() {
    var el = document.getElementById("conn");
    if (el) { el.textContent = M.connLost; el.hidden = false; }
    var live = document.getElementById("live");
    if (live) { live.hidden = true; }
    body.dataset.conn = "lost";
  }
  function connOk() {
    var el = document.getElementById("conn");
    if (el) { el.hidden = true; el.textContent = ""; }
    var live = document.getElementById("live");
    if (live) { live.hidden = false; }
    body.dataset.conn = "live";
  }
  function retry() {
    if (closing) { return; }
    connLost();
    var delay = Math.min(5000, 300 * Math.pow(2, attempts++));
    window.setTimeout(connect, delay);
  }
  function subscribe(since) {
    var cmd = { op: "subscribe", topic: topic };
    if (since !== null && since !== undefined) { cmd.since_seq = since; }
    ws.send(JSON.stringify(cmd));
    ws.send(JSON.stringify({ op: "ping" })); // its pong says the catch-up has been sent
  }
  function refreshPool() {
    fetch("/desk/rounds/rows", { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("rows " + r.status); }
      return r.text();
    }).then(function (html) {
      var tpl = document.createElement("template");
      tpl.innerHTML = "<table><tbody>" + html + "</tbody></table>";
      var rows = tpl.content.querySelector("tbody");
      document.getElementById("pool-rows").replaceChildren.apply(
        document.getElementById("pool-rows"), Array.prototype.slice.call(rows.children));
      document.getElementById("pool-news").textContent = M.newRound;
      tick();
    }).catch(function () { /* the next round_opened or a reload shows it */ });
  }
  function handle(msg) {
    switch (msg.type) {
      case "pong":
        if (msg.server_time) { setServerTime(msg.server_time); }
        connOk();
        break;
      case "heartbeat":
        if (msg.server_time) { setServerTime(msg.server_time); }
        break;
      case "round_opened":
        refreshPool();
        break;
      case "snapshot":
        if (!book) { break; }
        if (msg.server_time) { setServerTime(msg.server_time); }
        book.load(msg);
        renderBook(book, lastRanks !== null);
        break;
      case "quote":
        if (!book || book.seq === null || Number(msg.seq) <= book.seq) { break; }
        if (book.quote(msg)) {
          renderBook(book, true);
        } else { // a gap or a disagreement: start over from a snapshot
          book.seq = null;
          subscribe(null);
        }
        break;
      case "round_closed": // sent once the results are recorded: the page shows them
        roundClosed();
        break;
      case "error":
        if (msg.code === "offer_required") { connOk(); }
        break;
      default:
        break;
    }
  }
  function roundClosed() {
    if (closing || D.state !== "open") { return; }
    closing = true;
    var el = document.getElementById("conn");
    if (el) { el.textContent = M.closed; el.hidden = false; }
    window.setTimeout(function () { window.location.replace(window.location.pathname); }, 500);
  }
  function connect() {
    fetch(D.ticket || "/desk/ticket", { method: "POST", credentials: "same-origin",
                            headers: { "X-CSRF-Token": csrf } })
      .then(function (r) {
        if (r.status === 403) {
          var area = window.location.pathname.indexOf("/exporter") === 0 ? "/exporter" : "/desk";
          window.location.href = area + "/login?next=" + window.location.pathname;
          throw new Error("signed out");
        }
        if (!r.ok) { throw new Error("ticket " + r.status); }
        return r.json();
      })
      .then(function (t) {
        offset = Number(t.server_time) - Date.now();
        var scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
        ws = new WebSocket(scheme + "//" + window.location.host + "/v1/stream?ticket=" +
                           encodeURIComponent(t.ticket), "ige.v1.json");
        ws.onopen = function () { attempts = 0; subscribe(book && book.seq !== null ? book.seq : null); };
        ws.onmessage = function (ev) { handle(JSON.parse(ev.data)); };
        ws.onclose = function () { ws = null; retry(); };
      })
      .catch(function (e) { if (String(e.message) !== "signed out") { retry(); } });
  }
  connect();
}());
