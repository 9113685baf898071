import type { ReadCall } from './auto-tool-call-reader.js';
import { PyDict, type PyValue, pythonJsonDumps } from './python-values.js';

/**
 * A call the model wrote as a JSON object {"name": …, <arguments key>: …}, with its arguments as
 * vLLM writes them (json.dumps of what json.loads read), or null when it is not one. Without an
 * arguments key it is not a call, unless `absentArguments` says what they are (Mistral's).
 */
export function jsonCallOf(
  value: PyValue,
  argumentKeys: readonly string[],
  absentArguments?: PyValue,
): ReadCall | null {
  if (!(value instanceof PyDict)) return null;
  const name = value.get('name');
  if (typeof name !== 'string') return null;
  const key = argumentKeys.find((k) => value.has(k));
  const args = key === undefined ? absentArguments : value.get(key);
  if (args === undefined) return null;
  return { name, arguments: pythonJsonDumps(args) };
}
