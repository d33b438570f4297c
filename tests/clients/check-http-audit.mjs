// The GraphQL-over-HTTP audit (graphql-http's serverAudits) against a running
// ServiceGraph: every audit "ok", no "error"; each "warn" must be one listed
// in EXPLAINED (and in README's "GraphQL over HTTP" section), with the reason
// it stays. Env: SERVICEGRAPH_URL, SERVICEGRAPH_TOKEN.
import { serverAudits } from "graphql-http";

const base = process.env.SERVICEGRAPH_URL;
const token = process.env.SERVICEGRAPH_TOKEN;
if (!base || !token) {
  console.error("SERVICEGRAPH_URL and SERVICEGRAPH_TOKEN must be set");
  process.exit(2);
}

// Warnings that stay, by audit id, each explained in README.
const EXPLAINED = {};

// Every audit request carries the bearer token, as any real client's would.
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};

const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
const problems = [];
for (const audit of serverAudits({ url: `${base}/graphql`, fetchFn })) {
  const result = await audit.fn();
  counts[result.status] += 1;
  if (result.status === "ok") continue;
  // A notice is a MAY the server chose not to do; printed, never a failure.
  let body = "";
  try {
    body = await result.response.text();
  } catch {}
  const line = `${result.status.toUpperCase()} ${audit.id} ${audit.name}: ${result.reason}\n    ${result.response?.status} ${result.response?.headers.get("content-type")} ${body.slice(0, 300)}`;
  if (result.status === "notice") {
    console.log(line);
  } else if (result.status === "warn" && EXPLAINED[audit.id]) {
    console.log(`${line}\n    (explained: ${EXPLAINED[audit.id]})`);
  } else {
    problems.push(line);
  }
}
for (const p of problems) console.log(p);
console.log(
  `graphql-http audit: ${counts.ok} ok, ${counts.notice} notices, ${counts.warn} warnings, ${counts.error} errors`,
);
// The audit must really have run: graphql-http 1.23 has 61 audits.
if (counts.ok < 55) {
  console.log(`only ${counts.ok} audits passed: did the audit run?`);
  process.exit(1);
}
process.exit(problems.length === 0 ? 0 : 1);
