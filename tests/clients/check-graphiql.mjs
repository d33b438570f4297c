// GraphiQL in headless Chromium, with no network but the server's loopback
// origin: the page asks for a token (a wrong one is refused with a message),
// the README's services query typed into the editor and run shows the demo
// services, the docs pane shows the Query type, and a subscription (over
// /graphql/ws) shows a service another client updates.
//
//   SERVICEGRAPH_URL=http://127.0.0.1:8080 SERVICEGRAPH_TOKEN=... node check-graphiql.mjs
//
// The server must not be in development mode on loopback (there the page
// skips the prompt) and must hold the demo data (`servicegraph seed --demo`).
// Chromium: CHROMIUM (default /usr/bin/chromium). On failure a screenshot is
// saved (GRAPHIQL_SCREENSHOT, default graphiql-failure.png in the temp dir).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const base = (process.env.SERVICEGRAPH_URL || "").replace(/\/$/, "");
const token = process.env.SERVICEGRAPH_TOKEN || "";
if (!base || !token) {
  console.error("set SERVICEGRAPH_URL and SERVICEGRAPH_TOKEN");
  process.exit(2);
}
const origin = new URL(base).origin;
const screenshot = process.env.GRAPHIQL_SCREENSHOT || join(tmpdir(), "graphiql-failure.png");
const timeout = 20_000;

// The query README.md tells a new user to run in GraphiQL.
function readmeQuery() {
  const readme = readFileSync(join(here, "..", "..", "README.md"), "utf8");
  for (const [, block] of readme.matchAll(/```graphql\n([\s\S]*?)```/g)) {
    if (/^\s*\{\s*services\(/.test(block)) return block.trimEnd();
  }
  throw new Error("README.md has no ```graphql block with the services query");
}

// The names the server itself gives for the services, to find in the page.
async function serviceNames() {
  const data = await graphql("{ services(first: 10) { edges { node { name } } } }");
  const names = data.services.edges.map((e) => e.node.name);
  if (names.length === 0) throw new Error("the server lists no services (is the demo data loaded?)");
  return names;
}

async function graphql(query, variables) {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
  return body.data;
}

// Updates the description of the service named `name`; returns its name.
async function changeAService(name) {
  const data = await graphql("{ services(first: 10) { edges { node { id version name } } } }");
  const service = data.services.edges.map((e) => e.node).find((s) => s.name === name);
  const input = { id: service.id, version: service.version, description: `checked ${new Date().toISOString()}` };
  const updated = await graphql(
    "mutation($i: UpdateServiceInput!) { updateService(input: $i) { name } }",
    { i: input },
  );
  return updated.updateService.name;
}

const outside = [];
const problems = [];
let expectedConsoleErrors = 0;
const profile = mkdtempSync(join(tmpdir(), "servicegraph-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let page;
try {
  // Nothing but the server: every other request is aborted and recorded.
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if (new URL(url).origin === origin) return route.continue();
    outside.push(url);
    return route.abort("blockedbyclient");
  });
  await context.routeWebSocket(
    (url) => url.host !== new URL(origin).host,
    (ws) => {
      outside.push(ws.url());
      ws.close();
    },
  );
  page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    // The refused token's 401 is logged by Chromium as a failed load (one
    // is excused, whenever its message arrives).
    if (expectedConsoleErrors > 0 && /status of 401/.test(m.text())) {
      expectedConsoleErrors -= 1;
      return;
    }
    problems.push(`console error: ${m.text()}`);
  });

  const [query, names] = [readmeQuery(), await serviceNames()];

  await page.goto(`${base}/graphql`);
  console.log("page loaded");

  // The prompt, and a wrong token refused with a clear message.
  const form = page.locator("#sg-token-form");
  await form.getByRole("heading", { name: "Connect to ServiceGraph" }).waitFor();
  expectedConsoleErrors = 1;
  await page.getByLabel("Bearer token").fill("not-a-valid-token");
  await page.getByRole("button", { name: "Connect" }).click();
  const error = page.locator("#sg-token-error");
  await error.waitFor({ state: "visible" });
  const errorText = await error.innerText();
  if (!/rejected this token/.test(errorText) || !/UNAUTHENTICATED/.test(errorText)) {
    throw new Error(`a wrong token should be refused clearly; the page says: ${errorText}`);
  }
  console.log(`wrong token refused: ${errorText}`);

  // The right token mounts GraphiQL.
  await page.getByLabel("Bearer token").fill(token);
  await page.getByRole("button", { name: "Connect" }).click();
  const editor = page.locator(".graphiql-query-editor .CodeMirror");
  await editor.waitFor();
  console.log("GraphiQL mounted");

  // The README's query typed into the editor (inserted as typed text, so
  // the editor's bracket closing does not double the braces), then run.
  await editor.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Backspace");
  await page.keyboard.insertText(query);
  const typed = await editor.evaluate((node) => node.CodeMirror.getValue());
  if (typed.trim() !== query.trim()) {
    throw new Error(`the editor holds:\n${typed}\ninstead of:\n${query}`);
  }
  await page.locator(".graphiql-execute-button").click();
  // The first service shows in the pane; the pane's whole text (CodeMirror
  // draws only the visible lines) is the JSON the server answered.
  const result = page.locator(".graphiql-response");
  await result.getByText(`"${names[0]}"`).first().waitFor();
  const resultText = await result
    .locator(".CodeMirror")
    .evaluate((node) => node.CodeMirror.getValue());
  const answer = JSON.parse(resultText);
  const shown = answer?.data?.services?.edges?.map((e) => e.node.name) ?? [];
  if (answer.errors || JSON.stringify(shown) !== JSON.stringify(names)) {
    throw new Error(`the response pane should list ${names.join(", ")}:\n${resultText}`);
  }
  console.log(`services query ran: ${names.join(", ")}`);

  // The docs pane, from the schema GraphiQL introspected with the token.
  await page.getByRole("button", { name: "Show Documentation Explorer" }).click();
  const docs = page.locator(".graphiql-doc-explorer");
  await docs.waitFor();
  const schemaError = docs.getByText("Error fetching schema");
  if (await schemaError.isVisible()) {
    throw new Error("GraphiQL could not introspect the schema (docs pane: Error fetching schema)");
  }
  await docs.getByText("Query", { exact: true }).first().click();
  await docs.locator(".graphiql-doc-explorer-title", { hasText: "Query" }).waitFor();
  await docs.getByText("services", { exact: true }).first().waitFor();
  console.log("docs pane shows the Query type");

  // A subscription goes over /graphql/ws with the token in connection_init,
  // and shows the change another client makes.
  const subscribed = new Promise((resolve) => {
    page.on("websocket", (ws) => {
      ws.on("framesent", (frame) => {
        if (String(frame.payload).includes('"type":"subscribe"')) resolve();
      });
    });
  });
  await editor.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Backspace");
  await page.keyboard.insertText(
    "subscription { serviceChanged { kind service { name } changedFields } }",
  );
  await page.waitForTimeout(500); // GraphiQL parses the edited operation after a pause
  await page.locator(".graphiql-execute-button").click();
  let timer;
  await Promise.race([
    subscribed,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("GraphiQL did not subscribe over the WebSocket")), timeout);
    }),
  ]).finally(() => clearTimeout(timer));
  const changed = await changeAService(names[0]);
  await result.getByText('"UPDATED"').first().waitFor();
  const event = JSON.parse(await result.locator(".CodeMirror").evaluate((node) => node.CodeMirror.getValue()));
  if (event?.data?.serviceChanged?.service?.name !== changed) {
    throw new Error(`the subscription should show ${changed} updated: ${JSON.stringify(event)}`);
  }
  console.log(`subscription over the WebSocket showed ${changed} updated`);

  // The token lasts the tab (sessionStorage): a reload goes straight to
  // GraphiQL; "Change token" forgets it and asks again.
  await page.reload();
  await editor.waitFor();
  if (await form.isVisible()) throw new Error("after a reload the page asked for the token again");
  await page.getByRole("button", { name: "Change token" }).click();
  await form.waitFor();
  const kept = await page.evaluate(() => window.sessionStorage.length);
  if (kept !== 0) throw new Error(`"Change token" left ${kept} item(s) in sessionStorage`);
  console.log("a reload keeps the token; Change token asks again");

  if (outside.length > 0) {
    throw new Error(`requests outside the server (aborted): ${outside.join(", ")}`);
  }
  if (problems.length > 0) {
    throw new Error(problems.join("\n"));
  }
  console.log("ok: GraphiQL works offline with a token");
} catch (e) {
  if (page) {
    await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
    console.error(`screenshot: ${screenshot}`);
  }
  if (outside.length > 0) console.error(`requests outside the server: ${outside.join(", ")}`);
  if (problems.length > 0) console.error(problems.join("\n"));
  console.error(`FAILED: ${e.message}`);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
