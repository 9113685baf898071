/**
 * A minimal protobuf wire-format encoder: just what ONNX's ModelProto family needs (varints,
 * fixed32 floats, length-delimited strings, bytes and nested messages).
 *
 * Nested messages are kept as chunk lists and only concatenated once in `finish()`, so a large
 * `raw_data` payload (weights stored as initializers) is copied a single time.
 */
const WIRE_VARINT = 0;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

const textEncoder = new TextEncoder();

export class ProtoWriter {
  private readonly chunks: Uint8Array[] = [];
  /** Small writes collect here until a large chunk or a nested message needs to follow them. */
  private pending: number[] = [];
  private flushedLength = 0;

  get byteLength(): number {
    return this.flushedLength + this.pending.length;
  }

  /** An int32/int64/enum/bool field. Negative values take ten bytes, as protobuf's int64 does. */
  varint(field: number, value: number | bigint): this {
    this.tag(field, WIRE_VARINT);
    this.rawVarint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    const bytes = new Uint8Array(new Float32Array([value]).buffer);
    for (const b of bytes) this.pending.push(b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  bytes(field: number, value: Uint8Array): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(value.length);
    this.append(value);
    return this;
  }

  /** A nested message field; `child` is not copied until `finish()`. */
  message(field: number, child: ProtoWriter): this {
    this.tag(field, WIRE_LENGTH_DELIMITED);
    this.rawVarint(child.byteLength);
    child.flush();
    for (const c of child.chunks) this.append(c);
    return this;
  }

  /** Bytes already in wire format: a whole field copied from a parsed message (protobuf-reader.ts). */
  raw(encoded: Uint8Array): this {
    this.append(encoded);
    return this;
  }

  /** A repeated int64 field in packed encoding. */
  packedVarints(field: number, values: ArrayLike<number | bigint>): this {
    const inner = new ProtoWriter();
    for (let i = 0; i < values.length; i++) inner.rawVarint(values[i]);
    return this.message(field, inner);
  }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0];
    const out = new Uint8Array(this.flushedLength);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }

  private tag(field: number, wireType: number): void {
    this.rawVarint(field * 8 + wireType);
  }

  private rawVarint(value: number | bigint): void {
    if (typeof value === 'number' && value >= 0 && value <= 0x7fffffff) {
      let v = value;
      while (v > 0x7f) {
        this.pending.push((v & 0x7f) | 0x80);
        v >>>= 7;
      }
      this.pending.push(v);
      return;
    }
    let v = BigInt.asUintN(64, BigInt(value));
    while (v > 0x7fn) {
      this.pending.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    this.pending.push(Number(v));
  }

  private append(bytes: Uint8Array): void {
    if (bytes.length < 64) {
      for (const b of bytes) this.pending.push(b);
      return;
    }
    this.flush();
    this.chunks.push(bytes);
    this.flushedLength += bytes.length;
  }

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(Uint8Array.from(this.pending));
    this.flushedLength += this.pending.length;
    this.pending = [];
  }
}
