import { isLengthDelimited, protoFields, protoString } from './protobuf-reader.js';
import { ProtoWriter } from './protobuf-writer.js';

/** onnx.proto's field numbers on the path from a model to its subgraphs' initializers. */
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1;
const GRAPH_INITIALIZER = 5;
const NODE_ATTRIBUTE = 5;
const ATTRIBUTE_GRAPH = 6;
const ATTRIBUTE_GRAPHS = 11;
const TENSOR_NAME = 8;

export interface RepairedModel {
  bytes: Uint8Array;
  /** Initializers dropped because the same graph already held one of that name and content. */
  dropped: number;
}

/**
 * A model onnxruntime saved (optimizedModelFilePath) made loadable again. onnxruntime 1.30 writes
 * some initializers of an If branch nested in another If's branch twice, byte for byte the same,
 * and then refuses its own file ("initializer name is not unique"). This keeps the first of each
 * name in each graph, at every depth, and copies every other field as it was. Two initializers of
 * one name but different content are not guessed between: that throws.
 */
export function dropRepeatedInitializers(model: Uint8Array): RepairedModel {
  let dropped = 0;
  const graph = (bytes: Uint8Array): Uint8Array => {
    const out = new ProtoWriter();
    const kept = new Map<string, Uint8Array>();
    for (const f of protoFields(bytes)) {
      if (f.field === GRAPH_INITIALIZER && isLengthDelimited(f)) {
        const name = tensorName(f.payload);
        const first = kept.get(name);
        if (first) {
          if (!sameBytes(first, f.payload))
            throw new Error(`saved model: two different initializers named '${name}' in one graph`);
          dropped++;
          continue;
        }
        kept.set(name, f.payload);
        out.raw(f.encoded);
      } else if (f.field === GRAPH_NODE && isLengthDelimited(f)) out.bytes(f.field, node(f.payload));
      else out.raw(f.encoded);
    }
    return out.finish();
  };
  const node = (bytes: Uint8Array): Uint8Array => {
    const out = new ProtoWriter();
    for (const f of protoFields(bytes))
      if (f.field === NODE_ATTRIBUTE && isLengthDelimited(f)) out.bytes(f.field, attribute(f.payload));
      else out.raw(f.encoded);
    return out.finish();
  };
  const attribute = (bytes: Uint8Array): Uint8Array => {
    const out = new ProtoWriter();
    for (const f of protoFields(bytes))
      if ((f.field === ATTRIBUTE_GRAPH || f.field === ATTRIBUTE_GRAPHS) && isLengthDelimited(f))
        out.bytes(f.field, graph(f.payload));
      else out.raw(f.encoded);
    return out.finish();
  };
  const out = new ProtoWriter();
  for (const f of protoFields(model))
    if (f.field === MODEL_GRAPH && isLengthDelimited(f)) out.bytes(f.field, graph(f.payload));
    else out.raw(f.encoded);
  return { bytes: out.finish(), dropped };
}

function tensorName(tensor: Uint8Array): string {
  for (const f of protoFields(tensor))
    if (f.field === TENSOR_NAME && isLengthDelimited(f)) return protoString(f);
  return '';
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
