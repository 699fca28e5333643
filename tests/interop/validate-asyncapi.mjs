// Parses AsyncAPI documents with the official parser (@asyncapi/parser,
// installed by `bash scripts/interop.sh install`) and prints every
// diagnostic as `file: severity: message (at path)`.
//
// Exits non-zero when any document has an error or a warning. Information
// and hint diagnostics (style suggestions of the default ruleset) are
// printed too but do not fail.
//
//   node tests/interop/validate-asyncapi.mjs DOCUMENT...
//
// The parser is looked for in ONEX_INTEROP_DIR (default target/interop).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';

const dir = resolve(process.env.ONEX_INTEROP_DIR || 'target/interop');
const require = createRequire(resolve(dir, 'package.json'));
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

const names = { 0: 'error', 1: 'warning', 2: 'information', 3: 'hint' };
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate-asyncapi.mjs DOCUMENT...');
  process.exit(2);
}
const parser = new Parser();
let failed = false;
for (const file of files) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'), { source: file });
  for (const d of diagnostics) {
    const severity = names[d.severity] ?? String(d.severity);
    console.log(`${file}: ${severity}: ${d.message} (at ${d.path.join('.') || '/'}; rule ${d.code})`);
    if (d.severity === DiagnosticSeverity.Error || d.severity === DiagnosticSeverity.Warning) {
      failed = true;
    }
  }
  if (document === undefined) {
    console.log(`${file}: error: the parser gave no document`);
    failed = true;
  } else {
    console.log(`${file}: parsed, AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.operations().length} operations, ${document.messages().length} messages`);
  }
}
process.exit(failed ? 1 : 0);
