/**
 * A minimal protobuf wire-format reader, the other half of protobuf-writer.ts: it walks a
 * message's fields without knowing its schema, so a caller can rewrite the few fields it cares
 * about and copy every other field as the bytes it was (saved-model-repair.ts).
 */
const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

export interface ProtoField {
  field: number;
  wireType: number;
  /** The whole field, tag included, as it sits in the message. */
  encoded: Uint8Array;
  /** A length-delimited field's payload (a string, bytes or a nested message); else empty. */
  payload: Uint8Array;
}

/** The fields of one message in wire order; throws on a truncated or malformed message. */
export function* protoFields(message: Uint8Array): Generator<ProtoField> {
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= message.length) throw new Error('protobuf: truncated varint');
      const byte = message[pos++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
      scale *= 128;
      if (scale > 2 ** 63) throw new Error('protobuf: varint longer than ten bytes');
    }
  };
  while (pos < message.length) {
    const start = pos;
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    let payloadStart = pos;
    switch (wireType) {
      case WIRE_VARINT:
        varint();
        payloadStart = pos;
        break;
      case WIRE_FIXED64:
        pos += 8;
        payloadStart = pos;
        break;
      case WIRE_FIXED32:
        pos += 4;
        payloadStart = pos;
        break;
      case WIRE_LENGTH_DELIMITED: {
        const length = varint();
        payloadStart = pos;
        pos += length;
        break;
      }
      default:
        throw new Error(`protobuf: wire type ${wireType} of field ${field} is not one this reader knows`);
    }
    if (pos > message.length) throw new Error(`protobuf: field ${field} runs past the message's end`);
    yield {
      field,
      wireType,
      encoded: message.subarray(start, pos),
      payload: message.subarray(payloadStart, pos),
    };
  }
}

/** A length-delimited field's payload as UTF-8 text. */
export function protoString(field: ProtoField): string {
  return new TextDecoder().decode(field.payload);
}

export function isLengthDelimited(field: ProtoField): boolean {
  return field.wireType === WIRE_LENGTH_DELIMITED;
}
