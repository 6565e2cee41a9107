// Renders /openapi.json as a reference: operations grouped by tag, each with its
// security, parameters, request body and responses (schemas expanded, examples shown).
// Plain DOM and textContent only: nothing from the document is parsed as HTML.
"use strict";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];
// A schema nested deeper than this is shown by name only (schemas may be recursive).
const MAX_DEPTH = 6;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Inline `code` spans of a description, as text nodes (the rest of Markdown is left as is).
function prose(text) {
  const node = el("p");
  String(text || "").split(/(`[^`]*`)/).forEach((part) => {
    if (part.startsWith("`") && part.endsWith("`") && part.length > 1) {
      node.append(el("code", {}, part.slice(1, -1)));
    } else if (part) {
      node.append(document.createTextNode(part));
    }
  });
  return node;
}

function resolve(doc, schema) {
  let name = null;
  while (schema && schema.$ref) {
    name = schema.$ref.split("/").pop();
    schema = doc.components.schemas[name];
  }
  return { schema: schema || {}, name };
}

function typeLabel(doc, schema) {
  const { schema: s, name } = resolve(doc, schema);
  if (name) return name;
  if ("const" in s) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.oneOf) return s.oneOf.map((x) => typeLabel(doc, x)).join(" | ");
  const types = [].concat(s.type || "any");
  return types
    .map((t) => (t === "array" ? typeLabel(doc, s.items || {}) + "[]" : t))
    .join(" | ");
}

function schemaView(doc, schema, depth) {
  const { schema: s } = resolve(doc, schema);
  const box = el("div", { class: "schema" });
  if (s.description) box.append(prose(s.description));
  if (depth > MAX_DEPTH) return box;
  if (s.oneOf) {
    s.oneOf.forEach((option) => {
      const inner = resolve(doc, option).schema;
      if (inner.properties) box.append(schemaView(doc, option, depth + 1));
    });
  }
  if (s.type === "array" || (Array.isArray(s.type) && s.type.includes("array"))) {
    const items = resolve(doc, s.items || {}).schema;
    if (items.properties) box.append(schemaView(doc, s.items, depth + 1));
  }
  if (!s.properties) return box;
  const table = el("table", {}, el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "")));
  const required = new Set(s.required || []);
  for (const [name, property] of Object.entries(s.properties)) {
    const inner = resolve(doc, property).schema;
    const cell = el("td");
    if (inner.description && !property.$ref) cell.append(prose(inner.description));
    const nested =
      inner.properties ||
      (inner.items && resolve(doc, inner.items).schema.properties) ||
      (inner.oneOf && inner.oneOf.some((o) => resolve(doc, o).schema.properties));
    if (nested) {
      const more = el("details", {}, el("summary", {}, "fields"));
      more.append(schemaView(doc, property, depth + 1));
      cell.append(more);
    }
    table.append(
      el(
        "tr",
        {},
        el("td", {}, el("code", {}, name), required.has(name) ? el("span", { class: "req" }, " required") : null),
        el("td", { class: "type" }, typeLabel(doc, property)),
        cell,
      ),
    );
  }
  box.append(table);
  return box;
}

function contentView(doc, content) {
  const box = el("div");
  for (const [media, body] of Object.entries(content || {})) {
    box.append(el("div", { class: "note" }, media + ": ", el("span", { class: "type" }, typeLabel(doc, body.schema || {}))));
    box.append(schemaView(doc, body.schema || {}, 0));
    if (body.example !== undefined) box.append(el("pre", {}, JSON.stringify(body.example, null, 2)));
  }
  return box;
}

function operationView(doc, path, method, op) {
  const head = el(
    "summary",
    {},
    el("span", { class: "method " + method }, method),
    el("span", { class: "path" }, path),
    el("span", { class: "summary" }, op.summary || ""),
    op["x-websocket"] ? el("span", { class: "badge" }, "WebSocket") : null,
  );
  const body = el("div", { class: "op-body" });
  if (op.description) body.append(prose(op.description));
  const security = op.security || doc.security || [];
  body.append(
    el("h4", {}, "Authentication"),
    el("p", {}, security.length ? security.map((s) => Object.keys(s).join(" + ")).join(" or ") : "none"),
  );
  if (op.parameters && op.parameters.length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "name"), el("th", {}, "in"), el("th", {}, "type"), el("th", {}, "")));
    for (const p of op.parameters) {
      table.append(
        el(
          "tr",
          {},
          el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
          el("td", {}, p.in),
          el("td", { class: "type" }, typeLabel(doc, p.schema || {})),
          el("td", {}, prose(p.description)),
        ),
      );
    }
    body.append(el("h4", {}, "Parameters"), table);
  }
  if (op.requestBody) body.append(el("h4", {}, "Request body"), contentView(doc, op.requestBody.content));
  body.append(el("h4", {}, "Responses"));
  for (const [status, response] of Object.entries(op.responses || {})) {
    const line = prose(response.description);
    line.prepend(el("span", { class: "status" }, status + " "));
    body.append(line);
    if (response.content) body.append(contentView(doc, response.content));
  }
  const details = el("details", { class: "op", id: "op-" + (op.operationId || method + path) }, head, body);
  details.dataset.search = [path, method, op.summary, (op.tags || []).join(" ")].join(" ").toLowerCase();
  return details;
}

function render(doc) {
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  const main = document.getElementById("reference");
  const toc = document.getElementById("toc");
  main.replaceChildren(prose(doc.info.description));
  const byTag = new Map((doc.tags || []).map((t) => [t.name, []]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["Other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(doc, path, method, item[method]));
    }
  }
  const described = new Map((doc.tags || []).map((t) => [t.name, t.description]));
  let index = 0;
  for (const [tag, operations] of byTag) {
    if (!operations.length) continue;
    const id = "tag-" + index++;
    toc.append(el("a", { href: "#" + id }, tag));
    const section = el("section", { id }, el("h2", {}, tag));
    if (described.get(tag)) section.append(prose(described.get(tag)));
    section.append(...operations);
    main.append(section);
  }
  const schemas = el("section", { id: "schemas" }, el("h2", {}, "Schemas"));
  for (const name of Object.keys(doc.components.schemas).sort()) {
    const one = el("details", { class: "op" }, el("summary", {}, el("span", { class: "path" }, name)));
    one.append(el("div", { class: "op-body" }, schemaView(doc, { $ref: "#/components/schemas/" + name }, 0)));
    one.dataset.search = name.toLowerCase();
    schemas.append(one);
  }
  toc.append(el("a", { href: "#schemas" }, "Schemas"));
  main.append(schemas);
}

function filter(text) {
  const words = text.toLowerCase().split(/\s+/).filter(Boolean);
  for (const node of document.querySelectorAll("details.op")) {
    const hit = words.every((w) => node.dataset.search.includes(w));
    node.classList.toggle("hidden", !hit);
  }
}

async function main() {
  const main = document.getElementById("reference");
  try {
    const response = await fetch("/openapi.json");
    if (!response.ok) throw new Error("GET /openapi.json answered " + response.status);
    render(await response.json());
  } catch (error) {
    main.replaceChildren(el("p", { class: "note" }, "Could not load the description: " + error.message));
  }
  document.getElementById("filter").addEventListener("input", (event) => filter(event.target.value));
  // A link to #op-<operationId> opens that operation.
  const linked = location.hash && document.getElementById(location.hash.slice(1));
  if (linked && linked.tagName === "DETAILS") {
    linked.open = true;
    linked.scrollIntoView();
  }
}

main();
