/** Rows of the embedding table table[vocab, hidden] for each token id: [ids.length, hidden]. */
export function embed(table: Float32Array, hidden: number, ids: ArrayLike<number>): Float32Array {
  const vocab = table.length / hidden;
  const y = new Float32Array(ids.length * hidden);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (!Number.isInteger(id) || id < 0 || id >= vocab)
      throw new Error(`embed: token id ${id} outside the vocabulary [0, ${vocab})`);
    y.set(table.subarray(id * hidden, (id + 1) * hidden), t * hidden);
  }
  return y;
}
