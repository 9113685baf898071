import { readFileSync } from 'node:fs';

/** package.json's version: what /version and --version report. */
export const LOOM_VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
