import { LinearRegex, RegexSyntaxError } from './linear-regex.js';
import { ModelFormatError } from './model-format-error.js';

/**
 * PEFT's `rank_pattern` / `alpha_pattern`: module-name patterns → a value that replaces `r` /
 * `lora_alpha` for the modules they match. PEFT picks the key with `get_pattern_key`: the first
 * key, in the file's order, for which `re.match(rf"(.*\.)?({key})$", name)` succeeds — a key is a
 * regex that must match a whole dotted suffix of the module name ("q_proj" matches every layer's
 * q_proj, "model.layers.1.mlp.down_proj" just that one, "layers\.[0-3]\..*proj" several). With no
 * key matching, the name itself is looked up, which only a key equal to it could satisfy, and it
 * would already have matched. Names never hold a newline, so `$` here is the end of the name.
 * File order is JSON.parse's, which lists integer-like keys ("3") first: such a key can only match
 * a name ending in digits, and no linear module's name does, so the order that matters is kept.
 */
export class ModulePattern {
  private constructor(private readonly entries: ReadonlyArray<{ test: LinearRegex; value: number }>) {}

  /** An empty pattern (the field absent, null or {}): every module keeps the default. */
  static readonly NONE = new ModulePattern([]);

  /**
   * Parses `field` of adapter_config.json; `check` refuses a value (returns why, or null if fine).
   * Keys are checked as regexes up front, so a bad one is refused by name at load.
   */
  static parse(
    file: string,
    field: string,
    raw: unknown,
    check: (value: unknown) => string | null,
  ): ModulePattern {
    if (raw === undefined || raw === null) return ModulePattern.NONE;
    if (typeof raw !== 'object' || Array.isArray(raw)) {
      throw new ModelFormatError(
        file,
        `"${field}" must be an object of module-name patterns, got ${JSON.stringify(raw)}`,
      );
    }
    const entries = Object.entries(raw as Record<string, unknown>).map(([key, value]) => {
      const problem = check(value);
      if (problem !== null) {
        throw new ModelFormatError(
          file,
          `"${field}" entry "${key}": ${problem}, got ${JSON.stringify(value)}`,
        );
      }
      try {
        return { test: new LinearRegex(`(.*\\.)?(${key})`), value: value as number };
      } catch (err) {
        if (!(err instanceof RegexSyntaxError)) throw err;
        throw new ModelFormatError(
          file,
          `"${field}" key ${JSON.stringify(key)} is not a usable regex: ${err.message}`,
        );
      }
    });
    return new ModulePattern(entries);
  }

  /** The value of the first key matching `moduleName` (e.g. "model.layers.0.self_attn.q_proj"), if any. */
  valueFor(moduleName: string): number | undefined {
    return this.entries.find((entry) => entry.test.fullMatch(moduleName))?.value;
  }
}
