/* LeadPilot chat widget: <script src="https://<api>/widget.js" data-key="<widget public key>" async></script>
 * One websocket to the API; the session token lives in localStorage so a reload resumes the conversation and
 * its transcript. Messages are sent with a client id, so resending after a dropped connection is harmless.
 * Styles live in a shadow root and never touch the host page. */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-key][src*='widget.js']");
  if (!script || window.__leadpilotWidget) return;
  window.__leadpilotWidget = true;
  var KEY = script.getAttribute("data-key");
  var BASE = new URL(script.src, location.href);
  var WS_BASE = (BASE.protocol === "https:" ? "wss://" : "ws://") + BASE.host;
  var STORE = "leadpilot:" + KEY + ":token";
  var OPEN_STORE = "leadpilot:" + KEY + ":open";

  var state = {ws: null, token: safeGet(STORE), session: false, widget: null, messages: {}, order: [],
               outbox: [], retry: 0, typingTimer: null, lastTyping: 0, starting: false};

  function safeGet(k) { try { return localStorage.getItem(k); } catch (e) { return null; } }
  function safeSet(k, v) { try { v === null ? localStorage.removeItem(k) : localStorage.setItem(k, v); } catch (e) {} }
  function uid() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }

  var host = document.createElement("div");
  host.id = "leadpilot-widget";
  document.body.appendChild(host);
  var root = host.attachShadow({mode: "open"});
  root.innerHTML =
    '<style>' +
    ':host{all:initial}*{box-sizing:border-box;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif}' +
    '.launcher{position:fixed;right:20px;bottom:20px;width:56px;height:56px;border-radius:50%;border:0;' +
    'color:#fff;font-size:26px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25);z-index:2147483000}' +
    '.panel{position:fixed;right:20px;bottom:88px;width:340px;max-width:calc(100vw - 40px);height:480px;' +
    'max-height:calc(100vh - 120px);background:#fff;border-radius:14px;box-shadow:0 10px 40px rgba(0,0,0,.25);' +
    'display:none;flex-direction:column;overflow:hidden;z-index:2147483000}.panel.open{display:flex}' +
    '.head{color:#fff;padding:14px 16px;font-weight:600}.head small{display:block;font-weight:400;opacity:.85}' +
    '.log{flex:1;overflow-y:auto;padding:12px;background:#f7f7f9}' +
    '.msg{max-width:80%;margin:6px 0;padding:8px 12px;border-radius:14px;line-height:1.35;font-size:14px;' +
    'white-space:pre-wrap;word-wrap:break-word}.in{background:#fff;border:1px solid #e5e7eb;margin-right:auto}' +
    '.out{color:#fff;margin-left:auto}.pending{opacity:.6}.typing{font-size:13px;color:#6b7280;padding:0 14px 6px;' +
    'display:none}.typing.on{display:block}.form{padding:12px;display:flex;gap:8px;border-top:1px solid #eee}' +
    'textarea{flex:1;resize:none;border:1px solid #d1d5db;border-radius:10px;padding:8px;font-size:14px;height:40px}' +
    'button.send{border:0;border-radius:10px;color:#fff;padding:0 14px;cursor:pointer}' +
    '.prechat{padding:16px;display:none;flex-direction:column;gap:8px}.prechat.on{display:flex}' +
    '.prechat input{border:1px solid #d1d5db;border-radius:8px;padding:8px;font-size:14px}' +
    '.prechat button{border:0;border-radius:8px;color:#fff;padding:10px;cursor:pointer}' +
    '.err{color:#b91c1c;font-size:13px;min-height:1em}.status{font-size:12px;color:#9ca3af;text-align:center}' +
    '</style>' +
    '<button class="launcher" part="launcher" aria-label="Open chat">&#128172;</button>' +
    '<div class="panel" role="dialog" aria-label="Chat">' +
    '  <div class="head"><span class="biz"></span><small class="greet"></small></div>' +
    '  <div class="prechat"><div>Before we start:</div>' +
    '    <input name="name" placeholder="Your name" autocomplete="name">' +
    '    <input name="email" type="email" placeholder="Your email" autocomplete="email">' +
    '    <div class="err"></div><button class="start">Start chat</button></div>' +
    '  <div class="log" aria-live="polite"></div>' +
    '  <div class="typing">typing&hellip;</div><div class="status"></div>' +
    '  <div class="form"><textarea placeholder="Type a message" aria-label="Message"></textarea>' +
    '  <button class="send">Send</button></div>' +
    '</div>';
  var $ = function (sel) { return root.querySelector(sel); };
  var panel = $(".panel"), log = $(".log"), input = $("textarea"), typing = $(".typing"), status = $(".status");

  function color(c) {
    [$(".launcher"), $(".head"), $("button.send"), $(".prechat button")].forEach(function (el) { el.style.background = c; });
    root.host.style.setProperty("--lp-color", c);
  }
  color("#2563eb");

  function render() {
    log.innerHTML = "";
    state.order.forEach(function (id) {
      var m = state.messages[id];
      var el = document.createElement("div");
      var mine = m.direction === "inbound";
      el.className = "msg " + (mine ? "out" : "in") + (m.pending ? " pending" : "");
      if (mine) el.style.background = (state.widget && state.widget.color) || "#2563eb";
      el.setAttribute("data-direction", m.direction);
      el.setAttribute("data-sender", m.sender_type);
      if (m.streaming) el.setAttribute("data-streaming", "1");
      el.textContent = m.body;
      log.appendChild(el);
    });
    log.scrollTop = log.scrollHeight;
  }

  function upsert(m, key) {
    key = key || m.id;
    if (!state.messages[key]) state.order.push(key);
    state.messages[key] = Object.assign(state.messages[key] || {}, m);
  }

  function showTyping(on) {
    clearTimeout(state.typingTimer);
    typing.classList.toggle("on", !!on);
    if (on) state.typingTimer = setTimeout(function () { typing.classList.remove("on"); }, 30000);
  }

  function send(obj) {
    if (state.ws && state.ws.readyState === 1) { state.ws.send(JSON.stringify(obj)); return true; }
    return false;
  }

  function flush() {
    if (!state.session) return;
    state.outbox.forEach(function (m) { send({type: "message", body: m.body, client_id: m.client_id}); });
  }

  function connect() {
    var url = WS_BASE + "/widget/ws?key=" + encodeURIComponent(KEY) +
      (state.token ? "&token=" + encodeURIComponent(state.token) : "");
    var ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = function () { state.retry = 0; status.textContent = ""; };
    ws.onmessage = function (ev) {
      var data = JSON.parse(ev.data);
      if (data.type === "hello") {
        state.widget = data.widget;
        $(".biz").textContent = data.widget.business;
        $(".greet").textContent = data.widget.greeting;
        color(data.widget.color);
        state.session = data.session;
        if (!data.session) {
          state.token = null; safeSet(STORE, null);
          $(".prechat").classList.toggle("on", data.widget.prechat.enabled);
          if (state.outbox.length && !data.widget.prechat.enabled) start({});
        }
      } else if (data.type === "session") {
        state.token = data.token; safeSet(STORE, data.token); state.session = true; state.starting = false;
        $(".prechat").classList.remove("on");
      } else if (data.type === "transcript") {
        if (!state.viewed) {  // one page view per page load, once the visitor is known
          state.viewed = true;
          send({type: "page_view", url: location.href, referrer: document.referrer});
        }
        state.session = true;
        // the transcript is read after the live feed is subscribed: a message may arrive on the feed first, so
        // what is pending or already stored stays, the rest is rebuilt, and the log is put in time order
        var kept = state.order.filter(function (k) { var m = state.messages[k]; return m.pending || (m.id && !m.streaming); });
        Object.keys(state.messages).forEach(function (k) { if (kept.indexOf(k) < 0) delete state.messages[k]; });
        state.order = kept;
        data.messages.forEach(function (m) { upsert(m); });
        state.order.sort(function (a, b) {
          var ma = state.messages[a], mb = state.messages[b];
          var ta = ma.pending ? Infinity : (Date.parse(ma.created_at) || 0);
          var tb = mb.pending ? Infinity : (Date.parse(mb.created_at) || 0);
          return ta - tb;
        });
        render(); flush();
      } else if (data.type === "ack") {
        var pending = state.messages[data.client_id];
        state.outbox = state.outbox.filter(function (m) { return m.client_id !== data.client_id; });
        if (pending) {
          delete state.messages[data.client_id];
          var at = state.order.indexOf(data.client_id);
          if (state.messages[data.id]) state.order.splice(at, 1);
          else { state.order[at] = data.id; pending.pending = false; pending.id = data.id; state.messages[data.id] = pending; }
        }
        render();
      } else if (data.type === "message.delta") {
        // the agent's reply as it is written; replaced by the stored message when that arrives
        showTyping(false);
        var key = "stream:" + data.in_reply_to, live = state.messages[key];
        upsert({body: ((live && live.body) || "") + data.delta, direction: "outbound", sender_type: "bot",
                streaming: true}, key);
        render();
      } else if (data.type === "message.created" || data.type === "message.updated") {
        var m = data.message;
        if (m.direction === "outbound") {
          showTyping(false);
          state.order = state.order.filter(function (k) {
            if (state.messages[k].streaming) { delete state.messages[k]; return false; }
            return true;
          });
        }
        upsert(m); render();
      } else if (data.type === "typing") {
        showTyping(data.on && data.who !== "contact");
      } else if (data.type === "error") {
        state.starting = false;
        $(".err").textContent = data.detail || data.title;
        status.textContent = data.detail || data.title;
      }
    };
    ws.onclose = function () {
      state.ws = null;
      var wait = Math.min(30000, 500 * Math.pow(2, state.retry++));
      status.textContent = "Reconnecting…";
      setTimeout(connect, wait);
    };
  }

  function start(fields) {
    if (state.starting) return;
    state.starting = true;
    send(Object.assign({type: "start"}, fields));
  }

  function submit() {
    var body = input.value.trim();
    if (!body) return;
    input.value = "";
    var m = {client_id: uid(), body: body, direction: "inbound", sender_type: "contact", pending: true};
    state.outbox.push(m);
    upsert(m, m.client_id);
    render();
    if (state.session) flush();
    else if (!(state.widget && state.widget.prechat.enabled)) start({});
  }

  $(".launcher").addEventListener("click", function () {
    var open = !panel.classList.contains("open");
    panel.classList.toggle("open", open);
    safeSet(OPEN_STORE, open ? "1" : null);
    if (open) input.focus();
  });
  $("button.send").addEventListener("click", submit);
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); return; }
    var now = Date.now();
    if (state.session && now - state.lastTyping > 2000) { state.lastTyping = now; send({type: "typing", on: true}); }
  });
  $(".prechat button").addEventListener("click", function () {
    $(".err").textContent = "";
    start({name: $(".prechat input[name=name]").value, email: $(".prechat input[name=email]").value});
  });
  if (safeGet(OPEN_STORE)) panel.classList.add("open");
  setInterval(function () { send({type: "ping"}); }, 25000);
  connect();
})();
