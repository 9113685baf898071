import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../model/float-convert.js';
import { ModelFormatError } from '../../model/model-format-error.js';
import { readSafetensors, SafetensorsFile } from '../../model/safetensors.js';
import { writeSafetensors } from '../../model/safetensors-writer.js';
import { tempDirForFile } from './temp-dir.js';

const dir = tempDirForFile('loom-st-');

/** A raw safetensors file from a header object and a data section, for corruption cases. */
async function rawFile(
  name: string,
  header: unknown,
  dataBytes: number,
  headerLength?: number,
): Promise<string> {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerLength ?? json.length));
  const file = join(dir(), name);
  await writeFile(file, Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]));
  return file;
}

async function openError(file: string): Promise<ModelFormatError> {
  const err = await SafetensorsFile.open(file).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelFormatError);
  expect((err as ModelFormatError).message.startsWith(`${file}: `)).toBe(true);
  return err as ModelFormatError;
}

describe('half-precision conversion', () => {
  it('is exact on representable values and rounds to nearest even', () => {
    for (const v of [0, -0, 1, -2.5, 65504, 2 ** -24, 2 ** -14, 0.333251953125, Number.POSITIVE_INFINITY]) {
      expect(f16ToF32(f32ToF16(v))).toBe(v);
    }
    for (const v of [0, 1, -3.140625, 2 ** 100, 2 ** -130, 3 * 2 ** -127])
      expect(bf16ToF32(f32ToBf16(v))).toBe(v);
    expect(f16ToF32(f32ToF16(1 + 2 ** -11))).toBe(1); // halfway between 1 and 1+2^-10: to even
    expect(f16ToF32(f32ToF16(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(f16ToF32(f32ToF16(70000))).toBe(Number.POSITIVE_INFINITY);
    expect(bf16ToF32(f32ToBf16(1 + 2 ** -8))).toBe(1);
    expect(Number.isNaN(bf16ToF32(f32ToBf16(Number.NaN)))).toBe(true);
    expect(Number.isNaN(f16ToF32(f32ToF16(Number.NaN)))).toBe(true);
  });
});

describe('safetensors round trip', () => {
  // Values every dtype holds exactly, so all three round trips must be bit-exact.
  const exact = new Float32Array([0, 1, -1, 0.5, -0.25, 3, 96, -1024, 0.0078125, 2 ** -14, 6, -7]);

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`reads back ${dtype} exactly, with metadata`, async () => {
      const file = join(dir(), `rt-${dtype}.safetensors`);
      await writeSafetensors(
        file,
        [
          { name: 'a', dtype, shape: [3, 4], data: exact },
          { name: 'b', dtype, shape: [2], data: new Float32Array([1.5, -2]) },
          { name: 'empty', dtype, shape: [0, 4], data: new Float32Array(0) },
        ],
        { format: 'pt' },
      );
      const st = await SafetensorsFile.open(file);
      expect(st.metadata).toEqual({ format: 'pt' });
      expect(st.info('a')).toMatchObject({ dtype, shape: [3, 4] });
      expect(await st.read('a')).toEqual(exact);
      expect(await st.read('empty')).toHaveLength(0);
      await st.close();
      const all = await readSafetensors(file);
      expect([...all.keys()]).toEqual(['a', 'b', 'empty']);
      expect(all.get('b')!.data).toEqual(new Float32Array([1.5, -2]));
    });
  }

  it('reads every tensor in one go as readStored reads each, an F32 tensor at an unaligned offset included', async () => {
    const file = join(dir(), 'all.safetensors');
    await writeSafetensors(file, [
      { name: 'h', dtype: 'F16', shape: [3], data: new Float32Array([1, -2, 0.5]) },
      { name: 'f', dtype: 'F32', shape: [2, 2], data: new Float32Array([0.1, 2, -3, 4]) },
      { name: 'b', dtype: 'BF16', shape: [2], data: new Float32Array([1.5, -8]) },
    ]);
    const st = await SafetensorsFile.open(file);
    expect(st.info('f').begin % 4).not.toBe(0);
    const all = await st.readAllStored();
    for (const name of ['h', 'f', 'b']) expect(all.get(name)).toEqual(await st.readStored(name));
    expect(all.get('f')!.data).toBeInstanceOf(Float32Array);
    // Aligned tensors view one shared buffer: a host copy crosses threads without a copy.
    expect(all.get('h')!.data.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(all.get('h')!.data.buffer).toBe(all.get('b')!.data.buffer);
    await st.close();
  });

  it('rounds F16 and BF16 like the converters', async () => {
    const file = join(dir(), 'round.safetensors');
    const data = new Float32Array([0.1, 1 / 3, -123.456]);
    await writeSafetensors(file, [
      { name: 'h', dtype: 'F16', shape: [3], data },
      { name: 'b', dtype: 'BF16', shape: [3], data },
    ]);
    const all = await readSafetensors(file);
    expect([...all.get('h')!.data]).toEqual([...data].map((v) => f16ToF32(f32ToF16(v))));
    expect([...all.get('b')!.data]).toEqual([...data].map((v) => bf16ToF32(f32ToBf16(v))));
  });

  it('writer refuses data that does not fit the shape', async () => {
    await expect(
      writeSafetensors(join(dir(), 'bad.safetensors'), [
        { name: 'x', dtype: 'F32', shape: [2, 2], data: new Float32Array(3) },
      ]),
    ).rejects.toThrow(/3 elements/);
  });
});

describe('safetensors validation', () => {
  const entry = (dtype: string, shape: number[], offsets: [number, number]) => ({
    dtype,
    shape,
    data_offsets: offsets,
  });

  it('rejects a file too short for the length prefix', async () => {
    const file = join(dir(), 'short.safetensors');
    await writeFile(file, Buffer.alloc(5));
    expect((await openError(file)).problem).toMatch(/too short/);
  });

  it('rejects a header length past the end of the file', async () => {
    const file = await rawFile('len.safetensors', { a: entry('F32', [1], [0, 4]) }, 4, 10_000);
    expect((await openError(file)).problem).toMatch(/header length 10000 runs past the end of the file/);
  });

  it('rejects a header that is not JSON', async () => {
    const file = await rawFile('json.safetensors', '{"a": [', 0);
    expect((await openError(file)).problem).toMatch(/not valid JSON/);
  });

  it('rejects an unknown dtype', async () => {
    const file = await rawFile('dtype.safetensors', { a: entry('Q4_K', [2], [0, 2]) }, 2);
    expect((await openError(file)).problem).toMatch(/tensor "a": unknown dtype "Q4_K"/);
  });

  it('rejects reading a known but unsupported dtype, naming the supported ones', async () => {
    const file = await rawFile('i64.safetensors', { ids: entry('I64', [2], [0, 16]) }, 16);
    const st = await SafetensorsFile.open(file);
    await expect(st.read('ids')).rejects.toThrow(
      `${file}: tensor "ids" has dtype I64; Loom reads only F32, F16 and BF16`,
    );
    await st.close();
  });

  it('rejects offsets out of range', async () => {
    const file = await rawFile('range.safetensors', { a: entry('F32', [4], [0, 16]) }, 8);
    expect((await openError(file)).problem).toMatch(
      /data_offsets \[0, 16\] run past the end of the data section \(8 bytes\)/,
    );
  });

  it('rejects overlapping tensors', async () => {
    const header = { a: entry('F32', [4], [0, 16]), b: entry('F32', [2], [8, 16]) };
    const file = await rawFile('overlap.safetensors', header, 16);
    expect((await openError(file)).problem).toMatch(/tensors "a" \[0, 16\) and "b" \[8, 16\) overlap/);
  });

  it('rejects a byte length that does not match the shape', async () => {
    const file = await rawFile('bytes.safetensors', { a: entry('F16', [3], [0, 8]) }, 8);
    expect((await openError(file)).problem).toMatch(/holds 8 bytes but shape \[3\] of F16 needs 6 bytes/);
  });

  it('rejects duplicate tensor names', async () => {
    const text = `{"a":${JSON.stringify(entry('F32', [1], [0, 4]))},"a":${JSON.stringify(entry('F32', [1], [4, 8]))}}`;
    const file = await rawFile('dup.safetensors', text, 8);
    expect((await openError(file)).problem).toMatch(/tensor "a" appears twice/);
  });

  it('rejects malformed entries', async () => {
    const file = await rawFile(
      'shape.safetensors',
      { a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } },
      4,
    );
    expect((await openError(file)).problem).toMatch(/shape \[-1\] is not a list of non-negative integers/);
  });

  it('names a missing tensor and a missing file', async () => {
    const file = await rawFile('ok.safetensors', { a: entry('F32', [1], [0, 4]) }, 4);
    const st = await SafetensorsFile.open(file);
    await expect(st.read('nope')).rejects.toThrow(`${file}: tensor "nope" is missing`);
    await st.close();
    await openError(join(dir(), 'absent.safetensors'));
  });
});
