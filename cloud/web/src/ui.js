// DOM helpers. Data goes into the page only as text (textContent or
// attribute values), never as HTML, so nothing the API returns can run.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function money(minor, currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(minor / 100);
  } catch {
    return (minor / 100).toFixed(2) + " " + currency;
  }
}

export function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return Math.round(s / 3600) + " h ago";
}

let toastTimer = null;
export function toast(message, kind = "ok") {
  const t = document.getElementById("toast");
  t.className = "toast " + kind;
  t.textContent = message;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.textContent = "";
    t.className = "";
  }, 6000);
}

// A labelled input; `id` ties the label to the control.
let seq = 0;
export function field(label, attrs = {}, hint) {
  const id = attrs.id || "f" + ++seq;
  const control =
    attrs.type === "select"
      ? h("select", { ...attrs, type: undefined, id, options: undefined }, ...(attrs.options || []).map(([v, t]) => h("option", { value: v }, t)))
      : attrs.type === "textarea"
        ? h("textarea", { ...attrs, type: undefined, id })
        : h("input", { ...attrs, id });
  const hintId = hint ? id + "-hint" : undefined;
  if (hintId) control.setAttribute("aria-describedby", hintId);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hint ? h("small", { id: hintId }, hint) : null);
}

// Runs `action` for a form submit, showing the API's error message.
export function onSubmit(form, action) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await action(new FormData(form));
    } catch (e) {
      showError(e);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}

export function showError(e) {
  toast(e && e.message ? e.message : String(e), "error");
}

export function errorBlock(e) {
  return h("p", { class: "error", role: "alert" }, e && e.message ? e.message : String(e));
}

export function table(caption, columns, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c))))),
    ),
  );
}

export function isoOrNull(localValue) {
  return localValue ? new Date(localValue).toISOString() : null;
}
