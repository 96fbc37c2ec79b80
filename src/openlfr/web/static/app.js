// OpenLFR console: plain JavaScript, no build step. Data is always inserted as text, never as
// HTML. Authentication is the HttpOnly session cookie set by POST /api/auth/login.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { user: null, view: null, queue: [], current: null, source: null, timer: null };

function say(message, error = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", error);
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  if (response.status === 401 && state.user) {
    showLogin("Your session has ended: log in again.");
    throw new Error("session ended");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response.status === 204 ? null : response.json();
}

const postJson = (path, body, method = "POST") =>
  api(path, { method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell); else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

function allowed(node) {
  const roles = (node.dataset.roles || "").split(" ").filter(Boolean);
  return roles.length === 0 || roles.includes(state.user.role);
}

// --- log in / out ---------------------------------------------------------------------------

function showLogin(message) {
  state.user = null;
  state.models = null;
  if (state.source) state.source.close();
  clearInterval(state.timer);
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "view-login";
  $("#nav").hidden = true;
  $("#who").hidden = true;
  say(message || "");
  $("#login-form [name=name]").focus();
}

async function loggedIn(user) {
  state.user = user;
  $("#who-name").textContent = `${user.name} (${user.role})`;
  $("#who").hidden = false;
  $("#nav").hidden = false;
  for (const b of document.querySelectorAll("[data-roles]")) b.hidden = !allowed(b);
  const first = [...document.querySelectorAll("#nav button")].find((b) => !b.hidden);
  if (["reviewer", "authorising-officer"].includes(user.role)) connectEvents();
  // a pushed alert's console link (docs/alerts.md) opens that alert, for a role that may see it
  const linked = /^#alert=([0-9a-f]{1,64})$/.exec(location.hash);
  const alerts = document.querySelector('#nav button[data-view="alerts"]');
  if (linked && alerts && !alerts.hidden) { state.linked = linked[1]; show("alerts"); } else show(first.dataset.view);
  say(`Logged in as ${user.name}.`);
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    const answer = await postJson("/api/auth/login", { name: form.get("name"), password: form.get("password") });
    event.target.reset();
    await loggedIn(answer.user);
  } catch (error) {
    say(`Log in refused: ${error.message}`, true);
  }
});

$("#enrol-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await postJson("/api/auth/enrol", { name: form.get("name"), code: form.get("code"), password: form.get("password") });
    event.target.reset();
    $("#enrol").open = false;
    say("Password set: log in with it.");
  } catch (error) { say(`Not enrolled: ${error.message}`, true); }
});

$("#logout").addEventListener("click", async () => {
  try { await api("/api/auth/logout", { method: "POST" }); } finally { showLogin("Logged out."); }
});

// --- screens --------------------------------------------------------------------------------

function show(view) {
  const button = document.querySelector(`#nav button[data-view="${view}"]`);
  if (!button || button.hidden) return;
  state.view = view;
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== `view-${view}`;
  for (const b of document.querySelectorAll("#nav button")) {
    if (b === button) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  }
  clearInterval(state.timer);
  const load = { alerts: loadQueue, deployments: loadBoard, watchlists: loadWatchlists, reports: loadReports,
    subjects: () => $("#subject-find-form [name=name]").focus(), audit: loadAudit, users: loadUsers }[view];
  load();
  if (view === "deployments") { loadPlanForm(); state.timer = setInterval(loadBoard, 2000); }
}

for (const b of document.querySelectorAll("#nav button")) b.addEventListener("click", () => show(b.dataset.view));

// --- alert queue ----------------------------------------------------------------------------

function connectEvents() {
  if (state.source) state.source.close();
  const source = new EventSource("/api/events");
  state.source = source;
  source.onopen = () => { $("#live").textContent = "live"; $("#live").classList.add("on"); };
  source.onerror = () => { $("#live").textContent = "reconnecting"; $("#live").classList.remove("on"); };
  source.addEventListener("alert", (event) => {
    const data = JSON.parse(event.data);
    if (data.kind === "new") say(`New alert: ${data.subject} on ${data.camera} (${data.deployment}).`);
    if (state.view === "alerts") loadQueue(data.alert_id);
  });
  source.addEventListener("deployment", () => { if (state.view === "deployments") loadBoard(); });
}

async function loadQueue(fresh) {
  try {
    state.queue = await api("/api/alerts?state=pending&limit=200");
  } catch (error) { say(error.message, true); return; }
  const list = $("#queue");
  list.replaceChildren();
  for (const alert of state.queue) {
    const item = el("li");
    const button = el("button", `${alert.subject_name} · ${alert.score.toFixed(2)} · ${alert.camera} · ${time(alert.raised_at)}`,
      { type: "button", "data-alert": alert.id });
    if (alert.id === fresh) button.classList.add("new");
    if (state.current && alert.id === state.current.id) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => openAlert(alert.id));
    item.append(button);
    list.append(item);
  }
  $("#queue-empty").hidden = state.queue.length > 0;
  const keep = state.current && (state.queue.some((a) => a.id === state.current.id) || state.current.adjudication);
  if (!keep) {
    // take the focus only when nothing else has it: never snatch it from a reviewer at work
    const idle = !document.activeElement || document.activeElement === document.body;
    if (state.linked) { openAlert(state.linked, idle); state.linked = null; }
    else if (state.queue.length) openAlert(state.queue[0].id, idle); else $("#alert").hidden = true;
  }
}

function time(iso) {
  return iso ? new Date(iso.endsWith("Z") || iso.includes("+") ? iso : `${iso}Z`).toLocaleTimeString() : "";
}

// The face the reference photo was enrolled for, outlined where the photo shows several.
function outlineReference(box) {
  const image = $("#reference");
  const outline = $("#reference-box");
  if (!box || !image.naturalWidth) return;
  const scale = image.clientWidth / image.naturalWidth;
  const [x1, y1, x2, y2] = box.map((v) => v * scale);
  Object.assign(outline.style, { left: `${x1}px`, top: `${y1}px`, width: `${x2 - x1}px`, height: `${y2 - y1}px` });
  outline.hidden = false;
}

async function openAlert(id, focus = true) {
  let alert;
  try { alert = await api(`/api/alerts/${encodeURIComponent(id)}`); } catch (error) { say(error.message, true); return; }
  state.current = alert;
  $("#alert").hidden = false;
  $("#alert-title").textContent = `Possible match: ${alert.subject_name}`;
  $("#probe").src = `/api/alerts/${alert.id}/images/probe`;
  $("#reference-box").hidden = true;
  $("#reference").onload = () => outlineReference(alert.reference_box);
  $("#reference").src = `/api/alerts/${alert.id}/images/reference`;
  const facts = $("#facts");
  facts.replaceChildren();
  const entries = [["Score", alert.score.toFixed(2)], ["Similarity", alert.similarity.toFixed(3)],
    ["Camera", alert.camera], ["Deployment", `${alert.deployment} (#${alert.deployment_id})`],
    ["Raised", time(alert.raised_at)], ["Video time", `${alert.time_s.toFixed(1)} s`]];
  for (const [k, v] of entries) { facts.append(el("dt", k), el("dd", v)); }
  for (const b of document.querySelectorAll("#queue button")) {
    if (b.dataset.alert === id) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
  }
  const decided = alert.adjudication;
  $("#decision").disabled = Boolean(decided);
  $("#outcome").hidden = !decided;
  if (decided) say(`Decided: ${decided.decision}${decided.outcome ? `, outcome ${decided.outcome}` : ""}.`);
  if (focus) (decided ? $("#outcome button") : $("#decision button")).focus();
}

async function decide(decision) {
  const alert = state.current;
  if (!alert || alert.adjudication) return;
  const suppress = decision === "no-match" && $("#suppress").checked;
  try {
    state.current = await postJson(`/api/alerts/${alert.id}/adjudication`, { decision, suppress });
  } catch (error) { say(`Not recorded: ${error.message}`, true); return; }
  $("#suppress").checked = false;
  $("#decision").disabled = true;
  $("#outcome").hidden = false;
  $("#outcome button").focus();
  say(`Decision recorded: ${decision}. Now the outcome.`);
}

async function record(outcome) {
  const alert = state.current;
  if (!alert || !alert.adjudication) return;
  try {
    state.current = await postJson(`/api/alerts/${alert.id}/outcome`, { outcome });
  } catch (error) { say(`Not recorded: ${error.message}`, true); return; }
  say(`Outcome recorded: ${outcome}.`);
  state.current = null;
  await loadQueue();
  const next = $("#queue button");
  if (next) next.focus();
}

for (const b of document.querySelectorAll("[data-decision]")) b.addEventListener("click", () => decide(b.dataset.decision));
for (const b of document.querySelectorAll("[data-outcome]")) b.addEventListener("click", () => record(b.dataset.outcome));

document.addEventListener("keydown", (event) => {
  if (!state.user) return;
  if (event.altKey) {
    // Alt+L for the audit log: Alt+A is the alerts queue. show() ignores screens the role lacks.
    const view = { a: "alerts", d: "deployments", w: "watchlists", r: "reports", s: "subjects", l: "audit", u: "users" }[event.key.toLowerCase()];
    if (view) { event.preventDefault(); show(view); }
    return;
  }
  if (state.view !== "alerts" || event.ctrlKey || event.metaKey) return;
  if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName) && document.activeElement.type !== "checkbox") return;
  const key = event.key.toLowerCase();
  const decisions = { m: "match", n: "no-match", c: "cannot-tell" };
  const outcomes = { 1: "engaged", 2: "arrested", 3: "no-action", 4: "not-located" };
  if (decisions[key]) { event.preventDefault(); decide(decisions[key]); }
  else if (outcomes[key]) { event.preventDefault(); record(outcomes[key]); }
  else if (key === "j" || key === "k") {
    const ids = state.queue.map((a) => a.id);
    const at = state.current ? ids.indexOf(state.current.id) : -1;
    const next = ids[Math.min(ids.length - 1, Math.max(0, at + (key === "j" ? 1 : -1)))];
    if (next) openAlert(next);
  }
});

// --- face models ----------------------------------------------------------------------------

// Which models the service has, which is the default now, and their cards: asked once a login.
async function loadModels() {
  if (!state.models) state.models = await api("/api/models");
  return state.models;
}

function fillModelSelect(select, models) {
  const chosen = select.value;
  select.replaceChildren();
  for (const m of models.filter((m) => m.installed)) {
    const option = el("option", m.default ? `${m.name} (default)` : m.name, { value: m.name, title: m.card.title });
    option.defaultSelected = m.default; // what the form's reset goes back to
    select.append(option);
  }
  if (chosen && models.some((m) => m.installed && m.name === chosen)) select.value = chosen;
}

// --- deployment board -----------------------------------------------------------------------

function left(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const m = Math.floor(seconds / 60);
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

// Each camera's state (a badge: running, reconnecting, lagging, restarting, down...), rate and
// counts, refreshed with the board, and its crashes: a crash reads as a crash, with its cause,
// not as an end. Figures only: never a picture of passers-by.
function cameraStates(cameras) {
  const list = el("ul", null, { class: "cameras" });
  for (const c of cameras || []) {
    const item = el("li", null, c.crashes || c.error ? { class: "camera-fault" } : {});
    item.append(`${c.name} `, el("span", c.state, { class: `badge state-${c.state}`, "data-state": c.state }));
    let text = "";
    if (c.fps !== null && c.fps !== undefined) text += ` · ${c.fps.toFixed(1)} fps`;
    text += ` · ${c.frames} frames, ${c.frames_dropped} dropped`;
    if (c.drop_rate !== null && c.drop_rate !== undefined) text += ` (${Math.round(c.drop_rate * 100)}% of the last 10 s)`;
    text += `, ${c.faces_processed} faces processed`;
    if (c.node) text += ` · node ${c.node}`;
    if (c.last_frame_at) text += ` · last frame ${time(c.last_frame_at)}`;
    if (c.crashes) text += ` · ${c.crashes} crash${c.crashes > 1 ? "es" : ""}, ${c.restarts} restart${c.restarts === 1 ? "" : "s"} (last: ${c.last_crash}) · ${Math.round(c.down_s)} s down`;
    if (c.error) text += ` · ${c.error}`;
    item.append(text);
    list.append(item);
  }
  return list;
}

async function loadBoard() {
  let deployments;
  try { deployments = await api("/api/deployments"); } catch (error) { say(error.message, true); return; }
  const body = $("#board");
  body.replaceChildren();
  for (const d of deployments) {
    const actions = el("span");
    if (state.user.role === "authorising-officer") {
      if (d.status === "planned" && !d.authorised_by) actions.append(action("Authorise", () => postJson(`/api/deployments/${d.id}/authorise`, {})));
      if (d.status === "planned") actions.append(action("Start", () => postJson(`/api/deployments/${d.id}/start`, {})));
      if (d.status === "running") actions.append(action("Stop", () => postJson(`/api/deployments/${d.id}/stop`, {})));
    }
    const status = d.status + (d.end_reason ? ` (${d.end_reason})` : "");
    const cameras = cameraStates(d.cameras);
    for (const p of d.pushes || []) {  // where alerts go, and what was delivered (no secret)
      cameras.append(el("li", `push ${p.kind} ${p.endpoint}: ${p.sent} sent, ${p.retries} retries, ${p.failed} failed, ${p.dropped} dropped`,
        p.failed || p.dropped ? { class: "camera-fault" } : {}));
    }
    body.append(row([d.id, d.name, d.location, d.watchlist_name, d.model || "", status, cameras,
      left(d.seconds_left), d.faces_processed, d.alerts, d.adjudicated, actions]));
  }
}

async function loadPlanForm() {
  if (state.user.role !== "authorising-officer") return;
  let lists, models;
  try { [lists, models] = await Promise.all([api("/api/watchlists"), loadModels()]); } catch (error) { say(error.message, true); return; }
  const watchlist = $("#plan-form [name=watchlist]");
  const chosen = watchlist.value;
  watchlist.replaceChildren(...lists.map((w) => el("option", `${w.name} (${w.subjects} subjects)`, { value: w.name })));
  if (lists.some((w) => w.name === chosen)) watchlist.value = chosen;
  fillModelSelect($("#plan-form [name=model]"), models);
}

$("#plan-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const utc = (local) => (local ? new Date(local).toISOString() : null); // datetime-local is local time
  const text = (name) => form.get(name).trim();
  const body = { name: text("name"), location: text("location"), area: text("area"), reason: text("reason"),
    watchlist: form.get("watchlist"), model: form.get("model") || null,
    starts_at: utc(form.get("starts_at")), ends_at: utc(form.get("ends_at")),
    cameras: [{ name: text("camera"), source: text("source") }],
    threshold: form.get("threshold") === "" ? null : Number(form.get("threshold")),
    threshold_override_reason: text("threshold_override_reason") || null,
    dpia_ref: text("dpia_ref"), equality_ref: text("equality_ref"),
    signage_confirmed: form.get("signage_confirmed") === "on", suppress_no_match: form.get("suppress_no_match") === "on",
    webhook_url: text("webhook_url") || null, mqtt_url: text("mqtt_url") || null,
    push_probe_image: form.get("push_probe_image") === "on" };
  try {
    const d = await postJson("/api/deployments", body);
    event.target.reset();
    say(`Planned deployment #${d.id} with ${d.model}: another authorising officer authorises it.`);
    loadBoard();
  } catch (error) { say(`Not planned: ${error.message}`, true); }
});

function action(label, run) {
  const button = el("button", label, { type: "button" });
  button.addEventListener("click", async () => {
    try { await run(); say(`${label}: done.`); } catch (error) { say(`${label}: ${error.message}`, true); }
    loadBoard();
  });
  return button;
}

// --- watchlists -----------------------------------------------------------------------------

async function loadWatchlists() {
  let lists;
  try { lists = await api("/api/watchlists"); } catch (error) { say(error.message, true); return; }
  const ul = $("#watchlists");
  ul.replaceChildren();
  for (const w of lists) {
    const button = el("button", `${w.name} (${w.subjects} subjects)`, { type: "button" });
    button.addEventListener("click", () => openWatchlist(w.name));
    const li = el("li");
    li.append(button);
    ul.append(li);
  }
}

async function openWatchlist(name) {
  let w;
  try { w = await api(`/api/watchlists/${encodeURIComponent(name)}`); } catch (error) { say(error.message, true); return; }
  if (state.watchlist !== name) $("#reembed-result").textContent = "";
  state.watchlist = name;
  $("#watchlist").hidden = false;
  $("#watchlist-title").textContent = w.description ? `${w.name}: ${w.description}` : w.name;
  const body = $("#subjects");
  body.replaceChildren();
  const images = [];
  for (const s of w.subject_list) {
    // per image, the face models that have a template of it (a model searches only its own)
    const templates = s.images.map((i) => `#${i.id}: ${i.templates.join(", ") || "none"}`).join("; ");
    body.append(row([s.name, s.category, s.reason, s.added_by, s.expires_on || "", s.images.length, templates]));
    images.push(...s.images);
  }
  if (state.user.role === "watchlist-manager") showReembed(name, images);
}

async function showReembed(name, images) {
  let models;
  try { models = await loadModels(); } catch (error) { say(error.message, true); return; }
  const buttons = $("#reembed-buttons");
  buttons.replaceChildren();
  for (const m of models.filter((m) => m.installed)) {
    const lacking = images.filter((i) => !i.templates.includes(m.name)).length;
    const button = el("button", `Re-embed with ${m.name}`, { type: "button", "data-model": m.name,
      title: `${lacking} of ${images.length} images have no ${m.name} template` });
    button.addEventListener("click", () => reembed(name, m.name, button));
    buttons.append(button);
  }
}

async function reembed(name, model, button) {
  button.disabled = true;
  say(`Re-embedding ${name} with ${model}…`);
  try {
    const r = await postJson(`/api/watchlists/${encodeURIComponent(name)}/re-embed`, { model });
    const counts = `${r.embedded} templates made, ${r.already} already there, ${r.problems.length} images without a face for this model`;
    const problems = r.problems.map((p) => `image #${p.image_id}: ${p.why}`).join("; ");
    $("#reembed-result").textContent = `${r.model}: ${counts}${problems ? ` (${problems})` : ""}.`;
    say(`Re-embedded with ${r.model}: ${counts}.`, r.problems.length > 0);
    await openWatchlist(name);
  } catch (error) { say(`Not re-embedded: ${error.message}`, true); }
  button.disabled = false;
}

$("#watchlist-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await postJson("/api/watchlists", { name: form.get("name"), description: form.get("description") });
    event.target.reset();
    say("Watchlist created.");
    loadWatchlists();
  } catch (error) { say(`Not created: ${error.message}`, true); }
});

// A photo with several faces: the service finds them (nothing is kept), the console draws
// their boxes and the manager clicks the one meant; the largest is preselected only where it
// clearly dominates (the API's pick rule), otherwise nothing is, and enrolling is refused.
const picker = { faces: [], chosen: null, image: null };

function drawFaces() {
  const canvas = $("#face-canvas");
  const scale = Math.min(1, 480 / picker.image.naturalWidth);
  canvas.width = Math.round(picker.image.naturalWidth * scale);
  canvas.height = Math.round(picker.image.naturalHeight * scale);
  const context = canvas.getContext("2d");
  context.drawImage(picker.image, 0, 0, canvas.width, canvas.height);
  picker.faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
    context.lineWidth = i === picker.chosen ? 4 : 2;
    context.strokeStyle = i === picker.chosen ? "#1a7f37" : "#d1242f";
    context.strokeRect(x1, y1, x2 - x1, y2 - y1);
  });
  canvas.dataset.scale = String(scale);
  const chosen = picker.chosen === null ? "none chosen yet" : `face ${picker.chosen + 1} chosen (green)`;
  $("#face-picker-hint").textContent = `${picker.faces.length} faces: click the one meant; ${chosen}.`;
}

$("#subject-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  Object.assign(picker, { faces: [], chosen: null, image: null });
  $("#face-picker").hidden = true;
  if (!file || !state.watchlist) return;
  const upload = new FormData();
  upload.append("file", file);
  try {
    const found = await api(`/api/watchlists/${encodeURIComponent(state.watchlist)}/faces`, { method: "POST", body: upload });
    if (found.faces.length < 2) return;
    picker.faces = found.faces;
    picker.chosen = found.picks.largest;
    picker.image = new Image();
    picker.image.onload = drawFaces;
    picker.image.src = URL.createObjectURL(file);
    $("#face-picker").hidden = false;
  } catch (error) { say(`Photo not usable: ${error.message}`, true); }
});

$("#face-canvas").addEventListener("click", (event) => {
  const canvas = event.target;
  const scale = Number(canvas.dataset.scale);
  const rect = canvas.getBoundingClientRect();
  const x = (event.clientX - rect.left) * (canvas.width / rect.width) / scale;
  const y = (event.clientY - rect.top) * (canvas.height / rect.height) / scale;
  const hit = picker.faces.findIndex(({ box: [x1, y1, x2, y2] }) => x >= x1 && x <= x2 && y >= y1 && y <= y2);
  if (hit >= 0) { picker.chosen = hit; drawFaces(); }
});

$("#subject-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const list = encodeURIComponent(state.watchlist);
  const subject = { name: form.get("name"), category: form.get("category"), reason: form.get("reason"),
    image_source: form.get("image_source"), expires_on: form.get("expires_on") || null,
    legal_basis: form.get("legal_basis"), authorised_by: form.get("authorised_by") };
  try {
    await postJson(`/api/watchlists/${list}/subjects`, subject);
    const upload = new FormData();
    upload.append("file", form.get("file"));
    if (picker.faces.length > 1 && picker.chosen !== null) upload.append("box", picker.faces[picker.chosen].box.join(","));
    try {
      await api(`/api/watchlists/${list}/subjects/${encodeURIComponent(subject.name)}/images`, { method: "POST", body: upload });
    } catch (error) {
      // no usable photo: take the subject back off rather than leave an entry without an image
      await api(`/api/watchlists/${list}/subjects/${encodeURIComponent(subject.name)}`, { method: "DELETE" });
      throw error;
    }
    event.target.reset();
    $("#face-picker").hidden = true;
    picker.faces = [];
    say(`Enrolled ${subject.name}.`);
    openWatchlist(state.watchlist);
  } catch (error) { say(`Not enrolled: ${error.message}`, true); }
});

// --- transparency reports ------------------------------------------------------------------

const REPORT_COLUMNS = ["id", "date", "location", "duration_h", "watchlist_size", "threshold", "faces_processed",
  "alerts", "true_alerts", "false_alerts", "engagements", "arrests", "false_alert_rate", "precision"];

function figure(value) {
  // as the report files write them (governance/reports.py): a dash for "no figure"
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value) && value < 1) return String(Number(value.toFixed(6)));
  return String(value);
}

async function loadReports() {
  let deployments;
  try { deployments = await api("/api/deployments"); } catch (error) { say(error.message, true); return; }
  const select = $("#report-form [name=deployment_id]");
  const chosen = select.value;
  select.replaceChildren(el("option", "(a period instead)", { value: "" }));
  for (const d of deployments) select.append(el("option", `#${d.id} ${d.name}, ${d.location}`, { value: d.id }));
  select.value = chosen;
}

$("#report-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const query = new URLSearchParams();
  if (form.get("deployment_id")) query.set("deployment_id", form.get("deployment_id"));
  else if (form.get("from") && form.get("to")) { query.set("from", form.get("from")); query.set("to", form.get("to")); }
  else { say("Pick a deployment, or both dates of a period.", true); return; }
  let report;
  try { report = await api(`/api/reports?${query}&charts=true`); } catch (error) { say(`No report: ${error.message}`, true); return; }
  $("#report").hidden = false;
  const n = report.deployments.length;
  $("#report-title").textContent = n === 1 ? report.title : `${report.title}: ${n} deployments`;
  const body = $("#report-rows");
  body.replaceChildren();
  for (const d of report.deployments) body.append(row(REPORT_COLUMNS.map((k) => figure(d[k]))));
  const total = row(["Total", "", "", ...REPORT_COLUMNS.slice(3).map((k) => figure(report.totals[k]))]);
  total.classList.add("total");
  body.append(total);
  for (const a of document.querySelectorAll("#report-downloads a")) {
    a.href = `/api/reports/export?format=${a.dataset.format}&${query}`;
  }
  const charts = $("#report-charts");
  charts.replaceChildren();
  for (const uri of report.charts) {
    if (uri.startsWith("data:image/png;base64,")) charts.append(el("img", null, { src: uri, alt: "Report chart" }));
  }
  say("Report shown.");
});

// --- subject rights -------------------------------------------------------------------------

async function findSubject(name, purpose) {
  const held = await postJson("/api/subjects/find", { name, purpose });
  state.subject = held.entries.length || held.alerts.length ? name : null;
  $("#holdings").hidden = false;
  $("#erase-form").hidden = true;
  $("#holdings-count").textContent = `${held.entries.length} watchlist entries, ${held.alerts.length} alerts held under this name.`;
  const entries = $("#held-entries");
  entries.replaceChildren();
  for (const e of held.entries) {
    entries.append(row([e.id, e.watchlist, e.category, e.images, e.expires_on || "", e.created_at.slice(0, 10), e.review_flag || ""]));
  }
  const alerts = $("#held-alerts");
  alerts.replaceChildren();
  for (const a of held.alerts) alerts.append(row([a.id, a.deployment_id, `${a.raised_at.slice(0, 10)} ${time(a.raised_at)}`, a.decision || "", a.outcome || ""]));
  for (const b of document.querySelectorAll("#subject-actions button")) b.disabled = !state.subject;
}

$("#subject-find-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try { await findSubject(form.get("name").trim(), form.get("purpose")); say("Search done (audited)."); }
  catch (error) { say(`Not searched: ${error.message}`, true); }
});

$("#subject-export").addEventListener("click", async () => {
  const purpose = $("#subject-find-form [name=purpose]").value;
  try {
    const response = await fetch("/api/subjects/export", { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: state.subject, purpose }) });
    if (!response.ok) throw new Error((await response.json()).detail || response.statusText);
    const link = el("a", null, { href: URL.createObjectURL(await response.blob()), download: "openlfr-subject-export.zip" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    say("Export downloaded (audited).");
  } catch (error) { say(`Not exported: ${error.message}`, true); }
});

$("#subject-erase").addEventListener("click", () => {
  $("#erase-form").hidden = false;
  $("#erase-form [name=confirm_name]").focus();
});
$("#erase-cancel").addEventListener("click", () => { $("#erase-form").reset(); $("#erase-form").hidden = true; });

$("#erase-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const name = state.subject;
  try {
    const erased = await postJson("/api/subjects/erase", { name, confirm_name: form.get("confirm_name").trim(), purpose: form.get("purpose") });
    event.target.reset();
    await findSubject(name, "check after erasure");
    say(`Erased ${erased.entry_ids.length} watchlist entries and ${erased.alerts} alerts.`);
  } catch (error) { say(`Not erased: ${error.message}`, true); }
});

// --- audit and users ------------------------------------------------------------------------

async function loadAudit() {
  let entries;
  try { entries = await api("/api/audit?limit=1000"); } catch (error) { say(error.message, true); return; }
  const body = $("#audit");
  body.replaceChildren();
  for (const e of entries.reverse()) body.append(row([e.id, e.at, e.actor, e.action, e.object, e.purpose]));
}

$("#verify").addEventListener("click", async () => {
  try {
    const v = await api("/api/audit/verify");
    say(v.ok ? `Audit chain intact: ${v.entries} entries.` : `Audit chain BROKEN at entry ${v.first_bad_id}: ${v.problem}`, !v.ok);
  } catch (error) { say(error.message, true); }
});

async function loadUsers() {
  let users;
  try { users = await api("/api/users"); } catch (error) { say(error.message, true); return; }
  const body = $("#users");
  body.replaceChildren();
  for (const u of users) {
    const actions = document.createElement("span");
    if (u.pending_role) {
      // the two-person rule: the server refuses an approval by the requester or the account
      if (u.pending_by !== state.user.name && u.name !== state.user.name) {
        actions.append(el("button", "Approve", { type: "button", "data-approve": u.id }));
      }
      actions.append(el("button", "Reject", { type: "button", "data-reject": u.id }));
    } else if (u.active && u.name !== state.user.name) {
      actions.append(el("button", "Disable", { type: "button", "data-disable": u.id }));
    }
    const pending = u.pending_role ? `${u.pending_role} (asked by ${u.pending_by})` : "";
    body.append(row([u.name, u.role, u.active ? "yes" : "no", pending, actions]));
  }
}

$("#users").addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  const code = $("#enrolment-code");
  try {
    if (button.dataset.approve) {
      const user = await postJson(`/api/users/${button.dataset.approve}/approve`, {});
      code.hidden = !user.enrolment_code;
      code.textContent = user.enrolment_code
        ? `Enrolment code for ${user.name} (shown once, valid 3 days): ${user.enrolment_code}` : "";
      say(`Approved: ${user.name} is ${user.role}.`);
    } else if (button.dataset.reject) {
      await postJson(`/api/users/${button.dataset.reject}/reject`, {});
      say("Request rejected.");
    } else if (button.dataset.disable) {
      await postJson(`/api/users/${button.dataset.disable}`, { active: false }, "PATCH");
      say("Account disabled.");
    }
  } catch (error) { say(error.message, true); }
  loadUsers();
});

$("#user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  try {
    await postJson("/api/users", { name: form.get("name"), role: form.get("role") });
    event.target.reset();
    say("Account requested: a second admin approves it.");
    loadUsers();
  } catch (error) { say(`Not requested: ${error.message}`, true); }
});

// --- start ----------------------------------------------------------------------------------

(async () => {
  try {
    const response = await fetch("/api/auth/me", { credentials: "same-origin" });
    if (response.ok) { await loggedIn(await response.json()); return; }
  } catch (_) { /* offline: the login form says the rest */ }
  showLogin();
})();
