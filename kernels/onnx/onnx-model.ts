import { ProtoWriter } from './protobuf-writer.js';

/**
 * A small ONNX graph builder that serialises straight to ModelProto bytes for
 * `ort.InferenceSession.create(bytes)`. Field numbers follow onnx.proto.
 */
export type ElemType = 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
/** A fixed size, or a symbolic name shared by every input that has the same size. */
export type Dim = number | string;

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint16Array | Int8Array;

export interface TensorInit {
  type: ElemType;
  dims: readonly number[];
  data: TensorData | Uint8Array;
}

/** Attribute values: a JS number is an INT attribute; floats must be marked as such. */
export type AttrValue =
  | number
  | string
  | readonly number[]
  | { float: number }
  | { floats: readonly number[] }
  | { tensor: TensorInit }
  | { graph: GraphBuilder };

const ONNX_ELEM_TYPE: Record<ElemType, number> = {
  float32: 1,
  uint8: 2,
  int8: 3,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  bfloat16: 16,
};

const ELEM_BYTES: Record<ElemType, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int8: 1,
  uint8: 1,
  bool: 1,
};
const DATA_LOCATION_EXTERNAL = 1;

const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_TENSOR = 4;
const ATTR_GRAPH = 5;
const ATTR_FLOATS = 6;
const ATTR_INTS = 7;

/** The default opset: ORT 1.30 runs it on CPU, and it has every op Loom's graphs use. */
export const DEFAULT_OPSET = 17;
/** IR version 8 pairs with opset 17. */
const IR_VERSION = 8;

export interface NodeOptions {
  /** Operator domain, '' for the standard ONNX domain ('com.microsoft' for ORT's contrib ops). */
  domain?: string;
  /** Names for the node's outputs (e.g. a graph output); the rest get fresh names. */
  outputNames?: readonly string[];
}

interface ValueInfo {
  name: string;
  type: ElemType;
  /** Omitted: the shape is left to inference (a branch's output, whose shape is the taker's). */
  dims?: readonly Dim[];
}

export class GraphBuilder {
  private readonly nodes: ProtoWriter[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly initializers: ProtoWriter[] = [];
  private readonly usedNames: Set<string>;
  private readonly ids: { next: number };
  private readonly domains: Map<string, number>;

  constructor(
    readonly name: string,
    readonly opset = DEFAULT_OPSET,
    parent?: GraphBuilder,
  ) {
    // A branch shares its parent's names (ONNX values are named once across nested graphs, and a
    // branch reads outer values by name) and its operator domains (declared once, on the model).
    this.usedNames = parent?.usedNames ?? new Set();
    this.ids = parent?.ids ?? { next: 0 };
    this.domains = parent?.domains ?? new Map();
  }

  /**
   * A subgraph for a control-flow attribute (If's then_branch / else_branch): `build` adds its
   * nodes to the given builder, reading any value of this graph by name, and returns the values
   * it outputs with their types.
   */
  branch(
    prefix: string,
    build: (b: GraphBuilder) => ReadonlyArray<{ value: string; type: ElemType }>,
  ): GraphBuilder {
    const b = new GraphBuilder(this.fresh(prefix), this.opset, this);
    for (const { value, type } of build(b)) b.outputs.push({ name: value, type });
    return b;
  }

  /** Declares a graph input and returns its name. */
  input(name: string, type: ElemType, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push({ name, type, dims });
    return name;
  }

  /** Marks an existing value as a graph output (dims may be symbolic or left to inference). */
  output(value: string, type: ElemType, dims: readonly Dim[]): void {
    this.outputs.push({ name: value, type, dims });
  }

  /** A constant stored in the model (an initializer). */
  constant(init: TensorInit, name?: string): string {
    if (name !== undefined) this.claim(name);
    const value = name ?? this.fresh('const');
    this.initializers.push(tensorProto(init, value));
    return value;
  }

  /**
   * An initializer whose bytes live outside the model: in the in-memory "file" `location` that
   * the session is given through `externalData` (all of it, from offset 0), or at `offset` in a
   * real file `location` names inside the session's external-initializer folder (onnxruntime
   * maps it). onnxruntime treats it as a constant, so it can prepack it, while the model stays a
   * few kilobytes.
   */
  external(name: string, type: ElemType, dims: readonly number[], location: string, offset = 0): string {
    this.claim(name);
    const t = new ProtoWriter();
    if (dims.length > 0) t.packedVarints(1, dims);
    t.varint(2, ONNX_ELEM_TYPE[type]);
    t.string(8, name);
    const bytes = dims.reduce((a, b) => a * b, 1) * ELEM_BYTES[type];
    const entries: Array<[string, string]> = [
      ['location', location],
      ['offset', String(offset)],
      ['length', String(bytes)],
    ];
    for (const [key, value] of entries) t.message(13, new ProtoWriter().string(1, key).string(2, value));
    t.varint(14, DATA_LOCATION_EXTERNAL);
    this.initializers.push(t);
    return name;
  }

  /** A 1-D int64 constant, the usual shape/axes/index argument. */
  ints(values: readonly number[]): string {
    return this.constant({ type: 'int64', dims: [values.length], data: BigInt64Array.from(values, BigInt) });
  }

  /** A scalar f32 constant (rank 0, broadcasts everywhere). */
  scalar(value: number): string {
    return this.constant({ type: 'float32', dims: [], data: new Float32Array([value]) });
  }

  /** Adds a node with one output and returns that output's name. */
  op(
    opType: string,
    inputs: readonly string[],
    attrs: Record<string, AttrValue> = {},
    opts: NodeOptions = {},
  ): string {
    return this.opMulti(opType, inputs, 1, attrs, opts)[0];
  }

  /** Adds a node with `numOutputs` outputs and returns their names. */
  opMulti(
    opType: string,
    inputs: readonly string[],
    numOutputs: number,
    attrs: Record<string, AttrValue> = {},
    { domain = '', outputNames }: NodeOptions = {},
  ): string[] {
    const outputs = Array.from({ length: numOutputs }, (_, i) => {
      const wanted = outputNames?.[i];
      if (wanted === undefined) return this.fresh(opType);
      this.claim(wanted);
      return wanted;
    });
    const node = new ProtoWriter();
    for (const i of inputs) node.string(1, i);
    for (const o of outputs) node.string(2, o);
    node.string(3, outputs[0]);
    node.string(4, opType);
    for (const [key, value] of Object.entries(attrs)) node.message(5, attributeProto(key, value));
    if (domain) {
      node.string(7, domain);
      if (!this.domains.has(domain)) this.domains.set(domain, 1);
    }
    this.nodes.push(node);
    return outputs;
  }

  /** Serialises a ModelProto. */
  toBytes(): Uint8Array {
    const model = new ProtoWriter();
    model.varint(1, IR_VERSION);
    model.string(2, 'loom');
    model.message(7, this.graphProto());
    model.message(8, new ProtoWriter().string(1, '').varint(2, this.opset));
    for (const [domain, version] of this.domains) {
      model.message(8, new ProtoWriter().string(1, domain).varint(2, version));
    }
    return model.finish();
  }

  /** The GraphProto alone: the model's main graph, or a branch inside an attribute. */
  graphProto(): ProtoWriter {
    const graph = new ProtoWriter();
    for (const n of this.nodes) graph.message(1, n);
    graph.string(2, this.name);
    for (const init of this.initializers) graph.message(5, init);
    for (const i of this.inputs) graph.message(11, valueInfoProto(i));
    for (const o of this.outputs) graph.message(12, valueInfoProto(o));
    return graph;
  }

  private fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.ids.next++}`;
    while (this.usedNames.has(name));
    this.usedNames.add(name);
    return name;
  }

  private claim(name: string): void {
    if (this.usedNames.has(name)) throw new Error(`graph ${this.name}: value name "${name}" used twice`);
    this.usedNames.add(name);
  }
}

function valueInfoProto(info: ValueInfo): ProtoWriter {
  const tensorType = new ProtoWriter().varint(1, ONNX_ELEM_TYPE[info.type]);
  if (info.dims) {
    const shape = new ProtoWriter();
    for (const d of info.dims) {
      const dim = new ProtoWriter();
      if (typeof d === 'number') dim.varint(1, d);
      else dim.string(2, d);
      shape.message(1, dim);
    }
    tensorType.message(2, shape);
  }
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, info.name).message(2, type);
}

function tensorProto(init: TensorInit, name: string): ProtoWriter {
  const t = new ProtoWriter();
  if (init.dims.length > 0) t.packedVarints(1, init.dims);
  t.varint(2, ONNX_ELEM_TYPE[init.type]);
  t.string(8, name);
  const d = init.data;
  t.bytes(9, d instanceof Uint8Array ? d : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  return t;
}

function attributeProto(name: string, value: AttrValue): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an int; use { float }`);
    return a.varint(3, value).varint(20, ATTR_INT);
  }
  if (typeof value === 'string') return a.string(4, value).varint(20, ATTR_STRING);
  if (isNumberArray(value)) return a.packedVarints(8, value).varint(20, ATTR_INTS);
  if ('float' in value) return a.float(2, value.float).varint(20, ATTR_FLOAT);
  if ('floats' in value) {
    return a.bytes(7, new Uint8Array(Float32Array.from(value.floats).buffer)).varint(20, ATTR_FLOATS);
  }
  if ('graph' in value) return a.message(6, value.graph.graphProto()).varint(20, ATTR_GRAPH);
  return a.message(5, tensorProto(value.tensor, `${name}_value`)).varint(20, ATTR_TENSOR);
}

function isNumberArray(value: AttrValue): value is readonly number[] {
  return Array.isArray(value);
}
