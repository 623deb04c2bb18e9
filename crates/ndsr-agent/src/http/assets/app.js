// The ndsr agent's dashboard: one EventSource for the model (session,
// services, registrations), one for the node being browsed. Everything is
// built with textContent: node data is never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let browsing = null; // the path shown in Browse, null for the roots
let nodeEvents = null;
let lastNode = null;
let historyKey = null; // "<path>@<mzxid>" whose configuration history is shown or being read
let lastHistory = null; // that history, when it has releases or a schema (.schema: {schema, version} or null)
let schemaOpen = false; // the History panel's schema is shown (kept across renders)
let lastCanary = null; // the shown configuration node's canary status (GET <path>/canary), when it has a canary or reports
let canaryTimer = null; // re-reads that status while a configuration node with releases is shown

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function age(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function staleMarker(sinceMs) {
  return el("span", { class: "stale", "data-testid": "stale-marker", "data-since": sinceMs,
    title: "ZooKeeper is unreachable: this is the last known value" }, `stale ${age(sinceMs)}`);
}

// ---- the model ---------------------------------------------------------

function renderSession() {
  const s = model.session;
  const badge = $("session-state");
  badge.dataset.state = s.state;
  badge.textContent = s.state === "connected" ? "connected" : s.state;
  const parts = [];
  if (s.stale_since_ms) parts.push(`ZooKeeper lost ${age(s.stale_since_ms)} ago: showing last known values`);
  else if (s.id) parts.push(`session ${s.id}`);
  parts.push(`${s.watched_paths} watched paths`);
  if (s.reconnects) parts.push(`${s.reconnects} reconnects`);
  if (s.expiries) parts.push(`${s.expiries} expiries`);
  $("session-detail").textContent = parts.join(" · ");
  $("version").textContent = `v${model.agent.version}${model.agent.readonly ? " · read-only" : ""}`;
}

// The whole agent in maintenance (or draining before it stops): a banner.
function renderMaintenance() {
  const banner = $("maintenance-banner");
  const m = model.agent.maintenance;
  if (model.agent.draining) {
    banner.textContent = "Draining: every registration is marked not serving and will be removed as the agent stops.";
  } else if (m) {
    banner.textContent = `The agent is in maintenance since ${new Date(m.since_ms).toLocaleTimeString()}` +
      `${m.reason ? `: ${m.reason}` : ""}. Every registration it holds is marked not serving.`;
  }
  banner.hidden = !(model.agent.draining || m);
}

// A registration's maintenance: why, and whether its own or the agent's.
function maintenanceMark(m) {
  const whose = m.by === "agent" ? "the whole agent" : "this registration";
  return el("div", { class: "maint-mark small", "data-testid": "maintenance", "data-by": m.by,
    text: `maintenance (${whose})${m.reason ? `: ${m.reason}` : ""} · since ${new Date(m.since_ms).toLocaleTimeString()}` });
}

function instanceMatches(instance, filter) {
  if (!filter) return true;
  const text = [instance.key, instance.address, instance.id,
    ...Object.entries(instance.labels || {}).map(([k, v]) => `${k}=${v}`)].join(" ").toLowerCase();
  return text.includes(filter);
}

function renderServices() {
  const list = $("service-list");
  const filter = $("filter").value.trim().toLowerCase();
  list.replaceChildren();
  $("no-services").hidden = model.services.length > 0;
  for (const service of model.services) {
    const instances = service.instances || [];
    const serving = instances.filter((i) => i.serving).length;
    const shown = instances.filter((i) => instanceMatches(i, filter));
    const head = el("div", { class: "card-head" },
      el("h3", {}, el("button", { class: "link", type: "button", text: service.name,
        title: `Browse ${service.path}`, onclick: () => browse(service.path) })),
      el("span", { class: "count", "aria-label": `${serving} of ${instances.length} serving` },
        `${serving}/${instances.length}`),
      service.format ? el("span", { class: "tag", text: service.format }) : null,
      service.stale ? staleMarker(service.stale_since_ms) : null,
      service.loading ? el("span", { class: "muted", text: "loading…" }) : null);
    const rows = shown.map((i) => el("tr", { class: i.serving ? "" : "draining", "data-key": i.key },
      el("td", { class: "mono", text: i.address }),
      el("td", { class: "mono muted", text: i.id === i.key ? "" : i.id }),
      el("td", {}, i.serving ? el("span", { class: "ok", text: "serving" }) : el("span", { class: "warn", text: "draining" })),
      el("td", {}, ...Object.entries(i.labels || {}).map(([k, v]) => el("span", { class: "label", text: `${k}=${v}` })))));
    const table = instances.length === 0
      ? el("p", { class: "empty", text: "No instances." })
      : el("table", {},
        el("thead", {}, el("tr", {}, el("th", { text: "Address" }), el("th", { text: "Id" }),
          el("th", { text: "State" }), el("th", { text: "Labels" }))),
        el("tbody", {}, ...rows));
    const bad = (service.bad || []).map((b) => el("li", {}, el("span", { class: "mono", text: b.key }), ` — ${b.reason}`));
    list.append(el("article", { class: `card${service.stale ? " is-stale" : ""}`, "data-path": service.path },
      head, el("div", { class: "muted mono small", text: service.path }), table,
      bad.length ? el("details", {}, el("summary", { text: `${bad.length} children are not instances` }), el("ul", {}, ...bad)) : null));
  }
}

function renderRegistrations() {
  const list = $("registration-list");
  list.replaceChildren();
  $("no-registrations").hidden = model.registrations.length > 0;
  for (const r of model.registrations) {
    list.append(el("li", { "data-path": r.path, "data-maintenance": r.maintenance ? r.maintenance.by : null },
      el("div", { class: "reg-head" },
        el("span", { class: `badge small`, "data-state": r.state, text: r.state }),
        el("button", { class: "link mono", type: "button", text: r.path, onclick: () => browse(r.path) })),
      r.node ? el("div", { class: "muted small mono", text: `node ${r.node}` }) : null,
      el("div", { class: "muted small" },
        [r.data && r.data.as ? `${r.data.as} ${r.data.host}:${r.data.port}` : null,
          r.check ? `check: ${r.check}` : "no check", r.source === "config" ? "from the file" : "from the API",
          `since ${new Date(r.since_ms).toLocaleTimeString()}`].filter(Boolean).join(" · ")),
      r.maintenance ? maintenanceMark(r.maintenance) : null,
      r.detail ? el("div", { class: "detail small", text: r.detail }) : null));
  }
}

// Each template's last render: a failure keeps the file, and is shown
// with its error until a render succeeds (GET /v1/health is 503 meanwhile).
function renderTemplates() {
  const templates = model.templates || [];
  $("templates").hidden = templates.length === 0;
  $("template-list").replaceChildren(...templates.map((t) => {
    const state = t.pending || (t.ok && t.waiting) ? "pending" : t.ok ? "rendered" : "failed";
    return el("li", { "data-template": t.template, "data-state": state },
      el("div", { class: "reg-head" },
        el("span", { class: "badge small", "data-state": state, text: state }),
        el("span", { class: "mono", text: t.template })),
      el("div", { class: "muted small" },
        [`from ${t.source}`, t.since_ms ? `${t.ok ? "ok" : "failing"} since ${new Date(t.since_ms).toLocaleTimeString()}` : "not rendered yet",
          t.ok === false ? "the last good file is kept" : null].filter(Boolean).join(" · ")),
      t.error ? el("div", { class: "detail small mono", role: "alert", text: t.error }) : null);
  }));
}

function renderMirrors() {
  const mirrors = model.mirrors || [];
  $("mirrors").hidden = mirrors.length === 0;
  $("mirror-list").replaceChildren(...mirrors.map((m) => {
    const state = m.error ? "failed" : m.passes === 0 ? "pending" : m.nodes_behind > 0 || m.lag_seconds > 0 ? "pending" : "rendered";
    const said = m.error ? "failing" : m.passes === 0 ? "starting"
      : m.nodes_behind > 0 || m.lag_seconds > 0 ? `behind: ${m.nodes_behind} nodes, ${m.lag_seconds.toFixed(1)} s` : "converged";
    return el("li", { "data-testid": "mirror", "data-name": m.name },
      el("div", { class: "reg-head" },
        el("span", { class: "badge small", "data-state": state, text: said }),
        el("span", { class: "mono", text: m.name })),
      el("div", { class: "muted small mono", text: `${m.source} → ${m.destination}` }),
      el("div", { class: "muted small", text: `${m.nodes} nodes · ${m.passes} passes` +
        (m.caught_up_ms !== null && m.caught_up_ms !== undefined ? ` · last caught up in ${(m.caught_up_ms / 1000).toFixed(1)} s` : "") }),
      m.error ? el("div", { class: "warn small", text: m.error }) : null);
  }));
}

function render() {
  if (!model) return;
  renderSession();
  renderMaintenance();
  renderServices();
  renderRegistrations();
  renderTemplates();
  renderMirrors();
  if (browsing === null) renderRoots();
}

// ---- browsing ----------------------------------------------------------

function renderCrumbs(path) {
  const crumbs = $("crumbs");
  crumbs.replaceChildren(el("button", { class: "link", type: "button", text: "roots", onclick: () => browse(null) }));
  if (path === null) return;
  // From the root that holds the path: nothing above a root is served.
  const root = (model ? model.agent.roots : []).find((r) => path === r || path.startsWith(`${r}/`)) || path;
  crumbs.append(" / ", el("button", { class: "link mono", type: "button", text: root, onclick: () => browse(root) }));
  let sofar = root;
  for (const part of path.slice(root.length).split("/").filter(Boolean)) {
    sofar += `/${part}`;
    const target = sofar;
    crumbs.append(" / ", el("button", { class: "link", type: "button", text: part, onclick: () => browse(target) }));
  }
}

function renderRoots() {
  renderCrumbs(null);
  const items = (model ? model.agent.roots : []).map((root) =>
    el("li", {}, el("button", { class: "link mono", type: "button", text: root, onclick: () => browse(root) })));
  $("node").replaceChildren(el("ul", { class: "children" }, ...items));
}

function renderNode(node) {
  lastNode = node;
  renderCrumbs(node.path);
  const box = $("node");
  const meta = el("div", { class: "node-meta small" },
    node.exists ? el("span", { class: "muted", text: `version ${node.stat.version} · ${node.children.length} children${node.stat.ephemeral_owner ? " · ephemeral" : ""}` })
      : el("span", { class: "warn", text: "no such node" }),
    node.stale ? staleMarker(node.stale_since_ms) : null);
  const children = node.children.map((name) => {
    const path = `${node.path === "/" ? "" : node.path}/${name}`;
    return el("li", {}, el("button", { class: "link mono", type: "button", text: name, onclick: () => browse(path) }));
  });
  const data = node.data === null || node.data === undefined ? el("p", { class: "empty", text: "No data." })
    : el("pre", { class: "data", tabindex: "0", "aria-label": "Node data", text: JSON.stringify(node.data, null, 2) });
  const history = lastHistory && lastHistory.path === node.path ? renderHistory(lastHistory) : null;
  // (replaceChildren would show a null as the text "null".)
  const list = children.length ? el("ul", { class: "children" }, ...children) : null;
  box.replaceChildren(...[meta, list, data, history].filter(Boolean));
  loadHistory(node);
}

function encodePath(path) {
  return path.split("/").filter(Boolean).map(encodeURIComponent).join("/");
}

// A configuration node's releases (who, when, why, what changed), read
// again when the node's version changes; nothing shown for a node that
// was never published through ndsr and has no schema (shown collapsed).
function loadHistory(node) {
  const key = node.exists ? `${node.path}@${node.stat.mzxid}` : null;
  if (key === historyKey) return;
  historyKey = key;
  if (key === null) {
    lastHistory = null;
    return;
  }
  const route = `/v1/config/${encodePath(node.path)}`;
  const read = (query) => fetch(`${route}?${query}`).then((r) => (r.ok ? r.json() : null)).catch(() => null);
  Promise.all([read("history&diff=1"), read("release=1")])
    .then(([body, live]) => {
      if (historyKey !== key) return;
      const schema = live && live.schema ? live.schema : null;
      const releases = body && body.items && body.items.some((i) => i.kind === "release");
      lastHistory = body && body.items && (releases || schema) ? { ...body, schema } : null;
      if (lastNode && lastNode.path === node.path) renderNode(lastNode);
      if (releases) watchCanary(node.path);
      else if (canaryTimer) { clearInterval(canaryTimer); canaryTimer = null; lastCanary = null; }
    })
    .catch(() => {});
}

// A configuration node's canary and what its clients run: read now, then
// every 3 s while the node is shown (clients report as they apply).
function watchCanary(path) {
  if (canaryTimer) clearInterval(canaryTimer);
  const route = `/v1/config/${encodePath(path)}/canary`;
  const read = () => fetch(route).then((r) => (r.ok ? r.json() : null)).catch(() => null).then((body) => {
    if (browsing !== path) return;
    const shown = body && (body.canary || body.counts.clients > 0) ? body : null;
    if (JSON.stringify(shown) === JSON.stringify(lastCanary)) return;
    lastCanary = shown;
    if (lastNode && lastNode.path === path) renderNode(lastNode);
  });
  read();
  canaryTimer = setInterval(read, 3000);
}

function renderCanary(status) {
  const c = status.counts;
  const canary = status.canary;
  const head = canary
    ? el("div", { class: "reg-head" },
      el("span", { class: "badge small", "data-state": "pending", text: `canary r${canary.revision}` }),
      el("span", { text: `${ruleText(canary.rule)} · over v${canary.base_version}` }))
    : el("div", { class: "muted small", text: "No canary." });
  const counts = el("div", { class: "small", "data-testid": "canary-counts",
    text: `${c.clients} client${c.clients === 1 ? "" : "s"}: ${c.on_stable} on the stable value` +
      (canary ? `, ${c.on_canary} on the canary, ${c.refused_canary} refused it` : "") });
  const clients = status.clients.map((r) => {
    const runs = r.applied.kind === "canary" ? "canary" : r.applied.kind === "stable" ? `v${r.applied.version}` : "default";
    const refused = r.refused ? ` · refused ${r.refused.canary ? "the canary" : "the live value"}: ${r.refused.reasons.join("; ")}` : "";
    return el("li", { class: "small mono", text: `${r.identity} (${r.host}, pid ${r.pid}): ${runs}${refused}` });
  });
  return el("div", { class: "canary", "data-testid": "canary" },
    el("h3", { text: "Canary" }),
    head,
    canary && canary.message ? el("div", { class: "small", text: `${canary.author}@${canary.host} · ${canary.message}` }) : null,
    canary ? el("pre", { class: "data", tabindex: "0", "aria-label": "Canary value", text: JSON.stringify(canary.value, null, 2) }) : null,
    counts,
    clients.length ? el("ul", { class: "registrations" }, ...clients) : null);
}

function ruleText(rule) {
  if (rule.hosts) return `hosts ${rule.hosts.join(", ")}`;
  if (rule.labels) return `labels ${Object.entries(rule.labels).map(([k, v]) => `${k}=${v}`).join(", ")}`;
  return `${rule.percent}% of clients`;
}

function renderHistory(history) {
  const items = history.items.slice().reverse().map((item) => {
    if (item.kind !== "release") return el("li", { class: "muted small", "data-testid": "history-note", text: item.text });
    const what = item.op === "rollback" ? `rollback to version ${item.rollback_of}` : item.op;
    const changes = (item.changes || []).map((c) => el("div", { class: `mono small change change-${c.kind}`, text: c.text }));
    return el("li", { "data-testid": "history-release", "data-version": String(item.version) },
      el("div", { class: "reg-head" },
        el("span", { class: "badge small", text: `v${item.version}` }),
        el("span", { text: what }),
        item.live ? el("span", { class: "ok small", text: "live" }) : null),
      el("div", { class: "muted small", text: `${item.author}@${item.host} · ${item.time}` }),
      item.message ? el("div", { class: "small", text: item.message }) : null,
      ...changes);
  });
  const schema = history.schema ? el("details", {
    class: "schema", "data-testid": "history-schema", open: schemaOpen,
    ontoggle: (e) => { schemaOpen = e.target.open; },
  },
  el("summary", { class: "small", text: `Schema (version ${history.schema.version})` }),
  el("pre", { class: "data", tabindex: "0", "aria-label": "Schema", text: JSON.stringify(history.schema.schema, null, 2) })) : null;
  const canary = lastCanary && lastCanary.path === history.path ? renderCanary(lastCanary) : null;
  return el("div", { class: "history", "data-testid": "history" },
    ...[canary, el("h3", { text: "History" }), schema, el("ul", { class: "registrations" }, ...items)].filter(Boolean));
}

function browse(path) {
  if (nodeEvents) nodeEvents.close();
  nodeEvents = null;
  lastNode = null;
  historyKey = null;
  lastHistory = null;
  lastCanary = null;
  if (canaryTimer) clearInterval(canaryTimer);
  canaryTimer = null;
  browsing = path;
  if (path === null) {
    renderRoots();
    focusFirst("#node button");
    return;
  }
  renderCrumbs(path);
  $("node").replaceChildren(el("p", { class: "muted", text: "loading…" }));
  const encoded = encodePath(path);
  nodeEvents = new EventSource(`/v1/watch/${encoded}`);
  let focused = false;
  nodeEvents.addEventListener("node", (e) => {
    renderNode(JSON.parse(e.data));
    if (!focused) { focused = true; focusFirst("#node button, #node pre"); }
  });
  nodeEvents.onerror = () => {
    if (!lastNode) {
      fetch(`/v1/nodes/${encoded}`).then((r) => r.json()).then((body) => {
        if (body.error) $("node").replaceChildren(el("p", { class: "warn", text: body.error }));
      }).catch(() => {});
    }
  };
}

function focusFirst(selector) {
  const target = document.querySelector(selector);
  if (target && document.activeElement && document.activeElement.closest("#services, aside")) target.focus();
}

// ---- live updates and keys --------------------------------------------

function connect() {
  const events = new EventSource("/v1/dashboard/events");
  events.addEventListener("model", (e) => {
    model = JSON.parse(e.data);
    $("banner").hidden = true;
    render();
  });
  events.onerror = () => {
    const banner = $("banner");
    banner.textContent = "The agent is unreachable: retrying…";
    banner.hidden = false;
  };
}

setInterval(() => {
  for (const marker of document.querySelectorAll("[data-testid=stale-marker]")) {
    marker.textContent = `stale ${age(Number(marker.dataset.since))}`;
  }
  if (model && model.session.stale_since_ms) renderSession();
}, 1000);

$("filter").addEventListener("input", () => model && renderServices());

document.addEventListener("keydown", (e) => {
  const typing = e.target instanceof HTMLInputElement;
  if (e.key === "/" && !typing) {
    e.preventDefault();
    $("filter").focus();
  } else if (e.key === "Escape") {
    $("filter").value = "";
    if (model) renderServices();
    if (typing) e.target.blur();
  } else if (e.key === "Backspace" && !typing && browsing !== null) {
    e.preventDefault();
    const up = browsing.slice(0, browsing.lastIndexOf("/"));
    const atRoot = model && model.agent.roots.includes(browsing);
    browse(atRoot || up === "" ? null : up);
  }
});

connect();
