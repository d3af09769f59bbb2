// The sandbox's page: renders the snapshot the server streams (Server-Sent Events), and starts jobs with buttons.
// No framework and nothing from the internet: the page must work offline, and paint in well under a second.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
let state = null;
let picked = null; // the connection (or node) whose detail is shown
const revealed = {}; // component -> its login secret, once asked for

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

const badge = (text) => el("span", { class: `badge ${String(text).replace(/ /g, "-")}` }, text);

async function post(path, payload) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: payload });
  const body = await r.json().catch(() => ({}));
  if (r.status === 409) showError(body.refused || "a job is running");
  else if (!r.ok) showError(`${body.error || r.statusText} ${body.fix ? "Fix: " + body.fix : ""}`);
  else showError(null);
}

function showError(text) {
  const p = $("#error");
  p.hidden = !text;
  p.textContent = text || "";
}

// ---- the parts ----------------------------------------------------------------------------------------------------
function renderComponents(rows) {
  const body = $("#components tbody");
  body.replaceChildren(...rows.map((r) => {
    const health = r.healthy === true ? "✓" : r.healthy === false ? "✗ " + r.detail : "–";
    const links = [el("a", { href: r.url, target: "_blank", rel: "noopener" }, r.url)];
    for (const [label, url] of Object.entries(r.urls || {})) {
      links.push(el("br"), el("span", { class: "dim" }, `${label}: `), el("a", { href: url, target: "_blank",
        rel: "noopener" }, url));
    }
    const login = [];
    if (r.username) login.push(r.username);
    if (r.has_secret) {
      login.push(" / ", el("span", { class: "masked", "data-secret": r.name }, revealed[r.name] || "••••••"));
      login.push(" ", revealed[r.name]
        ? el("button", { type: "button", class: "quiet", "data-hide": r.name, on: { click: () => hide(r.name) } }, "hide")
        : el("button", { type: "button", class: "quiet", "data-reveal": r.name, on: { click: () => reveal(r.name) } },
          "show"));
    } else if (r.secret_elsewhere) {
      login.push(" / ", el("span", { class: "dim", "data-elsewhere": r.name }, r.secret_elsewhere));
    }
    return el("tr", { "data-component": r.name, "data-healthy": String(r.healthy) },
      el("td", {}, r.name), el("td", {}, r.state), el("td", {}, health), el("td", {}, links), el("td", {}, login));
  }));
}

function hide(name) {
  delete revealed[name];
  renderComponents(state.components);
}

async function reveal(name) {
  const r = await fetch(`/api/secret/${encodeURIComponent(name)}`);
  if (r.ok) {
    revealed[name] = (await r.json()).secret;
    renderComponents(state.components);
  }
}

function edgeDetail(e) {
  const doc = (state.doctor || {})[e.connection];
  const rows = [
    ["edge", `${e.env}/${e.account} → ${e.service}`], ["state", e.state],
    ["direction", e.direction === "in" ? `into Airflow: ${e.account} → ${e.route} → Airflow → ${e.reaches.join(", ")}` : "out: a call to a service"],
    ["DAGs seen calling", (e.dags || []).map((d) => `${d.dag} (${d.calls} calls${d.unverified ? `, ${d.unverified} unverified` : ""}, last ${d.last_seen})`).join(", ") || "-"],
    ["connection", e.connection || "-"], ["account", `${e.account} (client ${e.client}, realm ${e.realm})`],
    ["scopes", e.scopes.join(" ") || "-"], ["policy", e.policy ? `${e.policy} (${e.rate}, quota ${e.quota})` : "none: the gateway refuses"],
    ["API", `${e.api} ${e.route}; issuer ${e.issuer}; audience ${e.audience}`], ["upstream", e.upstream],
    ["token lifespan", `${e.token_lifespan_s} s`], ["secret", e.secret_lives_in.join("; ")],
    ["last smoke", e.smoke + (e.smoke_at ? ` (${e.smoke_at})` : "")],
    ["doctor", doc ? (doc.ok ? "✓ every hop" : doc.verdict) : "not asked yet"],
    ["drift from the spec", e.drift.join("; ") || "none"],
  ];
  return el("dl", {}, rows.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

function renderMap(map) {
  const box = $("#map-svg");
  if (box.dataset.svg !== map.svg) { // the server's SVG (trusted: it escapes every text) only when it changed
    box.innerHTML = map.svg;
    box.dataset.svg = map.svg;
    box.querySelectorAll("path[data-connection]").forEach((p) => p.addEventListener("click", () => {
      const conn = p.getAttribute("data-connection");
      const title = p.querySelector("title")?.textContent || "";
      picked = conn || title.split(":")[0];
      renderEdge();
    }));
  }
  const checked = $("#checked");
  checked.replaceChildren(...Object.entries(map.checked || {}).map(([k, v]) => el("li", {}, `${k}: ${v}`)));
  renderEdge();
}

function renderEdge() {
  const box = $("#edge");
  const e = picked && state.map.edges.find((x) => x.connection === picked || `${x.env}/${x.account} → ${x.service}` === picked);
  box.hidden = !e;
  $("#map-svg").querySelectorAll("path").forEach((p) => p.classList.toggle("picked",
    !!e && p.getAttribute("data-connection") === (e.connection || "")));
  if (e) box.replaceChildren(edgeDetail(e));
}

function renderConnections(edges, doctor) {
  const body = $("#connections tbody");
  body.replaceChildren(...edges.filter((e) => e.connection).map((e) => {
    const doc = doctor[e.connection];
    return el("tr", { "data-connection": e.connection, "data-state": e.state, on: { click: () => { picked = e.connection; renderEdge(); } } },
      el("td", {}, e.connection), el("td", {}, badge(e.state)),
      el("td", {}, e.smoke + (e.smoke_at ? ` (${e.smoke_at.slice(11, 19)})` : "")),
      el("td", { "data-doctor": doc ? String(doc.ok) : "" }, doc ? (doc.ok ? "✓" : doc.verdict) : "–"));
  }));
}

function renderScenarios(list, job) {
  const running = job && job.state === "running";
  const anyKept = list.some((s) => s.kept);
  $("#scenarios .cards").replaceChildren(...list.map((s) => {
    const sym = s.symptom;
    const buttons = [];
    if (s.kept) buttons.push(el("button", { type: "button", "data-revert": s.name, disabled: running,
      on: { click: () => post("/api/revert") } }, "Revert"));
    else if (s.runnable) buttons.push(el("button", { type: "button", "data-repro": s.name, disabled: running || anyKept,
      on: { click: () => post(`/api/repro/${encodeURIComponent(s.name)}`) } }, "Reproduce"));
    else buttons.push(el("span", { class: "dim" }, `not on this runtime: ${s.needs}`));
    return el("div", { class: `card${s.kept ? " kept" : ""}`, "data-scenario": s.name },
      el("h3", {}, s.name, " ", el("span", { class: "dim" }, s.connection)),
      el("p", {}, s.story),
      el("p", {}, el("span", { class: "label" }, "symptom "), `${sym.hop}${sym.status ? " " + sym.status : ""}: ${sym.words}`),
      el("p", {}, el("span", { class: "label" }, "cause "), s.cause),
      el("p", {}, el("span", { class: "label" }, "fix "), s.fix), buttons);
  }));
}

function renderJob(job) {
  const section = $("#job");
  section.dataset.state = job ? job.state : "";
  if (!job) return;
  section.dataset.started = String(job.started);
  const what = `${job.kind}${job.name ? " " + job.name : ""}`;
  const result = job.result || {};
  $("#job-title").textContent = job.state === "running" ? `${what}: running…` :
    `${what}: ${job.state} in ${job.seconds} s${result.error ? " — " + result.error + (result.fix ? " Fix: " + result.fix : "") : ""}`;
  const pre = $("#job-lines");
  pre.textContent = job.lines.join("\n");
  pre.scrollTop = pre.scrollHeight;
  $("#smoke").disabled = $("#doctor").disabled = job.state === "running";
}

function render() {
  if (!state || !state.components) return;
  const s = state.sandbox;
  $("#where").textContent = `${s.runtime} runtime · ${s.home} · spec ${s.spec}`;
  if (state.error) showError(state.error);
  renderComponents(state.components);
  renderMap(state.map);
  renderConnections(state.map.edges, state.doctor || {});
  renderScenarios(state.scenarios, state.job);
  renderJob(state.job);
  document.body.dataset.version = String((Number(document.body.dataset.version) || 0) + 1);
}

// ---- the tour: what each part is, in the order data flows ----------------------------------------------------------
let tourAt = -1;
function tour(step) {
  document.querySelectorAll(".touring").forEach((n) => n.classList.remove("touring"));
  const steps = (state && state.tour) || [];
  if (step < 0 || step >= steps.length) {
    $("#tour").hidden = true;
    tourAt = -1;
    localStorage.setItem("sandbox-tour-done", "1");
    return;
  }
  tourAt = step;
  const [target, title, text] = steps[step];
  $("#tour-step").textContent = `${step + 1} of ${steps.length}`;
  $("#tour-title").textContent = title;
  $("#tour-text").textContent = text;
  $("#tour-next").textContent = step === steps.length - 1 ? "Done" : "Next";
  $("#tour").hidden = false;
  const node = document.querySelector(`[data-tour="${target}"]`);
  node.classList.add("touring");
  node.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

$("#tour-next").addEventListener("click", () => tour(tourAt + 1));
$("#tour-skip").addEventListener("click", () => tour(-1));
$("#tour-start").addEventListener("click", () => tour(0));
$("#smoke").addEventListener("click", () => post("/api/smoke"));
$("#doctor").addEventListener("click", () => post("/api/doctor"));
// a snapshot of another machine, dropped or picked: compared with this sandbox now (the job shows the answer)
async function compareWith(file) {
  if (!file) return;
  if (file.size > 4 * 1024 * 1024) return showError(`${file.name} is ${file.size} bytes: not a snapshot (they are far smaller).`);
  await post(`/api/compare?name=${encodeURIComponent(file.name)}`, await file.text());
}
$("#compare-file").addEventListener("change", async (ev) => {
  await compareWith(ev.target.files[0]);
  ev.target.value = ""; // the same file picked again is compared again
});
const drop = $("#compare-drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (ev) => { ev.preventDefault(); drop.classList.remove("over"); compareWith(ev.dataTransfer.files[0]); });
$("#map-md").addEventListener("click", (ev) => { ev.preventDefault(); $("#checked").hidden = !$("#checked").hidden; });

// ---- live: the server pushes the snapshot whenever it changes ------------------------------------------------------
function connect() {
  const source = new EventSource("/api/events");
  source.onmessage = (ev) => {
    const first = !state;
    state = JSON.parse(ev.data);
    render();
    if (first && !localStorage.getItem("sandbox-tour-done")) tour(0);
  };
  source.onerror = () => { $("#where").textContent = "reconnecting…"; };
}
connect();
