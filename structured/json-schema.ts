import { ByteMatcher } from './byte-matcher.js';
import {
  formatRegex,
  type Grammar,
  type GrammarNode,
  GuideError,
  jsonBytes,
  type ObjectProperty,
  patternRegex,
  throughUnions,
} from './grammar-nodes.js';
import { type NumberRange, numberRange } from './number-range.js';
import { STRING_FORMATS } from './string-formats.js';

/**
 * A JSON Schema (response_format json_schema, guided_json) compiled to grammar nodes. The subset
 * is what structured-output backends (xgrammar, outlines) follow token by token: types, properties
 * with required ones, additionalProperties, minProperties and maxProperties, items and
 * prefixItems with their counts, uniqueItems (uniqueItemsFollowed), string lengths and `pattern`
 * (grammar-nodes.ts patternRegex), numeric bounds (minimum, maximum and their exclusive forms)
 * and multipleOf (exact decimal arithmetic: a constrained number is written without an
 * exponent), enum and const (the values the other keywords allow), anyOf/oneOf, single-schema
 * allOf, and local $ref into $defs or definitions, recursion included. Like xgrammar's default
 * (strict) mode, an object without additionalProperties allows no keys it does not list, and
 * keys come in the schema's order. A string's `format` is followed where string-formats.ts knows
 * it (date, time, date-time, duration, uuid, ipv4, ipv6, hostname, email, uri: what xgrammar
 * follows too), and is otherwise an annotation, as JSON Schema 2020-12 has it by default. Every
 * other keyword that constrains a value (not, if/then/else, …) is refused by name: never
 * silently ignored.
 */
const ANNOTATIONS = new Set([
  'title',
  'description',
  'default',
  'examples',
  '$schema',
  '$id',
  '$comment',
  'deprecated',
  'readOnly',
  'writeOnly',
  'format',
  '$defs',
  'definitions',
  // 2020-12's content vocabulary annotates by default; OpenAPI's discriminator (pydantic writes it
  // beside the oneOf of a tagged union) names the property that tells the options apart, and
  // allows nothing the oneOf does not; editors' markdownDescription.
  'contentEncoding',
  'contentMediaType',
  'contentSchema',
  'discriminator',
  'markdownDescription',
]);

/** Keywords that constrain nothing: the annotations, and OpenAPI's `x-` extensions. */
const isAnnotation = (key: string) => ANNOTATIONS.has(key) || key.startsWith('x-');

const NUMBER_BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'] as const;
const NUMBER_KEYWORDS = [...NUMBER_BOUNDS, 'multipleOf'] as const;

const KEYWORDS_BY_TYPE: Record<string, readonly string[]> = {
  object: [
    'properties',
    'required',
    'additionalProperties',
    'propertyNames',
    'minProperties',
    'maxProperties',
  ],
  array: ['items', 'prefixItems', 'additionalItems', 'minItems', 'maxItems', 'uniqueItems'],
  string: ['minLength', 'maxLength', 'pattern'],
  number: NUMBER_KEYWORDS,
  integer: NUMBER_KEYWORDS,
  boolean: [],
  null: [],
};
const COMPOSITION = ['type', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', 'nullable'];
const KNOWN = new Set([...ANNOTATIONS, ...COMPOSITION, ...Object.values(KEYWORDS_BY_TYPE).flat()]);

type Schema = boolean | Record<string, unknown>;

export function compileJsonSchema(schema: unknown, param: string): Grammar {
  return new SchemaCompiler(schema, param).grammar();
}

/** `schema` compiled into `nodes` (a graph holding several, as a structural tag's); its root's index. */
export function addJsonSchema(schema: unknown, param: string, nodes: GrammarNode[]): number {
  return new SchemaCompiler(schema, param, nodes).grammar().root;
}

/** A function the model may call: its name, its arguments' schema, and the field that gave it. */
export interface ToolSchema {
  name: string;
  parameters: unknown;
  param: string;
}

/**
 * The grammar of OpenAI's tool_choice "required" (as vLLM words it as a schema): a JSON array of
 * 1 to maxCalls calls `{"name": <a tool's name>, "parameters": <that tool's arguments>}`. Each
 * tool's schema is compiled on its own (its $refs resolve against its own root), into one graph.
 */
export function compileToolCallsGrammar(tools: readonly ToolSchema[], maxCalls: number): Grammar {
  const nodes: GrammarNode[] = [];
  const add = (node: GrammarNode) => nodes.push(node) - 1;
  const options = tools.map((tool) => {
    const parameters = addJsonSchema(tool.parameters, tool.param, nodes);
    const name = add({ kind: 'literal', texts: [jsonBytes(tool.name)] });
    return add({
      kind: 'object',
      properties: [
        { name: 'name', keyText: 'name', value: name, required: true },
        { name: 'parameters', keyText: 'parameters', value: parameters, required: true },
      ],
      additional: null,
    });
  });
  const call = add({ kind: 'union', options });
  const root = add({ kind: 'array', prefix: [], items: call, minItems: 1, maxItems: maxCalls });
  return { nodes, root, json: true };
}

class SchemaCompiler {
  private readonly compiled = new Map<object, number>();
  private anyNode: number | null = null;

  constructor(
    private readonly rootSchema: unknown,
    private readonly param: string,
    /** The graph to add to (compileToolCallsGrammar puts several schemas in one). */
    private readonly nodes: GrammarNode[] = [],
  ) {}

  grammar(): Grammar {
    if (!isSchema(this.rootSchema)) this.fail('must be a JSON Schema (an object)', '');
    const root = this.node(this.rootSchema as Schema, '#');
    return { nodes: this.nodes, root, json: true };
  }

  private fail(what: string, path: string): never {
    throw new GuideError(`${this.param}: the schema${path ? ` at ${path}` : ''} ${what}.`, this.param);
  }

  private any(): number {
    this.anyNode ??= this.add({ kind: 'any' });
    return this.anyNode;
  }

  private add(node: GrammarNode): number {
    this.nodes.push(node);
    return this.nodes.length - 1;
  }

  private node(schema: Schema, path: string): number {
    if (schema === true) return this.any();
    if (schema === false) this.fail('is false: no value matches it', path);
    const s = schema as Record<string, unknown>;
    const done = this.compiled.get(s);
    if (done !== undefined) return done;
    for (const key of Object.keys(s)) {
      if (!KNOWN.has(key) && !isAnnotation(key))
        this.fail(`uses the keyword "${key}", which Loom's structured output does not support`, path);
    }
    if ('nullable' in s) return this.nullable(s, path);
    const constraining = Object.keys(s).filter((k) => !isAnnotation(k));
    const alone = (keyword: string) => {
      const others = constraining.filter((k) => k !== keyword);
      if (others.length > 0)
        this.fail(
          `combines "${keyword}" with ${others.map((k) => `"${k}"`).join(', ')}, which is not supported`,
          path,
        );
    };
    // A placeholder first: a $ref cycle back to this schema finds its index.
    const index = this.add({ kind: 'any' });
    this.compiled.set(s, index);
    let node: GrammarNode;
    if ('$ref' in s) {
      alone('$ref');
      node = { kind: 'union', options: [this.node(this.resolve(s.$ref, path), String(s.$ref))] };
    } else if ('allOf' in s) {
      alone('allOf');
      const all = s.allOf;
      if (!Array.isArray(all) || all.length !== 1 || !isSchema(all[0]))
        this.fail('uses "allOf" with other than one schema, which is not supported', path);
      node = { kind: 'union', options: [this.node(all[0] as Schema, `${path}/allOf/0`)] };
    } else if ('anyOf' in s || 'oneOf' in s) {
      const keyword = 'anyOf' in s ? 'anyOf' : 'oneOf';
      alone(keyword);
      const options = s[keyword];
      if (!Array.isArray(options) || options.length === 0 || !options.every(isSchema))
        this.fail(`has a "${keyword}" that is not a non-empty list of schemas`, path);
      node = {
        kind: 'union',
        options: (options as Schema[]).map((o, i) => this.node(o, `${path}/${keyword}/${i}`)),
      };
    } else if ('const' in s || 'enum' in s) {
      if ('enum' in s && (!Array.isArray(s.enum) || s.enum.length === 0))
        this.fail('has an "enum" that is not a non-empty list', path);
      node = { kind: 'literal', texts: this.allowedValues(s, path) };
    } else {
      node = this.typed(s, path);
    }
    this.nodes[index] = node;
    return index;
  }

  /**
   * OpenAPI 3.0's `nullable: true`: the schema's values, or null (FastAPI and OpenAPI tool
   * definitions write it where JSON Schema has a type list). As OpenAPI 3.0.3 reads it, it adds no
   * null to an `enum` or `const`: those list their values themselves.
   */
  private nullable(s: Record<string, unknown>, path: string): number {
    if (typeof s.nullable !== 'boolean') this.fail('has "nullable" that is not true or false', path);
    const index = this.add({ kind: 'any' });
    this.compiled.set(s, index);
    const { nullable, ...rest } = s;
    const options = [this.node(rest, path)];
    if (nullable && !('enum' in s) && !('const' in s))
      options.push(this.add({ kind: 'literal', texts: [jsonBytes(null)] }));
    this.nodes[index] = { kind: 'union', options };
    return index;
  }

  /**
   * The JSON texts of a schema's `const` (or `enum` values) that its other keywords allow too, as
   * JSON Schema applies every keyword: {"enum": [1, 5], "maximum": 3} allows 1 only. Each value is
   * checked against the rest of the schema compiled on its own, so the test is the very grammar
   * a value without the enum would follow (keys in the schema's order, a constrained number
   * without an exponent).
   */
  private allowedValues(s: Record<string, unknown>, path: string): Uint8Array[] {
    const keyword = 'const' in s ? 'const' : 'enum';
    let values = 'const' in s ? [s.const] : (s.enum as unknown[]);
    if ('const' in s && 'enum' in s) {
      const listed = new Set((s.enum as unknown[]).map((v) => JSON.stringify(v)));
      values = values.filter((v) => listed.has(JSON.stringify(v)));
    }
    let texts = values.map(jsonBytes);
    const rest = Object.fromEntries(Object.entries(s).filter(([k]) => k !== 'const' && k !== 'enum'));
    if (Object.keys(rest).some((k) => !isAnnotation(k))) {
      const matcher = new ByteMatcher({ nodes: this.nodes, root: this.node(rest, path), json: true });
      texts = texts.filter((text) => {
        let states = matcher.start();
        for (const b of text) {
          states = matcher.feed(states, b);
          if (states.length === 0) return false;
        }
        return matcher.canEnd(states);
      });
    }
    if (texts.length === 0)
      this.fail(`allows no value: no "${keyword}" value meets its other keywords`, path);
    return texts;
  }

  /** A schema by its type (or by the keywords it uses when it names none). */
  private typed(s: Record<string, unknown>, path: string): GrammarNode {
    let types: string[];
    if (s.type === undefined) {
      // Numeric bounds alone name numbers (integers among them).
      types = Object.keys(KEYWORDS_BY_TYPE).filter(
        (t) => t !== 'integer' && KEYWORDS_BY_TYPE[t].some((k) => k in s),
      );
      if (types.length === 0) return { kind: 'any' };
    } else types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    for (const t of types)
      if (typeof t !== 'string' || !(t in KEYWORDS_BY_TYPE))
        this.fail(`has an unknown type ${JSON.stringify(t)}`, path);
    for (const key of Object.keys(s)) {
      const owners = Object.keys(KEYWORDS_BY_TYPE).filter((t) => KEYWORDS_BY_TYPE[t].includes(key));
      if (owners.length > 0 && !owners.some((t) => types.includes(t)))
        this.fail(`uses "${key}" without allowing type "${owners[0]}"`, path);
    }
    const nodes = types.map((t) => this.ofType(t, s, path));
    if (nodes.length === 1) return nodes[0];
    return { kind: 'union', options: nodes.map((n) => this.add(n)) };
  }

  private ofType(type: string, s: Record<string, unknown>, path: string): GrammarNode {
    switch (type) {
      case 'object':
        return this.object(s, path);
      case 'array':
        return this.array(s, path);
      case 'string': {
        const minLength = this.count(s, 'minLength', 0, path);
        const maxLength = this.count(s, 'maxLength', Number.POSITIVE_INFINITY, path);
        if (minLength > maxLength) this.fail('has minLength above maxLength', path);
        if (s.pattern !== undefined && typeof s.pattern !== 'string')
          this.fail('has a "pattern" that is not a string', path);
        const format = typeof s.format === 'string' ? STRING_FORMATS.get(s.format) : undefined;
        if (format !== undefined && s.pattern !== undefined)
          this.fail('has both "format" and "pattern", which Loom cannot follow together', path);
        const pattern =
          typeof s.pattern === 'string'
            ? patternRegex(s.pattern, `${this.param}: the schema${path ? ` at ${path}` : ''}`, this.param)
            : format !== undefined
              ? formatRegex(s.format as string, format, this.param)
              : null;
        return { kind: 'string', minLength, maxLength, pattern };
      }
      case 'number':
      case 'integer':
        return {
          kind: 'number',
          integer: type === 'integer',
          range: this.range(type === 'integer', s, path),
        };
      case 'boolean':
        return { kind: 'literal', texts: [jsonBytes(true), jsonBytes(false)] };
      default:
        return { kind: 'literal', texts: [jsonBytes(null)] };
    }
  }

  private object(s: Record<string, unknown>, path: string): GrammarNode {
    const props = (s.properties ?? {}) as Record<string, unknown>;
    if (typeof props !== 'object' || props === null || Array.isArray(props))
      this.fail('has "properties" that is not an object', path);
    const required = s.required ?? [];
    if (!Array.isArray(required) || !required.every((r) => typeof r === 'string'))
      this.fail('has "required" that is not a list of names', path);
    const additional = s.additionalProperties;
    if (additional !== undefined && !isSchema(additional))
      this.fail('has "additionalProperties" that is not a schema', path);
    const missing = (required as string[]).filter((r) => !(r in props));
    if (missing.length > 0)
      this.fail(
        `requires ${missing.map((m) => `"${m}"`).join(', ')} without listing it in "properties"`,
        path,
      );
    const names = this.propertyNames(s, path);
    const property = (name: string, value: number, isRequired: boolean): ObjectProperty => {
      const quoted = jsonBytes(name);
      return {
        name,
        keyText: String.fromCharCode(...quoted.subarray(1, quoted.length - 1)),
        value,
        required: isRequired,
      };
    };
    const properties: ObjectProperty[] = [];
    for (const [name, value] of Object.entries(props)) {
      if (!isSchema(value)) this.fail(`has a property "${name}" whose schema is not a schema`, path);
      const isRequired = (required as string[]).includes(name);
      if (names && !names.includes(name)) {
        if (isRequired)
          this.fail(`allows no object: it requires "${name}", which "propertyNames" does not allow`, path);
        continue; // a key its propertyNames forbid can never be written
      }
      properties.push(property(name, this.node(value as Schema, `${path}/properties/${name}`), isRequired));
    }
    let additionalNode =
      additional === undefined || additional === false
        ? null
        : this.node(additional as Schema, `${path}/additionalProperties`);
    if (names) {
      // The names propertyNames lists that properties does not: optional keys of the
      // additionalProperties schema, after the listed ones; no other key can be written.
      if (additionalNode !== null)
        for (const name of names)
          if (!(name in props)) properties.push(property(name, additionalNode, false));
      additionalNode = null;
    }
    const minProperties = this.count(s, 'minProperties', 0, path);
    const maxProperties = this.count(s, 'maxProperties', Number.POSITIVE_INFINITY, path);
    const mostKeys = additionalNode === null ? properties.length : Number.POSITIVE_INFINITY;
    if (minProperties > Math.min(maxProperties, mostKeys))
      this.fail(
        `allows no object: "minProperties" ${minProperties} is more than ${maxProperties < mostKeys ? `"maxProperties" ${maxProperties}` : `the ${mostKeys} properties it allows`}`,
        path,
      );
    const requiredCount = properties.filter((p) => p.required).length;
    if (requiredCount > maxProperties)
      this.fail(
        `allows no object: it requires ${requiredCount} properties, "maxProperties" is ${maxProperties}`,
        path,
      );
    return {
      kind: 'object',
      properties,
      additional: additionalNode,
      ...(minProperties > 0 ? { minProperties } : {}),
      ...(maxProperties < Number.POSITIVE_INFINITY ? { maxProperties } : {}),
    };
  }

  /**
   * The key names a schema's propertyNames allow, where it lists them (an enum or const of
   * strings, also through a $ref: pydantic's dict[Literal[...], X] and dict[SomeEnum, X]); null
   * where it allows any name. Names otherwise constrained (a pattern, lengths) are refused.
   */
  private propertyNames(s: Record<string, unknown>, path: string): string[] | null {
    const schema = s.propertyNames;
    if (schema === undefined || schema === true) return null;
    if (schema === false) return [];
    if (!isSchema(schema)) this.fail('has "propertyNames" that is not a schema', path);
    const node = this.nodes[throughUnions(this.nodes, this.node(schema as Schema, `${path}/propertyNames`))];
    if (node.kind === 'literal') {
      const values = node.texts.map((t) => JSON.parse(new TextDecoder().decode(t)) as unknown);
      return [...new Set(values.filter((v): v is string => typeof v === 'string'))];
    }
    if (node.kind === 'string' && !node.pattern && node.minLength === 0 && node.maxLength === Infinity)
      return null;
    return this.fail(
      'uses "propertyNames" other than a list of names ("enum" or "const"), which Loom\'s structured output does not follow',
      path,
    );
  }

  private array(s: Record<string, unknown>, path: string): GrammarNode {
    if (s.uniqueItems !== undefined && typeof s.uniqueItems !== 'boolean')
      this.fail('has "uniqueItems" that is not true or false', path);
    // Drafts 4 to 2019-09 write a tuple as a list in "items", the items after it as
    // "additionalItems" (which a single "items" schema leaves without effect): 2020-12's
    // prefixItems and items.
    const tuple = Array.isArray(s.items);
    if (tuple && s.prefixItems !== undefined)
      this.fail('has both "prefixItems" and a list in "items"; a draft-7 tuple is one or the other', path);
    if (s.additionalItems !== undefined && !isSchema(s.additionalItems))
      this.fail('has "additionalItems" that is not a schema', path);
    const prefix = (tuple ? s.items : s.prefixItems) ?? [];
    if (!Array.isArray(prefix) || !prefix.every(isSchema))
      this.fail(`has "${tuple ? 'items' : 'prefixItems'}" that is not a list of schemas`, path);
    const items = tuple ? s.additionalItems : s.items;
    if (items !== undefined && !isSchema(items)) this.fail('has "items" that is not a schema', path);
    const minItems = this.count(s, 'minItems', 0, path);
    let maxItems = this.count(s, 'maxItems', Number.POSITIVE_INFINITY, path);
    if (items === false) maxItems = Math.min(maxItems, prefix.length);
    if (minItems > maxItems) this.fail('asks more items than it allows', path);
    const itemNode =
      items === false
        ? null
        : items === undefined
          ? this.any()
          : this.node(items as Schema, `${path}/${tuple ? 'additionalItems' : 'items'}`);
    const unique = s.uniqueItems === true;
    if (unique) this.uniqueItemsFollowed(prefix.length, itemNode, minItems, path);
    return {
      kind: 'array',
      prefix: (prefix as Schema[]).map((p, i) =>
        this.node(p, `${path}/${tuple ? 'items' : 'prefixItems'}/${i}`),
      ),
      items: itemNode,
      minItems,
      maxItems,
      ...(unique ? { uniqueItems: true } : {}),
    };
  }

  /**
   * "uniqueItems": true is followed where a repeat can be told and avoided while the items are
   * written: items from a fixed list (enum, const, boolean; a set of enum members is what pydantic
   * writes for set[Literal] and set[Enum]), each value offered until it has been used; strings
   * with no pattern, format or maxLength (set[str]), whose closing quote is refused on a repeat
   * (the string can always go on); numbers and integers without bounds or multipleOf (set[int]),
   * which cannot end on a value written before (compared as exact decimals; more digits always
   * make a new one, but for an integer 0, which cannot start again). Others are refused by name.
   */
  private uniqueItemsFollowed(
    prefixCount: number,
    item: number | null,
    minItems: number,
    path: string,
  ): void {
    const unsupported = () =>
      this.fail(
        'uses "uniqueItems": true with items Loom cannot keep apart while they are written (it follows it for items from "enum"/"const", strings without "pattern", "format" or "maxLength", and numbers without bounds or "multipleOf")',
        path,
      );
    if (prefixCount > 0 || item === null) unsupported();
    const n = this.nodes[throughUnions(this.nodes, item as number)];
    if (n.kind === 'literal') {
      const values = new Set(n.texts.map((t) => String.fromCharCode(...t))).size;
      if (minItems > values)
        this.fail(
          `allows no array: "minItems" ${minItems} with "uniqueItems" and ${values} possible items`,
          path,
        );
    } else if (n.kind === 'number') {
      if (n.range) unsupported();
    } else if (n.kind !== 'string' || n.pattern || n.maxLength !== Number.POSITIVE_INFINITY) unsupported();
  }

  /**
   * minimum / maximum / exclusiveMinimum / exclusiveMaximum (2020-12's numbers; draft 4's
   * boolean exclusiveMinimum/Maximum, which turn minimum/maximum exclusive, are read too) and
   * multipleOf.
   */
  private range(integerType: boolean, s: Record<string, unknown>, path: string): NumberRange | null {
    const bounds: Partial<Record<(typeof NUMBER_KEYWORDS)[number], number>> = {};
    for (const key of NUMBER_KEYWORDS) {
      const v = s[key];
      if (v === undefined || (typeof v === 'boolean' && key !== 'multipleOf')) continue;
      if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(`has "${key}" that is not a number`, path);
      if (key === 'multipleOf' && v <= 0) this.fail(`has "multipleOf" ${v}: it must be greater than 0`, path);
      bounds[key] = v;
    }
    for (const [flag, bound] of [
      ['exclusiveMinimum', 'minimum'],
      ['exclusiveMaximum', 'maximum'],
    ] as const) {
      if (typeof s[flag] !== 'boolean') continue;
      if (s[flag] === true) {
        if (bounds[bound] === undefined) this.fail(`has "${flag}": true without "${bound}"`, path);
        bounds[flag] = bounds[bound];
        delete bounds[bound];
      }
    }
    try {
      return numberRange(integerType, bounds);
    } catch (err) {
      if (err instanceof RangeError)
        this.fail(`allows no ${integerType ? 'integer' : 'number'}: ${err.message}`, path);
      throw err;
    }
  }

  private count(s: Record<string, unknown>, key: string, fallback: number, path: string): number {
    const v = s[key];
    if (v === undefined) return fallback;
    if (!Number.isInteger(v) || (v as number) < 0)
      this.fail(`has "${key}" that is not a non-negative integer`, path);
    return v as number;
  }

  /** A local reference: "#", "#/$defs/Name" or "#/definitions/Name" (JSON Pointer escapes decoded). */
  private resolve(ref: unknown, path: string): Schema {
    if (typeof ref !== 'string' || !ref.startsWith('#'))
      this.fail(
        `has a "$ref" ${JSON.stringify(ref)} that is not local (only "#..." references are supported)`,
        path,
      );
    let target: unknown = this.rootSchema;
    const pointer = (ref as string).slice(1);
    if (pointer !== '') {
      for (const raw of pointer.split('/').slice(1)) {
        const part = decodeURIComponent(raw).replaceAll('~1', '/').replaceAll('~0', '~');
        target =
          typeof target === 'object' && target !== null
            ? (target as Record<string, unknown>)[part]
            : undefined;
      }
    }
    if (!isSchema(target)) this.fail(`has a "$ref" ${JSON.stringify(ref)} that names no schema`, path);
    return target as Schema;
  }
}

function isSchema(v: unknown): boolean {
  return typeof v === 'boolean' || (typeof v === 'object' && v !== null && !Array.isArray(v));
}
