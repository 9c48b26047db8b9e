/* LeadPilot staff app: sign-in and the live inbox. Talks to the REST API with the session cookie and follows
 * the sub-account's inbox socket, so new messages, handoffs, claims and delivery statuses appear without a
 * reload. No framework, no CDN. */
(function () {
  "use strict";
  var $ = function (sel, el) { return (el || document).querySelector(sel); };
  var page = document.body.getAttribute("data-page");

  function api(method, path, body) {
    return fetch(path, {method: method, credentials: "same-origin",
                        headers: body ? {"Content-Type": "application/json"} : {},
                        body: body ? JSON.stringify(body) : undefined})
      .then(function (r) {
        if (r.status === 401) { location.href = "/app/sign-in"; throw new Error("signed out"); }
        if (r.status === 204) return null;
        return r.json().then(function (data) {
          if (!r.ok) { var e = new Error(data.detail || data.title); e.status = r.status; e.data = data; throw e; }
          return data;
        });
      });
  }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function ago(seconds) {
    if (seconds < 60) return seconds + "s";
    if (seconds < 3600) return Math.floor(seconds / 60) + "m";
    return Math.floor(seconds / 3600) + "h " + Math.floor((seconds % 3600) / 60) + "m";
  }

  if (page === "signin") {
    $("#signin").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var form = ev.target;
      api("POST", "/auth/sign-in", {email: form.email.value, password: form.password.value})
        .then(function () { location.href = "/app/inbox"; })
        .catch(function (e) { $(".error").textContent = e.message; });
    });
    return;
  }

  var state = {me: null, sub: null, view: "needs_human", open: null, ws: null, retry: 0, canned: [], staff: []};

  function base() { return "/v1/sub-accounts/" + state.sub + "/inbox"; }

  function loadList() {
    var params = new URLSearchParams({view: state.view});
    if ($("#search").value.trim()) params.set("q", $("#search").value.trim());
    if ($("#f-channel").value) params.set("channel", $("#f-channel").value);
    if ($("#f-tag").value.trim()) params.set("tag", $("#f-tag").value.trim());
    if ($("#f-assignee").value) params.set("assignee", $("#f-assignee").value);
    return api("GET", base() + "/conversations?" + params).then(function (rows) {
      var list = $("#list");
      list.innerHTML = "";
      rows.forEach(function (c) {
        var item = el("li", {"data-id": c.id, "class": "conv" + (c.id === state.open ? " open" : "")});
        var head = el("div", {"class": "who"}, c.contact.name || c.contact.phone || c.contact.email);
        head.appendChild(el("span", {"class": "chan"}, c.channel));
        item.appendChild(head);
        if (c.handoff) {
          var h = el("div", {"class": "handoff"}, c.handoff.reason.replace(/_/g, " ") + " · waiting " +
                     ago(c.handoff.wait_seconds));
          if (c.handoff.claimed_by) h.appendChild(el("span", {"class": "claimed"},
            c.handoff.claimed_by === state.me.user.id ? " · claimed by you" : " · claimed"));
          item.appendChild(h);
        }
        if (c.last_message) item.appendChild(el("div", {"class": "last"}, c.last_message.body));
        item.addEventListener("click", function () { openConversation(c.id); });
        list.appendChild(item);
      });
      if (state.view === "needs_human") $("#count-needs_human").textContent = rows.length ? "(" + rows.length + ")" : "";
    });
  }

  function openConversation(id) {
    state.open = id;
    Array.prototype.forEach.call(document.querySelectorAll(".conv"), function (n) {
      n.classList.toggle("open", n.getAttribute("data-id") === id);
    });
    return api("GET", base() + "/conversations/" + id).then(renderConversation);
  }

  function button(label, cls, handler) {
    var b = el("button", {"class": cls}, label);
    b.addEventListener("click", function () {
      b.disabled = true;
      Promise.resolve(handler()).catch(function (e) { flash(e.message); })
        .then(function () { b.disabled = false; });
    });
    return b;
  }
  function flash(text) {
    var f = $("#flash");
    if (f) { f.textContent = text; f.hidden = false; }
  }

  function renderConversation(c) {
    var pane = $("#pane");
    pane.innerHTML = "";
    pane.setAttribute("data-id", c.id);
    var head = el("div", {"class": "pane-head"});
    head.appendChild(el("h2", {}, c.contact.name));
    head.appendChild(el("span", {"class": "status"}, c.status + " · " + c.channel +
      (c.ai ? " · AI " + (c.ai.active ? c.ai.mode : "paused") : "")));
    var assign = el("select", {"class": "assign", "aria-label": "Assign to"});
    assign.appendChild(el("option", {value: ""}, "Unassigned"));
    state.staff.forEach(function (u) {
      var o = el("option", {value: u.id}, u.name + (u.available ? "" : " (away)"));
      if (u.id === c.assigned_user_id) o.selected = true;
      assign.appendChild(o);
    });
    assign.appendChild(el("option", {value: "round_robin"}, "Next available (round robin)"));
    assign.addEventListener("change", function () {
      var body = assign.value === "round_robin" ? {strategy: "round_robin"} : {strategy: "manual", user_id: assign.value};
      if (!assign.value) return;
      api("POST", base() + "/conversations/" + c.id + "/assign", body).then(refresh)
        .catch(function (e) { flash(e.message); });
    });
    head.appendChild(assign);
    pane.appendChild(head);
    var flashBox = el("p", {id: "flash", "class": "flash", role: "alert"});
    flashBox.hidden = true;
    pane.appendChild(flashBox);
    if (c.handoff) {
      var box = el("div", {"class": "handoff-box"});
      box.appendChild(el("strong", {}, "Handed off: " + c.handoff.reason.replace(/_/g, " ")));
      if (c.handoff.summary) box.appendChild(el("p", {}, c.handoff.summary));
      if (c.handoff.claimed_by) {
        box.appendChild(el("p", {"class": "claimed-by"}, "Claimed by " +
          (c.handoff.claimed_by === state.me.user.id ? "you" : (c.handoff.claimed_by_name || "a colleague"))));
      } else {
        box.appendChild(button("Claim", "primary claim", function () {
          return api("POST", base() + "/conversations/" + c.id + "/claim").then(function () { return refresh(); });
        }));
      }
      pane.appendChild(box);
    }
    var log = el("div", {"class": "transcript"});
    c.messages.forEach(function (m) {
      var who = m.sender_type === "contact" ? "lead" : m.sender_type === "bot" ? "AI" :
        m.sender_type === "user" ? (m.sender_name || "staff") : "system";
      var item = el("div", {"class": "msg " + m.direction + " " + m.sender_type +
        (m.content_type === "note" ? " note" : "") + (m.status === "pending_approval" ? " draft" : ""),
        "data-status": m.status});
      item.appendChild(el("div", {"class": "meta"}, who + " · " + new Date(m.created_at).toLocaleTimeString() +
        (m.direction === "outbound" && m.content_type !== "note" ? " · " + m.status : "") +
        (m.content_type === "note" ? " · internal note" : "")));
      item.appendChild(el("div", {"class": "body"}, m.body));
      log.appendChild(item);
    });
    pane.appendChild(log);
    if (c.suggestion) {
      var s = el("div", {"class": "suggestion"});
      s.appendChild(el("strong", {}, "AI suggestion"));
      var text = el("textarea", {"class": "suggestion-text"});
      text.value = c.suggestion.body;
      s.appendChild(text);
      s.appendChild(button("Send", "primary", function () {
        return api("POST", base() + "/conversations/" + c.id + "/suggestions/" + c.suggestion.id,
                   {action: "approve", body: text.value}).then(refresh);
      }));
      s.appendChild(button("Discard", "", function () {
        return api("POST", base() + "/conversations/" + c.id + "/suggestions/" + c.suggestion.id,
                   {action: "discard"}).then(refresh);
      }));
      pane.appendChild(s);
    }
    var composer = el("div", {"class": "composer"});
    var input = el("textarea", {"class": "reply-text", placeholder: "Reply to the lead (or write a note)"});
    composer.appendChild(input);
    if (state.canned.length) {
      var pick = el("select", {"class": "canned", "aria-label": "Canned response"});
      pick.appendChild(el("option", {value: ""}, "Canned response…"));
      state.canned.forEach(function (r, i) { pick.appendChild(el("option", {value: String(i)}, "/" + r.shortcut + " · " + r.title)); });
      pick.addEventListener("change", function () {
        if (pick.value !== "") { input.value = state.canned[Number(pick.value)].body; input.focus(); }
        pick.value = "";
      });
      composer.appendChild(pick);
    }
    var actions = el("div", {"class": "actions"});
    actions.appendChild(button("Send reply", "primary send-reply", function () {
      if (!input.value.trim()) return null;
      return api("POST", base() + "/conversations/" + c.id + "/reply", {body: input.value})
        .then(function () { input.value = ""; return refresh(); });
    }));
    actions.appendChild(button("Add note", "add-note", function () {
      if (!input.value.trim()) return null;
      return api("POST", base() + "/conversations/" + c.id + "/notes", {body: input.value})
        .then(function () { input.value = ""; return refresh(); });
    }));
    if (c.handoff || (c.ai && !c.ai.active)) {
      actions.appendChild(button("Return to AI", "return-ai", function () {
        return api("POST", base() + "/conversations/" + c.id + "/return-to-ai").then(refresh);
      }));
    }
    if (c.status !== "resolved") {
      actions.appendChild(button("Resolve", "resolve", function () {
        return api("POST", base() + "/conversations/" + c.id + "/resolve").then(refresh);
      }));
    }
    composer.appendChild(actions);
    pane.appendChild(composer);
    var card = el("aside", {"class": "card"});
    card.appendChild(el("h3", {}, "Contact"));
    [["Email", c.contact.email], ["Phone", c.contact.phone], ["Timezone", c.contact.timezone]].forEach(function (row) {
      if (row[1]) card.appendChild(el("p", {}, row[0] + ": " + row[1]));
    });
    var tags = el("div", {"class": "tags"});
    (c.contact.tags || []).forEach(function (t) {
      var chip = el("span", {"class": "tag"}, t + " ");
      chip.appendChild(button("×", "untag", function () {
        return api("POST", base() + "/conversations/" + c.id + "/tags", {name: t, remove: true}).then(refresh);
      }));
      tags.appendChild(chip);
    });
    var add = el("input", {"class": "add-tag", placeholder: "+ tag"});
    add.addEventListener("keydown", function (e) {
      if (e.key !== "Enter" || !add.value.trim()) return;
      api("POST", base() + "/conversations/" + c.id + "/tags", {name: add.value.trim()}).then(refresh)
        .catch(function (err) { flash(err.message); });
    });
    tags.appendChild(add);
    card.appendChild(tags);
    Object.keys(c.contact.custom_fields || {}).forEach(function (k) {
      card.appendChild(el("p", {}, k.replace(/_/g, " ") + ": " + JSON.stringify(c.contact.custom_fields[k])));
    });
    (c.contact.opportunities || []).forEach(function (o) {
      card.appendChild(el("p", {}, "Deal: " + o.name + " (" + o.status + ", " + o.value + ")"));
    });
    (c.contact.appointments || []).forEach(function (a) {
      card.appendChild(el("p", {}, "Booked: " + a.title + " " + new Date(a.start).toLocaleString()));
    });
    var slots = el("div", {"class": "slots"});
    card.appendChild(button("Book a time", "book", function () { return offerSlots(c, slots); }));
    card.appendChild(slots);
    pane.appendChild(card);
    log.scrollTop = log.scrollHeight;
  }

  function day(offset) {
    var d = new Date(Date.now() + offset * 86400000);
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  }

  function offerSlots(c, box) {  // the next free times of the sub-account's first calendar, in the lead's timezone
    var root = "/v1/sub-accounts/" + state.sub;
    return api("GET", root + "/calendars").then(function (cals) {
      if (!cals.length) { box.textContent = "No calendar in this sub-account."; return null; }
      var cal = cals[0], zone = c.contact.timezone || cal.timezone;
      var params = new URLSearchParams({start: day(0), end: day(7), timezone: zone});
      return api("GET", root + "/calendars/" + cal.id + "/slots?" + params).then(function (found) {
        box.innerHTML = "";
        box.appendChild(el("p", {}, cal.name + " (" + zone + "):"));
        found.slots.slice(0, 8).forEach(function (slot) {
          box.appendChild(button(slot.start.slice(5, 16).replace("T", " "), "slot", function () {
            return api("POST", root + "/appointments", {calendar_id: cal.id, contact_id: c.contact.id,
                                                        start: slot.start, timezone: zone}).then(refresh);
          }));
        });
        if (!found.slots.length) box.appendChild(el("p", {}, "No free time this week."));
      });
    });
  }

  function refresh() {
    var work = [loadList()];
    if (state.open) work.push(openConversation(state.open));
    return Promise.all(work);
  }

  var pending = null;
  function soon() {  // many events in a burst: one refresh
    if (pending) return;
    pending = setTimeout(function () { pending = null; refresh(); }, 120);
  }

  function connect() {
    var proto = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(proto + location.host + "/v1/ws/inbox?sub_account_id=" + state.sub);
    state.ws = ws;
    ws.onopen = function () { state.retry = 0; $("#live").className = "live on"; };
    ws.onmessage = function (ev) {
      var data = JSON.parse(ev.data);
      if (data.type === "typing" || data.type === "message.delta" || data.type === "pong") return;
      soon();
    };
    ws.onclose = function () {
      $("#live").className = "live off";
      if (state.ws !== ws) return;
      setTimeout(connect, Math.min(15000, 500 * Math.pow(2, state.retry++)));
    };
  }

  function useSub(id) {
    state.sub = id; state.open = null; state.canned = []; state.staff = [];
    api("GET", "/v1/sub-accounts/" + id + "/inbox/staff").then(function (rows) {
      state.staff = rows;
      var pick = $("#f-assignee");
      pick.innerHTML = '<option value="">anyone</option>';
      rows.forEach(function (u) { pick.appendChild(el("option", {value: u.id}, u.name)); });
    }).catch(function () {});
    api("GET", "/v1/sub-accounts/" + id + "/inbox/canned-responses")
      .then(function (rows) { state.canned = rows; }).catch(function () {});
    var here = state.me.sub_accounts.filter(function (s) { return s.id === id; })[0];
    Array.prototype.forEach.call(document.querySelectorAll(".views button[data-tool]"), function (b) {
      b.hidden = !(here && here.permissions.indexOf(b.getAttribute("data-perm")) >= 0);  // only what the role may use
    });
    $("#pane").innerHTML = '<p class="empty">Pick a conversation.</p>';
    if (state.ws) { var old = state.ws; state.ws = null; old.close(); }
    connect();
    return loadList();
  }

  api("GET", "/auth/me").then(function (me) {
    state.me = me;
    $("#me").textContent = me.user.name;
    var select = $("#sub");
    me.sub_accounts.forEach(function (s) { select.appendChild(el("option", {value: s.id}, s.name)); });
    select.addEventListener("change", function () { useSub(select.value); });
    return api("GET", "/v1/sub-accounts/" + me.sub_accounts[0].id + "/inbox/conversations?view=all")
      .catch(function () { return []; })
      .then(function () { return useSub(me.sub_accounts[0].id); });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".views button[data-view]"), function (b) {
    b.addEventListener("click", function () {
      Array.prototype.forEach.call(document.querySelectorAll(".views button"), function (o) { o.classList.remove("on"); });
      b.classList.add("on");
      state.view = b.getAttribute("data-view");
      loadList();
    });
  });
  function table(t) {
    var node = el("table", {"class": "figures"});
    var head = el("tr");
    t.columns.forEach(function (c) { head.appendChild(el("th", {}, c)); });
    node.appendChild(head);
    t.rows.forEach(function (r) {
      var tr = el("tr");
      r.forEach(function (v) { tr.appendChild(el("td", {}, v === null ? "-" : String(v))); });
      node.appendChild(tr);
    });
    return node;
  }
  function minutes(s) { return s === null || s === undefined ? "-" : (s / 60).toFixed(1) + " min"; }

  function showMetrics() {
    state.open = null;
    var pane = $("#pane");
    pane.innerHTML = "";
    pane.removeAttribute("data-id");
    var url = "/v1/sub-accounts/" + state.sub + "/reports/handoffs";
    return api("GET", url).then(function (m) {
      var box = el("div", {"class": "metrics"});
      box.appendChild(el("h2", {}, "Handoffs, last 30 days"));
      box.appendChild(el("p", {}, m.handoffs + " handoffs in " + m.ai_conversations + " AI conversations (rate " +
        (m.handoff_rate === null ? "-" : (100 * m.handoff_rate).toFixed(1) + "%") + "). Time to claim: median " +
        minutes(m.time_to_claim.p50_s) + ", p90 " + minutes(m.time_to_claim.p90_s) + ". Time to resolve: median " +
        minutes(m.time_to_resolve.p50_s) + "."));
      box.appendChild(el("img", {src: url + "?format=png", alt: "Handoffs by reason", "class": "chart"}));
      box.appendChild(table({columns: ["reason", "handoffs", "rate", "median time to claim"],
        rows: m.by_reason.map(function (r) {
          return [r.reason.replace(/_/g, " "), r.handoffs, r.rate === null ? "-" : (100 * r.rate).toFixed(1) + "%",
                  minutes(r.time_to_claim.p50_s)];
        })}));
      box.appendChild(table({columns: ["person", "claimed", "resolved", "median time to claim"],
        rows: m.by_person.map(function (p) { return [p.name, p.claimed, p.resolved, minutes(p.time_to_claim.p50_s)]; })}));
      pane.appendChild(box);
    }).catch(function (e) { pane.appendChild(el("p", {"class": "flash"}, e.message)); });
  }

  function showAnalyst() {
    state.open = null;
    var pane = $("#pane");
    pane.innerHTML = "";
    pane.removeAttribute("data-id");
    var box = el("div", {"class": "analyst"});
    box.appendChild(el("h2", {}, "Ask about your numbers"));
    var form = el("form", {"class": "ask"});
    var input = el("input", {name: "question", placeholder: "e.g. what was our show rate last month vs the month before?"});
    form.appendChild(input);
    form.appendChild(el("button", {"class": "primary", type: "submit"}, "Ask"));
    var out = el("div", {"class": "answer"});
    box.appendChild(form);
    box.appendChild(out);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      out.textContent = "Thinking…";
      api("POST", "/v1/analyst/ask", {question: input.value, sub_account_id: state.sub}).then(function (a) {
        out.innerHTML = "";
        out.appendChild(el("p", {"class": "answer-text"}, a.answer));
        if (a.table && a.table.columns) out.appendChild(table(a.table));
        if (a.table && a.table.formula) out.appendChild(el("p", {"class": "formula"}, "Formula: " + a.table.formula));
        if (a.chart_png_base64) out.appendChild(el("img", {"class": "chart", alt: "chart",
          src: "data:image/png;base64," + a.chart_png_base64}));
      }).catch(function (e) { out.textContent = e.message; });
    });
    pane.appendChild(box);
    input.focus();
  }

  function blank(cls, title) {
    state.open = null;
    var pane = $("#pane");
    pane.innerHTML = "";
    pane.removeAttribute("data-id");
    var box = el("div", {"class": "tool " + cls});
    box.appendChild(el("h2", {}, title));
    pane.appendChild(box);
    return box;
  }
  function root() { return "/v1/sub-accounts/" + state.sub; }

  function showContacts() {
    var box = blank("contacts", "Contacts");
    var search = el("input", {type: "search", placeholder: "Name, email, phone, company", "class": "contact-search"});
    var list = el("div"), card = el("div", {"class": "contact-card"});
    box.appendChild(search); box.appendChild(list); box.appendChild(card);
    function load() {
      var params = new URLSearchParams({page_size: "25"});
      if (search.value.trim()) params.set("q", search.value.trim());
      return api("GET", root() + "/contacts?" + params).then(function (page) {
        list.innerHTML = "";
        list.appendChild(el("p", {"class": "status"}, page.total + " contacts"));
        var t = table({columns: ["name", "email", "phone", "stage", "tags"], rows: page.items.map(function (c) {
          return [c.name || "-", c.email || "-", c.phone || "-", c.lifecycle_stage || "-", (c.tags || []).join(", ")];
        })});
        Array.prototype.forEach.call(t.querySelectorAll("tr"), function (tr, i) {
          if (!i) return;
          var c = page.items[i - 1];
          tr.className = "clickable";
          tr.addEventListener("click", function () {
            card.innerHTML = "";
            card.appendChild(el("h3", {}, c.name || c.email || c.phone));
            ["email", "phone", "company_name", "timezone", "source", "lifecycle_stage", "lead_score"].forEach(function (k) {
              if (c[k] !== null && c[k] !== undefined && c[k] !== "") card.appendChild(el("p", {}, k.replace(/_/g, " ") + ": " + c[k]));
            });
            Object.keys(c.custom_fields || {}).forEach(function (k) {
              card.appendChild(el("p", {}, k.replace(/_/g, " ") + ": " + JSON.stringify(c.custom_fields[k])));
            });
          });
        });
        list.appendChild(t);
      });
    }
    search.addEventListener("input", function () { clearTimeout(search.t); search.t = setTimeout(load, 200); });
    return load();
  }

  function showCalendar(offsetWeeks) {
    offsetWeeks = offsetWeeks || 0;
    var box = blank("calendar", "Calendar");
    var now = new Date(), monday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - ((now.getDay() + 6) % 7) + 7 * offsetWeeks);
    var end = new Date(monday.getTime() + 7 * 86400000);
    var nav = el("div", {"class": "actions"});
    nav.appendChild(button("‹ Previous week", "", function () { return showCalendar(offsetWeeks - 1); }));
    nav.appendChild(el("strong", {}, monday.toLocaleDateString() + " – " + new Date(end - 86400000).toLocaleDateString()));
    nav.appendChild(button("Next week ›", "", function () { return showCalendar(offsetWeeks + 1); }));
    box.appendChild(nav);
    var week = el("div", {"class": "week"});
    var days = [];
    for (var i = 0; i < 7; i++) {
      var d = new Date(monday.getTime() + i * 86400000), col = el("div", {"class": "day"});
      col.appendChild(el("h4", {}, d.toLocaleDateString(undefined, {weekday: "short", month: "short", day: "numeric"})));
      days.push(col); week.appendChild(col);
    }
    box.appendChild(week);
    var params = new URLSearchParams({start: monday.toISOString(), end: end.toISOString()});
    return api("GET", root() + "/appointments?" + params).then(function (rows) {
      rows.forEach(function (a) {
        var start = new Date(a.start), idx = Math.floor((start - monday) / 86400000);
        if (idx < 0 || idx > 6) return;
        var item = el("div", {"class": "appt " + a.status});
        item.appendChild(el("b", {}, start.toLocaleTimeString([], {hour: "numeric", minute: "2-digit"})));
        item.appendChild(el("div", {}, a.title));
        item.appendChild(el("div", {"class": "status"}, a.contact + " · " + a.status));
        days[idx].appendChild(item);
      });
    });
  }

  function showPipeline() {
    var box = blank("pipeline", "Pipeline");
    return api("GET", root() + "/pipelines").then(function (pipes) {
      if (!pipes.length) { box.appendChild(el("p", {}, "No pipeline yet.")); return null; }
      var chosen = pipes.filter(function (p) { return p.is_default; })[0] || pipes[0];
      return api("GET", root() + "/pipelines/" + chosen.id + "/board").then(function (b) {
        box.querySelector("h2").textContent = "Pipeline: " + b.name;
        var board = el("div", {"class": "board"});
        b.stages.forEach(function (st) {
          var col = el("div", {"class": "stage"});
          col.appendChild(el("h4", {}, st.name + " (" + st.opportunities.length + ")"));
          col.appendChild(el("div", {"class": "status"}, "$" + Number(st.total).toLocaleString()));
          st.opportunities.forEach(function (o) {
            var card = el("div", {"class": "deal"});
            card.appendChild(el("b", {}, o.name));
            card.appendChild(el("div", {}, o.contact + " · $" + Number(o.value).toLocaleString()));
            card.appendChild(el("div", {"class": "status"}, o.days_in_stage + " days in stage"));
            col.appendChild(card);
          });
          board.appendChild(col);
        });
        box.appendChild(board);
      });
    }).catch(function (e) { box.appendChild(el("p", {"class": "flash"}, e.message)); });
  }

  var SYNC_BADGES = {up_to_date: ["Up to date", "#dcfce7", "#166534"], delayed: ["Delayed", "#fef3c7", "#92400e"],
                     failed: ["Failed", "#fee2e2", "#991b1b"], never_synced: ["Never synced", "#e5e7eb", "#374151"]};

  function watchSync(i, tries) {  // until a worker has tried the sync (or a minute passed), then redraw
    var sub = state.sub;
    setTimeout(function () {
      if (state.sub !== sub || !$(".tool.integrations")) return;
      api("GET", root() + "/integrations/" + i.id).then(function (now) {
        if (now.last_attempt_at !== i.last_attempt_at || tries >= 30) return showIntegrations();
        watchSync(i, tries + 1);
      }).catch(function () { showIntegrations(); });
    }, 2000);
  }

  function showIntegrations() {  // the sub-account's connections: sync status, last sync, last error, retry
    var box = blank("integrations", "Integrations");
    var here = state.me.sub_accounts.filter(function (s) { return s.id === state.sub; })[0];
    var canManage = !!here && here.permissions.indexOf("integrations.manage") >= 0;
    var note = el("p", {"class": "status sync-note", role: "status"});
    box.appendChild(note);
    return api("GET", root() + "/integrations").then(function (rows) {
      if (!rows.length) { box.appendChild(el("p", {"class": "empty"}, "No integrations connected.")); return; }
      var t = el("table", {"class": "figures integrations"});
      var head = el("tr");
      ["Integration", "Account", "Status", "Last sync", "Last error", ""].forEach(function (c) {
        head.appendChild(el("th", {}, c));
      });
      t.appendChild(head);
      rows.forEach(function (i) {
        var tr = el("tr", {"data-id": i.id, "data-status": i.data_sync_status});
        var name = el("td", {}, i.name);
        name.appendChild(el("div", {"class": "status"}, i.provider + (i.authentication_status !== "connected" ?
          " · " + i.authentication_status.replace(/_/g, " ") : "") + (i.is_active ? "" : " · paused")));
        tr.appendChild(name);
        tr.appendChild(el("td", {}, i.connection_id || "-"));
        var look = SYNC_BADGES[i.data_sync_status] || [i.data_sync_status, "#e5e7eb", "#374151"];
        var cell = el("td");
        cell.appendChild(el("span", {"class": "tag sync-badge sync-" + i.data_sync_status,
          style: "background:" + look[1] + ";color:" + look[2] + ";padding:2px 8px;white-space:nowrap"}, look[0]));
        if (i.next_retry_at && i.data_sync_status !== "up_to_date") {
          cell.appendChild(el("div", {"class": "status"}, "retry " + new Date(i.next_retry_at).toLocaleString()));
        }
        tr.appendChild(cell);
        tr.appendChild(el("td", {"class": "last-sync"}, i.last_sync_time ? new Date(i.last_sync_time).toLocaleString() : "never"));
        tr.appendChild(el("td", {"class": "last-error"}, i.last_error || "-"));
        var act = el("td");
        if (i.syncs && canManage) {
          var retry = button("Retry sync", "retry-sync", function () {
            return api("POST", root() + "/integrations/" + i.id + "/sync").then(function () {
              note.className = "status sync-note";
              note.textContent = "Sync of " + i.name + " queued…";
              watchSync(i, 0);
            }).catch(function (e) { note.className = "flash sync-note"; note.textContent = e.message; });
          });
          if (i.authentication_status !== "connected" || !i.has_credentials) {
            retry.disabled = true;
            retry.title = "Reconnect with a new access token first";
          }
          act.appendChild(retry);
        }
        tr.appendChild(act);
        t.appendChild(tr);
      });
      box.appendChild(t);
    }).catch(function (e) { box.appendChild(el("p", {"class": "flash"}, e.message)); });
  }

  var TOOLS = {metrics: showMetrics, analyst: showAnalyst, contacts: showContacts, calendar: showCalendar,
               pipeline: showPipeline, integrations: showIntegrations};
  Array.prototype.forEach.call(document.querySelectorAll(".views button[data-tool]"), function (b) {
    b.addEventListener("click", function () { TOOLS[b.getAttribute("data-tool")](); });
  });
  $("#f-channel").addEventListener("change", function () { loadList(); });
  $("#f-assignee").addEventListener("change", function () { loadList(); });
  $("#f-tag").addEventListener("input", function () { soon(); });
  $("#search").addEventListener("input", function () { soon(); });
  $("#signout").addEventListener("click", function () {
    api("POST", "/auth/sign-out").then(function () { location.href = "/app/sign-in"; });
  });
  setInterval(function () { if (state.ws && state.ws.readyState === 1) state.ws.send('{"type":"ping"}'); }, 25000);
  setInterval(function () { if (state.view === "needs_human") loadList(); }, 30000);  // wait times tick
})();
