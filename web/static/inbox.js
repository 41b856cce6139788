// Live updates for the inbox list and the conversation page, from /ws/agent.
// The page works without this script; it only saves reloads.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var table = document.getElementById("conversations");
  var thread = document.getElementById("thread");
  var retry = 500;
  var current = null;

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    el.textContent = value;
    return el;
  }

  function row(c) {
    var tr = document.createElement("tr");
    tr.className = "conversation fresh";
    tr.dataset.id = c.id;
    tr.appendChild(text("td", c.channel, "channel channel-" + c.channel));
    var subject = document.createElement("td");
    var link = text("a", c.subject);
    link.href = "/c/" + c.id;
    subject.appendChild(link);
    tr.appendChild(subject);
    tr.appendChild(text("td", c.contact.name || c.contact.email || "Visitor"));
    tr.appendChild(text("td", c.status, "status"));
    tr.appendChild(text("td", c.priority, "priority priority-" + c.priority));
    tr.appendChild(text("td", c.last_message_at.replace("T", " ").slice(0, 16)));
    return tr;
  }

  function inView(c) {
    var view = table.dataset.view;
    var me = Number(document.querySelector("[data-agent-id]").dataset.agentId);
    if (c.status !== "open" && c.status !== "pending") return false;
    if (view === "mine") return c.assignee_id === me;
    if (view === "unassigned") return c.assignee_id === null;
    return true;
  }

  function onConversation(c) {
    var body = table.tBodies[0];
    var existing = body.querySelector('tr[data-id="' + c.id + '"]');
    if (existing) existing.remove();
    var empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    if (inView(c)) body.insertBefore(row(c), body.firstChild);
  }

  function onMessage(m) {
    if (!thread || Number(thread.closest("[data-id]").dataset.id) !== m.conversation_id) return;
    if (thread.querySelector('li[data-id="' + m.id + '"]')) return;
    var li = document.createElement("li");
    li.className = "message " + m.direction;
    li.dataset.id = m.id;
    li.appendChild(text("header", (m.internal ? "internal note" : m.direction) + " · " + m.channel));
    li.appendChild(text("pre", m.body_text, "body"));
    thread.appendChild(li);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + "/ws/agent");
    current = ws;
    ws.onopen = function () { retry = 500; live.textContent = "live"; live.classList.add("on"); };
    ws.onclose = function () {
      live.textContent = "offline"; live.classList.remove("on");
      setTimeout(connect, retry); retry = Math.min(retry * 2, 15000);
    };
    ws.onmessage = function (msg) {
      var frame = JSON.parse(msg.data);
      if (frame.type !== "event") return;
      var e = frame.event;
      if (table && e.conversation) onConversation(e.conversation);
      if (e.kind === "message.created") onMessage(e.message);
      if (e.kind === "agent.presence" && String(e.agent_id) === document.querySelector("[data-agent-id]").dataset.agentId) {
        document.getElementById("presence").textContent = e.presence;
      }
    };
  }
  if (live) {
    connect();
    setInterval(function () {
      if (current && current.readyState === 1) current.send('{"type":"ping"}');
    }, 25000);
  }
})();
