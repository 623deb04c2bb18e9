// The Elections panel: an election path's layout, leader and contenders,
// live over GET /v1/elections/<path>?stream. Uses app.js's $, el and
// encodePath; everything is built with textContent.
"use strict";

let electionEvents = null;

function renderElection(e) {
  const leader = e.leader;
  const mixed = e.layouts.length > 1;
  const said = leader ? "leader" : mixed ? "no leader: layouts disagree" : "no leader";
  const head = el("div", { class: "reg-head" },
    el("span", { class: "badge small", "data-state": leader ? "rendered" : mixed ? "failed" : "pending", text: said }),
    leader ? el("span", { class: "mono", "data-testid": "election-leader", text: leader.id }) : null);
  const layout = el("div", { class: "muted small", "data-testid": "election-layout",
    text: e.layouts.length ? `layout ${e.layouts.join(" and ")}` : "no layout yet" });
  const contenders = e.contenders.map((c, i) => el("li", { "data-testid": "election-contender", "data-id": c.id },
    el("div", { class: "reg-head" },
      el("span", { class: "mono", text: c.id }),
      el("span", { class: "muted small", text: `${i === 0 && leader ? "leads" : `#${i + 1}`} · sequence ${c.sequence}${mixed ? ` · ${c.layout}` : ""}` })),
    el("div", { class: "muted small mono", text: c.node })));
  $("election").replaceChildren(...[
    el("div", { class: "mono small", text: e.path }),
    head,
    layout,
    mixed ? el("div", { class: "warn small", text: "Contenders of two layouts in one path: their clients disagree on who leads." }) : null,
    contenders.length ? el("ol", { class: "registrations" }, ...contenders) : el("p", { class: "empty", text: "No contenders." }),
  ].filter(Boolean));
}

function showElectionProblem(text) {
  const box = $("election");
  const old = box.querySelector("[data-testid=election-problem]");
  if (old) old.remove();
  box.prepend(el("div", { class: "warn small", role: "alert", "data-testid": "election-problem", text }));
}

function watchElection(path) {
  if (electionEvents) electionEvents.close();
  const encoded = encodePath(path);
  $("election").replaceChildren(el("p", { class: "muted", text: "loading…" }));
  const events = new EventSource(`/v1/elections/${encoded}?stream`);
  electionEvents = events;
  events.addEventListener("election", (e) => renderElection(JSON.parse(e.data)));
  events.addEventListener("failure", (e) => showElectionProblem(JSON.parse(e.data).error));
  events.onerror = () => {
    // Refused (a bad path, outside the roots): say why, once.
    if (events.readyState !== EventSource.CLOSED || electionEvents !== events) return;
    fetch(`/v1/elections/${encoded}`).then((r) => r.json()).then((body) => {
      if (electionEvents === events && body.error) $("election").replaceChildren(el("p", { class: "warn", text: body.error }));
    }).catch(() => {});
  };
}

$("election-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const typed = $("election-path").value.trim();
  if (!typed) return;
  watchElection(typed.startsWith("/") ? typed : `/${typed}`);
});
