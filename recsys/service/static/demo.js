// The demo page of recsys (recsys/service/demo.py): plain JavaScript, no library, no build step.
// It calls the page's own JSON paths under /demo/api with the token the visitor gives (kept in sessionStorage).
"use strict";

const STRATEGIES = ["knn", "svd", "content", "demographic"];
const LABELS = { realtime: "real time (Stage 1)", recommendations: "hybrid (Stage 3)", deals: "deals" };
const state = { token: sessionStorage.getItem("recsys-demo-token") || "", user: null, last: null, admin: false };

const $ = (id) => document.getElementById(id);

function setStatus(text, kind) {
  const el = $("status");
  el.textContent = text;
  el.className = kind || "muted";
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: Object.assign({ Authorization: "Bearer " + state.token },
                           body ? { "Content-Type": "application/json" } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || data);
    throw new Error(response.status + ": " + detail);
  }
  return data;
}

function money(value) {
  return value === null || value === undefined ? "" : Number(value).toFixed(2);
}

function renderProfile(view) {
  $("profile").hidden = false;
  $("profile-user").textContent = view.user_id + (view.profile.known_user ? "" : " (unknown user: demographic fallback)");
  const dl = $("profile-fields");
  dl.replaceChildren();
  const fields = [["region", view.profile.region], ["age group", view.profile.age_group],
                  ["spending tier", view.profile.spending_tier], ["price sensitivity", view.profile.price_sensitivity],
                  ["answered at", view.timestamp]];
  for (const [name, value] of fields) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value === null || value === undefined ? "unknown" : String(value);
    dl.append(dt, dd);
  }
  $("segment").textContent = view.segment
    ? "Segment " + view.segment.name + ": " + view.segment.summary
    : "No segment (a user the batch job has not seen).";
}

function renderRecommendations(view, previous) {
  $("recommendations").hidden = false;
  const before = new Set(previous ? previous.recommendations.map((r) => r.product_id) : []);
  const body = $("rec-rows");
  body.replaceChildren();
  view.recommendations.forEach((rec, i) => {
    const row = document.createElement("tr");
    row.dataset.product = rec.product_id;
    if (previous && !before.has(rec.product_id)) row.className = "new";
    cell(row, i + 1, "num");
    cell(row, rec.name + " (" + rec.product_id + ")");
    cell(row, rec.category);
    cell(row, money(rec.price), "num");
    cell(row, Number(rec.score).toFixed(3), "num");
    const parts = cell(row, "");
    const bars = document.createElement("div");
    bars.className = "bars";
    const contributions = rec.contributions || {};
    for (const s of STRATEGIES) {
      const bar = document.createElement("div");
      bar.className = "bar " + s;
      bar.title = s + ": " + Number(contributions[s] || 0).toFixed(3);
      const fill = document.createElement("span");
      fill.style.height = Math.round(100 * Math.min(1, Math.max(0, contributions[s] || 0) / Math.max(rec.score, 1e-9))) + "%";
      bar.appendChild(fill);
      bars.appendChild(bar);
    }
    const numbers = document.createElement("div");
    numbers.className = "parts";
    numbers.textContent = STRATEGIES.map((s) => Number(contributions[s] || 0).toFixed(3)).join(" / ");
    parts.append(bars, numbers);
    cell(row, rec.reason);
    eventButtons(cell(row, "", "actions"), rec.product_id);
    body.appendChild(row);
  });
}

function eventButtons(td, productId) {
  for (const kind of ["view", "cart", "purchase"]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = kind;
    button.dataset.event = kind;
    button.addEventListener("click", () => postEvent(productId, kind));
    td.appendChild(button);
  }
}

function renderRealtime(view, previous) {
  $("realtime").hidden = false;
  $("realtime-method").textContent = view.realtime_method;
  const before = new Set(previous ? previous.realtime.map((r) => r.product_id) : []);
  const body = $("rt-rows");
  body.replaceChildren();
  view.realtime.forEach((rec, i) => {
    const row = document.createElement("tr");
    row.dataset.product = rec.product_id;
    if (previous && !before.has(rec.product_id)) row.className = "new";
    cell(row, i + 1, "num");
    cell(row, rec.name + " (" + rec.product_id + ")");
    cell(row, rec.category);
    cell(row, money(rec.price), "num");
    cell(row, Number(rec.score).toFixed(3), "num");
    cell(row, rec.reason);
    eventButtons(cell(row, "", "actions"), rec.product_id);
    body.appendChild(row);
  });
}

function renderDeals(view) {
  $("deals").hidden = false;
  const body = $("deal-rows");
  body.replaceChildren();
  $("deals-note").textContent = view.deals_retry_after_seconds
    ? "Deal rate limit reached: no deals in this answer; retry after " + view.deals_retry_after_seconds + " s."
    : view.deals.length + " deal(s), priced by region, age group, demand and season, within the guardrails.";
  for (const deal of view.deals) {
    const row = document.createElement("tr");
    row.dataset.product = deal.product_id;
    cell(row, deal.name + " (" + deal.product_id + ")");
    cell(row, deal.category);
    cell(row, money(deal.original_price), "num");
    cell(row, money(deal.deal_price), "num");
    cell(row, Number(deal.discount_percentage).toFixed(1) + " %", "num");
    cell(row, deal.deal_reason);
    cell(row, deal.deal_expiry);
    cell(row, deal.is_regional_deal ? "yes" : "no");
    body.appendChild(row);
  }
}

function renderChanges(previous, view, event) {
  const list = $("change-list");
  list.replaceChildren();
  const ids = (v, key) => v[key].map((r) => r.product_id);
  const lines = [];
  for (const key of ["realtime", "recommendations", "deals"]) {
    const before = ids(previous, key), after = ids(view, key);
    for (const p of before) if (!after.includes(p)) lines.push(["removed", LABELS[key] + ": " + p + " left the list"]);
    for (const p of after) if (!before.includes(p)) lines.push(["added", LABELS[key] + ": " + p + " entered the list"]);
    const moved = after.filter((p, i) => before.includes(p) && before.indexOf(p) !== i).length;
    if (moved) lines.push(["", LABELS[key] + ": " + moved + " product(s) changed rank"]);
  }
  if (!lines.length) lines.push(["", "no change in the lists (scores may still have moved)"]);
  const head = document.createElement("li");
  head.textContent = "after " + event.event_type + " of " + event.product_id + ":";
  list.appendChild(head);
  for (const [cls, text] of lines) {
    const li = document.createElement("li");
    li.className = cls;
    li.textContent = text;
    list.appendChild(li);
  }
  $("changes").hidden = false;
}

async function show(userId, event) {
  setStatus("loading " + userId + " ...");
  try {
    const view = await api("GET", "/demo/api/users/" + encodeURIComponent(userId));
    const previous = state.user === userId ? state.last : null;
    state.user = userId;
    renderProfile(view);
    renderRealtime(view, event ? previous : null);
    renderRecommendations(view, event ? previous : null);
    renderDeals(view);
    if (event && previous) renderChanges(previous, view, event); else $("changes").hidden = true;
    state.last = view;
    remember(userId);
    setStatus("showing " + userId + (event ? " after the " + event.event_type : ""), "ok");
  } catch (error) {
    setStatus(error.message, "error");
  }
}

async function postEvent(productId, kind) {
  if (!state.user) return;
  setStatus("posting " + kind + " of " + productId + " ...");
  try {
    const answer = await api("POST", "/demo/api/events", { user_id: state.user, product_id: productId, event_type: kind });
    await show(state.user, answer.event);
  } catch (error) {
    setStatus(error.message, "error");
  }
}

function remember(userId) {
  const list = $("users");
  if (![...list.options].some((o) => o.value === userId)) {
    const option = document.createElement("option");
    option.value = userId;
    list.appendChild(option);
  }
}

async function useToken(token) {
  state.token = token;
  sessionStorage.setItem("recsys-demo-token", token);
  try {
    const me = await api("GET", "/demo/api/me");
    state.admin = me.admin;
    $("whoami").textContent = me.admin ? "admin token (any user)" : "token of " + me.user_id + " (that user only)";
    for (const u of me.suggested_users) remember(u);
    $("user").value = me.admin ? (me.suggested_users[0] || "") : me.user_id;
    $("user").readOnly = !me.admin;
    if ($("user").value) await show($("user").value); else setStatus("pick a user", "ok");
  } catch (error) {
    $("whoami").textContent = "";
    setStatus(error.message, "error");
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (e) => { e.preventDefault(); useToken($("token").value.trim()); });
  $("user-form").addEventListener("submit", (e) => { e.preventDefault(); if ($("user").value.trim()) show($("user").value.trim()); });
  if (state.token) { $("token").value = state.token; useToken(state.token); }
});
