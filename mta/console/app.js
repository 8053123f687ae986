// Tern's web console: the queue (filters, live counts, detail, actions),
// local mailboxes, and received/delivered per minute from /metrics. Plain
// ES module, no build step; everything comes from /api/v1 and /metrics.
const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// Off loopback (or with [http] loopback_needs_token) the API wants the bearer
// token: asked for once, kept for the tab's life in sessionStorage.
const TOKEN_KEY = "tern-token";

async function api(path, options = {}, retried = false) {
  const sent = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers || {}), ...(sent ? { Authorization: `Bearer ${sent}` } : {}) };
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401 && !retried) {
    // prompt() blocks the page, so requests that failed at the same time
    // find the token given meanwhile and only retry.
    if (sessionStorage.getItem(TOKEN_KEY) === sent) {
      const t = prompt("Tern admin API token (http.token_file)");
      if (!t) throw new Error("the admin API needs its token");
      sessionStorage.setItem(TOKEN_KEY, t.trim());
    }
    return api(path, options, true);
  }
  const type = r.headers.get("content-type") || "";
  const body = type.startsWith("application/json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function age(seconds) {
  const s = Math.max(0, Math.floor(Date.now() / 1000 - seconds));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

async function loadCounts() {
  const s = await api("/api/v1/stats");
  const parts = [`${s.messages} messages`, `${s.held} held`];
  for (const [k, v] of Object.entries(s.recipients)) parts.push(`${v} ${k}`);
  $("#counts").textContent = parts.join(" · ");
}

async function loadQueue() {
  const params = new URLSearchParams(new FormData($("#filters")));
  for (const [k, v] of [...params]) if (!v) params.delete(k);
  const data = await api(`/api/v1/queue?${params}`);
  const rows = data.messages.map((m) => `
    <tr data-id="${esc(m.id)}" class="${m.held ? "held" : ""}">
      <td><a href="#message/${esc(m.id)}" class="open">${esc(m.id)}</a></td>
      <td>${age(m.received_at)}</td><td class="num">${m.size}</td><td>&lt;${esc(m.sender)}&gt;</td>
      <td>${m.recipients.map((r) => `<span class="status-${esc(r.status)}">${esc(r.address)} (${esc(r.status)})</span>`).join("<br>")}</td>
      <td><button class="retry">Retry</button> <button class="${m.held ? "release" : "hold"}">${m.held ? "Release" : "Hold"}</button> <button class="delete">Delete</button></td>
    </tr>`);
  $("#queue tbody").innerHTML = rows.join("");
  $("#queue-empty").hidden = data.messages.length > 0;
}

async function showMessage(id) {
  const m = await api(`/api/v1/messages/${encodeURIComponent(id)}`);
  const raw = m.in_queue ? await api(`/api/v1/messages/${encodeURIComponent(id)}/raw`) : "";
  const attempts = m.attempts.map((a) => `<li>${new Date(a.at * 1000).toISOString()} &lt;${esc(a.address)}&gt; ${esc(a.status)} relay=${esc(a.relay)} (${esc(a.reply)})</li>`);
  $("#detail").innerHTML = `<h2>Message ${esc(id)}</h2>
    ${m.in_queue ? `<p>From &lt;${esc(m.sender)}&gt;, ${m.size} octets, received from [${esc(m.client_ip)}]</p>` : "<p>No longer in the queue.</p>"}
    <h3>Delivery attempts</h3><ul id="attempts">${attempts.join("") || "<li>none yet</li>"}</ul>
    ${m.in_queue ? `<h3>Source</h3><pre id="raw">${esc(raw)}</pre>` : ""}`;
  $("#detail").hidden = false;
}

async function act(id, action) {
  if (action === "delete") await api(`/api/v1/messages/${encodeURIComponent(id)}`, { method: "DELETE" });
  else await api(`/api/v1/messages/${encodeURIComponent(id)}/${action}`, { method: "POST" });
  await Promise.all([loadQueue(), loadCounts()]);
}

async function loadMailbox(address) {
  const data = await api(`/api/v1/mailboxes/${encodeURIComponent(address)}`);
  $("#mailbox tbody").innerHTML = data.messages.map((m) => `
    <tr><td>${new Date(m.mtime * 1000).toISOString()}</td>
    <td><a href="#" class="mail" data-file="${esc(m.file)}">${esc(m.subject || "(no subject)")}</a></td><td class="num">${m.size}</td></tr>`).join("");
  $("#mailbox").dataset.address = address;
}

// Received and delivered per minute: counters sampled every 10 s, differenced.
const samples = [];
function counter(text, name) {
  const m = text.match(new RegExp(`^${name} (\\d+)`, "m"));
  return m ? Number(m[1]) : 0;
}
async function sampleMetrics() {
  const text = await api("/metrics");
  samples.push({ t: Date.now(), received: counter(text, "tern_messages_received_total"), delivered: counter(text, "tern_recipients_delivered_total") });
  if (samples.length > 60) samples.shift();
  drawChart();
}
function drawChart() {
  const c = $("#chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  if (samples.length < 2) return;
  const rates = (key) => samples.slice(1).map((s, i) => ((s[key] - samples[i][key]) * 60000) / Math.max(1, s.t - samples[i].t));
  const series = [["received", "#1d3557"], ["delivered", "#2a9d8f"]].map(([k, color]) => [rates(k), color]);
  const max = Math.max(1, ...series.flatMap(([r]) => r));
  for (const [r, color] of series) {
    g.strokeStyle = color;
    g.beginPath();
    r.forEach((v, i) => {
      const x = (i / Math.max(1, r.length - 1)) * (c.width - 10) + 5, y = c.height - 5 - (v / max) * (c.height - 10);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  }
}

function route() {
  const hash = location.hash.slice(1) || "queue";
  $("#queue-view").hidden = !(hash === "queue" || hash.startsWith("message/"));
  $("#mailboxes-view").hidden = hash !== "mailboxes";
  $("#metrics-view").hidden = hash !== "metrics";
  $("#detail").hidden = true;  // showMessage shows it again once the message is loaded
  if (hash.startsWith("message/")) showMessage(decodeURIComponent(hash.slice(8))).catch((err) => alert(err.message));
}

$("#filters").addEventListener("submit", (e) => { e.preventDefault(); loadQueue(); });
$("#queue").addEventListener("click", (e) => {
  const button = e.target.closest("button");
  if (!button) return;
  act(button.closest("tr").dataset.id, button.className).catch((err) => alert(err.message));
});
$("#mailbox-form").addEventListener("submit", (e) => {
  e.preventDefault();
  loadMailbox(new FormData(e.target).get("address")).catch((err) => alert(err.message));
});
$("#mailbox").addEventListener("click", async (e) => {
  const a = e.target.closest("a.mail");
  if (!a) return;
  e.preventDefault();
  const text = await api(`/api/v1/mailboxes/${encodeURIComponent($("#mailbox").dataset.address)}/${encodeURIComponent(a.dataset.file)}`);
  $("#mailbox-message").textContent = text;
  $("#mailbox-message").hidden = false;
});
window.addEventListener("hashchange", route);

route();
loadQueue();
loadCounts();
sampleMetrics();
setInterval(() => { loadCounts(); sampleMetrics(); }, 10000);
