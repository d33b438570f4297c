// Writes the introspection queries of graphql-js and GraphiQL 4 to
// tests/fixtures/introspection/, the texts the API tests send:
//   node tests/clients/introspection-fixtures.mjs
// graphql-js is the version in package.json; GraphiQL 4 (@graphiql/react's
// generateIntrospectionQuery) calls graphql-js's getIntrospectionQuery with
// `inputValueDeprecation` and `schemaDescription`, both on in our page.
import { writeFileSync, mkdirSync } from "node:fs";
import { getIntrospectionQuery, version } from "graphql";

const dir = new URL("../fixtures/introspection/", import.meta.url);
mkdirSync(dir, { recursive: true });
const fixtures = {
  "graphql-js.graphql": getIntrospectionQuery(),
  "graphql-js-all-options.graphql": getIntrospectionQuery({
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
    oneOf: true,
  }),
  "graphiql-4.graphql": getIntrospectionQuery({
    inputValueDeprecation: true,
    schemaDescription: true,
  }),
};
for (const [name, text] of Object.entries(fixtures)) {
  writeFileSync(new URL(name, dir), `# graphql-js ${version}: see tests/clients/introspection-fixtures.mjs\n${text}\n`);
  console.log(`wrote tests/fixtures/introspection/${name}`);
}
