/**
 * First-fit ranges of a growable word array (the adapter-slot table's page lists): `allocate`
 * returns a start, `free` gives the range back and merges it with free neighbours. When nothing
 * fits, the array grows (the caller reallocates its buffer to `capacity`); ranges never move,
 * so starts already handed out stay valid.
 */
export class WordRanges {
  /** Free ranges [start, start + length), sorted by start, never adjacent. */
  private readonly free: Array<{ start: number; length: number }> = [];
  private size: number;

  constructor(initialCapacity: number) {
    this.size = Math.max(1, initialCapacity);
    this.free.push({ start: 0, length: this.size });
  }

  get capacity(): number {
    return this.size;
  }

  allocate(length: number): number {
    if (length <= 0) return 0;
    for (let i = 0; i < this.free.length; i++) {
      const range = this.free[i];
      if (range.length < length) continue;
      const start = range.start;
      range.start += length;
      range.length -= length;
      if (range.length === 0) this.free.splice(i, 1);
      return start;
    }
    // Grow at least twofold; the new space joins a free range at the end.
    const grown = Math.max(this.size * 2, this.size + length);
    const last = this.free.at(-1);
    if (last && last.start + last.length === this.size) last.length += grown - this.size;
    else this.free.push({ start: this.size, length: grown - this.size });
    this.size = grown;
    return this.allocate(length);
  }

  release(start: number, length: number): void {
    if (length <= 0) return;
    let i = 0;
    while (i < this.free.length && this.free[i].start < start) i++;
    const before = this.free[i - 1];
    const after = this.free[i];
    if (
      (before && before.start + before.length > start) ||
      (after && start + length > after.start) ||
      start + length > this.size
    )
      throw new Error(`word range [${start}, ${start + length}) is not allocated`);
    if (before && before.start + before.length === start) {
      before.length += length;
      if (after && before.start + before.length === after.start) {
        before.length += after.length;
        this.free.splice(i, 1);
      }
      return;
    }
    if (after && start + length === after.start) {
      after.start = start;
      after.length += length;
      return;
    }
    this.free.splice(i, 0, { start, length });
  }

  /** Words handed out and not yet released. */
  get numUsed(): number {
    return this.size - this.free.reduce((n, r) => n + r.length, 0);
  }
}
